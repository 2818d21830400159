"""Readers: one file in, one :class:`~sidecar.ingest.items.Document` out (DESIGN §5).

:func:`read_document` dispatches on the file extension:

========================  =========  ===========================================================
extension                 kind       library
========================  =========  ===========================================================
``.md`` ``.markdown``     markdown   charset-normalizer (encoding); front matter ``date:``
``.txt``                  text       charset-normalizer
``.eml`` ``.mbox``        email      stdlib :mod:`email` (``policy.default``), :mod:`mailbox`,
                                     html2text for HTML-only bodies
``.ics``                  calendar   icalendar
``.pdf``                  pdf        pypdf; pdfplumber when the text layer is one word
                                     per line (lines rebuilt from character positions)
``.html`` ``.htm``        html       html2text
========================  =========  ===========================================================

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

import codecs
import datetime as dt
import email
import email.headerregistry
import email.message
import email.policy
import email.utils
import errno
import io
import mailbox
import os
import re
import stat
import unicodedata
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import dateparser
import html2text
import icalendar
import pypdf
from charset_normalizer import from_bytes
from pypdf.errors import DependencyError

from sidecar import clock
from sidecar.ingest.dates import document_date
from sidecar.ingest.items import CalendarComponent, Document, DocumentKind, EmailMessageInfo, Span

__all__ = ["SUPPORTED_EXTENSIONS", "ReadError", "decode_text", "read_document"]


class ReadError(Exception):
    """A file could not be read. ``reason`` is short and human (it goes into the queue row).

    Examples of reasons: ``"unsupported file type '.docx'"``, ``"too large: 12000000 bytes
    (limit 10000000)"``, ``"binary content"``, ``"encrypted PDF"``, ``"permission denied"``,
    ``"file vanished while reading"``.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_KIND_BY_EXTENSION: dict[str, DocumentKind] = {
    ".md": "markdown",
    ".markdown": "markdown",
    ".txt": "text",
    ".eml": "email",
    ".mbox": "email",
    ".ics": "calendar",
    ".pdf": "pdf",
    ".html": "html",
    ".htm": "html",
}

#: Extensions :func:`read_document` accepts (lower case, with the dot).
SUPPORTED_EXTENSIONS: frozenset[str] = frozenset(_KIND_BY_EXTENSION)

#: Longest email body kept (characters); longer bodies are cut and a warning recorded.
_MAX_BODY_CHARS = 1_000_000


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
    kind = _KIND_BY_EXTENSION.get(suffix)
    if kind is None:
        raise ReadError(f"unsupported file type '{suffix or path.name}'")
    try:
        if data is None:
            data = _read_bytes(path, max_bytes)
        elif len(data) > max_bytes:
            raise ReadError(f"too large: {len(data)} bytes (limit {max_bytes})")
        reader = _READERS[suffix]
        return reader(path, data)
    except ReadError:
        raise
    except RecursionError:
        raise ReadError(f"{kind} structure nested too deeply") from None
    except MemoryError:
        raise ReadError("out of memory while reading") from None
    except Exception as exc:  # the contract: nothing but ReadError leaves this function
        raise ReadError(f"unreadable {kind} file ({type(exc).__name__})") from exc


# --------------------------------------------------------------------------------------------
# bytes and text


def _read_bytes(path: Path, max_bytes: int) -> bytes:
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
    return _normalise_newlines(text), encoding, warnings


def _control_ratio(text: str) -> float:
    sample = text[:200_000]
    controls = sum(1 for ch in sample if ord(ch) < 32 and ch not in _TEXT_CONTROLS)
    return controls / max(1, len(sample))


def _normalise_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _line_of(text: str, offset: int) -> int:
    """1-based line number of ``offset`` in ``text``."""
    return text.count("\n", 0, offset) + 1


def _span(text: str, start: int, end: int) -> Span:
    end = max(start, end)
    last = max(start, end - 1)
    return Span(start=start, end=end, line_start=_line_of(text, start), line_end=_line_of(text, last))


