"""Chunked authenticated encryption of backups (the STREAM construction, as in age).

Layout::

    b"SCK1" | u16 header length | header JSON {v, kid, salt, chunk} | segment…

Each segment is one plaintext chunk of ``chunk`` bytes (the last may be shorter, or empty)
sealed with AES-256-GCM under the file key HKDF-SHA256(sync key, salt, "sidecar-backup v1"),
nonce = 11-byte big-endian chunk counter | last-chunk flag (1 on the final chunk only), and
the header as associated data. So a reordered chunk fails (counter), a truncated file fails
(the last chunk present was sealed with flag 0), appended data fails (flag 1 before the end),
and a changed header fails everywhere.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sidecar.sync.envelope import subkey
from sidecar.sync.keys import SyncKey

MAGIC = b"SCK1"
CHUNK = 64 * 1024
_TAG = 16
_INFO = b"sidecar-backup v1"


class StreamError(Exception):
    """A backup that cannot be decrypted; ``reason`` is a stable code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _nonce(counter: int, last: bool) -> bytes:
    return counter.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


def encrypt_file(key: SyncKey, src: Path, dst: Path, *, chunk: int = CHUNK) -> int:
    """Encrypt ``src`` into ``dst``; returns the number of chunks."""
    salt = os.urandom(32)
    head = json.dumps({"v": 1, "kid": key.key_id, "salt": salt.hex(), "chunk": chunk}, sort_keys=True).encode()
    ad = MAGIC + struct.pack(">H", len(head)) + head
    aead = AESGCM(subkey(key, salt, _INFO))
    count = 0
    with src.open("rb") as fin, dst.open("wb") as fout:
        fout.write(ad)
        current = fin.read(chunk)
        while True:
            following = fin.read(chunk) if len(current) == chunk else b""
            last = not following
            fout.write(aead.encrypt(_nonce(count, last), current, ad))
            count += 1
            if last:
                break
            current = following
    return count


def read_stream_header(f: BinaryIO) -> tuple[dict[str, object], bytes]:
    """The header dict and the associated-data bytes. Raises StreamError."""
    start = f.read(6)
    if len(start) < 6 or start[:4] != MAGIC:
        raise StreamError("bad_format", "not a sidecar backup (magic bytes)")
    (n,) = struct.unpack(">H", start[4:])
    head = f.read(n)
    try:
        header = json.loads(head)
        int(header["chunk"]), bytes.fromhex(header["salt"]), str(header["kid"])
    except (ValueError, KeyError, TypeError):
        raise StreamError("bad_format", "unreadable backup header") from None
    return header, start + head


def decrypt_file(keys: Mapping[str, SyncKey], src: Path, dst: Path) -> int:
    """Decrypt and verify ``src`` into ``dst``; returns the number of chunks.

    Raises:
        StreamError: ``bad_format``, ``unknown_key``, ``auth_failed`` (altered or reordered
            chunk), ``truncated`` (the final chunk is missing).
    """
    with src.open("rb") as fin, dst.open("wb") as fout:
        header, ad = read_stream_header(fin)
        key = keys.get(str(header["kid"]))
        if key is None:
            raise StreamError("unknown_key", f"the backup was sealed with key {header['kid']}, not known here")
        aead = AESGCM(subkey(key, bytes.fromhex(str(header["salt"])), _INFO))
        size = int(str(header["chunk"])) + _TAG
        count = 0
        current = fin.read(size)
        if not current:
            raise StreamError("truncated", "the backup is truncated (no chunk after its header)")
        while True:
            following = fin.read(size) if len(current) == size else b""
            last = not following
            try:
                fout.write(aead.decrypt(_nonce(count, last), current, ad))
            except InvalidTag:
                if last:
                    try:
                        aead.decrypt(_nonce(count, False), current, ad)
                    except InvalidTag:
                        pass
                    else:
                        raise StreamError("truncated", "the backup is truncated (its last chunk is missing)") from None
                raise StreamError("auth_failed", f"backup chunk {count} failed authentication "
                                                 "(altered, reordered, or another key)") from None
            count += 1
            if last:
                return count
            current = following
