"""Email (``.eml``, ``.mbox``): tasks from each message's own text, else the message as a note.

Signal ``email-note``: a message whose body has none of the task signals becomes a note (subject,
without ``Re:``/``Fwd:``/list tags, as title; body as description). A message *with* task
signals gives tasks and no note. Quoted lines (``>``), signatures (``-- ``) and quoted history
(``On … wrote:``, ``-----Original Message-----``, Outlook ``From:``/``Sent:``) are not scanned.
Relative dates are read against the message's ``Date``.
"""

from __future__ import annotations

import re

from sidecar.ingest.items import EmailMessageInfo
from sidecar.ingest.rules.text import TextRules
from sidecar.ingest.rules.titles import tidy

_SUBJECT_PREFIX = re.compile(r"^(?:[ \t]*(?:\[[^\]]{1,40}\]|(?:re|fwd?|aw|wg|sv|antw)[ \t]*:))+[ \t]*", re.I)

def extract_emails(run: TextRules) -> None:
    """Each message's body is scanned by the text rules; a message with no task becomes a note."""
    for message in run.doc.messages:
        before = len(run.items)
        run.lines(message.body_start, message.span.end, email=True, message=message)
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