def _parse_loose_date(value: str) -> int | None:
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


# --------------------------------------------------------------------------------------------
# text and markdown

_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?)\n(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.DOTALL)
_FRONT_KEY = re.compile(r"^([A-Za-z_][\w-]*)[ \t]*:[ \t]*(.*?)[ \t]*$", re.MULTILINE)
_ATX_HEADING = re.compile(r"^[ ]{0,3}#{1,6}[ \t]+(.+?)[ \t#]*$", re.MULTILINE)


def _front_matter(text: str) -> dict[str, str]:
    """Top-level ``key: value`` pairs of a leading ``---`` block (YAML-ish, not full YAML)."""
    match = _FRONT_MATTER.match(text)
    if not match:
        return {}
    return {m.group(1).lower(): m.group(2) for m in _FRONT_KEY.finditer(match.group(1))}


def _read_plain(path: Path, data: bytes, kind: DocumentKind) -> Document:
    text, encoding, warnings = decode_text(data)
    title: str | None = None
    doc_date: int | None = None
    metadata: dict[str, Any] = {"encoding": encoding}
    if kind == "markdown":
        front = _front_matter(text)
        if front:
            metadata["front_matter"] = front
        if front.get("date"):
            doc_date = _parse_loose_date(front["date"])
            if doc_date is None:
                warnings.append(f"front matter date {front['date']!r} not understood")
        title = front.get("title", "").strip().strip("'\"") or None
        if title is None:
            heading = _ATX_HEADING.search(text)
            title = heading.group(1).strip() if heading else None
    if doc_date is None:
        doc_date = document_date(_FRONT_MATTER.sub("", text, count=1), path.name)
    return Document(
        path=path,
        kind=kind,
        text=text,
        title=title,
        doc_date_ms=doc_date,
        metadata=metadata,
        warnings=warnings,
    )


def _read_markdown(path: Path, data: bytes) -> Document:
    return _read_plain(path, data, "markdown")


def _read_text(path: Path, data: bytes) -> Document:
    return _read_plain(path, data, "text")


# --------------------------------------------------------------------------------------------
# html


class _TitleParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._in_title = False
        self.parts: list[str] = []
        self.done = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title" and not self.done:
            self._in_title = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "title" and self._in_title:
            self._in_title = False
            self.done = True

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.parts.append(data)


def _html_title(markup: str) -> str | None:
    parser = _TitleParser()
    try:
        parser.feed(markup[:200_000])
        parser.close()
    except Exception:  # HTMLParser is lenient; a title is a nicety, never a failure
        return None
    title = " ".join("".join(parser.parts).split())
    return title or None


def html_to_text(markup: str) -> str:
    """Readable text of an HTML fragment or page (html2text, no line wrapping, no images)."""
    converter = html2text.HTML2Text()
    converter.body_width = 0
    converter.ignore_images = True
    converter.unicode_snob = True
    return _normalise_newlines(converter.handle(markup))


def _read_html(path: Path, data: bytes) -> Document:
    markup, encoding, warnings = decode_text(data)
    text = html_to_text(markup) if markup.strip() else ""
    return Document(
        path=path,
        kind="html",
        text=text,
        title=_html_title(markup),
        doc_date_ms=document_date(text, path.name),
        metadata={"encoding": encoding},
        warnings=warnings,
    )


# --------------------------------------------------------------------------------------------
# email


def _header(msg: email.message.Message, name: str) -> str | None:
    """A header as text; ``None`` when absent or so malformed the parser gives up on it."""
    try:
        value = msg.get(name)
    except Exception:  # policy.default parses headers on access and can fail on junk
        return None
    if value is None:
        return None
    text = " ".join(str(value).split())
    return text or None


def _header_date_ms(msg: email.message.Message) -> int | None:
    """The Date header (RFC 5322 §3.6.1) in Unix ms, ``None`` when absent or invalid."""
    raw = _header(msg, "Date")
    if raw is None:
        return None
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    try:
        return clock.to_ms(when)
    except (OverflowError, ValueError, OSError):
        return None


