/**
 * Contents of one flash partition with NOR semantics: erased bytes read 0xFF, programming can only clear
 * bits (a write over unerased data corrupts it, as on the chip). Sectors are allocated on first program,
 * so a fleet of devices with 1.875 MiB partitions costs only the bytes actually written.
 */
import { FlashOpError, type FlashFaults } from './flash-faults';
import { SECTOR_SIZE } from './flash-timing';

export class SparseFlash {
  private readonly sectors = new Map<number, Buffer>();
  /** Sectors whose buffer other flashes hold too (adopted): copied before their first program. */
  private readonly shared = new Set<number>();
  /** Erase and program operations the application asked for (tests: "nothing was written"). */
  erases = 0;
  programs = 0;

  constructor(
    readonly label: string,
    readonly size: number,
    /** Fault injection (flash-faults.ts): decides whether an erase or program lands. */
    private readonly faults?: FlashFaults,
  ) {}

  /** Erases whole sectors covering [offset, offset + length). */
  erase(offset: number, length: number): void {
    this.checkRange(offset, length);
    this.erases++;
    const verdict = this.faults?.gate('erase', length);
    if (verdict?.land === 'fail') throw new FlashOpError('erase');
    if (verdict && verdict.land !== 'all') return;
    const first = Math.floor(offset / SECTOR_SIZE);
    const last = Math.floor((offset + length - 1) / SECTOR_SIZE);
    for (let s = first; s <= last; s++) {
      this.sectors.delete(s);
      this.shared.delete(s);
    }
  }

  eraseAll(): void {
    this.sectors.clear();
    this.shared.clear();
  }

  /**
   * Fills erased flash from sector 0 with contents that stay owned elsewhere (copy on write): the same
   * factory image on every device of a fleet is then held once. Equal to programming the bytes.
   */
  adoptSectors(contents: readonly Buffer[]): void {
    this.checkRange(0, Math.min(contents.length * SECTOR_SIZE, this.size));
    contents.forEach((sector, index) => {
      if (sector.length !== SECTOR_SIZE) throw new RangeError(`adopted sector ${index} has ${sector.length} bytes, not ${SECTOR_SIZE}`);
      if (this.sectors.has(index)) throw new RangeError(`adopted sector ${index} of ${this.label} is not erased`);
      this.sectors.set(index, sector);
      this.shared.add(index);
    });
  }

  program(offset: number, data: Buffer): void {
    this.checkRange(offset, data.length);
    this.programs++;
    if (this.faults) {
      const verdict = this.faults.gate('program', data.length);
      if (verdict.land === 'fail') throw new FlashOpError('program');
      if (verdict.land === 'none') return;
      if (verdict.land === 'prefix') data = data.subarray(0, verdict.bytes);
    }
    let done = 0;
    while (done < data.length) {
      const at = offset + done;
      const index = Math.floor(at / SECTOR_SIZE);
      const within = at % SECTOR_SIZE;
      const n = Math.min(SECTOR_SIZE - within, data.length - done);
      let sector = this.sectors.get(index);
      if (!sector || this.shared.has(index)) {
        sector = sector ? Buffer.from(sector) : Buffer.alloc(SECTOR_SIZE, 0xff);
        this.sectors.set(index, sector);
        this.shared.delete(index);
      }
      for (let i = 0; i < n; i++) sector[within + i] &= data[done + i];
      done += n;
    }
  }

  read(offset: number, length: number): Buffer {
    this.checkRange(offset, length);
    const out = Buffer.alloc(length, 0xff);
    let done = 0;
    while (done < length) {
      const at = offset + done;
      const index = Math.floor(at / SECTOR_SIZE);
      const within = at % SECTOR_SIZE;
      const n = Math.min(SECTOR_SIZE - within, length - done);
      const sector = this.sectors.get(index);
      if (sector) sector.copy(out, done, within, within + n);
      done += n;
    }
    return out;
  }

  /** True when every byte of the range reads 0xFF. */
  isErased(offset: number, length: number): boolean {
    const data = this.read(offset, length);
    for (let i = 0; i < data.length; i++) if (data[i] !== 0xff) return false;
    return true;
  }

  private checkRange(offset: number, length: number): void {
    if (offset < 0 || length < 0 || offset + length > this.size) {
      throw new RangeError(`flash access ${offset}+${length} outside partition ${this.label} (${this.size} bytes)`);
    }
  }
}
