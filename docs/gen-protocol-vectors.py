#!/usr/bin/env python3
"""Writes docs/protocol-vectors.json: byte-level test vectors of docs/PROTOCOL.md (protocol v2).

An independent third implementation of the document (Python standard library only), written from the
text and not from the TypeScript or C code, so that both of those are checked against the document and
not only against each other. Every vector is encoded from its fields here, decoded back, and compared,
before it is written.

Usage: python3 docs/gen-protocol-vectors.py [--check]   (--check: fail if the committed file differs)
"""
import hashlib
import hmac
import json
import os
import re
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "protocol-vectors.json")

# §2 opcodes, §9 error codes
OP = {"CHALLENGE": 0x01, "BEGIN": 0x02, "END": 0x03, "ABORT": 0x04, "CONFIRM": 0x05, "ROLLBACK": 0x06, "REBOOT": 0x07}
OP_DATA_ACK, OP_DATA_NAK, OP_SESSION_ABORTED, OP_UNKNOWN = 0xA0, 0xA1, 0xA2, 0xFF
ERR = {
    "OK": 0, "INVALID_STATE": 1, "BUSY": 2, "AUTH_REQUIRED": 3, "AUTH_FAILED": 4, "BAD_LENGTH": 5,
    "UNKNOWN_OPCODE": 6, "IMAGE_TOO_LARGE": 7, "BAD_ENCODING": 8, "NOT_APP_IMAGE": 9, "WRONG_CHIP": 10,
    "DOWNGRADE": 11, "NO_SESSION": 12, "OUT_OF_WINDOW": 13, "DUPLICATE": 14, "GAP": 15, "EMPTY_WRITE": 16,
    "OVERSIZED": 17, "DECODE_FAILED": 18, "SIZE_MISMATCH": 19, "HASH_MISMATCH": 20, "VALIDATION_FAILED": 21,
    "FLASH_ERROR": 22, "SET_BOOT_FAILED": 23, "NOT_PENDING": 24, "NO_ROLLBACK_IMAGE": 25,
    "SESSION_TIMEOUT": 26, "ABORTED": 27, "BAD_PARAMETER": 28, "DIAGNOSTICS_FAILED": 29, "ROLLED_BACK": 30,
    "WRONG_CHIP_REVISION": 31, "NO_MEMORY": 32, "INTERNAL": 0xFE,
}
TAGGED = ("ABORT", "CONFIRM", "ROLLBACK", "REBOOT")
# §1: a notification carries at most ATT_MTU - 3 bytes; every Control notification fits the default MTU 23.
MAX_CONTROL_NOTIFICATION = 23 - 3

FLEET_KEY = bytes(range(0x20, 0x40))  # 32 bytes, documented in the JSON


def h(b):
    return b.hex()


def unhex(s):
    return bytes.fromhex(s)


# ---------- §7 authentication ----------

def begin_tag(key, nonce, begin61):
    return hmac.new(key, b"BLEOTA2-BEGIN" + nonce + begin61[1:45], hashlib.sha256).digest()[:16]


def command_tag(key, nonce, op):
    return hmac.new(key, b"BLEOTA2-CMD" + nonce + bytes([op]), hashlib.sha256).digest()[:16]


# ---------- §2 commands ----------

def encode_command(f):
    op = f["op"]
    if op == OP["CHALLENGE"]:
        return bytes([op])
    if op == OP["BEGIN"]:
        return struct.pack("<BIIBBH32s16s", op, f["image_size"], f["transfer_size"], f["encoding"], f["flags"],
                           f["chunk_size"], unhex(f["sha256"]), unhex(f["tag"]))
    if op == OP["END"]:
        return struct.pack("<BB", op, f["flags"])
    return bytes([op]) + unhex(f["tag"])