def _part_text(part: email.message.Message) -> str:
    """Decoded text of a non-multipart part (transfer encoding and charset undone, lenient)."""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset()
    if charset:
        try:
            return _normalise_newlines(payload.decode(charset, errors="replace"))
        except LookupError:
            pass  # unknown charset label: guess below
    try:
        return decode_text(payload)[0]
    except ReadError:
        return payload.decode("utf-8", errors="replace")


def _message_body(msg: email.message.EmailMessage) -> tuple[str, bool]:
    """``(body text, html_only)``: the text/plain body if any, else the HTML body as text."""
    body_part = msg.get_body(preferencelist=("plain", "html"))
    if body_part is None:
        if msg.is_multipart() or msg.get_content_maintype() != "text":
            return "", False
        body_part = msg
    if body_part.get_content_subtype() == "html":
        return html_to_text(_part_text(body_part)), True
    return _part_text(body_part), False


def _render_messages(
    messages: list[email.message.EmailMessage], warnings: list[str]
) -> tuple[str, list[EmailMessageInfo]]:
    chunks: list[str] = []
    infos: list[tuple[int, int, int, dict[str, Any]]] = []
    offset = 0
    for msg in messages:
        fields = {name: _header(msg, name) for name in ("From", "To", "Date", "Subject", "Message-ID")}
        body, html_only = _message_body(msg)
        if len(body) > _MAX_BODY_CHARS:
            body = body[:_MAX_BODY_CHARS]
            warnings.append(f"email body cut to {_MAX_BODY_CHARS} characters")
        head = "".join(
            f"{name}: {value}\n" for name, value in fields.items() if value and name != "Message-ID"
        )
        head += "\n"
        chunk = head + body.rstrip("\n") + "\n"
        if chunks:
            chunks.append("\n")
            offset += 1
        start = offset
        chunks.append(chunk)
        offset += len(chunk)
        infos.append(
            (
                start,
                offset,
                start + len(head),
                {**fields, "html_only": html_only, "date_ms": _header_date_ms(msg)},
            )
        )
    text = "".join(chunks)
    out = [
        EmailMessageInfo(
            span=_span(text, start, end),
            body_start=body_start,
            sender=f["From"],
            to=f["To"],
            subject=f["Subject"],
            message_id=f["Message-ID"],
            date_ms=f["date_ms"],
            html_only=f["html_only"],
        )
        for start, end, body_start, f in infos
    ]
    return text, out


class _ParsedHeaders(email.headerregistry.HeaderRegistry):
    """``policy.default``'s header factory, remembering what it parsed: the policy parses a header
    again on every access (a message's Content-Type about seven times while its body is found),
    and parsed headers are immutable. Bounded: at most 4,096 short headers are kept."""

    def __init__(self) -> None:
        super().__init__()
        self._parsed: dict[tuple[str, str], Any] = {}

    def __call__(self, name: str, value: str) -> Any:
        if len(value) > 2000:
            return super().__call__(name, value)
        key = (name, value)
        header = self._parsed.get(key)
        if header is None:
            header = super().__call__(name, value)
            if len(self._parsed) >= 4096:
                self._parsed.clear()
            self._parsed[key] = header
        return header


_EMAIL_POLICY = email.policy.default.clone(header_factory=_ParsedHeaders())


def _parse_email(data: bytes) -> email.message.EmailMessage:
    msg = email.message_from_bytes(data, policy=_EMAIL_POLICY)
    assert isinstance(msg, email.message.EmailMessage)
    return msg


def _email_document(path: Path, messages: list[email.message.EmailMessage], warnings: list[str]) -> Document:
    text, infos = _render_messages(messages, warnings)
    first = infos[0] if infos else None
    metadata: dict[str, Any] = {"message_count": len(infos)}
    if first is not None:
        metadata.update(sender=first.sender, to=first.to, subject=first.subject, message_id=first.message_id)
    return Document(
        path=path,
        kind="email",
        text=text,
        title=first.subject if first else None,
        doc_date_ms=first.date_ms if first else None,
        metadata=metadata,
        messages=infos,
        warnings=warnings,
    )


