#!/usr/bin/env python3
"""Writes docs/protocol-vectors.json: byte-level test vectors of docs/PROTOCOL.md (protocol v2).

An independent third implementation of the document (Python standard library only), written from the
text and not from the TypeScript or C code, so that both of those are checked against the document and
not only against each other. Every vector is encoded from its fields here, decoded back, and compared,
before it is written. Revision 2.1 adds the kinds "manifest" (§12: P-256 ECDSA with the deterministic k of
RFC 6979, written out below and checked against RFC 6979 A.2.5), "device_key" (§7.2: HKDF-SHA256, checked
against RFC 5869 A.1) and "patch" (§13: records applied here to check the image or the expected error).

Usage: python3 docs/gen-protocol-vectors.py [--check]   (--check: fail if the committed file differs)
"""
import hashlib
import hmac
import json
import os
import re
import struct
import sys
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "protocol-vectors.json")

# §2 opcodes, §9 error codes
OP = {"CHALLENGE": 0x01, "BEGIN": 0x02, "END": 0x03, "ABORT": 0x04, "CONFIRM": 0x05, "ROLLBACK": 0x06, "REBOOT": 0x07,
      "PROVISION": 0x08, "MANIFEST": 0x09}
OP_DATA_ACK, OP_DATA_NAK, OP_SESSION_ABORTED, OP_UNKNOWN = 0xA0, 0xA1, 0xA2, 0xFF
ERR = {
    "OK": 0, "INVALID_STATE": 1, "BUSY": 2, "AUTH_REQUIRED": 3, "AUTH_FAILED": 4, "BAD_LENGTH": 5,
    "UNKNOWN_OPCODE": 6, "IMAGE_TOO_LARGE": 7, "BAD_ENCODING": 8, "NOT_APP_IMAGE": 9, "WRONG_CHIP": 10,
    "DOWNGRADE": 11, "NO_SESSION": 12, "OUT_OF_WINDOW": 13, "DUPLICATE": 14, "GAP": 15, "EMPTY_WRITE": 16,
    "OVERSIZED": 17, "DECODE_FAILED": 18, "SIZE_MISMATCH": 19, "HASH_MISMATCH": 20, "VALIDATION_FAILED": 21,
    "FLASH_ERROR": 22, "SET_BOOT_FAILED": 23, "NOT_PENDING": 24, "NO_ROLLBACK_IMAGE": 25,
    "SESSION_TIMEOUT": 26, "ABORTED": 27, "BAD_PARAMETER": 28, "DIAGNOSTICS_FAILED": 29, "ROLLED_BACK": 30,
    "WRONG_CHIP_REVISION": 31, "NO_MEMORY": 32, "NOT_PROVISIONED": 33, "MANIFEST_REQUIRED": 34,
    "MANIFEST_INVALID": 35, "MANIFEST_MISMATCH": 36, "RELEASE_TOO_OLD": 37, "BASE_MISMATCH": 38,
    "PATCH_INVALID": 39, "INTERNAL": 0xFE,
}
BEGIN_FIXED = 93  # §2.1: BEGIN without manifest; with flags bit1 it is 93 + the manifest's length field
TAGGED = ("ABORT", "CONFIRM", "ROLLBACK", "REBOOT")
# §1: a notification carries at most ATT_MTU - 3 bytes; every Control notification fits the default MTU 23.
MAX_CONTROL_NOTIFICATION = 23 - 3

FLEET_KEY = bytes(range(0x20, 0x40))  # 32 bytes, documented in the JSON
MASTER_KEY = bytes(range(0x40, 0x60))  # plant master key of the device_key vectors, documented in the JSON
DEVICE_IDS = [bytes.fromhex("240ac4123456"), bytes.fromhex("58cf79a1b2c3")]


def h(b):
    return b.hex()


def unhex(s):
    return bytes.fromhex(s)


# ---------- §7 authentication ----------

def begin_tag(key, nonce, begin):
    """§7: over begin[1..76], image_size through base_sha256 (not the tag, not the manifest)."""
    return hmac.new(key, b"BLEOTA2-BEGIN" + nonce + begin[1:77], hashlib.sha256).digest()[:16]


def command_tag(key, nonce, op):
    return hmac.new(key, b"BLEOTA2-CMD" + nonce + bytes([op]), hashlib.sha256).digest()[:16]


# ---------- §2 commands ----------

def encode_command(f):
    op = f["op"]
    if op == OP["CHALLENGE"]:
        return bytes([op])
    if op == OP["BEGIN"]:
        manifest = unhex(f["manifest"]) if "manifest" in f else b""
        assert bool(manifest) == bool(f["flags"] & 2), "manifest present exactly when flags bit1"
        return struct.pack("<BIIBBH32s32s16s", op, f["image_size"], f["transfer_size"], f["encoding"], f["flags"],
                           f["chunk_size"], unhex(f["sha256"]), unhex(f["base_sha256"]), unhex(f["tag"])) + manifest
    if op == OP["END"]:
        return struct.pack("<BB", op, f["flags"])
    if op == OP["MANIFEST"]:
        # without "manifest": 0x09 alone, the commit of the bytes staged on Data (revision 2.3)
        return bytes([op]) + (unhex(f["manifest"]) if "manifest" in f else b"")
    if op == OP["PROVISION"]:
        key = unhex(f["key"])
        assert len(key) == 32
        return bytes([op]) + key
    return bytes([op]) + unhex(f["tag"])


