"""Pieces every reader shares: the one error type, the size-capped byte read, text decoding,
line ends, spans and short reasons (see :mod:`sidecar.ingest.readers` for the choices)."""

from __future__ import annotations

import codecs
import errno
import stat
from pathlib import Path

import dateparser
from charset_normalizer import from_bytes

from sidecar import clock
from sidecar.ingest.items import Span

__all__ = [
    "ReadError", "decode_text", "make_span", "normalise_newlines", "parse_loose_date", "read_bytes",
    "short_reason",
]


class ReadError(Exception):
    """A file could not be read. ``reason`` is short and human (it goes into the queue row).

    Examples of reasons: ``"unsupported file type '.docx'"``, ``"too large: 12000000 bytes
    (limit 10000000)"``, ``"binary content"``, ``"encrypted PDF"``, ``"permission denied"``,
    ``"file vanished while reading"``.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason



def read_bytes(path: Path, max_bytes: int) -> bytes:
    """The file's bytes, refusing anything over ``max_bytes`` without reading it whole."""
    try:
        st = path.stat()
        if not _is_regular(st.st_mode):
            raise ReadError("not a regular file")
        if st.st_size > max_bytes:
            raise ReadError(f"too large: {st.st_size} bytes (limit {max_bytes})")
        with path.open("rb") as fh:
            data = fh.read(max_bytes + 1)
    except ReadError:
        raise
    except FileNotFoundError:
        raise ReadError("file vanished before it could be read") from None
    except PermissionError:
        raise ReadError("permission denied") from None
    except IsADirectoryError:
        raise ReadError("not a regular file") from None
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ESTALE):
            raise ReadError("file vanished while reading") from None
        raise ReadError(f"cannot read file: {exc.strerror or type(exc).__name__}") from None
    if len(data) > max_bytes:
        raise ReadError(f"too large: grew past {max_bytes} bytes while being read")
    return data


def _is_regular(mode: int) -> bool:
    return stat.S_ISREG(mode)


_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)

#: Control characters that ordinary text contains.
_TEXT_CONTROLS = frozenset("\t\n\r\f\v\x1b")


def decode_text(data: bytes) -> tuple[str, str, list[str]]:
    """Decode file bytes to text with ``\\n`` line ends.

    Returns:
        ``(text, encoding, warnings)``; ``warnings`` mentions replaced invalid bytes.

    Raises:
        ReadError: ``"binary content"`` when the bytes are not text in any encoding
            (NUL bytes outside UTF-16/32, or more than 5% control/replacement characters).
    """
    if not data:
        return "", "utf-8", []
    warnings: list[str] = []
    text: str | None = None
    encoding = "utf-8"
    for bom, codec in _BOMS:
        if data.startswith(bom):
            encoding = codec
            text = data.decode(codec, errors="replace")
            break
    if text is None and b"\x00" not in data:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            lenient = data.decode("utf-8", errors="replace")
            bad = lenient.count("\ufffd")
            real_non_ascii = sum(1 for ch in lenient if ord(ch) > 127 and ch != "\ufffd")
            # Valid multi-byte sequences next to a few invalid bytes: a damaged UTF-8 file.
            if real_non_ascii > 0 or bad <= max(1, len(lenient) // 100):
                text = lenient
    if text is None:
        best = from_bytes(data).best()
        if best is None:
            raise ReadError("binary content")
        encoding = str(best.encoding)
        if b"\x00" in data and not encoding.startswith(("utf_16", "utf_32")):
            raise ReadError("binary content")
        text = str(best)
    replaced = text.count("\ufffd")
    if text and (replaced > 0.05 * len(text) or _control_ratio(text) > 0.05 or "\x00" in text):
        raise ReadError("binary content")
    if replaced:
        warnings.append(f"{replaced} invalid byte sequence(s) replaced while decoding as {encoding}")
    text = text.removeprefix("\ufeff")
    return normalise_newlines(text), encoding, warnings


def _control_ratio(text: str) -> float:
    sample = text[:200_000]
    controls = sum(1 for ch in sample if ord(ch) < 32 and ch not in _TEXT_CONTROLS)
    return controls / max(1, len(sample))


def normalise_newlines(text: str) -> str:
    """``text`` with ``\\r\\n`` and ``\\r`` line ends turned into ``\\n``."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _line_of(text: str, offset: int) -> int:
    """1-based line number of ``offset`` in ``text``."""
    return text.count("\n", 0, offset) + 1


def make_span(text: str, start: int, end: int) -> Span:
    """The :class:`Span` of ``text[start:end]`` with its 1-based first and last line."""
    end = max(start, end)
    last = max(start, end - 1)
    return Span(start=start, end=end, line_start=_line_of(text, start), line_end=_line_of(text, last))


def parse_loose_date(value: str) -> int | None:
    """Unix ms of a date written in a header/front matter, or ``None`` (ISO first, then dateparser)."""
    value = value.strip().strip("'\"")
    if not value:
        return None
    try:
        return clock.parse_iso_to_ms(value)
    except ValueError:
        pass
    parsed = dateparser.parse(value, languages=["en"], settings={"STRICT_PARSING": False})
    return clock.to_ms(parsed) if parsed is not None else None



def short_reason(exc: BaseException) -> str:
    """``exc``'s message on one line, at most 120 characters (for a ReadError reason or a warning)."""
    message = " ".join(str(exc).split())
    return (message[:120] + "…") if len(message) > 120 else (message or type(exc).__name__)