def _read_eml(path: Path, data: bytes) -> Document:
    if not data.strip():
        return Document(path=path, kind="email", text="", metadata={"message_count": 0})
    decode_text(data)  # refuses binary junk before the (lenient) MIME parser sees it
    msg = _parse_email(data)
    warnings = [f"email defect: {type(d).__name__}" for d in msg.defects[:5]]
    return _email_document(path, [msg], warnings)


def _read_mbox(path: Path, data: bytes) -> Document:
    if not data.strip():
        return Document(path=path, kind="email", text="", metadata={"message_count": 0})
    decode_text(data)
    try:
        box = mailbox.mbox(os.fspath(path), create=False)  # mailbox splits on "From " lines itself
        try:
            messages = [_parse_email(box.get_bytes(key)) for key in box.iterkeys()]
        finally:
            box.close()
    except (mailbox.NoSuchMailboxError, FileNotFoundError):
        raise ReadError("file vanished while reading") from None
    if not messages:  # no "From " separator line: treat the whole file as one message
        messages = [_parse_email(data)]
    return _email_document(path, messages, [])


# --------------------------------------------------------------------------------------------
# iCalendar (RFC 5545)

_COMPONENT_KINDS = ("VEVENT", "VTODO", "VJOURNAL")
_VTIMEZONE = re.compile(r"^BEGIN:VTIMEZONE[ \t]*\r?$.*?^END:VTIMEZONE[ \t]*\r?\n?", re.MULTILINE | re.DOTALL)
_BEGIN_END = re.compile(r"^(BEGIN|END):(VEVENT|VTODO|VJOURNAL)[ \t]*$", re.MULTILINE | re.IGNORECASE)


def _component_spans(text: str) -> dict[str, list[tuple[int, int]]]:
    """``BEGIN:X``…``END:X`` offsets per component name, in file order (used for spans only)."""
    spans: dict[str, list[tuple[int, int]]] = {k: [] for k in _COMPONENT_KINDS}
    open_at: dict[str, int] = {}
    for m in _BEGIN_END.finditer(text):
        which, name = m.group(1).upper(), m.group(2).upper()
        if which == "BEGIN":
            open_at[name] = m.start()
        elif name in open_at:
            spans[name].append((open_at.pop(name), m.end()))
    return spans


def _ical_text(component: Any, name: str) -> str | None:
    value = component.get(name)
    if value is None:
        return None
    if isinstance(value, list):
        value = value[0] if value else None
        if value is None:
            return None
    text = str(value).strip()
    return text or None


def _ical_ms(component: Any, name: str, summary: str | None, warnings: list[str]) -> tuple[int | None, bool]:
    """``(Unix ms, is_date)`` of a DATE/DATE-TIME property; floating/unknown TZID → user zone."""
    prop = component.get(name)
    if prop is None:
        return None, False
    if isinstance(prop, list):
        prop = prop[0] if prop else None
    try:
        value = getattr(prop, "dt", None)
    except Exception as exc:  # icalendar raises on access for a property it could not parse
        warnings.append(f"{name} of {summary or 'a component'} not understood ({_short(exc)})")
        return None, False
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            tzid = getattr(prop, "params", {}).get("TZID")
            if tzid:
                zone = _iana_zone(str(tzid))
                if zone is not None:
                    value = value.replace(tzinfo=zone)
                else:
                    warnings.append(
                        f"unknown TZID {tzid!r} on {name} of {summary or 'a component'}: read as local time"
                    )
        return clock.to_ms(value), False
    if isinstance(value, dt.date):
        return clock.to_ms(value), True
    return None, False


