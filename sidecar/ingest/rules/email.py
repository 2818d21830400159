"""Email (``.eml``, ``.mbox``): tasks from each message's own text, else the message as a note.

Only the newest part of each message is scanned for tasks: quoted history in any of the
languages ``mail-parser-reply`` knows and the signature are cut off first (:func:`newest_part_end`).

Signal ``email-note``: a message whose body has none of the task signals becomes a note (subject,
without ``Re:``/``Fwd:``/list tags, as title; body as description). A message *with* task
signals gives tasks and no note. Quoted lines (``>``), signatures (``-- ``) and quoted history
(``On … wrote:``, ``-----Original Message-----``, Outlook ``From:``/``Sent:``) are not scanned.
Relative dates are read against the message's ``Date``.
"""

from __future__ import annotations

import re
from typing import Any

from sidecar.ingest.items import EmailMessageInfo
from sidecar.ingest.rules.text import TextRules
from sidecar.ingest.rules.titles import tidy

_SUBJECT_PREFIX = re.compile(r"^(?:[ \t]*(?:\[[^\]]{1,40}\]|(?:re|fwd?|aw|wg|sv|antw)[ \t]*:))+[ \t]*", re.I)

#: A sign that a body may carry quoted history or a signature (the reply parser is skipped otherwise).
_MAYBE_QUOTED = re.compile(
    r"^(?:>|-{2,}|_{5,}|\*?(?:from|von|de|fra|från|van|od|da|envoyé|sent)\*?[ \t]*:)"
    r"|\b(?:wrote|schrieb|écrit|skrev|kirjoitti|escreveu|napisał|scritto|geschreven)\b",
    re.M | re.I,
)
_REPLY_LANGUAGES = ["en", "de", "fr", "es", "it", "nl", "da", "sv", "pl", "cs", "ja", "ko", "zh"]
_parser: Any = None


def newest_part_end(body: str) -> int:
    """Offset in ``body`` where the newest part of the message ends: before quoted history
    ("On … wrote:", "Am … schrieb", "-----Original Message-----", Outlook headers) and the
    signature, as found by ``mail-parser-reply``; ``len(body)`` when there is nothing to cut."""
    global _parser
    if not _MAYBE_QUOTED.search(body):
        return len(body)
    if _parser is None:
        from mailparser_reply import EmailReplyParser

        _parser = EmailReplyParser(languages=_REPLY_LANGUAGES)
    try:
        newest = _parser.parse_reply(body).strip()
    except Exception:  # a parser failure must not cost the message: scan it whole
        return len(body)
    if not newest:
        return len(body)
    lines = [ln for ln in newest.split("\n") if ln.strip()]
    start = body.find(lines[0].strip())
    end = body.find(lines[-1].strip(), max(start, 0))
    if start < 0 or end < 0:
        return len(body)
    return end + len(lines[-1].strip())


def extract_emails(run: TextRules) -> None:
    """Each message's newest part is scanned by the text rules; a message with no task becomes
    a note (with the whole body as its description)."""
    for message in run.doc.messages:
        before = len(run.items)
        body = run.doc.text[message.body_start : message.span.end]
        end = message.body_start + newest_part_end(body)
        run.lines(message.body_start, end, email=True, message=message)
        found_task = any(item.type == "task" for item in run.items[before:])
        if not found_task:
            _email_note(run, message)

def _email_note(run: TextRules, message: EmailMessageInfo) -> None:
    body = run.doc.text[message.body_start : message.span.end].strip()
    title = _SUBJECT_PREFIX.sub("", message.subject or "").strip()
    if not title:
        first = next((ln.strip() for ln in body.split("\n") if ln.strip()), "")
        title = first[:120] or (f"Email from {message.sender}" if message.sender else "")
    if not title:
        return
    run.add(
        type="note",
        title=tidy(title),
        description=body[:20_000] or None,
        span=message.span,
        signal="email-note",
    )