def decode_command(b):
    op = b[0]
    lengths = {0x01: 1, 0x02: 61, 0x03: 2, 0x04: 17, 0x05: 17, 0x06: 17, 0x07: 17}
    assert op in lengths and len(b) == lengths[op], "bad command"
    if op == OP["CHALLENGE"]:
        return {"op": op}
    if op == OP["BEGIN"]:
        _, isz, tsz, enc, fl, cs, sha, tag = struct.unpack("<BIIBBH32s16s", b)
        return {"op": op, "image_size": isz, "transfer_size": tsz, "encoding": enc, "flags": fl,
                "chunk_size": cs, "sha256": h(sha), "tag": h(tag)}
    if op == OP["END"]:
        return {"op": op, "flags": b[1]}
    return {"op": op, "tag": h(b[1:17])}


# ---------- §2 responses and §2.3 notifications ----------

def encode_control_notification(f):
    op = f["op"]
    if op == OP_DATA_ACK:
        return struct.pack("<BI", op, f["next_offset"])
    if op == OP_DATA_NAK:
        return struct.pack("<BBI", op, f["err"], f["expected_offset"])
    if op == OP_SESSION_ABORTED:
        return struct.pack("<BB", op, f["err"])
    if op == OP_UNKNOWN:
        return struct.pack("<BBB", op, f["err"], f["unknown_op"])
    cmd = op & 0x7F
    if f["err"] != 0:
        return struct.pack("<BB", op, f["err"])
    if cmd == OP["CHALLENGE"]:
        return struct.pack("<BB16sH", op, 0, unhex(f["nonce"]), f["caps"])
    if cmd == OP["BEGIN"]:
        return struct.pack("<BBHIII", op, 0, f["chunk_size"], f["window"], f["ack_interval"], f["resume_offset"])
    if cmd == OP["END"]:
        return struct.pack("<BBI", op, 0, f["image_size"])
    return struct.pack("<BB", op, 0)


def decode_control_notification(b):
    op = b[0]
    if op == OP_DATA_ACK:
        assert len(b) == 5
        return {"op": op, "next_offset": struct.unpack_from("<I", b, 1)[0]}
    if op == OP_DATA_NAK:
        assert len(b) == 6
        return {"op": op, "err": b[1], "expected_offset": struct.unpack_from("<I", b, 2)[0]}
    if op == OP_SESSION_ABORTED:
        assert len(b) == 2
        return {"op": op, "err": b[1]}
    if op == OP_UNKNOWN:
        assert len(b) == 3 and b[1] == ERR["UNKNOWN_OPCODE"]
        return {"op": op, "err": b[1], "unknown_op": b[2]}
    assert op & 0x80 and (op & 0x7F) in OP.values()
    cmd, err = op & 0x7F, b[1]
    if err != 0:
        assert len(b) == 2
        return {"op": op, "err": err}
    if cmd == OP["CHALLENGE"]:
        assert len(b) == 20
        _, _, nonce, caps = struct.unpack("<BB16sH", b)
        return {"op": op, "err": 0, "nonce": h(nonce), "caps": caps}
    if cmd == OP["BEGIN"]:
        assert len(b) == 16
        _, _, cs, win, ai, ro = struct.unpack("<BBHIII", b)
        return {"op": op, "err": 0, "chunk_size": cs, "window": win, "ack_interval": ai, "resume_offset": ro}
    if cmd == OP["END"]:
        assert len(b) == 6
        return {"op": op, "err": 0, "image_size": struct.unpack_from("<I", b, 2)[0]}
    assert len(b) == 2
    return {"op": op, "err": 0}


# ---------- §3 data ----------

def encode_data(f):
    return struct.pack("<I", f["offset"]) + unhex(f["payload"])


def decode_data(b):
    assert len(b) > 4
    return {"offset": struct.unpack_from("<I", b, 0)[0], "payload": h(b[4:])}


# ---------- §5 status ----------

STATUS_LAYOUT = [  # (name, offset, struct format or ("str", size) or "sha")
    ("format", 0, "B"), ("proto_version", 1, "B"), ("caps", 2, "H"), ("ota_state", 4, "B"),
    ("confirm_policy", 5, "B"), ("session_state", 6, "B"), ("reset_reason", 7, "B"), ("boot_count", 8, "H"),
    ("chip_id", 10, "H"), ("secure_version", 12, "I"), ("session_offset", 16, "I"),
    ("running_partition", 20, ("str", 16)), ("app_version", 36, ("str", 32)), ("project_name", 68, ("str", 32)),
    ("idf_version", 100, ("str", 32)), ("running_sha256", 132, "sha"), ("last_result", 164, "B"),
    ("last_flags", 165, "B"), ("last_sha256", 166, "sha"), ("last_message", 198, ("str", 32)),
]


