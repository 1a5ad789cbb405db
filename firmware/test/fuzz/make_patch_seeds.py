#!/usr/bin/env python3
"""Writes the hand-made seeds of the patch applier target (fuzz_patch.c) into the directory given.

Input layout: u16 base_len, u16 image_size, u8 base seed, u8 split seed, u8 unreadable, then the patch.
One seed per outcome worth reaching: whole images, an early end, a read error, each PATCH_INVALID reason.
"""
import os
import struct
import sys


def uvarint(v):
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def svarint(v):
    return uvarint(((v << 1) ^ (v >> 31)) & 0xFFFFFFFF)


def record(diff, extra, seek):
    return uvarint(len(diff)) + bytes(diff) + uvarint(len(extra)) + bytes(extra) + svarint(seek)


def seed(base_len, image_size, patch, base_seed=1, split_seed=7, unreadable=0):
    return struct.pack('<HHBBB', base_len, image_size, base_seed, split_seed, unreadable) + patch


# the known patch of test_patch.c: wrap-around diff, extra, seeks out of the base and back, empty records
KNOWN = (record([0, 1, 0x20, 0xFF], b'xyz', 2) + record([0, 0], b'', -8) + record([], b'!', 100) +
         record([], b'', -200) + record([], b'', 103) + record([0x80] * 3, b'', 0))

SEEDS = {
    'done-known': seed(64, 13, KNOWN),
    'done-long-runs': seed(512, 520, record([0] * 200, bytes(range(20)), -50) + record([1] * 300, b'', 0)),
    'done-empty-image': seed(16, 0, b''),
    'done-padded-varint': seed(8, 3, b'\x83\x80\x80\x80\x00' + bytes(3) + uvarint(0) + svarint(0)),
    'ended-early': seed(64, 13, KNOWN[:-3]),
    'read-failed': seed(64, 13, KNOWN, unreadable=0x80),
    'invalid-read-before-base': seed(8, 16, record([], b'', -1) + uvarint(1) + b'\x00'),
    'invalid-read-past-base': seed(8, 16, record([0] * 4, b'', 1) + uvarint(4) + bytes(4)),
    'invalid-output-past-image': seed(64, 16, uvarint(10) + bytes(10) + uvarint(7) + bytes(7)),
    'invalid-varint-too-long': seed(64, 16, b'\x80\x80\x80\x80\x80\x00'),
    'invalid-varint-too-large': seed(64, 16, b'\x00\x00\x80\x80\x80\x80\x10'),
    'invalid-trailing-bytes': seed(64, 13, KNOWN + b'\x00'),
}

if __name__ == '__main__':
    out_dir = sys.argv[1] if len(sys.argv) > 1 else 'corpus-patch'
    os.makedirs(out_dir, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(out_dir, 'seed-' + name), 'wb') as f:
            f.write(data)
    print(f'{len(SEEDS)} seeds written to {out_dir}')