def _iana_zone(tzid: str) -> dt.tzinfo | None:
    """The IANA zone named ``tzid`` (icalendar leaves e.g. a TZID on DTSTAMP unresolved)."""
    try:
        return ZoneInfo(tzid.strip())
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def _ical_duration(component: Any) -> dt.timedelta | None:
    prop = component.get("DURATION")
    try:
        value = getattr(prop, "dt", None)
    except Exception:
        return None
    return value if isinstance(value, dt.timedelta) else None


def _calendar_component(component: Any, span: Span, warnings: list[str]) -> CalendarComponent:
    kind = str(component.name).upper()
    summary = _ical_text(component, "SUMMARY")
    start, all_day = _ical_ms(component, "DTSTART", summary, warnings)
    end, _ = _ical_ms(component, "DTEND", summary, warnings)
    due, _ = _ical_ms(component, "DUE", summary, warnings)
    stamp, _ = _ical_ms(component, "DTSTAMP", summary, warnings)
    recurrence, _ = _ical_ms(component, "RECURRENCE-ID", summary, warnings)
    duration = _ical_duration(component)
    if duration is not None and start is not None:
        shifted = start + int(duration.total_seconds() * 1000)
        if kind == "VTODO" and due is None:
            due = shifted  # RFC 5545 §3.6.2: DTSTART + DURATION gives the due time
        elif kind == "VEVENT" and end is None:
            end = shifted
    priority: int | None = None
    raw_priority = component.get("PRIORITY")
    if raw_priority is not None:
        try:
            priority = int(raw_priority)
        except (TypeError, ValueError):
            warnings.append(f"PRIORITY {raw_priority!r} is not an integer")
    rrule = component.get("RRULE")
    rrule_text: str | None = None
    if rrule is not None:
        try:
            rrule_text = rrule.to_ical().decode("utf-8", errors="replace")
        except Exception:
            rrule_text = str(rrule)
    status = _ical_text(component, "STATUS")
    for prop_name, error in getattr(component, "errors", [])[:5]:
        warnings.append(f"{kind} property {prop_name} not understood: {error}")
    return CalendarComponent(
        kind=kind,  # type: ignore[arg-type]
        uid=_ical_text(component, "UID"),
        summary=summary,
        description=_ical_text(component, "DESCRIPTION"),
        location=_ical_text(component, "LOCATION"),
        start_ms=start,
        end_ms=end,
        due_ms=due,
        stamp_ms=stamp,
        all_day=all_day,
        status=status.upper() if status else None,
        priority=priority,
        rrule=rrule_text,
        recurrence_id_ms=recurrence,
        span=span,
    )


def _read_ics(path: Path, data: bytes) -> Document:
    text, encoding, warnings = decode_text(data)
    if not text.strip():
        return Document(
            path=path, kind="calendar", text=text, metadata={"encoding": encoding}, warnings=warnings
        )
    try:
        calendars = icalendar.Calendar.from_ical(text, multiple=True)
    except Exception as exc:
        # A broken VTIMEZONE (iCloud writes historical offsets icalendar refuses, e.g. +5328)
        # must not cost the events: drop the definitions and resolve TZIDs by IANA name.
        without_zones = _VTIMEZONE.sub("", text)
        if without_zones == text:
            raise ReadError(f"not a valid iCalendar file ({_short(exc)})") from None
        try:
            calendars = icalendar.Calendar.from_ical(without_zones, multiple=True)
        except Exception:
            raise ReadError(f"not a valid iCalendar file ({_short(exc)})") from None
        warnings.append(f"time zone definitions ignored ({_short(exc)}); TZIDs read as IANA names")
    located = _component_spans(text)
    used = {k: 0 for k in _COMPONENT_KINDS}
    components: list[CalendarComponent] = []
    title: str | None = None
    method: str | None = None
    for cal in calendars:
        title = title or _ical_text(cal, "X-WR-CALNAME")
        method = method or _ical_text(cal, "METHOD")
        for component in cal.walk():
            name = str(component.name).upper()
            if name not in _COMPONENT_KINDS:
                continue
            index = used[name]
            used[name] += 1
            where = located[name][index] if index < len(located[name]) else (0, len(text))
            try:
                components.append(_calendar_component(component, _span(text, *where), warnings))
            except Exception as exc:  # one odd component must not cost the rest of the calendar
                warnings.append(f"skipped a {name} ({_short(exc)})")
    stamps = [c.stamp_ms for c in components if c.stamp_ms is not None]
    return Document(
        path=path,
        kind="calendar",
        text=text,
        title=title,
        doc_date_ms=stamps[0] if stamps else None,
        metadata={"encoding": encoding, "component_count": len(components)}
        | ({"method": method.upper()} if method else {}),
        calendar_components=components,
        warnings=warnings,
    )


