"""Sync key, recovery words, sealed batches and chunked backups: what a user or an attacker can do."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from sidecar.sync import envelope, stream
from sidecar.sync.keys import InvalidRecoveryKey, Keychain, SyncKey, key_id_of

EVENTS = [{"event_id": f"e{i}", "entity": "notes", "fields": {"title": f"Secret plan {i}"}} for i in range(5)]


def test_recovery_words_round_trip_and_give_the_same_key_id() -> None:
    key = SyncKey.generate()
    words = key.recovery_words
    assert len(words.split()) == 24
    again = SyncKey.from_recovery("  " + words.upper().replace(" ", "   ") + "\n")
    assert again.secret == key.secret and again.key_id == key.key_id == key_id_of(key.secret)


@pytest.mark.parametrize("mangle, kind", [
    (lambda w: w[:-1], "recovery_key_length"),
    (lambda w: [*w[:-1], "notaword"], "recovery_key_word"),
    (lambda w: [w[1], w[0], *w[2:]] if w[0] != w[1] else [*w[:-1], "zoo"], "recovery_key_checksum"),
])
def test_a_mistyped_recovery_key_is_a_clear_error(mangle, kind) -> None:  # type: ignore[no-untyped-def]
    words = SyncKey.generate().recovery_words.split()
    with pytest.raises(InvalidRecoveryKey) as exc:
        SyncKey.from_recovery(" ".join(mangle(words)))
    assert exc.value.code == "invalid_recovery_key" and exc.value.detail[0]["type"] in {kind, "recovery_key_checksum"}


def test_keychain_rotation_keeps_old_keys_and_survives_its_text_form() -> None:
    first = SyncKey.generate()
    chain = Keychain.of(first)
    second = chain.rotate()
    parsed = Keychain.parse(chain.dump())
    assert parsed.current == second.key_id and set(parsed.keys) == {first.key_id, second.key_id}
    assert Keychain.parse(first.recovery_words).current == first.key_id
    with pytest.raises(InvalidRecoveryKey):
        Keychain.parse('{"v": 1, "current": "x", "keys": []}')


def _sealed(key: SyncKey, seq: int = 1) -> bytes:
    return envelope.seal(key, device="dev-a", seq=seq, events=EVENTS, salt=os.urandom(32))


def test_a_sealed_batch_opens_with_its_key_and_hides_the_text() -> None:
    key = SyncKey.generate()
    blob = _sealed(key)
    assert b"Secret plan" not in blob
    header, events = envelope.open_batch({key.key_id: key}, blob)
    assert events == EVENTS and (header.device, header.seq, header.first, header.last) == ("dev-a", 1, "e0", "e4")


def test_old_key_still_opens_after_rotation() -> None:
    chain = Keychain.of(SyncKey.generate())
    blob = _sealed(chain.current_key)
    chain.rotate()
    assert envelope.open_batch(chain.keys, blob)[1] == EVENTS


def _swap_header(blob: bytes, **changes: object) -> bytes:
    header, _, ciphertext = envelope.read_header(blob)
    head = header.model_copy(update=changes).model_dump_json().encode()
    return envelope.MAGIC + struct.pack(">H", len(head)) + head + ciphertext


@pytest.mark.parametrize("tamper, reason", [
    (lambda b, k: b[:-20] + bytes([b[-20] ^ 1]) + b[-19:], "auth_failed"),
    (lambda b, k: _swap_header(b, seq=2), "auth_failed"),
    (lambda b, k: _swap_header(b, device="dev-b"), "auth_failed"),
    (lambda b, k: _swap_header(b, first="e1"), "auth_failed"),
    (lambda b, k: _sealed(SyncKey.generate()), "unknown_key"),
    (lambda b, k: _swap_header(_sealed(SyncKey.generate()), kid=k.key_id), "auth_failed"),
    (lambda b, k: b"garbage", "bad_format"),
    (lambda b, k: b[:40], "bad_format"),
])
def test_every_tampered_batch_is_refused_with_its_reason(tamper, reason) -> None:  # type: ignore[no-untyped-def]
    key = SyncKey.generate()
    with pytest.raises(envelope.EnvelopeError) as exc:
        envelope.open_batch({key.key_id: key}, tamper(_sealed(key), key))
    assert exc.value.reason == reason


def test_padding_hides_small_size_differences() -> None:
    assert envelope.padme(1000) == envelope.padme(1000)
    assert envelope.padme(1000) >= 1000 and envelope.padme(1000) <= 1120
    sizes = {envelope.padme(n) for n in range(60_000, 61_000)}
    assert len(sizes) < 10


def _backup_pair(tmp_path: Path, size: int) -> tuple[SyncKey, Path, Path]:
    key = SyncKey.generate()
    src = tmp_path / "plain.bin"
    src.write_bytes(os.urandom(size))
    enc = tmp_path / "enc.bin"
    stream.encrypt_file(key, src, enc, chunk=1024)
    return key, src, enc


@pytest.mark.parametrize("size", [0, 1, 1024, 5000])
def test_backup_stream_round_trip(tmp_path: Path, size: int) -> None:
    key, src, enc = _backup_pair(tmp_path, size)
    out = tmp_path / "out.bin"
    assert stream.decrypt_file({key.key_id: key}, enc, out) == max(1, -(-size // 1024))
    assert out.read_bytes() == src.read_bytes()


def test_truncated_reordered_or_altered_backups_are_refused(tmp_path: Path) -> None:
    key, _, enc = _backup_pair(tmp_path, 4000)
    data = enc.read_bytes()
    with enc.open("rb") as f:
        _, ad = stream.read_stream_header(f)
    body = data[len(ad):]
    seg = 1024 + 16
    segments = [body[i:i + seg] for i in range(0, len(body), seg)]
    cases = {
        "truncated": ad + b"".join(segments[:-1]),
        "auth_failed": ad + segments[1] + segments[0] + b"".join(segments[2:]),
        "altered": ad + body[:100] + bytes([body[100] ^ 0x80]) + body[101:],
    }
    for expected, blob in cases.items():
        bad = tmp_path / f"{expected}.bin"
        bad.write_bytes(blob)
        with pytest.raises(stream.StreamError) as exc:
            stream.decrypt_file({key.key_id: key}, bad, tmp_path / "o")
        assert exc.value.reason == ("auth_failed" if expected == "altered" else expected)
