#!/usr/bin/env python3
"""Write the hand-made seeds of the fuzz corpus: one per path of the core worth reaching (README.md,
"Input format"). Each seed is a device configuration (2 bytes) and a program of operations."""
import os
import sys

# operations (fuzz_ota.c run_op)
CONNECT, DISCONNECT, MTU, DATA_LEN, CHALLENGE, BEGIN, SEND, DATA, END, TAGGED, RAW, TICK = range(12)
POWER_LOSS, CUT_AFTER, INSTALL_OTHER, ERASE_NVS, FAULTS, STATUS, RUN_WRITER, UPDATE, BLE_READY, TIMER = range(12, 22)
RELEASE_KEY = 22
# images (fuzz_frames.h)
GOOD, NEWER, DOWNGRADE, BAD_CHECKSUM, WRONG_CHIP, WRONG_REV, NOT_APP, TINY = range(8)
DEFLATE, REBOOT, RESUME, EDIT = 8, 16, 0x40, 0x80
# configuration byte f
HOST_POLICY, NO_DEFLATE, REQUIRE_KEY, ALLOW_DOWNGRADE, KEY, DIAG_FAIL, BLE_FAILS, SIGNED = 1, 2, 4, 8, 16, 32, 64, 128
ABORT, CONFIRM, ROLLBACK, REBOOT_CMD = range(4)
# the connection byte of BEGIN / UPDATE: bit7 delta, bits 5-6 the variant (fuzz_ota.c op_begin); these
# values keep conn_of() == 1 (b % 6 == 0)
DELTA_C1, DELTA_BASE_C1, DELTA_SHORT_C1, DELTA_OUTSIDE_C1 = 0x84, 0xA2, 0xC0, 0xE4
# without bit7, bits 5-6 attach a manifest: good, broken signature, signed for another app_version
MANIFEST_C1, MANIFEST_BAD_SIG_C1, MANIFEST_OTHER_VERSION_C1 = 0x24, 0x42, 0x60
C1 = 0  # conn_of(0) == 1
C2 = 1


def cfg(f=0, g=0):
    return [f, g]


def connect(c=C1, mtu=116):  # 23 + 2 * 116 = 255
    return [CONNECT, c, mtu]


def update(image, c=C1):
    return [UPDATE, image, c]


def tick(b):  # b * b * 4 ms
    return [TICK, b]


def tagged(cmd, c=C1, mode=0):
    return [TAGGED, cmd | (mode << 2), c]


def begin(image, c=C1, chunk=0):
    return [BEGIN, image, c, chunk]


def send(c=C1, n=0):
    return [SEND, c, n]


def end(c=C1, flags=1):
    return [END, c, flags]


def status():
    return [STATUS, 5]


STAGING_BIT = 0x80000000


