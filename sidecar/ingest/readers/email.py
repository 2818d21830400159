"""Email: one message (``.eml``) or a mailbox (``.mbox``), parsed by the stdlib :mod:`email`
package (``policy.default``) and :mod:`mailbox`; an HTML-only body is turned into text by
html2text. Each message is rendered as its headers (From, To, Date, Subject), a blank line and
its body, and described by an :class:`~sidecar.ingest.items.EmailMessageInfo` (span, sender,
``Date`` in ms). The document date is the first message's ``Date`` (RFC 5322 §3.6.1)."""

from __future__ import annotations

import email
import email.headerregistry
import email.message
import email.policy
import email.utils
import mailbox
import os
from pathlib import Path
from typing import Any

from sidecar import clock
from sidecar.ingest.items import Document, EmailMessageInfo
from sidecar.ingest.readers.base import ReadError, decode_text, make_span, normalise_newlines
from sidecar.ingest.readers.html import html_to_text

#: Longest email body kept (characters); longer bodies are cut and a warning recorded.
_MAX_BODY_CHARS = 1_000_000


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
            return normalise_newlines(payload.decode(charset, errors="replace"))
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
            span=make_span(text, start, end),
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


def read_eml(path: Path, data: bytes) -> Document:
    if not data.strip():
        return Document(path=path, kind="email", text="", metadata={"message_count": 0})
    decode_text(data)  # refuses binary junk before the (lenient) MIME parser sees it
    msg = _parse_email(data)
    warnings = [f"email defect: {type(d).__name__}" for d in msg.defects[:5]]
    return _email_document(path, [msg], warnings)


def read_mbox(path: Path, data: bytes) -> Document:
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

