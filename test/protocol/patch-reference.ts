/**
 * A second, minimal reading of docs/PROTOCOL.md §13 (delta patch), only to cross-check the patch vectors
 * the Python generator wrote: the product's appliers live in the device implementations.
 */
export class PatchError extends Error {
  constructor(readonly err: 'PATCH_INVALID' | 'SIZE_MISMATCH', why: string) {
    super(`${err}: ${why}`);
  }
}

export function applyPatchReference(base: Buffer, patch: Buffer, imageSize: number): Buffer {
  const out: number[] = [];
  let i = 0;
  let pos = 0;
  const uvarint = (): number => {
    let value = 0;
    for (let n = 0; n < 5; n++) {
      if (i >= patch.length) throw new PatchError('SIZE_MISMATCH', 'patch ends inside a record');
      const byte = patch[i++];
      value += (byte & 0x7f) * 2 ** (7 * n);
      if ((byte & 0x80) === 0) {
        if (value >= 2 ** 32) throw new PatchError('PATCH_INVALID', 'uvarint value of 2^32 or more');
        return value;
      }
    }
    throw new PatchError('PATCH_INVALID', 'uvarint longer than 5 bytes');
  };
  const take = (len: number): Buffer => {
    if (out.length + len > imageSize) throw new PatchError('PATCH_INVALID', 'output past image_size');
    if (i + len > patch.length) throw new PatchError('SIZE_MISMATCH', 'patch ends inside a record');
    i += len;
    return patch.subarray(i - len, i);
  };
  while (out.length < imageSize) {
    const diffLen = uvarint();
    if (diffLen > 0 && (pos < 0 || pos + diffLen > base.length)) {
      if (out.length + diffLen <= imageSize) throw new PatchError('PATCH_INVALID', 'reads outside the base');
    }
    const diff = take(diffLen);
    for (let k = 0; k < diffLen; k++) out.push((base[pos + k] + diff[k]) & 0xff);
    pos += diffLen;
    out.push(...take(uvarint()));
    const zigzag = uvarint();
    pos += zigzag % 2 === 0 ? zigzag / 2 : -(zigzag + 1) / 2;
  }
  if (i !== patch.length) throw new PatchError('PATCH_INVALID', 'trailing bytes after image_size');
  return Buffer.from(out);
}
