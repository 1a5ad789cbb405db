/**
 * Fault injection at the device's flash (docs/FAULTS.md): the erase and program operations on the two
 * app partitions are counted from 1 (in the order the firmware issues them, over both slots); at the
 * armed operation power is lost. A torn write lands a prefix of its bytes first (NOR flash programs page
 * by page, so a cut mid-operation leaves some of it written); an interrupted erase erases nothing
 * (pessimistic: a partly erased sector reads as neither old nor erased on a real chip). From the cut
 * until the device powers off (the next clock step) no operation reaches flash: the power is gone.
 */
export interface FlashCut {
  /** The operation (1-based, counted from when the cut was armed) at which power is lost. */
  atOp: number;
  /** Bytes of that operation that land when it is a program (default 0: none). */
  tornBytes?: number;
  /** Called once, on the clock step after the cut: the caller powers the device off (radio powerLoss). */
  onCut(): void;
}

/**
 * An erase or program that returned an error with the power on (esp_partition_erase_range /
 * esp_partition_write -> ESP_ERR_FLASH_OP_FAIL, espressif/esp-idf v5.3.2
 * components/spi_flash/include/spi_flash_mmap.h:26; esp_ota_write passes it on, app_update/esp_ota_ops.c:200-205,
 * :246-250). Nothing of it lands (the session ends with FLASH_ERROR, so the slot is incomplete either way).
 */
export class FlashOpError extends Error {
  constructor(readonly op: 'erase' | 'program') {
    super(`flash ${op} failed (ESP_ERR_FLASH_OP_FAIL)`);
  }
}

export type FlashGateVerdict = { land: 'all' } | { land: 'none' } | { land: 'prefix'; bytes: number } | { land: 'fail' };

export class FlashFaults {
  /** Erase/program operations on the app partitions since power-on of the simulation. */
  ops = 0;
  private armed: Array<FlashCut & { base: number }> = [];
  /** Operations (absolute counts) that fail with the power on. */
  private failing: number[] = [];
  private diagnosticsCut: { left: number; onCut: () => void } | null = null;
  private frozen = false;

  constructor(private readonly defer: (fn: () => void) => void) {}

  arm(cut: FlashCut): void {
    this.armed.push({ ...cut, base: this.ops });
  }

  /** Power is lost while the nth first-boot diagnostics from now run (first-boot.ts calls diagnosticsStarted). */
  armDiagnosticsCut(n: number, onCut: () => void): void {
    this.diagnosticsCut = { left: n, onCut };
  }

  /** The first-boot diagnostics start (the "diagnosing" record landed); an armed cut hits on the next clock step. */
  diagnosticsStarted(): void {
    const cut = this.diagnosticsCut;
    if (!cut || --cut.left > 0) return;
    this.diagnosticsCut = null;
    this.defer(cut.onCut);
  }

  /** The atOp-th operation from now returns an error (FlashOpError), the power stays on. */
  armFailure(atOp: number): void {
    this.failing.push(this.ops + atOp);
  }

  /** Called before each erase/program; says how much of it lands. */
  gate(kind: 'erase' | 'program', length: number): FlashGateVerdict {
    if (this.frozen) return { land: 'none' };
    this.ops++;
    const failAt = this.failing.indexOf(this.ops);
    if (failAt >= 0) {
      this.failing.splice(failAt, 1);
      return { land: 'fail' };
    }
    const index = this.armed.findIndex((c) => this.ops - c.base === c.atOp);
    if (index < 0) return { land: 'all' };
    const [cut] = this.armed.splice(index, 1);
    this.frozen = true;
    this.defer(() => {
      this.frozen = false;
      cut.onCut();
    });
    if (kind === 'program' && (cut.tornBytes ?? 0) > 0) return { land: 'prefix', bytes: Math.min(length, cut.tornBytes ?? 0) };
    return { land: 'none' };
  }
}
