"""Readers: one file in, one :class:`~sidecar.ingest.items.Document` out (DESIGN §5).

:func:`read_document` dispatches on the file extension to one module per document kind:

========================  =========  ==========  ===============================================
extension                 kind       module      library
========================  =========  ==========  ===============================================
``.md`` ``.markdown``     markdown   plain       charset-normalizer (encoding); front matter
``.txt``                  text       plain       charset-normalizer
``.eml`` ``.mbox``        email      email       stdlib :mod:`email` (``policy.default``),
                                                 :mod:`mailbox`, html2text for HTML-only bodies
``.ics``                  calendar   calendar    icalendar
``.pdf``                  pdf        pdf         pypdf; pdfplumber for one-word-per-line text
                                                 layers and for ruled action tables
``.html`` ``.htm``        html       html        html2text
========================  =========  ==========  ===============================================

The shared pieces (:class:`ReadError`, the size-capped read, :func:`decode_text`, spans) are in
:mod:`sidecar.ingest.readers.base`.

Every failure is a :class:`ReadError` with a short human reason; no other exception escapes
:func:`read_document`, whatever the bytes (this is fuzzed in the tests).

Choices:

* Text is always returned with ``\\n`` line ends (``\\r\\n``/``\\r`` are normalised); spans
  index into that text.
* Encoding: UTF-8 when the bytes are UTF-8 (a few invalid bytes are replaced by U+FFFD and a
  warning is recorded — never fatal), a BOM is honoured (UTF-8/16/32), otherwise
  charset-normalizer's best guess. Bytes that decode to mostly control characters or NULs
  are ``ReadError("binary content")``.
* The document's own date (``Document.doc_date_ms``, the reference for "tomorrow"): front
  matter ``date:`` (Markdown), the message ``Date`` (email, per message), the first ``DTSTAMP``
  (calendar); else a date with a year in the title or first lines, else an ISO date in the file
  name (:func:`sidecar.ingest.dates.document_date`); for a PDF, then its info CreationDate.
  ``None`` lets the caller fall back to the file's mtime.
* Empty files: an empty text/markdown/html/email/calendar file is a valid, empty document
  (nothing to extract). A 0-byte PDF is an error: a PDF without even a header is broken.
* ``.mbox``: one :class:`Document` for the whole mailbox; each message is rendered in turn
  into ``text`` and described by an entry of ``Document.messages`` (its span, sender, date,
  subject), so the extractor treats messages separately while the watcher keeps one queue
  entry per file.
* Calendars: ``text`` is the decoded iCalendar source, each component's span covers its
  ``BEGIN``…``END`` lines. A TZID that names no known zone (and has no VTIMEZONE) does not
  fail: the time is read as floating (user's time zone) and a warning is recorded.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sidecar.ingest.items import Document, DocumentKind
from sidecar.ingest.readers.base import ReadError, decode_text, read_bytes
from sidecar.ingest.readers.calendar import read_ics
from sidecar.ingest.readers.email import read_eml, read_mbox
from sidecar.ingest.readers.html import html_to_text, read_html
from sidecar.ingest.readers.pdf import read_pdf
from sidecar.ingest.readers.plain import read_markdown, read_text

__all__ = ["SUPPORTED_EXTENSIONS", "Document", "ReadError", "decode_text", "html_to_text", "read_document"]


Reader = Callable[[Path, bytes], Document]

#: The one table of what is read: extension (lower case, with the dot) → (kind, reader).
_BY_EXTENSION: dict[str, tuple[DocumentKind, Reader]] = {
    ".md": ("markdown", read_markdown),
    ".markdown": ("markdown", read_markdown),
    ".txt": ("text", read_text),
    ".eml": ("email", read_eml),
    ".mbox": ("email", read_mbox),
    ".ics": ("calendar", read_ics),
    ".pdf": ("pdf", read_pdf),
    ".html": ("html", read_html),
    ".htm": ("html", read_html),
}

#: Extensions :func:`read_document` accepts (lower case, with the dot).
SUPPORTED_EXTENSIONS: frozenset[str] = frozenset(_BY_EXTENSION)


def read_document(path: Path, *, max_bytes: int, data: bytes | None = None) -> Document:
    """Read ``path`` into a :class:`Document`.

    Args:
        path: the file; its extension (case-insensitive) picks the reader.
        data: the file's bytes when the caller already read them (the ingest pipeline reads
            through :mod:`sidecar.ingest.opener`); then ``path`` only names the document.
        max_bytes: size cap in bytes. A larger file is refused from its ``stat`` size without
            being read; a file that grows past the cap while being read is refused too (at
            most ``max_bytes + 1`` bytes are ever held).

    Returns:
        The document; ``doc_date_ms`` is ``None`` when the file states no date of its own.

    Raises:
        ReadError: for every failure — unsupported extension, too large, not a regular file,
            permission denied, file vanished, binary content, broken/encrypted PDF, invalid
            iCalendar, MIME nested too deeply, …
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in _BY_EXTENSION:
        raise ReadError(f"unsupported file type '{suffix or path.name}'")
    kind, reader = _BY_EXTENSION[suffix]
    try:
        if data is None:
            data = read_bytes(path, max_bytes)
        elif len(data) > max_bytes:
            raise ReadError(f"too large: {len(data)} bytes (limit {max_bytes})")
        return reader(path, data)
    except ReadError:
        raise
    except RecursionError:
        raise ReadError(f"{kind} structure nested too deeply") from None
    except MemoryError:
        raise ReadError("out of memory while reading") from None
    except Exception as exc:  # the contract: nothing but ReadError leaves this function
        raise ReadError(f"unreadable {kind} file ({type(exc).__name__})") from exc