def encode_status(f):
    b = bytearray(232)
    for name, off, kind in STATUS_LAYOUT:
        v = f[name]
        if kind == "sha":
            b[off:off + 32] = unhex(v)
        elif isinstance(kind, tuple):
            raw = v.encode("utf-8")
            assert len(raw) <= kind[1], name
            b[off:off + len(raw)] = raw
        else:
            struct.pack_into("<" + kind, b, off, v)
    return bytes(b)


def decode_status(b):
    assert len(b) == 232 and b[0] == 1
    out = {}
    for name, off, kind in STATUS_LAYOUT:
        if kind == "sha":
            out[name] = h(b[off:off + 32])
        elif isinstance(kind, tuple):
            out[name] = b[off:off + kind[1]].split(b"\0", 1)[0].decode("utf-8")
        else:
            out[name] = struct.unpack_from("<" + kind, b, off)[0]
    return out


# ---------- §8 advertisement ----------

VERSION_RE = re.compile(r"[vV]?([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})(?:[-+].*)?", re.S)


def version_bytes(s):
    m = VERSION_RE.fullmatch(s)
    if not m or any(int(x) > 254 for x in m.groups()):
        return (0xFF, 0xFF, 0xFF)
    return tuple(int(x) for x in m.groups())


ADV_BITS = [("rolled_back", 3), ("diagnostics_failed", 4), ("session_active", 5), ("host_policy", 6),
            ("fleet_key_required", 7)]


def encode_adv(f):
    flags = f["ota_state"] & 7
    for name, bit in ADV_BITS:
        if f[name]:
            flags |= 1 << bit
    return struct.pack("<HBB4sBBB", f["company_id"], f["marker"], flags, unhex(f["sha_prefix"]),
                       f["version_major"], f["version_minor"], f["version_patch"])


def decode_adv(b):
    assert len(b) == 11
    cid, marker, flags, sha, ma, mi, pa = struct.unpack("<HBB4sBBB", b)
    out = {"company_id": cid, "marker": marker, "ota_state": flags & 7}
    for name, bit in ADV_BITS:
        out[name] = bool(flags & (1 << bit))
    out.update({"sha_prefix": h(sha), "version_major": ma, "version_minor": mi, "version_patch": pa})
    return out


CODECS = {
    "command": (encode_command, decode_command),
    "response": (encode_control_notification, decode_control_notification),
    "notification": (encode_control_notification, decode_control_notification),
    "data": (encode_data, decode_data),
    "status": (encode_status, decode_status),
    "advertisement": (encode_adv, decode_adv),
}


# ---------- the vectors ----------

def sha(text):
    return hashlib.sha256(text.encode()).hexdigest()


def nonce_of(first):
    return bytes(range(first, first + 16))