def _short(exc: BaseException) -> str:
    message = " ".join(str(exc).split())
    return (message[:120] + "…") if len(message) > 120 else (message or type(exc).__name__)


# --------------------------------------------------------------------------------------------
# PDF

_PAGE_BREAK = "\f"
#: Typographic ligatures (ﬀ ﬁ ﬂ ﬃ ﬄ ﬅ ﬆ) that PDF text extraction returns as single characters.
_LIGATURES = re.compile("[\ufb00-\ufb06]")
_PDF_JUNK = re.compile(r"[\x00-\x08\x0b\x0e-\x1f]")


def _read_pdf(path: Path, data: bytes) -> Document:
    if not data:
        raise ReadError("empty PDF (0 bytes)")
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            try:
                opened = reader.decrypt("")
            except DependencyError:
                raise ReadError("encrypted PDF") from None
            if not opened:
                raise ReadError("encrypted PDF")
        pages = list(reader.pages)
    except ReadError:
        raise
    except Exception as exc:
        raise ReadError(f"broken PDF ({_short(exc)})") from None
    warnings: list[str] = []
    texts: list[str] = []
    for number, page in enumerate(pages, start=1):
        try:
            page_text = page.extract_text() or ""
        except Exception as exc:
            warnings.append(f"page {number} text not extractable ({_short(exc)})")
            page_text = ""
        page_text = _LIGATURES.sub(lambda m: unicodedata.normalize("NFKC", m.group()), page_text)
        texts.append(_PDF_JUNK.sub(" ", _normalise_newlines(page_text)).strip("\n"))
    if pages and all(w.startswith("page ") for w in warnings) and len(warnings) == len(pages):
        raise ReadError("broken PDF (no page could be read)")
    if _fragmented("\n".join(texts)):
        texts = _layout_texts(data, texts, warnings)
    text = ""
    page_offsets: list[int] = []
    for page_text in texts:
        if page_offsets:
            text += "\n" + _PAGE_BREAK + "\n"
        page_offsets.append(len(text))
        text += page_text
    if not text.strip():
        warnings.append("PDF has no text layer (scanned?)")
    metadata: dict[str, Any] = {"pages": len(pages), "page_offsets": page_offsets, "encrypted": bool(reader.is_encrypted)}
    tables = _pdf_tables(data, texts, warnings)
    if tables:
        metadata["tables"] = tables
    title, info_date = _pdf_info(reader)
    doc_date = document_date(text, path.name)
    if doc_date is None:
        doc_date = info_date
    return Document(
        path=path,
        kind="pdf",
        text=text,
        title=title,
        doc_date_ms=doc_date,
        metadata=metadata,
        warnings=warnings,
    )


#: A line that reads like the header of an action table: an action/task word and an owner or
#: deadline word. Only pages with one are given to the (slower) table finder.
_OWNER_WORD = r"\b(?:owners?|responsible|assigned|assignees?|who)\b"
_DUE_WORD = r"\b(?:deadline|due|completion|by[ \t]+when|target[ \t]+date)\b"
_TABLE_HEADER_HINT = re.compile(
    rf"^(?:(?=.*\b(?:actions?|tasks?|to[- ]?dos?)\b)(?=.*(?:{_OWNER_WORD}|{_DUE_WORD}))"
    rf"|(?=.*{_OWNER_WORD})(?=.*{_DUE_WORD})).{{0,150}}$",
    re.IGNORECASE | re.MULTILINE,
)
#: Most tables read from one PDF (a bound on the work a hostile file can cause).
_MAX_PDF_TABLES = 50


