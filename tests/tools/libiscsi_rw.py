#!/usr/bin/env python3
"""Write and read back data through libiscsi (libiscsi.so.7, Debian package libiscsi7).

Debian's libiscsi-bin has no tool that writes data (no iscsi-dd), and fio's libiscsi
engine is not in Debian's fio build, so the end-to-end tests call libiscsi's own
synchronous C API through ctypes: the login, the R2T/Data-Out handling and the Data-In
reassembly are libiscsi's, not ours. Nothing here needs a compiler or libiscsi-dev.

usage:
  libiscsi_rw.py write  URL LBA BLOCKS BLOCK_SIZE SEED [--chunk-blocks N]
  libiscsi_rw.py verify URL LBA BLOCKS BLOCK_SIZE SEED [--chunk-blocks N]
  libiscsi_rw.py cross  URL LBA BLOCKS BLOCK_SIZE SEED
      two sessions at once (two initiator names): write through the first, read back
      through the second while the first is still logged in, then the other way round
  libiscsi_rw.py write-fails URL LBA BLOCK_SIZE SENSE_KEY
      a one-block WRITE(10) must fail with CHECK CONDITION and this sense key
      (7 = DATA PROTECT for a read-only LUN); exit 0 if it does

Option --header-digest-crc32c (any command) offers only HeaderDigest=CRC32C, so the login
fails unless the target accepts it and every PDU then carries a header digest (libiscsi
has no data digest support).

URL is a libiscsi URL, iscsi://HOST:PORT/IQN/LUN. The data is a deterministic function
of SEED and the byte offset from LBA 0, so `verify` with the same SEED checks what
`write` wrote. Exit status: 0 ok, 1 data mismatch or unexpected SCSI result, 2 usage or
library error (message on stderr).
"""
import ctypes
import ctypes.util
import hashlib
import sys

SCSI_STATUS_GOOD = 0
SCSI_STATUS_CHECK_CONDITION = 2
ISCSI_SESSION_NORMAL = 2
ISCSI_HEADER_DIGEST_CRC32C = 3  # offer CRC32C only
HEADER_DIGEST = [False]


class ScsiIovec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class ScsiTaskPrefix(ctypes.Structure):
    """The leading fields of libiscsi 1.19's struct scsi_task (scsi-lowlevel.h), up to
    the sense key and ASC/ASCQ; only these are read."""

    _fields_ = [
        ("status", ctypes.c_int),
        ("cdb_size", ctypes.c_int),
        ("xfer_dir", ctypes.c_int),
        ("expxferlen", ctypes.c_int),
        ("cdb", ctypes.c_ubyte * 16),
        ("residual_status", ctypes.c_int),
        ("residual", ctypes.c_size_t),
        ("sense_error_type", ctypes.c_ubyte),
        ("sense_key", ctypes.c_int),
        ("sense_ascq", ctypes.c_int),
    ]


def die(msg, code=2):
    print(f"libiscsi_rw: {msg}", file=sys.stderr)
    sys.exit(code)


def load():
    name = ctypes.util.find_library("iscsi") or "libiscsi.so.7"
    try:
        lib = ctypes.CDLL(name)
    except OSError as e:
        die(f"cannot load libiscsi ({name}): {e}; install the Debian package libiscsi7")
    vp, cp, u32, i = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint32, ctypes.c_int
    sig = {
        "iscsi_create_context": (vp, [cp]),
        "iscsi_destroy_context": (i, [vp]),
        "iscsi_parse_full_url": (vp, [vp, cp]),
        "iscsi_destroy_url": (None, [vp]),
        "iscsi_set_targetname": (i, [vp, cp]),
        "iscsi_set_session_type": (i, [vp, i]),
        "iscsi_set_timeout": (i, [vp, i]),
        "iscsi_set_header_digest": (i, [vp, i]),
        "iscsi_full_connect_sync": (i, [vp, cp, i]),
        "iscsi_logout_sync": (i, [vp]),
        "iscsi_get_error": (cp, [vp]),
        "scsi_free_scsi_task": (None, [vp]),
        "scsi_sense_key_str": (cp, [i]),
        # lun, lba, data, datalen, blocksize, wrprotect, dpo, fua, fua_nv, group
        "iscsi_write10_sync": (vp, [vp, i, u32, ctypes.c_char_p, u32, i, i, i, i, i, i]),
        # lun, lba, datalen, blocksize, rdprotect, dpo, fua, fua_nv, group, iov, niov
        "iscsi_read10_iov_sync": (vp, [vp, i, u32, u32, i, i, i, i, i, i, ctypes.POINTER(ScsiIovec), i]),
    }
    for fn, (res, args) in sig.items():
        f = getattr(lib, fn)
        f.restype, f.argtypes = res, args
    return lib