def decode_command(b):
    op = b[0]
    lengths = {0x01: 1, 0x02: BEGIN_FIXED, 0x03: 2, 0x04: 17, 0x05: 17, 0x06: 17, 0x07: 17, 0x08: 33, 0x09: None}
    assert op in lengths, "unknown opcode"
    if op == OP["MANIFEST"] and len(b) == 1:
        return {"op": op}  # commit the staged bytes (revision 2.3, §2.4)
    if op == OP["MANIFEST"]:
        # the manifest alone: at least 1 + 8 and exactly 1 + the manifest's own length field (§2.4)
        assert len(b) >= 1 + 8 and len(b) == 1 + struct.unpack_from("<H", b, 1 + 6)[0], "BAD_LENGTH"
        return {"op": op, "manifest": h(b[1:])}
    if op == OP["BEGIN"] and len(b) >= BEGIN_FIXED and b[10] & 2:
        # flags bit1: at least 93 + 8 and exactly 93 + the manifest's own length field
        assert len(b) >= BEGIN_FIXED + 8 and len(b) == BEGIN_FIXED + struct.unpack_from("<H", b, BEGIN_FIXED + 6)[0], \
            "BAD_LENGTH"
    else:
        assert len(b) == lengths[op], "BAD_LENGTH"
    if op == OP["CHALLENGE"]:
        return {"op": op}
    if op == OP["BEGIN"]:
        _, isz, tsz, enc, fl, cs, sha, base, tag = struct.unpack_from("<BIIBBH32s32s16s", b)
        out = {"op": op, "image_size": isz, "transfer_size": tsz, "encoding": enc, "flags": fl,
               "chunk_size": cs, "sha256": h(sha), "base_sha256": h(base), "tag": h(tag)}
        if len(b) > BEGIN_FIXED:
            out["manifest"] = h(b[BEGIN_FIXED:])
        return out
    if op == OP["END"]:
        return {"op": op, "flags": b[1]}
    if op == OP["PROVISION"]:
        return {"op": op, "key": h(b[1:33])}
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
# §5 format 2 appends these (bytes 232..251; 247..251 reserved)
STATUS_LAYOUT_2 = [("update_partition_size", 232, "I"), ("release_floor", 236, "I"), ("device_id", 240, ("hex", 6)),
                   ("release_key_ids", 246, "B")]
STATUS_SIZE = {1: 232, 2: 252}


def status_layout(fmt):
    return STATUS_LAYOUT + (STATUS_LAYOUT_2 if fmt == 2 else [])


def encode_status(f):
    b = bytearray(STATUS_SIZE[f["format"]])
    for name, off, kind in status_layout(f["format"]):
        v = f[name]
        if kind == "sha":
            b[off:off + 32] = unhex(v)
        elif isinstance(kind, tuple) and kind[0] == "hex":
            assert len(unhex(v)) == kind[1], name
            b[off:off + kind[1]] = unhex(v)
        elif isinstance(kind, tuple):
            raw = v.encode("utf-8")
            assert len(raw) <= kind[1], name
            b[off:off + len(raw)] = raw
        else:
            struct.pack_into("<" + kind, b, off, v)
    return bytes(b)


def decode_status(b):
    assert b[0] in STATUS_SIZE and len(b) == STATUS_SIZE[b[0]]
    out = {}
    for name, off, kind in status_layout(b[0]):
        if kind == "sha":
            out[name] = h(b[off:off + 32])
        elif isinstance(kind, tuple) and kind[0] == "hex":
            out[name] = h(b[off:off + kind[1]])
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


# ---------- §12 ECDSA P-256 (FIPS 186-4 / SEC 1) with deterministic k (RFC 6979 §3.2, HMAC-SHA256) ----------

P256_P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
P256_A = P256_P - 3
P256_B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
P256_G = (0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296,
          0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5)


def ec_add(p1, p2):
    """Affine point addition on P-256; None is the point at infinity."""
    if p1 is None:
        return p2
    if p2 is None:
        return p1
    (x1, y1), (x2, y2) = p1, p2
    if x1 == x2 and (y1 + y2) % P256_P == 0:
        return None
    if p1 == p2:
        lam = (3 * x1 * x1 + P256_A) * pow(2 * y1, -1, P256_P) % P256_P
    else:
        lam = (y2 - y1) * pow(x2 - x1, -1, P256_P) % P256_P
    x3 = (lam * lam - x1 - x2) % P256_P
    return (x3, (lam * (x1 - x3) - y1) % P256_P)


def ec_mul(k, point):
    result = None
    while k:
        if k & 1:
            result = ec_add(result, point)
        point = ec_add(point, point)
        k >>= 1
    return result


def on_curve(pt):
    x, y = pt
    return (y * y - (x * x * x + P256_A * x + P256_B)) % P256_P == 0


def public_key_sec1(d):
    x, y = ec_mul(d, P256_G)
    return b"\x04" + x.to_bytes(32, "big") + y.to_bytes(32, "big")


def rfc6979_k(d, digest):
    """RFC 6979 §3.2 with HMAC-SHA256, qlen = hlen = 256 (so bits2octets is h1 mod n)."""
    x = d.to_bytes(32, "big")
    h1 = (int.from_bytes(digest, "big") % P256_N).to_bytes(32, "big")
    v, k = b"\x01" * 32, b"\x00" * 32
    k = hmac.new(k, v + b"\x00" + x + h1, hashlib.sha256).digest()
    v = hmac.new(k, v, hashlib.sha256).digest()
    k = hmac.new(k, v + b"\x01" + x + h1, hashlib.sha256).digest()
    v = hmac.new(k, v, hashlib.sha256).digest()
    while True:
        v = hmac.new(k, v, hashlib.sha256).digest()
        cand = int.from_bytes(v, "big")
        if 1 <= cand < P256_N:
            return cand
        k = hmac.new(k, v + b"\x00", hashlib.sha256).digest()
        v = hmac.new(k, v, hashlib.sha256).digest()