def build():
    vectors = []

    def add(name, kind, fields, note, **extra):
        vectors.append(dict(name=name, kind=kind, fields=fields, note=note, **extra))

    image_sha = sha("example image 1")
    zero_tag = h(bytes(16))

    # commands
    add("challenge", "command", {"op": 1}, "CHALLENGE: opcode only.")
    add("begin-raw-no-key", "command",
        {"op": 2, "image_size": 1_000_000, "transfer_size": 1_000_000, "encoding": 0, "flags": 0, "chunk_size": 508,
         "sha256": image_sha, "tag": zero_tag}, "Fresh raw BEGIN to a device without fleet key: zero tag.")
    begin_nonce = nonce_of(0x00)
    begin_fields = {"op": 2, "image_size": 1_441_792, "transfer_size": 712_345, "encoding": 1, "flags": 1,
                    "chunk_size": 240, "sha256": sha("example image 2"), "tag": zero_tag}
    begin_fields["tag"] = h(begin_tag(FLEET_KEY, begin_nonce, encode_command(begin_fields)))
    add("begin-deflate-resume-tagged", "command", begin_fields,
        "Deflate BEGIN with resume flag; tag = HMAC-SHA256(fleetKey, 'BLEOTA2-BEGIN' || nonce || bytes 1..44)[0:16].",
        nonce=h(begin_nonce))
    add("end-reboot", "command", {"op": 3, "flags": 1}, "END, reboot after success.")
    add("end-no-reboot", "command", {"op": 3, "flags": 0}, "END, stay up (IDLE) after success.")
    for i, name in enumerate(TAGGED):
        nonce = nonce_of(0x10 * (i + 1))
        add(f"{name.lower()}-tagged", "command", {"op": OP[name], "tag": h(command_tag(FLEET_KEY, nonce, OP[name]))},
            f"{name}; tag = HMAC-SHA256(fleetKey, 'BLEOTA2-CMD' || nonce || op)[0:16].", nonce=h(nonce))
    add("abort-no-key", "command", {"op": 4, "tag": zero_tag}, "ABORT to a device without fleet key.")

    # responses: success
    add("challenge-ok", "response",
        {"op": 0x81, "err": 0, "nonce": h(nonce_of(0x00)), "caps": 0b011111},
        "CHALLENGE response (20 bytes, fits ATT MTU 23): deflate, fleet key required, resume, host policy, anti-downgrade.")
    add("challenge-ok-open", "response",
        {"op": 0x81, "err": 0, "nonce": h(nonce_of(0x40)), "caps": 0b000101},
        "CHALLENGE response of a device without fleet key (deflate, resume).")
    add("begin-ok-fresh", "response",
        {"op": 0x82, "err": 0, "chunk_size": 240, "window": 16384, "ack_interval": 4096, "resume_offset": 0},
        "BEGIN accepted, MTU 247 caps the chunk at 247-3-4 = 240.")
    add("begin-ok-resume", "response",
        {"op": 0x82, "err": 0, "chunk_size": 508, "window": 16384, "ack_interval": 4096, "resume_offset": 40960},
        "BEGIN resumed a kept session: continue from transfer offset 40960.")
    add("end-ok", "response", {"op": 0x83, "err": 0, "image_size": 1_441_792}, "END accepted; reboot follows.")
    for name in TAGGED:
        add(f"{name.lower()}-ok", "response", {"op": OP[name] | 0x80, "err": 0}, f"{name} accepted.")

    # responses: errors (2 bytes)
    errors = [
        ("challenge", "BAD_LENGTH"), ("begin", "BAD_LENGTH"), ("begin", "AUTH_REQUIRED"), ("begin", "AUTH_FAILED"),
        ("begin", "BUSY"), ("begin", "IMAGE_TOO_LARGE"), ("begin", "BAD_ENCODING"), ("begin", "BAD_PARAMETER"),
        ("begin", "INVALID_STATE"), ("begin", "NO_MEMORY"), ("end", "INVALID_STATE"), ("end", "NO_SESSION"), ("end", "SIZE_MISMATCH"),
        ("end", "HASH_MISMATCH"), ("end", "VALIDATION_FAILED"), ("end", "SET_BOOT_FAILED"),
        ("abort", "AUTH_FAILED"), ("confirm", "NOT_PENDING"), ("confirm", "AUTH_REQUIRED"), ("confirm", "BUSY"),
        ("rollback", "NOT_PENDING"), ("rollback", "NO_ROLLBACK_IMAGE"), ("reboot", "AUTH_FAILED"),
    ]
    for cmd, err in errors:
        add(f"{cmd}-err-{err.lower().replace('_', '-')}", "response",
            {"op": OP[cmd.upper()] | 0x80, "err": ERR[err]}, f"{cmd.upper()} refused with {err}: only op|0x80 and err.")
    add("unknown-opcode", "response", {"op": 0xFF, "err": ERR["UNKNOWN_OPCODE"], "unknown_op": 0x09},
        "Answer to a Control write starting with 0x09.")

    # notifications
    add("data-ack", "notification", {"op": 0xA0, "next_offset": 4096}, "Every transfer byte below 4096 is queued.")
    add("data-ack-final", "notification", {"op": 0xA0, "next_offset": 712_345}, "ACK of the last transfer byte.")
    naks = [("GAP", 8192, "chunk lost: resend from 8192"), ("DUPLICATE", 8432, "already had it"),
            ("OUT_OF_WINDOW", 20480, "past acked + window"), ("EMPTY_WRITE", 12000, "write of 4 bytes or less"),
            ("OVERSIZED", 12000, "payload larger than chunk_size"), ("NO_SESSION", 0, "data without a session")]
    for err, expected, why in naks:
        add(f"data-nak-{err.lower().replace('_', '-')}", "notification",
            {"op": 0xA1, "err": ERR[err], "expected_offset": expected}, f"DATA_NAK {err}: {why}.")
    for err in ("WRONG_CHIP", "WRONG_CHIP_REVISION", "NOT_APP_IMAGE", "DOWNGRADE", "DECODE_FAILED", "FLASH_ERROR", "SESSION_TIMEOUT"):
        add(f"session-aborted-{err.lower().replace('_', '-')}", "notification", {"op": 0xA2, "err": ERR[err]},
            f"The device gave up the session: {err}.")

    # data
    add("data-first-chunk", "data", {"offset": 0, "payload": "e9050220" + "ee00" + "0000" + "05"},
        "First chunk of an esp32c3 image (header start).")
    add("data-chunk", "data", {"offset": 40960, "payload": h(bytes(range(16)))}, "A 16-byte payload at offset 40960.")

    # status
    running = sha("running image")
    previous = sha("previous image")
    add("status-factory", "status", {
        "format": 1, "proto_version": 2, "caps": 0b000101, "ota_state": 2, "confirm_policy": 0, "session_state": 0,
        "reset_reason": 1, "boot_count": 0, "chip_id": 0, "secure_version": 0, "session_offset": 0,
        "running_partition": "ota_0", "app_version": "1.0.0", "project_name": "ble_ota_demo",
        "idf_version": "v5.2.2", "running_sha256": previous, "last_result": 0xFF, "last_flags": 0,
        "last_sha256": h(bytes(32)), "last_message": ""}, "Factory esp32, no update recorded (last_result 0xFF).")
    add("status-pending-verify", "status", {
        "format": 1, "proto_version": 2, "caps": 0b011111, "ota_state": 1, "confirm_policy": 1, "session_state": 0,
        "reset_reason": 3, "boot_count": 1, "chip_id": 5, "secure_version": 2, "session_offset": 0,
        "running_partition": "ota_1", "app_version": "v1.2.3-rc1", "project_name": "ble_ota_demo",
        "idf_version": "v5.2.2-dirty", "running_sha256": running, "last_result": 0, "last_flags": 0b110110,
        "last_sha256": sha("example image 2"), "last_message": "diagnostics passed"},
        "esp32c3 after an update, host policy: diagnostics ran and passed, waiting for CONFIRM.")
    add("status-rolled-back", "status", {
        "format": 1, "proto_version": 2, "caps": 0b000101, "ota_state": 2, "confirm_policy": 0, "session_state": 0,
        "reset_reason": 3, "boot_count": 0, "chip_id": 9, "secure_version": 0, "session_offset": 0,
        "running_partition": "ota_0", "app_version": "1.0.0", "project_name": "ble_ota_demo",
        "idf_version": "v5.2.2", "running_sha256": previous, "last_result": ERR["DIAGNOSTICS_FAILED"],
        "last_flags": 0b110011, "last_sha256": sha("example image 2"), "last_message": "sensor self-test failed"},
        "esp32s3 back on the previous image: the new one failed diagnostics and was rolled back.")
    add("status-receiving", "status", {
        "format": 1, "proto_version": 2, "caps": 0b000111, "ota_state": 2, "confirm_policy": 0, "session_state": 1,
        "reset_reason": 1, "boot_count": 3, "chip_id": 13, "secure_version": 0, "session_offset": 122880,
        "running_partition": "ota_0", "app_version": "a-version-string-of-32-bytes-xx!", "project_name": "p",
        "idf_version": "v5.3", "running_sha256": previous, "last_result": ERR["INTERNAL"], "last_flags": 0b10000,
        "last_sha256": sha("example image 1"), "last_message": "in progress"},
        "esp32c6 receiving (session_offset acked); app_version fills its 32-byte field (no NUL).")
    add("status-another-installer", "status", {
        "format": 1, "proto_version": 2, "caps": 0b000101, "ota_state": 2, "confirm_policy": 0, "session_state": 0,
        "reset_reason": 3, "boot_count": 1, "chip_id": 5, "secure_version": 0, "session_offset": 0,
        "running_partition": "ota_1", "app_version": "2.0.0", "project_name": "ble_ota_demo",
        "idf_version": "v5.3.2", "running_sha256": running, "last_result": 0, "last_flags": 0b10111110,
        "last_sha256": h(bytes(32)), "last_message": "no diagnostics hook"},
        "esp32c3 first boot of an image the seed firmware installed (no record named it: bit7), diagnosed and "
        "confirmed under the auto policy; the image's SHA-256 is unknown (zeros).")
    add("status-interrupted", "status", {
        "format": 1, "proto_version": 2, "caps": 0b000101, "ota_state": 2, "confirm_policy": 0, "session_state": 0,
        "reset_reason": 1, "boot_count": 0, "chip_id": 5, "secure_version": 0, "session_offset": 0,
        "running_partition": "ota_0", "app_version": "1.0.0", "project_name": "ble_ota_demo",
        "idf_version": "v5.3.2", "running_sha256": previous, "last_result": ERR["INTERNAL"], "last_flags": 0b1010000,
        "last_sha256": sha("example image 1"), "last_message": "interrupted before boot switch"},
        "Power lost after the INSTALLED record, before esp_ota_set_boot_partition finished: the old image runs (bit6).")

    # advertisement
    def adv(name, ota_state, version, sha_hex, note, **flags):
        f = {"company_id": 0x02E5, "marker": 0xB2, "ota_state": ota_state}
        for n, _ in ADV_BITS:
            f[n] = bool(flags.get(n, False))
        ma, mi, pa = version_bytes(version)
        f.update({"sha_prefix": sha_hex[:8], "version_major": ma, "version_minor": mi, "version_patch": pa})
        add(name, "advertisement", f, f"{note} Version string: {json.dumps(version)}.")

    adv("adv-valid-semver", 2, "v1.2.3", previous, "Valid image, auto policy.")
    adv("adv-pending-host-key", 1, "1.2.3-rc1", running, "Pending verify, host policy, fleet key.",
        host_policy=True, fleet_key_required=True)
    adv("adv-rolled-back", 2, "2.10.254", previous, "Rolled back after failed diagnostics.",
        rolled_back=True, diagnostics_failed=True)
    adv("adv-session-unparseable", 2, "custom-build", previous, "Session kept; version does not parse.",
        session_active=True)
    adv("adv-version-too-large", 0, "1.255.0", running, "A number above 254 does not parse.")
    adv("adv-version-two-parts", 5, "1.2", running, "Two numbers do not parse.")

    for v in vectors:
        enc, dec = CODECS[v["kind"]]
        raw = enc(v["fields"])
        assert dec(raw) == v["fields"], v["name"]
        if v["kind"] in ("response", "notification"):
            assert len(raw) <= MAX_CONTROL_NOTIFICATION, f"{v['name']}: {len(raw)} bytes do not fit ATT MTU 23"
        v["hex"] = h(raw)
    order = ("name", "kind", "hex", "fields", "note", "nonce")
    return {"version": 1, "fleetKey": h(FLEET_KEY),
            "vectors": [{k: v[k] for k in order if k in v} for v in vectors]}


def main():
    text = json.dumps(build(), indent=1) + "\n"
    if "--check" in sys.argv[1:]:
        with open(OUT, encoding="utf-8") as f:
            if f.read() != text:
                sys.exit("docs/protocol-vectors.json is out of date: run python3 docs/gen-protocol-vectors.py")
        return
    with open(OUT, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