class Url:
    """iscsi://HOST:PORT/IQN/LUN, split the way libiscsi splits it."""

    def __init__(self, text):
        if not text.startswith("iscsi://"):
            die(f"not an iscsi:// URL: {text}")
        rest = text[len("iscsi://"):]
        try:
            self.portal, self.iqn, lun = rest.split("/", 2)
            self.lun = int(lun)
        except ValueError:
            die(f"URL must be iscsi://HOST:PORT/IQN/LUN, got {text}")


class Session:
    def __init__(self, lib, url, initiator):
        self.lib, self.url = lib, url
        self.ctx = lib.iscsi_create_context(initiator.encode())
        if not self.ctx:
            die("iscsi_create_context failed")
        lib.iscsi_set_targetname(self.ctx, url.iqn.encode())
        lib.iscsi_set_session_type(self.ctx, ISCSI_SESSION_NORMAL)
        lib.iscsi_set_timeout(self.ctx, 30)
        if HEADER_DIGEST[0]:
            lib.iscsi_set_header_digest(self.ctx, ISCSI_HEADER_DIGEST_CRC32C)
        if lib.iscsi_full_connect_sync(self.ctx, url.portal.encode(), url.lun) != 0:
            die(f"login to {url.iqn} at {url.portal} as {initiator} failed: {self.error()}")

    def error(self):
        e = self.lib.iscsi_get_error(self.ctx)
        return e.decode(errors="replace") if e else "(no error text)"

    def close(self):
        if self.ctx:
            self.lib.iscsi_logout_sync(self.ctx)
            self.lib.iscsi_destroy_context(self.ctx)
            self.ctx = None

    def _result(self, task, what):
        """(status, sense_key, asc_ascq) of a finished task, freeing it."""
        if not task:
            die(f"{what}: no task (transport error): {self.error()}")
        t = ScsiTaskPrefix.from_address(task)
        res = (t.status, t.sense_key, t.sense_ascq)
        self.lib.scsi_free_scsi_task(task)
        return res

    def write(self, lba, data, block_size):
        task = self.lib.iscsi_write10_sync(self.ctx, self.url.lun, lba, data, len(data),
                                           block_size, 0, 0, 0, 0, 0)
        return self._result(task, f"WRITE(10) lba {lba}")

    def read(self, lba, length, block_size):
        buf = ctypes.create_string_buffer(length)
        iov = ScsiIovec(ctypes.cast(buf, ctypes.c_void_p), length)
        task = self.lib.iscsi_read10_iov_sync(self.ctx, self.url.lun, lba, length, block_size,
                                              0, 0, 0, 0, 0, ctypes.byref(iov), 1)
        return self._result(task, f"READ(10) lba {lba}"), buf.raw