def ecdsa_sign(d, message):
    """Returns r || s (32 bytes each, big-endian) over SHA-256(message)."""
    digest = hashlib.sha256(message).digest()
    e = int.from_bytes(digest, "big")
    k = rfc6979_k(d, digest)
    r = ec_mul(k, P256_G)[0] % P256_N
    s = pow(k, -1, P256_N) * (e + r * d) % P256_N
    assert r and s
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def ecdsa_verify(pub65, message, sig):
    assert len(pub65) == 65 and pub65[0] == 4 and len(sig) == 64
    q = (int.from_bytes(pub65[1:33], "big"), int.from_bytes(pub65[33:], "big"))
    assert on_curve(q)
    r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
    if not (1 <= r < P256_N and 1 <= s < P256_N):
        return False
    e = int.from_bytes(hashlib.sha256(message).digest(), "big")
    w = pow(s, -1, P256_N)
    pt = ec_add(ec_mul(e * w % P256_N, P256_G), ec_mul(r * w % P256_N, q))
    return pt is not None and pt[0] % P256_N == r


# Fixed test release key (key_id 0), documented in the JSON; never a real release key.
RELEASE_PRIVATE_KEY = int.from_bytes(hashlib.sha256(b"BLEOTA2 test release key 0").digest(), "big") % P256_N
RELEASE_PUBLIC_KEY = public_key_sec1(RELEASE_PRIVATE_KEY)


def self_check_crypto():
    """The primitives against their published test vectors before anything is written."""
    # RFC 6979 A.2.5, P-256 with SHA-256, message "sample"
    x = 0xC9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721
    assert rfc6979_k(x, hashlib.sha256(b"sample").digest()) == \
        0xA6E3C57DD01ABE90086538398355DD4C3B17AA873382B0F24D6129493D8AAD60
    sig = ecdsa_sign(x, b"sample")
    assert sig.hex().upper() == ("EFD48B2AACB6A8FD1140DD9CD45E81D69D2C877B56AAF991C34D0EA84EAF3716"
                                 "F7CB1C942D657C41D436C7A1B6E29F65F3E900DBB9AFF4064DC4AB2F843ACDA8")
    assert ecdsa_verify(public_key_sec1(x), b"sample", sig) and not ecdsa_verify(public_key_sec1(x), b"sample!", sig)
    # RFC 5869 A.1
    okm = hkdf_sha256(bytes([0x0B] * 22), bytes(range(13)), bytes(range(0xF0, 0xFA)), 42)
    assert okm.hex() == "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"


# ---------- §12 signed update manifest ("BOM1") ----------

MANIFEST_HEADER = "<4sBBH32sI32sIIHH32s32sII"  # 160 bytes: everything before the device list


def encode_manifest(f, private_key=None):
    n = len(f["device_ids"])
    assert f["device_count"] == n and f["length"] == 224 + 6 * n
    body = struct.pack(MANIFEST_HEADER, f["magic"].encode(), f["format"], f["key_id"], f["length"],
                       unhex(f["image_sha256"]), f["image_size"], unhex(f["base_sha256"]), f["release"],
                       f["secure_version"], f["chip_id"], n, f["project_name"].encode(), f["app_version"].encode(),
                       f["not_after"], 0)
    body += b"".join(unhex(d) for d in f["device_ids"])
    sig = ecdsa_sign(private_key, body) if private_key is not None else unhex(f["signature"])
    return body + sig


def decode_manifest(b):
    assert struct.calcsize(MANIFEST_HEADER) == 160
    (magic, fmt, key_id, length, image_sha, image_size, base_sha, release, secure_version, chip_id, n,
     project, app_version, not_after, reserved) = struct.unpack_from(MANIFEST_HEADER, b)
    assert magic == b"BOM1" and fmt == 1 and key_id < 4 and n <= 32 and reserved == 0
    assert length == len(b) == 224 + 6 * n
    return {"magic": magic.decode(), "format": fmt, "key_id": key_id, "length": length,
            "image_sha256": h(image_sha), "image_size": image_size, "base_sha256": h(base_sha), "release": release,
            "secure_version": secure_version, "chip_id": chip_id, "device_count": n,
            "project_name": project.split(b"\0", 1)[0].decode(), "app_version": app_version.split(b"\0", 1)[0].decode(),
            "not_after": not_after, "device_ids": [h(b[160 + 6 * i:166 + 6 * i]) for i in range(n)],
            "signature": h(b[160 + 6 * n:])}


def manifest_signature_ok(b):
    n = struct.unpack_from("<H", b, 86)[0]
    return ecdsa_verify(RELEASE_PUBLIC_KEY, b[:160 + 6 * n], b[160 + 6 * n:])


# ---------- §7 per-device key (HKDF-SHA256, RFC 5869) ----------

def hkdf_sha256(ikm, salt, info, length):
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    out, t, i = b"", b"", 1
    while len(out) < length:
        t = hmac.new(prk, t + info + bytes([i]), hashlib.sha256).digest()
        out += t
        i += 1
    return out[:length]


def device_key(master, device_id):
    return hkdf_sha256(master, b"BLEOTA2-DEVICE-KEY", device_id, 32)


# ---------- §13 delta patch ----------

def uvarint(v):
    assert 0 <= v < 2 ** 32
    out = bytearray()
    while True:
        byte = v & 0x7F
        v >>= 7
        out.append(byte | (0x80 if v else 0))
        if not v:
            return bytes(out)


def svarint(v):
    assert -2 ** 31 <= v < 2 ** 31
    return uvarint(((v << 1) ^ (v >> 31)) & 0xFFFFFFFF)


class PatchInvalid(Exception):
    pass


def read_uvarint(p, i):
    value = 0
    for n in range(5):
        if i + n >= len(p):
            raise EOFError
        byte = p[i + n]
        value |= (byte & 0x7F) << (7 * n)
        if not byte & 0x80:
            if value >= 2 ** 32:
                raise PatchInvalid("uvarint value of 2^32 or more")
            return value, i + n + 1
    raise PatchInvalid("uvarint longer than 5 bytes")


def encode_patch(records):
    """records: (diff bytes, extra bytes, seek)"""
    return b"".join(uvarint(len(d)) + d + uvarint(len(e)) + e + svarint(s) for d, e, s in records)