def _pdf_tables(data: bytes, texts: list[str], warnings: list[str]) -> list[dict[str, Any]]:
    """Ruled tables on the pages whose text has an action-table header line, found by pdfplumber
    from the page's lines and cells (pypdf's text runs a table's cells together): a list of
    ``{"page": 0-based page, "rows": [[cell text, …], …]}``, cells with whitespace collapsed
    (a word hyphenated over two lines joined). Empty when no page qualifies or pdfplumber fails."""
    wanted = [k for k, t in enumerate(texts) if _TABLE_HEADER_HINT.search(t)]
    if not wanted:
        return []
    import pdfplumber  # here: only pages that look like they hold an action table need it

    out: list[dict[str, Any]] = []
    try:
        with pdfplumber.open(io.BytesIO(data)) as pdf:
            for k in wanted:
                if k >= len(pdf.pages):
                    break
                for table in pdf.pages[k].extract_tables():
                    rows = [[_cell_text(c) for c in row] for row in table]
                    rows = [r for r in rows if any(r)]
                    if len(rows) >= 2:
                        out.append({"page": k, "rows": rows})
                    if len(out) >= _MAX_PDF_TABLES:
                        return out
    except Exception as exc:
        warnings.append(f"tables not read ({_short(exc)})")
        return out
    return out


def _cell_text(cell: str | None) -> str:
    text = re.sub(r"(?<=[a-z])-\n(?=[a-z])", "", cell or "")
    return " ".join(_PDF_JUNK.sub(" ", text).split())


def _fragmented(text: str) -> bool:
    """True when a text layer came out one word per line (some generators place every word on
    its own; pypdf then loses the lines): most of at least 20 non-blank lines are one word."""
    lines = [ln for ln in text.split("\n") if ln.strip()]
    if len(lines) < 20:
        return False
    single = sum(1 for ln in lines if len(ln.split()) == 1)
    return single / len(lines) >= 0.6


def _layout_texts(data: bytes, fallback: list[str], warnings: list[str]) -> list[str]:
    """Page texts rebuilt from character positions by pdfplumber (words joined into lines by
    their baseline); the pypdf texts are kept if pdfplumber fails on the file."""
    import pdfplumber  # imported here: only fragmented PDFs need it, and it is slower than pypdf

    try:
        with pdfplumber.open(io.BytesIO(data)) as pdf:
            texts = [
                _PDF_JUNK.sub(" ", _normalise_newlines(page.extract_text() or "")).strip("\n")
                for page in pdf.pages
            ]
    except Exception as exc:
        warnings.append(f"layout text not recovered ({_short(exc)})")
        return fallback
    if len(texts) != len(fallback):
        return fallback
    warnings.append("text layer was one word per line: lines rebuilt from the page layout")
    return texts


def _pdf_info(reader: pypdf.PdfReader) -> tuple[str | None, int | None]:
    """``(title, creation date ms)`` from the PDF info dictionary, each ``None`` when unusable."""
    try:
        info = reader.metadata
    except Exception:
        return None, None
    if info is None:
        return None, None
    title: str | None = None
    doc_date: int | None = None
    try:
        raw_title = info.title
        title = (" ".join(str(raw_title).split()) or None) if raw_title else None
    except Exception:
        title = None
    try:
        created = info.creation_date
        doc_date = clock.to_ms(created) if created is not None else None
    except Exception:
        doc_date = None
    return title, doc_date


_READERS: dict[str, Callable[[Path, bytes], Document]] = {
    ".md": _read_markdown,
    ".markdown": _read_markdown,
    ".txt": _read_text,
    ".eml": _read_eml,
    ".mbox": _read_mbox,
    ".ics": _read_ics,
    ".pdf": _read_pdf,
    ".html": _read_html,
    ".htm": _read_html,
}