def staging(data, at=0, c=C1, fragment=16):
    """Manifest staging writes (revision 2.3): Data at 0x80000000 | manifest offset, bytes from the input."""
    ops = []
    for i in range(0, len(data), fragment):
        part = data[i:i + fragment]
        part = part + bytes(-len(part) % 4)  # op 7 writes 4 * l bytes
        ops += [DATA, c, 0x0F, len(part) // 4] + list((STAGING_BIT | (at + i)).to_bytes(4, "little")) + list(part)
    return ops


def commit(c=C1):
    return [RAW, c, 1, 0x09]


# A manifest's structure (magic, format 1, key_id 0, length 224) with an unsigned body: the commit's checks
# run on it (chip_id 0: MANIFEST_MISMATCH).
FAKE_MANIFEST = b"BOM1" + bytes([1, 0]) + (224).to_bytes(2, "little") + bytes(216)


SEEDS = {
    "raw-update-reboot": cfg() + connect() + update(GOOD | REBOOT) + tick(10) + connect() + status(),
    "deflate-update-key": cfg(KEY | REQUIRE_KEY) + connect() + update(GOOD | DEFLATE | REBOOT) + tick(10) + connect() + status(),
    "downgrade-refused": cfg() + connect() + update(DOWNGRADE) + status(),
    "downgrade-deflate-key": cfg(KEY) + connect() + update(DOWNGRADE | DEFLATE) + status(),
    "downgrade-allowed": cfg(ALLOW_DOWNGRADE) + connect() + update(DOWNGRADE | REBOOT) + tick(10) + connect() + status(),
    "validation-failed-raw": cfg() + connect() + update(BAD_CHECKSUM) + status(),
    "validation-failed-deflate": cfg(KEY) + connect() + update(BAD_CHECKSUM | DEFLATE) + status(),
    "wrong-chip": cfg() + connect() + update(WRONG_CHIP) + update(WRONG_REV) + update(NOT_APP) + update(TINY) + status(),
    "host-confirm": cfg(HOST_POLICY | KEY) + connect() + update(GOOD | REBOOT) + tick(10) + connect()
    + tagged(CONFIRM) + tagged(CONFIRM) + status(),
    "host-rollback": cfg(HOST_POLICY) + connect() + update(NEWER | REBOOT) + tick(10) + connect()
    + update(GOOD) + tagged(ROLLBACK) + tick(10) + connect() + tagged(ROLLBACK) + status(),
    "diagnostics-fail": cfg(DIAG_FAIL) + connect() + update(GOOD | REBOOT) + tick(10) + connect() + status(),
    "ble-fails": cfg(BLE_FAILS) + connect() + update(GOOD | REBOOT) + tick(10) + [BLE_READY] + tick(10) + status(),
    "no-reboot-then-reboot-cmd": cfg(KEY) + connect() + update(GOOD) + tagged(REBOOT_CMD) + tick(10) + connect() + status(),
    "delta-update": cfg() + connect() + update(GOOD | REBOOT, DELTA_C1) + tick(10) + connect() + status(),
    "delta-longer-image": cfg(KEY) + connect() + update(NEWER | REBOOT, DELTA_C1) + tick(10) + connect() + status(),
    "delta-base-mismatch": cfg() + connect() + update(GOOD, DELTA_BASE_C1) + status(),
    "delta-patch-short": cfg() + connect() + update(GOOD | REBOOT, DELTA_SHORT_C1) + status(),
    "delta-patch-outside-base": cfg() + connect() + update(GOOD, DELTA_OUTSIDE_C1) + status(),
    "delta-wrong-chip": cfg() + connect() + update(WRONG_CHIP, DELTA_C1) + status(),
    "delta-without-deflate": cfg(NO_DEFLATE) + connect() + update(GOOD, DELTA_C1) + status(),
    "delta-resume": cfg() + connect() + begin(GOOD | RESUME, DELTA_C1) + send(C1, 3) + [DISCONNECT, C1] + tick(16)
    + connect() + begin(GOOD | RESUME, DELTA_C1) + send() + end() + tick(10) + status(),
    "manifest-update": cfg() + [RELEASE_KEY] + connect() + update(GOOD | REBOOT, MANIFEST_C1) + tick(10) + connect()
    + status(),
    "manifest-bad-signature": cfg() + [RELEASE_KEY] + connect() + update(GOOD, MANIFEST_BAD_SIG_C1) + status(),
    "manifest-other-version": cfg() + [RELEASE_KEY] + connect() + update(GOOD, MANIFEST_OTHER_VERSION_C1) + status(),
    "manifest-required": cfg() + [RELEASE_KEY] + connect() + update(GOOD) + status(),
    # MANIFEST (op 0x09) ahead of a plain BEGIN: a whole update with bit7 of its image byte
    "manifest-command-update": cfg() + [RELEASE_KEY] + connect() + update(GOOD | REBOOT | 0x80, MANIFEST_C1) + tick(10)
    + connect() + status(),
    "manifest-command-bad-signature": cfg() + [RELEASE_KEY] + connect() + update(GOOD | 0x80, MANIFEST_BAD_SIG_C1) + status(),
    "manifest-command-bad-length": cfg() + [RELEASE_KEY] + connect() + [RAW, C1, 9, 0x09, 0x42, 0x4F, 0x4D, 0x31, 1, 0, 9, 0]
    + update(GOOD) + status(),
    # staging on Data (revision 2.3) and the commit, MANIFEST 0x09 alone, at MTU 23
    "manifest-staging-commit": cfg() + [RELEASE_KEY] + connect(C1, 0) + staging(FAKE_MANIFEST) + commit()
    + update(GOOD) + status(),
    "manifest-staging-broken": cfg() + [RELEASE_KEY] + connect(C1, 0) + connect(C2, 0) + commit()
    + staging(FAKE_MANIFEST[:32]) + staging(FAKE_MANIFEST[48:64], 48) + staging(FAKE_MANIFEST[32:48], 32) + commit()
    + staging(bytes(400), 0, C1, 100) + staging(bytes(20), 400) + commit()
    + staging(FAKE_MANIFEST[:64]) + staging(FAKE_MANIFEST[64:80], 64, C2) + staging(FAKE_MANIFEST[:16], 0, C2)
    + commit() + commit(C2) + staging(FAKE_MANIFEST) + [DISCONNECT, C1] + connect(C1, 0) + commit()
    + staging(FAKE_MANIFEST) + update(GOOD) + commit() + status(),
    "manifest-delta": cfg() + [RELEASE_KEY] + connect() + update(GOOD, DELTA_C1) + status(),
    "resume": cfg() + connect() + begin(GOOD | RESUME) + send(C1, 5) + [DISCONNECT, C1] + tick(16) + connect()
    + begin(GOOD | RESUME) + send() + end() + tick(10) + status(),
    "resume-timeout": cfg(0, 2) + connect() + begin(GOOD | DEFLATE | RESUME) + send(C1, 3) + [DISCONNECT, C1]
    + tick(40) + connect() + begin(GOOD | DEFLATE | RESUME) + status(),
    "resume-disabled": cfg(0, 1) + connect() + begin(GOOD) + send(C1, 3) + [DISCONNECT, C1] + status(),
    "power-loss-transfer": cfg() + connect() + begin(NEWER) + send(C1, 10) + [POWER_LOSS] + connect() + status(),
    "power-cut-at-end": cfg() + connect() + begin(GOOD) + send() + [CUT_AFTER, 2] + end() + connect() + status(),
    "power-cut-confirm": cfg(HOST_POLICY) + connect() + update(GOOD | REBOOT) + tick(10) + connect()
    + [CUT_AFTER, 0] + tagged(CONFIRM) + connect() + status(),
    "abort": cfg(KEY) + connect() + begin(GOOD) + send(C1, 3) + tagged(ABORT) + tagged(ABORT, C1, 2) + status(),
    "data-errors": cfg() + connect() + begin(GOOD, C1, 60) + send(C1, 2) + [DATA, C1, 1, 0] + [DATA, C1, 2, 0]
    + [DATA, C1, 4, 255] + [DATA, C1, 0x10, 0] + [DATA, C1, 3, 0, 0, 0, 1, 0] + [DATA, C2, 0, 0] + send() + end(C1, 0) + end(C1, 4)
    + [DATA, C1, 0, 0] + status(),
    "window-full": cfg(0, 8) + connect() + begin(NEWER) + [SEND, C1 | 0x84, 40] + [RUN_WRITER] + send() + end() + status(),
    "raw-controls": cfg(KEY) + connect() + [RAW, C1, 1, 0x09] + [RAW, C1, 2, 0x01, 0] + [RAW, C1, 0]
    + [RAW, C1, 3, 0x02, 1, 2] + [RAW, C1, 1, 0x05] + [END, C1 | 0x84, 0] + [TAGGED, 0x40, C1] + status()
    + [RAW, C1, 129] + [0] * 129,
    "faults": cfg() + connect() + [FAULTS, 1] + update(GOOD) + [FAULTS, 2] + update(GOOD) + [FAULTS, 4]
    + begin(GOOD | DEFLATE) + [FAULTS, 0] + status(),
    "nvs-write-fails": cfg() + connect() + [FAULTS, 8] + update(GOOD | REBOOT) + tick(10) + connect() + status(),
    "no-rollback-image": cfg(HOST_POLICY) + connect() + update(GOOD | REBOOT) + tick(10) + connect() + [FAULTS, 16]
    + tagged(ROLLBACK) + status(),
    "other-installer": cfg(HOST_POLICY) + connect() + [INSTALL_OTHER, NEWER] + connect() + status() + [ERASE_NVS] + connect() + status(),
    "auth": cfg(REQUIRE_KEY) + connect() + begin(GOOD) + cfg(0, 0)[:0] + status(),
    "auth-key": cfg(KEY) + connect() + begin(GOOD | 0x30) + begin(GOOD | 0x20) + tagged(ABORT, C1, 3) + status(),
    "many-links": cfg() + connect(0) + connect(1) + connect(2) + connect(3) + connect(4) + [CHALLENGE, 4] + begin(GOOD, 2)
    + begin(GOOD, 1) + [MTU, 1, 23, 0] + [DATA_LEN, 0x80, 251, 0] + [DATA_LEN, 1, 27, 0] + status(),
    "oversize": cfg() + connect() + begin(GOOD | EDIT, C1, 0) + [3, 0x10] + begin(GOOD | EDIT, C1, 0) + [8, 5] + status(),
    "mtu23": cfg() + connect(C1, 0) + begin(GOOD | DEFLATE) + send() + end() + tick(10) + status(),
    "bad-config": cfg(0, 0xFF) + connect(),
    "confirm-busy": cfg(HOST_POLICY) + connect() + update(GOOD | REBOOT) + tick(10) + connect() + tagged(REBOOT_CMD)
    + tagged(CONFIRM) + tick(10) + status(),
    "begin-bad-parameter": cfg() + connect() + begin(GOOD | EDIT, C1, 0) + [9, 2] + begin(GOOD | EDIT, C1, 0) + [11, 0] + status(),
    "hash-mismatch": cfg() + connect() + begin(GOOD | EDIT, C1, 0) + [20, 0] + send() + end() + status(),
    "size-mismatch-deflate": cfg() + connect() + begin(GOOD | DEFLATE | EDIT, C1, 0) + [0, 0xFF] + send() + end() + status(),
    "decode-failed-deflate": cfg() + connect() + begin(GOOD | DEFLATE | EDIT, C1, 0) + [0, 0x00] + send() + end() + status(),
    "corrupt-deflate": cfg() + connect() + begin(NEWER | DEFLATE) + send(C1, 2) + [DATA, C1, 8, 0] + [0x5A] * 240 + send()
    + end() + status(),
    "chip-names": cfg() + connect() + [STATUS, 0, STATUS, 2, STATUS, 9, STATUS, 12, STATUS, 13, STATUS, 16, STATUS, 18, STATUS, 19],
    "timer": cfg() + connect() + begin(GOOD) + [TIMER] + tagged(REBOOT_CMD) + [TIMER] + status(),
}


# A power cut at every mutating flash / NVS operation of an update with reboot and the boots after it.
for n in range(0, 62, 2):
    SEEDS[f"power-cut-{n:02d}"] = cfg() + connect() + [CUT_AFTER, n] + update(GOOD | REBOOT) + tick(10) + connect() + status()


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "corpus"
    os.makedirs(out, exist_ok=True)
    for name, program in SEEDS.items():
        with open(os.path.join(out, "seed-" + name), "wb") as f:
            f.write(bytes(program))
    print(f"{len(SEEDS)} seeds written to {out}")


if __name__ == "__main__":
    main()