def apply_patch(base, patch, image_size):
    """§13: returns the image, raises PatchInvalid (PATCH_INVALID) or EOFError (ends early: SIZE_MISMATCH at END)."""
    out, pos, i = bytearray(), 0, 0
    while len(out) < image_size:
        diff_len, i = read_uvarint(patch, i)
        if len(out) + diff_len > image_size:
            raise PatchInvalid("output past image_size")
        if diff_len and (pos < 0 or pos + diff_len > len(base)):
            raise PatchInvalid("reads outside the base")
        if i + diff_len > len(patch):
            raise EOFError
        out += bytes((base[pos + k] + patch[i + k]) & 0xFF for k in range(diff_len))
        i += diff_len
        pos += diff_len
        extra_len, i = read_uvarint(patch, i)
        if len(out) + extra_len > image_size:
            raise PatchInvalid("output past image_size")
        if i + extra_len > len(patch):
            raise EOFError
        out += patch[i:i + extra_len]
        i += extra_len
        zz, i = read_uvarint(patch, i)
        pos += (zz >> 1) ^ -(zz & 1)
    if i != len(patch):
        raise PatchInvalid("trailing bytes after image_size")
    return bytes(out)


PATCH_BASE = hashlib.sha256(b"patch base 0").digest() + hashlib.sha256(b"patch base 1").digest()  # 64 bytes
PATCH_RECORDS = [
    # (diff, extra, seek): diff bytes are added to the base bytes at pos (mod 256)
    (bytes(12) + bytes([0x01, 0x02, 0xFF, 0x80]), b"EXTR", 8),  # base[0..16), 4 extra, pos 16 -> 24
    (bytes((i * 37) & 0xFF for i in range(20)), b"", -30),     # base[24..44), pos 44 -> 14
    (bytes(6), b"abc", -40),                                     # base[14..20) copied, pos 20 -> -20 (outside)
    (b"", b"12345", 66),                                         # no base read while outside, pos -20 -> 46
    (bytes(range(18)), b"", 0),                                  # base[46..64): up to the last base byte
]
PATCH_BYTES = b"".join(uvarint(len(d)) + d + uvarint(len(e)) + e + svarint(s) for d, e, s in PATCH_RECORDS)
PATCH_IMAGE = apply_patch(PATCH_BASE, PATCH_BYTES, 16 + 4 + 20 + 6 + 3 + 5 + 18)


def patch_fields(base, image, records, patch=None):
    patch = encode_patch(records) if patch is None else patch
    return {"base": h(base), "base_sha256": h(hashlib.sha256(base).digest()), "image": h(image),
            "image_size": len(image), "image_sha256": h(hashlib.sha256(image).digest()),
            "records": [{"diff_len": len(d), "extra_len": len(e), "seek": s} for d, e, s in records],
            "transfer": h(zlib.compress(patch, 9))}


