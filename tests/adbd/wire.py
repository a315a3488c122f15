"""ADB's wire format as adbd speaks it (AOSP packages/modules/adb: protocol.txt, SYNC.TXT,
shell_protocol.h): 24-byte message headers, Android's RSA public-key format, the shell-v2 and
sync framings. Only what a daemon needs; clients are adb-shell and Debian's adb."""
from __future__ import annotations

import base64
import struct

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils


def _id(name: bytes) -> int:
    return struct.unpack("<I", name)[0]


CNXN, AUTH, OPEN, OKAY, CLSE, WRTE, STLS = (_id(n) for n in (b"CNXN", b"AUTH", b"OPEN", b"OKAY", b"CLSE",
                                                              b"WRTE", b"STLS"))
NAMES = {v: k for k, v in {"CNXN": CNXN, "AUTH": AUTH, "OPEN": OPEN, "OKAY": OKAY, "CLSE": CLSE,
                           "WRTE": WRTE, "STLS": STLS}.items()}
A_VERSION_MIN = 0x01000000
A_VERSION_SKIP_CHECKSUM = 0x01000001  # from this version on, payload checksums may be 0
MAX_PAYLOAD = 1024 * 1024
AUTH_TOKEN, AUTH_SIGNATURE, AUTH_RSAPUBLICKEY = 1, 2, 3
TOKEN_SIZE = 20  # the token is signed as if it were a SHA-1 digest

HEADER = struct.Struct("<6I")


class ProtocolError(Exception):
    pass


def pack(command: int, arg0: int, arg1: int, data: bytes = b"") -> bytes:
    """One message: header then payload, in one buffer (sent with one sendall)."""
    return HEADER.pack(command, arg0, arg1, len(data), sum(data) & 0xFFFFFFFF, command ^ 0xFFFFFFFF) + data


def read_exact(sock, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        chunk = sock.recv(min(n - got, 1 << 20))
        if not chunk:
            raise ConnectionError("peer closed the connection")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def read_message(sock, check_sum: bool) -> tuple[int, int, int, bytes]:
    command, arg0, arg1, length, checksum, magic = HEADER.unpack(read_exact(sock, HEADER.size))
    if magic != command ^ 0xFFFFFFFF:
        raise ProtocolError(f"bad magic for command {command:#x}")
    if length > MAX_PAYLOAD:
        raise ProtocolError(f"payload of {length} bytes is above the {MAX_PAYLOAD} maximum")
    data = read_exact(sock, length) if length else b""
    if check_sum and (sum(data) & 0xFFFFFFFF) != checksum:
        raise ProtocolError(f"bad checksum on {NAMES.get(command, command)}")
    return command, arg0, arg1, data


# --- Android's RSA public key: base64 of {u32 words, u32 n0inv, u8 n[256] LE, u8 rr[256] LE,
#     u32 e}, then " user@host" (AOSP libcrypto_utils android_pubkey.cpp).
_KEY = struct.Struct("<II256s256sI")


def decode_public_key(text: bytes) -> rsa.RSAPublicKey:
    blob = text.split(b"\0")[0].split(b" ")[0]
    try:
        words, _n0inv, modulus, _rr, exponent = _KEY.unpack(base64.b64decode(blob))
    except (ValueError, struct.error) as exc:
        raise ProtocolError(f"not an Android RSA public key: {exc}") from None
    if words != 64:
        raise ProtocolError(f"RSA public key of {words * 32} bits: adb keys are 2048")
    return rsa.RSAPublicNumbers(exponent, int.from_bytes(modulus, "little")).public_key()


def verify(key: rsa.RSAPublicKey, token: bytes, signature: bytes) -> bool:
    try:
        key.verify(signature, token, padding.PKCS1v15(), utils.Prehashed(hashes.SHA1()))
        return True
    except InvalidSignature:
        return False


# --- shell protocol v2 (shell_protocol.h): id byte, u32 LE length, data.
SHELL_STDIN, SHELL_STDOUT, SHELL_STDERR, SHELL_EXIT, SHELL_CLOSE_STDIN, SHELL_WINDOW = range(6)
SHELL_HEADER = struct.Struct("<BI")


def shell_packet(kind: int, data: bytes) -> bytes:
    return SHELL_HEADER.pack(kind, len(data)) + data


# --- sync service (SYNC.TXT): 4-byte id, u32 LE length or value.
SYNC_DATA_MAX = 64 * 1024
SYNC_REQUEST = struct.Struct("<4sI")
SYNC_STAT = struct.Struct("<4sIII")  # id, mode, size, mtime
SYNC_DENT = struct.Struct("<4sIIII")  # id, mode, size, mtime, name length