def pattern(seed, offset, length):
    """Deterministic bytes for [offset, offset+length) of the LUN; 32-byte granules."""
    out = bytearray()
    first = offset // 32
    for g in range(first, (offset + length + 31) // 32):
        out += hashlib.sha256(f"{seed}:{g}".encode()).digest()
    skip = offset - first * 32
    return bytes(out[skip:skip + length])


def describe(lib, res):
    status, key, ascq = res
    if status == SCSI_STATUS_CHECK_CONDITION:
        name = lib.scsi_sense_key_str(key)
        name = name.decode() if name else "?"
        return f"CHECK CONDITION, sense key {key:#x} ({name}), ASC/ASCQ {ascq:#06x}"
    return f"SCSI status {status:#x}"


def chunks(lba, blocks, per):
    while blocks > 0:
        n = min(blocks, per)
        yield lba, n
        lba, blocks = lba + n, blocks - n


def do_write(lib, s, lba, blocks, bs, seed, per):
    for l, n in chunks(lba, blocks, per):
        res = s.write(l, pattern(seed, l * bs, n * bs), bs)
        if res[0] != SCSI_STATUS_GOOD:
            die(f"WRITE(10) lba {l} blocks {n}: {describe(lib, res)}", 1)


def do_verify(lib, s, lba, blocks, bs, seed, per):
    for l, n in chunks(lba, blocks, per):
        res, got = s.read(l, n * bs, bs)
        if res[0] != SCSI_STATUS_GOOD:
            die(f"READ(10) lba {l} blocks {n}: {describe(lib, res)}", 1)
        want = pattern(seed, l * bs, n * bs)
        if got != want:
            at = next(k for k in range(len(want)) if got[k] != want[k])
            die(f"data mismatch in lba {l}+{n}: first differing byte at LUN offset "
                f"{l * bs + at} (got {got[at]:#04x}, wrote {want[at]:#04x})", 1)


def main(argv):
    if len(argv) < 2:
        die(__doc__.strip())
    cmd, args = argv[1], argv[2:]
    per = 128
    if "--header-digest-crc32c" in args:
        args.remove("--header-digest-crc32c")
        HEADER_DIGEST[0] = True
    if "--chunk-blocks" in args:
        k = args.index("--chunk-blocks")
        per = int(args[k + 1])
        del args[k:k + 2]
    lib = load()
    if cmd in ("write", "verify", "cross"):
        if len(args) != 5:
            die(f"{cmd} needs URL LBA BLOCKS BLOCK_SIZE SEED")
        url, lba, blocks, bs, seed = Url(args[0]), int(args[1]), int(args[2]), int(args[3]), args[4]
        if cmd == "cross":
            a = Session(lib, url, "iqn.2026-11.test:cross-a")
            b = Session(lib, url, "iqn.2026-11.test:cross-b")
            do_write(lib, a, lba, blocks, bs, seed, per)
            do_verify(lib, b, lba, blocks, bs, seed, per)
            do_write(lib, b, lba, blocks, bs, seed + "-b", per)
            do_verify(lib, a, lba, blocks, bs, seed + "-b", per)
            b.close()
            a.close()
        else:
            s = Session(lib, url, "iqn.2026-11.test:rw")
            (do_write if cmd == "write" else do_verify)(lib, s, lba, blocks, bs, seed, per)
            s.close()
        print(f"{cmd} ok: lba {lba}, {blocks} blocks of {bs} bytes")
        return 0
    if cmd == "write-fails":
        if len(args) != 4:
            die("write-fails needs URL LBA BLOCK_SIZE SENSE_KEY")
        url, lba, bs, key = Url(args[0]), int(args[1]), int(args[2]), int(args[3], 0)
        s = Session(lib, url, "iqn.2026-11.test:rw")
        res = s.write(lba, b"\xa5" * bs, bs)
        s.close()
        if res[0] == SCSI_STATUS_CHECK_CONDITION and res[1] == key:
            print(f"write failed as expected: {describe(lib, res)}")
            return 0
        die(f"WRITE(10) to lba {lba}: expected sense key {key:#x}, got {describe(lib, res)}", 1)
    die(f"unknown command {cmd}")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