def build_manifests():
    """The two signed manifests of the vectors (also carried by BEGIN vectors)."""
    any_device = {"magic": "BOM1", "format": 1, "key_id": 0, "length": 224, "image_sha256": sha("example image 3"),
                  "image_size": 1_048_576, "base_sha256": h(bytes(32)), "release": 5, "secure_version": 2,
                  "chip_id": 5, "device_count": 0, "project_name": "ble_ota_demo", "app_version": "v1.3.0",
                  "not_after": 0, "device_ids": []}
    listed = {"magic": "BOM1", "format": 1, "key_id": 0, "length": 236, "image_sha256": sha("example image 4"),
              "image_size": 1_310_720, "base_sha256": sha("running image"), "release": 8, "secure_version": 3,
              "chip_id": 9, "device_count": 2, "project_name": "ble_ota_demo", "app_version": "2.0.0-rc1",
              "not_after": 1_893_456_000, "device_ids": [h(d) for d in DEVICE_IDS]}
    for m in (any_device, listed):
        m["signature"] = h(encode_manifest(m, RELEASE_PRIVATE_KEY)[-64:])
    return any_device, listed


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
    zero_sha = h(bytes(32))

    # commands
    add("challenge", "command", {"op": 1}, "CHALLENGE: opcode only.")
    add("begin-raw-no-key", "command",
        {"op": 2, "image_size": 1_000_000, "transfer_size": 1_000_000, "encoding": 0, "flags": 0, "chunk_size": 508,
         "sha256": image_sha, "base_sha256": zero_sha, "tag": zero_tag},
        "Fresh raw BEGIN (93 bytes) to a device without session key (development build, caps bit9): zero tag, "
        "zero base_sha256.")
    begin_nonce = nonce_of(0x00)
    begin_fields = {"op": 2, "image_size": 1_441_792, "transfer_size": 712_345, "encoding": 1, "flags": 1,
                    "chunk_size": 240, "sha256": sha("example image 2"), "base_sha256": zero_sha, "tag": zero_tag}
    begin_fields["tag"] = h(begin_tag(FLEET_KEY, begin_nonce, encode_command(begin_fields)))
    add("begin-deflate-resume-tagged", "command", begin_fields,
        "Deflate BEGIN with resume flag; tag = HMAC-SHA256(fleetKey, 'BLEOTA2-BEGIN' || nonce || bytes 1..76)[0:16].",
        nonce=h(begin_nonce))
    # delta and manifest BEGINs (the manifests are the "manifest" vectors below)
    manifest_any, manifest_listed = build_manifests()
    delta_nonce = nonce_of(0x50)
    delta_fields = {"op": 2, "image_size": len(PATCH_IMAGE), "transfer_size": len(zlib.compress(PATCH_BYTES, 9)),
                    "encoding": 2, "flags": 0, "chunk_size": 240, "sha256": h(hashlib.sha256(PATCH_IMAGE).digest()),
                    "base_sha256": h(hashlib.sha256(PATCH_BASE).digest()), "tag": zero_tag}
    delta_fields["tag"] = h(begin_tag(FLEET_KEY, delta_nonce, encode_command(delta_fields)))
    add("begin-delta-tagged", "command", delta_fields,
        "Delta BEGIN (encoding 2) of the patch vector 'patch-diff-extra-seeks': base_sha256 = running_sha256 of "
        "the base; the tag covers base_sha256.", nonce=h(delta_nonce))
    m_any = h(encode_manifest(manifest_any))
    add("begin-manifest", "command",
        {"op": 2, "image_size": manifest_any["image_size"], "transfer_size": manifest_any["image_size"],
         "encoding": 0, "flags": 2, "chunk_size": 240, "sha256": manifest_any["image_sha256"],
         "base_sha256": zero_sha, "tag": zero_tag, "manifest": m_any},
        "Raw BEGIN with flags bit1: 93 + 224 = 317 bytes, the manifest vector 'manifest-any-device' follows the "
        "tag. Sent to a device with release keys and no session key: zero tag.")
    listed_nonce = nonce_of(0x60)
    listed_fields = {"op": 2, "image_size": manifest_listed["image_size"], "transfer_size": 98_765, "encoding": 2,
                     "flags": 3, "chunk_size": 491, "sha256": manifest_listed["image_sha256"],
                     "base_sha256": manifest_listed["base_sha256"], "tag": zero_tag,
                     "manifest": h(encode_manifest(manifest_listed))}
    listed_fields["tag"] = h(begin_tag(FLEET_KEY, listed_nonce, encode_command(listed_fields)))
    add("begin-delta-manifest-resume-tagged", "command", listed_fields,
        "Delta BEGIN with resume and manifest (flags 0x03): 93 + 236 = 329 bytes, manifest 'manifest-allow-list-delta'. "
        "The tag covers bytes 1..76 only: the manifest carries its own signature.", nonce=h(listed_nonce))
    add("manifest-command", "command", {"op": 9, "manifest": m_any},
        "MANIFEST (revision 2.2, caps bit11): the manifest vector 'manifest-any-device' alone, 1 + 224 = 225 bytes, "
        "one Write Request at MTU >= 228; no tag. A later BEGIN without flags bit1 ('begin-raw-after-manifest') uses it.")
    add("manifest-command-allow-list", "command", {"op": 9, "manifest": h(encode_manifest(manifest_listed))},
        "MANIFEST carrying 'manifest-allow-list-delta': 1 + 236 = 237 bytes.")
    add("manifest-commit-staged", "command", {"op": 9},
        "MANIFEST 0x09 alone (revision 2.3, caps bit12): commits the manifest this connection staged on Data "
        "('data-manifest-staging-first', ...); checked exactly as 0x09 followed by those bytes. Nothing staged, or "
        "staging broken: 'manifest-err-bad-length'.")
    add("begin-raw-after-manifest", "command",
        {"op": 2, "image_size": manifest_any["image_size"], "transfer_size": manifest_any["image_size"],
         "encoding": 0, "flags": 0, "chunk_size": 240, "sha256": manifest_any["image_sha256"],
         "base_sha256": zero_sha, "tag": zero_tag},
        "The plain 93-byte BEGIN that follows 'manifest-command' on the same connection: flags bit1 clear, its "
        "image_size and sha256 are checked against the stored manifest (MANIFEST_MISMATCH otherwise).")
    add("provision", "command", {"op": 8, "key": h(device_key(MASTER_KEY, DEVICE_IDS[0]))},
        "PROVISION (33 bytes): stores the device key (here the per-device key of 'device-key-1') while the "
        "provisioning window is open. No tag.")
    add("end-reboot", "command", {"op": 3, "flags": 1}, "END, reboot after success.")
    add("end-no-reboot", "command", {"op": 3, "flags": 0}, "END, stay up (IDLE) after success.")
    for i, name in enumerate(TAGGED):
        nonce = nonce_of(0x10 * (i + 1))
        add(f"{name.lower()}-tagged", "command", {"op": OP[name], "tag": h(command_tag(FLEET_KEY, nonce, OP[name]))},
            f"{name}; tag = HMAC-SHA256(fleetKey, 'BLEOTA2-CMD' || nonce || op)[0:16].", nonce=h(nonce))
    add("abort-no-key", "command", {"op": 4, "tag": zero_tag}, "ABORT to a device without session key.")

    # responses: success
    add("challenge-ok", "response",
        {"op": 0x81, "err": 0, "nonce": h(nonce_of(0x00)), "caps": 0b011111},
        "CHALLENGE response (20 bytes, fits ATT MTU 23): deflate, fleet key required, resume, host policy, anti-downgrade.")
    add("challenge-ok-open", "response",
        {"op": 0x81, "err": 0, "nonce": h(nonce_of(0x40)), "caps": 0b000101},
        "CHALLENGE response of a device without fleet key (deflate, resume).")
    add("challenge-ok-secure", "response",
        {"op": 0x81, "err": 0, "nonce": h(nonce_of(0x70)), "caps": 0b00111100111},
        "CHALLENGE response: deflate, session key, resume, manifest required (bit6), delta (bit7), provisioning "
        "window open (bit8).")
    add("challenge-ok-not-provisioned", "response",
        {"op": 0x81, "err": 0, "nonce": h(nonce_of(0x80)), "caps": 0b10010000101},
        "CHALLENGE response of a device with neither session key nor release key (bit10), delta supported.")
    add("challenge-ok-unauthenticated", "response",
        {"op": 0x81, "err": 0, "nonce": h(nonce_of(0x90)), "caps": 0b01000000101},
        "CHALLENGE response of a development build without keys (bit9: unauthenticated updates allowed).")
    add("challenge-ok-manifest-command", "response",
        {"op": 0x81, "err": 0, "nonce": h(nonce_of(0xA0)), "caps": 0b100011000111},
        "CHALLENGE response of a revision-2.2 device: deflate, session key, resume, manifest required (bit6), delta "
        "(bit7), MANIFEST command supported (bit11).")
    add("challenge-ok-manifest-staging", "response",
        {"op": 0x81, "err": 0, "nonce": h(nonce_of(0xB0)), "caps": 0b1100011000111},
        "CHALLENGE response of a revision-2.3 device: as 'challenge-ok-manifest-command' plus manifest staging on "
        "Data (bit12; a device with bit12 has bit11).")
    add("provision-ok", "response", {"op": 0x88, "err": 0}, "PROVISION accepted: the device key is stored.")
    add("manifest-ok", "response", {"op": 0x89, "err": 0},
        "MANIFEST stored for this connection; sent when the write is handled, before the signature is verified.")
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
        ("begin", "NOT_PROVISIONED"), ("begin", "MANIFEST_REQUIRED"), ("begin", "MANIFEST_INVALID"),
        ("begin", "MANIFEST_MISMATCH"), ("begin", "RELEASE_TOO_OLD"), ("begin", "BASE_MISMATCH"),
        ("abort", "NOT_PROVISIONED"), ("confirm", "NOT_PROVISIONED"), ("rollback", "NOT_PROVISIONED"),
        ("reboot", "NOT_PROVISIONED"), ("reboot", "AUTH_REQUIRED"), ("provision", "INVALID_STATE"),
        ("provision", "BAD_LENGTH"), ("end", "PATCH_INVALID"),
        ("manifest", "BAD_LENGTH"), ("manifest", "MANIFEST_INVALID"), ("manifest", "MANIFEST_MISMATCH"),
        ("manifest", "RELEASE_TOO_OLD"), ("manifest", "BUSY"), ("manifest", "INVALID_STATE"),
    ]
    for cmd, err in errors:
        add(f"{cmd}-err-{err.lower().replace('_', '-')}", "response",
            {"op": OP[cmd.upper()] | 0x80, "err": ERR[err]}, f"{cmd.upper()} refused with {err}: only op|0x80 and err.")
    add("unknown-opcode", "response", {"op": 0xFF, "err": ERR["UNKNOWN_OPCODE"], "unknown_op": 0x0A},
        "Answer to a Control write starting with 0x0A.")

    # notifications
    add("data-ack", "notification", {"op": 0xA0, "next_offset": 4096}, "Every transfer byte below 4096 is queued.")
    add("data-ack-final", "notification", {"op": 0xA0, "next_offset": 712_345}, "ACK of the last transfer byte.")
    naks = [("GAP", 8192, "chunk lost: resend from 8192"), ("DUPLICATE", 8432, "already had it"),
            ("OUT_OF_WINDOW", 20480, "past acked + window"), ("EMPTY_WRITE", 12000, "write of 4 bytes or less"),
            ("OVERSIZED", 12000, "payload larger than chunk_size"), ("NO_SESSION", 0, "data without a session")]
    for err, expected, why in naks:
        add(f"data-nak-{err.lower().replace('_', '-')}", "notification",
            {"op": 0xA1, "err": ERR[err], "expected_offset": expected}, f"DATA_NAK {err}: {why}.")
    add("data-nak-staging-bad-length", "notification",
        {"op": 0xA1, "err": ERR["BAD_LENGTH"], "expected_offset": 0x80000010},
        "DATA_NAK BAD_LENGTH to a staging write out of order (or past 416 bytes) after 16 staged bytes: "
        "expected_offset = 0x80000000 | the staged length before it; the staged bytes are dropped; sent once per break.")
    for err in ("WRONG_CHIP", "WRONG_CHIP_REVISION", "NOT_APP_IMAGE", "DOWNGRADE", "DECODE_FAILED", "FLASH_ERROR",
                "SESSION_TIMEOUT", "MANIFEST_INVALID", "MANIFEST_MISMATCH", "PATCH_INVALID"):
        add(f"session-aborted-{err.lower().replace('_', '-')}", "notification", {"op": 0xA2, "err": ERR[err]},
            f"The device gave up the session: {err}.")

    # data
    add("data-first-chunk", "data", {"offset": 0, "payload": "e9050220" + "ee00" + "0000" + "05"},
        "First chunk of an esp32c3 image (header start).")
    add("data-chunk", "data", {"offset": 40960, "payload": h(bytes(range(16)))}, "A 16-byte payload at offset 40960.")
    add("data-manifest-staging-first", "data", {"offset": 0x80000000, "payload": m_any[:32]},
        "Manifest staging write (revision 2.3, caps bit12) at ATT MTU 23: offset 0x80000000 | manifest offset 0, "
        "the first MTU - 7 = 16 bytes of 'manifest-any-device'; starts (or restarts) staging for this connection. "
        "No DATA_ACK.")
    add("data-manifest-staging", "data", {"offset": 0x80000010, "payload": m_any[32:64]},
        "The next staging write: manifest bytes 16..31 of 'manifest-any-device' at manifest offset 16 (in order: "
        "manifest offset = the staged length).")

    # status
    running = sha("running image")
    previous = sha("previous image")
    add("status-factory", "status", {
        "format": 2, "proto_version": 2, "caps": 0b000101, "ota_state": 2, "confirm_policy": 0, "session_state": 0,
        "reset_reason": 1, "boot_count": 0, "chip_id": 0, "secure_version": 0, "session_offset": 0,
        "running_partition": "ota_0", "app_version": "1.0.0", "project_name": "ble_ota_demo",
        "idf_version": "v5.2.2", "running_sha256": previous, "last_result": 0xFF, "last_flags": 0,
        "last_sha256": h(bytes(32)), "last_message": "",
        "update_partition_size": 0x100000, "release_floor": 0, "device_id": "240ac4000001", "release_key_ids": 0},
        "Factory esp32, no update recorded (last_result 0xFF).")
    add("status-pending-verify", "status", {
        "format": 2, "proto_version": 2, "caps": 0b011111, "ota_state": 1, "confirm_policy": 1, "session_state": 0,
        "reset_reason": 3, "boot_count": 1, "chip_id": 5, "secure_version": 2, "session_offset": 0,
        "running_partition": "ota_1", "app_version": "v1.2.3-rc1", "project_name": "ble_ota_demo",
        "idf_version": "v5.2.2-dirty", "running_sha256": running, "last_result": 0, "last_flags": 0b110110,
        "last_sha256": sha("example image 2"), "last_message": "diagnostics passed",
        "update_partition_size": 0x1E0000, "release_floor": 7, "device_id": "58cf79a1b2c3", "release_key_ids": 0b0011},
        "esp32c3 after an update, host policy: diagnostics ran and passed, waiting for CONFIRM.")
    add("status-rolled-back", "status", {
        "format": 2, "proto_version": 2, "caps": 0b000101, "ota_state": 2, "confirm_policy": 0, "session_state": 0,
        "reset_reason": 3, "boot_count": 0, "chip_id": 9, "secure_version": 0, "session_offset": 0,
        "running_partition": "ota_0", "app_version": "1.0.0", "project_name": "ble_ota_demo",
        "idf_version": "v5.2.2", "running_sha256": previous, "last_result": ERR["DIAGNOSTICS_FAILED"],
        "last_flags": 0b110011, "last_sha256": sha("example image 2"), "last_message": "sensor self-test failed",
        "update_partition_size": 0x200000, "release_floor": 0, "device_id": "f412fa0a0b0c", "release_key_ids": 0},
        "esp32s3 back on the previous image: the new one failed diagnostics and was rolled back.")
    add("status-receiving", "status", {
        "format": 2, "proto_version": 2, "caps": 0b000111, "ota_state": 2, "confirm_policy": 0, "session_state": 1,
        "reset_reason": 1, "boot_count": 3, "chip_id": 13, "secure_version": 0, "session_offset": 122880,
        "running_partition": "ota_0", "app_version": "a-version-string-of-32-bytes-xx!", "project_name": "p",
        "idf_version": "v5.3", "running_sha256": previous, "last_result": ERR["INTERNAL"], "last_flags": 0b10000,
        "last_sha256": sha("example image 1"), "last_message": "in progress",
        "update_partition_size": 0x1C0000, "release_floor": 1, "device_id": "404cca112233", "release_key_ids": 0b1000},
        "esp32c6 receiving (session_offset acked); app_version fills its 32-byte field (no NUL).")
    add("status-another-installer", "status", {
        "format": 2, "proto_version": 2, "caps": 0b000101, "ota_state": 2, "confirm_policy": 0, "session_state": 0,
        "reset_reason": 3, "boot_count": 1, "chip_id": 5, "secure_version": 0, "session_offset": 0,
        "running_partition": "ota_1", "app_version": "2.0.0", "project_name": "ble_ota_demo",
        "idf_version": "v5.3.2", "running_sha256": running, "last_result": 0, "last_flags": 0b10111110,
        "last_sha256": h(bytes(32)), "last_message": "no diagnostics hook",
        "update_partition_size": 0x100000, "release_floor": 0, "device_id": "58cf79000001", "release_key_ids": 0},
        "esp32c3 first boot of an image the seed firmware installed (no record named it: bit7), diagnosed and "
        "confirmed under the auto policy; the image's SHA-256 is unknown (zeros).")
    add("status-interrupted", "status", {
        "format": 2, "proto_version": 2, "caps": 0b000101, "ota_state": 2, "confirm_policy": 0, "session_state": 0,
        "reset_reason": 1, "boot_count": 0, "chip_id": 5, "secure_version": 0, "session_offset": 0,
        "running_partition": "ota_0", "app_version": "1.0.0", "project_name": "ble_ota_demo",
        "idf_version": "v5.3.2", "running_sha256": previous, "last_result": ERR["INTERNAL"], "last_flags": 0b1010000,
        "last_sha256": sha("example image 1"), "last_message": "interrupted before boot switch",
        "update_partition_size": 0, "release_floor": 0, "device_id": "58cf79000002", "release_key_ids": 0},
        "Power lost after the INSTALLED record, before esp_ota_set_boot_partition finished: the old image runs (bit6); "
        "update partition size unknown (0).")
    add("status-format2-secure", "status", {
        "format": 2, "proto_version": 2, "caps": 0b00011100111, "ota_state": 2, "confirm_policy": 1, "session_state": 0,
        "reset_reason": 1, "boot_count": 2, "chip_id": 9, "secure_version": 3, "session_offset": 0,
        "running_partition": "ota_1", "app_version": "3.1.0", "project_name": "ble_ota_demo",
        "idf_version": "v5.3.2", "running_sha256": h(hashlib.sha256(PATCH_BASE).digest()), "last_result": 0,
        "last_flags": 0b111110, "last_sha256": running, "last_message": "",
        "update_partition_size": 0x3F0000, "release_floor": 0xFFFFFFFE, "device_id": h(DEVICE_IDS[0]),
        "release_key_ids": 0b1111},
        "Format 2, every new field non-trivial: esp32s3 with a 4032 KiB update partition, release floor 4294967294, "
        "device_id of 'device-key-1', release keys 0..3 provisioned; caps: session key, manifest required, delta.")
    add("status-format1-legacy", "status", {
        "format": 1, "proto_version": 2, "caps": 0b000101, "ota_state": 2, "confirm_policy": 0, "session_state": 0,
        "reset_reason": 1, "boot_count": 0, "chip_id": 5, "secure_version": 0, "session_offset": 0,
        "running_partition": "ota_0", "app_version": "1.0.0", "project_name": "ble_ota_demo",
        "idf_version": "v5.2.2", "running_sha256": previous, "last_result": 0xFF, "last_flags": 0,
        "last_sha256": h(bytes(32)), "last_message": ""},
        "Format 1 (232 bytes) of a device before protocol v2.1: clients decode it; the format-2 fields are unknown.")

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

    # §12 manifests: the hex is the whole manifest; fields decoded, plus whether the signature verifies
    # under releasePublicKey (key_id 0)
    manifest_any, manifest_listed = build_manifests()
    add("manifest-any-device", "manifest", dict(manifest_any, signature_valid=True),
        "Full or delta transfer of any device (device_count 0, base_sha256 zero), release 5, no expiry; signed "
        "with releasePrivateKey (ECDSA P-256, SHA-256 over bytes [0, 160), deterministic k of RFC 6979).")
    add("manifest-allow-list-delta", "manifest", dict(manifest_listed, signature_valid=True),
        "Only a delta from base_sha256 (the running image of 'status-pending-verify'), only the 2 listed devices, "
        "release 8, not_after 2030-01-01 (host check only); signature over bytes [0, 172).")
    broken = encode_manifest(manifest_listed)
    broken = broken[:76] + struct.pack("<I", 9) + broken[80:]
    add("manifest-bad-signature", "manifest", dict(decode_manifest(broken), signature_valid=False),
        "'manifest-allow-list-delta' with release changed to 9 after signing: MANIFEST_INVALID (signature wrong).",
        hex=h(broken))

    # §7 per-device keys
    for i, dev in enumerate(DEVICE_IDS):
        add(f"device-key-{i + 1}", "device_key",
            {"master_key": h(MASTER_KEY), "device_id": h(dev), "device_key": h(device_key(MASTER_KEY, dev))},
            "device_key = HKDF-SHA256(IKM = masterKey, salt = 'BLEOTA2-DEVICE-KEY', info = device_id, L = 32); "
            "hex = device_key.", hex=h(device_key(MASTER_KEY, dev)))

    # §13 patches: hex = the uncompressed patch; fields.transfer = what Data carries (zlib, RFC 1950)
    add("patch-diff-extra-seeks", "patch", patch_fields(PATCH_BASE, PATCH_IMAGE, PATCH_RECORDS),
        "Five records: diff with carries (0xff + base), extra bytes, positive seek, negative seek, pos outside "
        "the base between reads (-20), a record without diff, the last record reading the last base byte and "
        "carrying seek 0.", hex=h(PATCH_BYTES))

    def bad_patch(name, patch, image_size, error, why):
        add(name, "patch", {"base": h(PATCH_BASE), "base_sha256": h(hashlib.sha256(PATCH_BASE).digest()),
                            "image_size": image_size, "transfer": h(zlib.compress(patch, 9)), "error": error},
            why, hex=h(patch))
        try:
            apply_patch(PATCH_BASE, patch, image_size)
            raise AssertionError(name + " applies")
        except PatchInvalid:
            assert error == "PATCH_INVALID", name
        except EOFError:
            assert error == "SIZE_MISMATCH", name

    bad_patch("patch-read-outside-base", encode_patch([(b"", b"ab", 60), (bytes(8), b"", 0)]), 20, "PATCH_INVALID",
              "The second record reads base[60..68) of a 64-byte base.")
    bad_patch("patch-output-past-image", encode_patch([(bytes(4), bytes(8), 0)]), 10, "PATCH_INVALID",
              "4 diff + 8 extra bytes for an image of 10 bytes.")
    bad_patch("patch-overlong-uvarint", bytes([0x80, 0x80, 0x80, 0x80, 0x80, 0x00]) + bytes(12), 10, "PATCH_INVALID",
              "diff_len written in 6 bytes (a uvarint has at most 5).")
    bad_patch("patch-uvarint-too-large", bytes([0x80, 0x80, 0x80, 0x80, 0x10]) + bytes(12), 10, "PATCH_INVALID",
              "diff_len = 2^32 in 5 bytes (a uvarint value is below 2^32).")
    bad_patch("patch-trailing-bytes", PATCH_BYTES + b"\x00", len(PATCH_IMAGE), "PATCH_INVALID",
              "'patch-diff-extra-seeks' plus one byte after the record that completes image_size.")
    bad_patch("patch-ends-early", PATCH_BYTES[:-25], len(PATCH_IMAGE), "SIZE_MISMATCH",
              "'patch-diff-extra-seeks' cut inside the last record: the stream ends before image_size bytes "
              "(SIZE_MISMATCH at END, as for deflate).")

    for v in vectors:
        if v["kind"] == "manifest":
            raw = unhex(v["hex"]) if "hex" in v else encode_manifest(v["fields"])
            assert dict(decode_manifest(raw), signature_valid=manifest_signature_ok(raw)) == v["fields"], v["name"]
            v["hex"] = h(raw)
            continue
        if v["kind"] == "device_key":
            f = v["fields"]
            assert h(device_key(unhex(f["master_key"]), unhex(f["device_id"]))) == f["device_key"] == v["hex"]
            continue
        if v["kind"] == "patch":
            f, raw = v["fields"], unhex(v["hex"])
            assert zlib.decompress(unhex(f["transfer"])) == raw
            if "image" in f:
                assert apply_patch(unhex(f["base"]), raw, f["image_size"]) == unhex(f["image"])
                assert encode_patch([]) == b"" and len(f["records"]) == len(PATCH_RECORDS)
            continue
        enc, dec = CODECS[v["kind"]]
        raw = enc(v["fields"])
        assert dec(raw) == v["fields"], v["name"]
        if v["kind"] in ("response", "notification"):
            assert len(raw) <= MAX_CONTROL_NOTIFICATION, f"{v['name']}: {len(raw)} bytes do not fit ATT MTU 23"
        v["hex"] = h(raw)
    order = ("name", "kind", "hex", "fields", "note", "nonce")
    return {"version": 2, "fleetKey": h(FLEET_KEY), "masterKey": h(MASTER_KEY),
            "releasePrivateKey": "%064x" % RELEASE_PRIVATE_KEY, "releasePublicKey": h(RELEASE_PUBLIC_KEY),
            "vectors": [{k: v[k] for k in order if k in v} for v in vectors]}


def main():
    self_check_crypto()
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
