"""The offline ``rules`` extractor: clear signals only, precision over recall (DESIGN §5).

:func:`extract` turns a :class:`~sidecar.ingest.items.Document` into proposed items. It needs no
model and no network; it never guesses from prose. One module per document kind, the shared
pieces once:

=====================  ==========================================================================
module                 what
=====================  ==========================================================================
:mod:`.calendar`       ``.ics``: VTODO → task, VEVENT → timeline, VJOURNAL → note
:mod:`.email`          ``.eml``/``.mbox``: each message's own text, else the message as a note
:mod:`.text`           text, Markdown, HTML, PDF text: the line scanner (checkboxes, labelled lines,
                       action sections, to-do files, next-meeting dates)
:mod:`.sections`       action sections, label lines, to-do files, wrapped lines (the scanner's parts)
:mod:`.tables`         owner/action/due tables in Markdown and PDF text
:mod:`.minutes`        minutes written as sentences, dated events, email requests
:mod:`.delegation`     work delegated under a person's name, the topic of a bare action
:mod:`.language`       the document's language (other languages: a note, no English rules)
:mod:`.base`           the line model and the run that collects items
:mod:`.titles`         clean titles (markup, numbering, bullets, punctuation)
:mod:`.owners`         owners, priority and due date of a task line
=====================  ==========================================================================

Due dates and timeline dates are read relative to ``Document.doc_date_ms`` (the document's own
date, see :func:`sidecar.ingest.dates.document_date`), else ``now_ms``.

Within one document, items with the same fingerprint (type + normalised title) are reported once
(the first); the caller relies on fingerprints for identity.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator

from sidecar import clock
from sidecar.ingest.items import Document, ExtractedItem, Span
from sidecar.ingest.rules.base import CONFIDENCE
from sidecar.ingest.rules.calendar import extract_calendar
from sidecar.ingest.rules.email import extract_emails
from sidecar.ingest.rules.language import ENGLISH_SIGNALS, SUPPORTED, detect
from sidecar.ingest.rules.text import TextRules, is_todo_file
from sidecar.ingest.rules.titles import tidy

__all__ = ["ALL_KINDS", "EXTRACTOR_NAME", "EXTRACTOR_VERSION", "extract", "iter_signals"]

EXTRACTOR_NAME = "rules"
#: Bumped whenever a rule changes what is extracted (stored with each item's provenance).
EXTRACTOR_VERSION = "1.3.8"

#: The ``want`` values :func:`extract` understands, and the default.
ALL_KINDS: frozenset[str] = frozenset({"tasks", "timelines", "notes"})
_TYPE_OF_KIND = {"tasks": "task", "timelines": "timeline", "notes": "note"}


def extract(
    doc: Document,
    *,
    want: Collection[str] = ALL_KINDS,
    skip_done: bool = False,
    now_ms: int | None = None,
) -> list[ExtractedItem]:
    """Propose tasks, timeline entries and notes found in ``doc`` by the rules above.

    Args:
        doc: what a reader produced.
        want: any of ``"tasks"``, ``"timelines"``, ``"notes"`` (a watch's ``dataTypes``).
        skip_done: leave out tasks already marked done (``- [x]``, VTODO COMPLETED, …).
        now_ms: the reference time in Unix ms for relative dates when the document has no
            date of its own (default: :func:`sidecar.clock.now_ms`).

    Returns:
        Items in document order, one per fingerprint; each carries its span in ``doc.text``.

    Raises:
        ValueError: ``want`` contains an unknown kind.
    """
    unknown = set(want) - ALL_KINDS
    if unknown:
        raise ValueError(f"unknown item kinds {sorted(unknown)}; expected some of {sorted(ALL_KINDS)}")
    base_ms = (
        doc.doc_date_ms if doc.doc_date_ms is not None else (now_ms if now_ms is not None else clock.now_ms())
    )
    run = TextRules(doc=doc, base_ms=base_ms)
    if doc.kind == "calendar":
        extract_calendar(run)
    elif doc.kind == "email":
        extract_emails(run)
    else:
        run.lines(0, len(doc.text), todo_file=is_todo_file(doc))
        if doc.kind == "pdf":
            run.pdf_tables()
    if doc.kind != "calendar" and doc.text.strip():
        language = detect(doc.text)
        if language not in SUPPORTED:
            run.items = [it for it in run.items if it.signal not in ENGLISH_SIGNALS]
            if not run.items:
                language_note(run, language)
    wanted_types = {_TYPE_OF_KIND[k] for k in want}
    seen: set[str] = set()
    out: list[ExtractedItem] = []
    for item in sorted(run.items, key=lambda it: it.span.start):
        if item.type not in wanted_types or (skip_done and item.status == "done"):
            continue
        fp = item.fingerprint()
        if fp in seen:
            continue
        seen.add(fp)
        out.append(item)
    return out


def language_note(run: TextRules, language: str) -> None:
    """The whole document as one note, for a language the rules do not read."""
    doc = run.doc
    first = next((ln.strip() for ln in doc.text.split("\n") if ln.strip()), "")
    title = tidy(doc.title or first[:120] or doc.path.name)
    if title:
        run.add(
            type="note",
            title=title,
            description=f"[{language}] {doc.text[:20_000]}",
            span=Span(start=0, end=len(doc.text)),
            signal="language-note",
        )


def iter_signals() -> Iterator[str]:
    """The signal names this extractor may put on items (for run logs and tests)."""
    yield from CONFIDENCE
