"""Hypothesis: whatever the bytes, ``read_document`` returns a Document or raises ReadError —
never anything else — and ``rules.extract`` accepts whatever it returned."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sidecar.ingest import rules
from sidecar.ingest.readers import SUPPORTED_EXTENSIONS, ReadError, read_document

#: Plausible openings, so the fuzzer also reaches past each parser's first sanity check.
_PREFIXES = [
    b"",
    b"%PDF-1.4\n",
    b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nDTSTART;TZID=X:",
    b"From: a@b.c\nSubject: s\nContent-Type: multipart/mixed; boundary=b\n\n--b\n",
    b"From a@b.c Mon Jan  1 00:00:00 2024\nFrom: a@b.c\n\n",
    b"<html><body><ul><li>TODO: ",
    b"---\ndate: ",
    b"\xff\xfe",
    b"- [ ] ",
]


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder for the whole module (hypothesis reruns a test body many times per fixture)."""
    return tmp_path_factory.mktemp("ingest-fuzz")


def _check(folder: Path, extension: str, data: bytes) -> None:
    path = folder / f"fuzz{extension}"
    path.write_bytes(data)
    try:
        doc = read_document(path, max_bytes=64_000)
    except ReadError as err:
        assert isinstance(err.reason, str) and err.reason
        return
    items = rules.extract(doc, now_ms=0)
    for item in items:
        assert 0 <= item.span.start <= item.span.end <= len(doc.text)


@pytest.mark.parametrize("extension", sorted(SUPPORTED_EXTENSIONS))
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prefix=st.sampled_from(_PREFIXES), body=st.binary(max_size=3000))
def test_random_bytes_only_raise_read_error(
    fuzz_dir: Path, extension: str, prefix: bytes, body: bytes
) -> None:
    _check(fuzz_dir, extension, prefix + body)


@pytest.mark.parametrize("extension", [".md", ".txt", ".eml", ".ics", ".html"])
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(max_size=2000))
def test_random_text_only_raises_read_error(fuzz_dir: Path, extension: str, text: str) -> None:
    _check(fuzz_dir, extension, text.encode("utf-8", errors="surrogatepass"))


def _seeds() -> list[tuple[str, bytes]]:
    from tests.ingest.conftest import encrypted_pdf, pdf_with_text

    inbox = Path(__file__).resolve().parents[2] / "examples" / "inbox"
    seeds = [(p.suffix, p.read_bytes()) for p in sorted(inbox.iterdir()) if p.is_file()]
    seeds.append((".pdf", pdf_with_text("Minutes", "TODO: send the report", "Next meeting: 2026-05-04")))
    seeds.append((".pdf", encrypted_pdf("")))
    return seeds


_SEEDS = _seeds()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.sampled_from(_SEEDS),
    cut=st.integers(min_value=0, max_value=4000),
    flips=st.lists(st.tuples(st.integers(min_value=0, max_value=4000), st.integers(0, 255)), max_size=8),
)
def test_mutated_real_files_only_raise_read_error(
    fuzz_dir: Path, seed: tuple[str, bytes], cut: int, flips: list[tuple[int, int]]
) -> None:
    extension, data = seed
    buf = bytearray(data[: max(1, len(data) - cut)] if cut % 3 == 0 else data)
    for where, value in flips:
        if buf:
            buf[where % len(buf)] = value
    _check(fuzz_dir, extension, bytes(buf))
