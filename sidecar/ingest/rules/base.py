"""What every document kind shares: the line model, the run that collects items, the line patterns.

A :class:`Run` holds the document, the reference time for relative dates (``base_ms``) and the
items found so far; :meth:`Run.add_task` turns a raw task line into an item through the shared
title and owner rules (:mod:`.titles`, :mod:`.owners`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from sidecar.ingest.items import Document, ExtractedItem, Span, Status
from sidecar.ingest.rules.owners import task_fields
from sidecar.ingest.rules.titles import (
    BULLETS,
    NOTHING,
    clean_task_title,
    done_marker,
    first_sentence,
    is_record_heading,
)

#: Signals whose text may start with "Name to …" naming the owner.
LEAD_OWNER_SIGNALS = frozenset(
    {"todo-line", "action-line", "ai-line", "next-step-line", "follow-up-line", "action-section", "minutes-action",
     "action-table"}
)

CONFIDENCE = {
    "checkbox": 0.95,
    "todo-line": 0.9,
    "action-line": 0.9,
    "ai-line": 0.9,
    "next-step-line": 0.85,
    "will-do-line": 0.8,
    "follow-up-line": 0.85,
    "todo-marker": 0.85,
    "action-table": 0.85,
    "action-section": 0.8,
    "todo-file": 0.7,
    "next-meeting": 0.8,
    "vtodo": 0.95,
    "vevent": 0.95,
    "vjournal": 0.9,
    "email-note": 0.6,
    "minutes-action": 0.7,
    "person-group": 0.7,
    "email-request": 0.7,
    "dated-event": 0.7,
    "language-note": 0.5,
}


#: Characters of a line looked at for one item (titles are cut to 500 anyway).
MAX_RAW_TITLE = 2000

#: List markers: Markdown's, the bullets PDF text keeps (● ○ ■ ▪ ◦ · – …), outline numbers (1. 1.2. a)
#: (1) (a)) and the ``o`` bullet of plain-text files.
LIST_ITEM = re.compile(
    rf"^(?P<indent>[ \t]*)(?P<marker>[{BULLETS}]|\d{{1,3}}(?:\.\d{{1,3}})*[.)]|[a-z]\)|\((?:\d{{1,3}}|[a-z])\)|o(?=[ \t]+[A-Za-z]))"
    r"[ \t]+(?P<body>\S.*)$"
)
#: A task box, after a list marker or on its own: ``- [ ]``, ``[x]``, ``* [✓]``, ``☐``, ``☑``, ``✅``.
CHECKBOX = re.compile(
    r"^(?P<indent>[ \t]*)(?:(?:[-*+•]|\d{1,3}[.)])[ \t]+)?(?:\[(?P<mark>[ xX✓✔~/-])\]|(?P<box>[☐☑☒✅✔✓]))[ \t]+(?P<body>\S.*)$"
)
#: Box marks meaning done (the rest: " "/"☐" open, "~"/"/" in progress, "-" cancelled).
DONE_MARKS = frozenset("xX✓✔☑☒✅")
FENCE = re.compile(r"^[ \t]*(```|~~~)")
HEADING = re.compile(r"^[ ]{0,3}(?P<hashes>#{1,6})[ \t]+(?P<text>.*?)[ \t#]*$")
RULE_LINE = re.compile(r"^[ \t]*([-*_=])(?:[ \t]*\1){2,}[ \t]*$")
TABLE_ROW = re.compile(r"^[ \t]*\|(.*)\|[ \t]*$")
TABLE_SEPARATOR = re.compile(r"^[ \t]*\|?[ \t]*:?-{2,}:?[ \t]*(\|[ \t]*:?-{2,}:?[ \t]*)*\|?[ \t]*$")

_ACTIONS = r"(?:action[ \t]+(?:items?|points?|list|plan|log|register)|actions?|tasks?|to[- ]?dos?|to[ \t]+do)"
_SECTION_WORDS = (
    r"(?:action[ \t]+(?:items?|points?|list)|actions?|to[- ]?dos?(?:[ \t]+list)?|to[ \t]+do(?:[ \t]+list)?|next[ \t]+steps?"
    r"|follow[- ]?ups?|open[ \t]+tasks|tasks"
    # the same lists under other common names: "Agreed actions", "New action items", "Action plan",
    # "Tasks for next week", "Actions arising", "Decisions and actions", "Assigned tasks"
    rf"|(?:new|open|outstanding|agreed|pending|assigned|ongoing|carried[- ]over|summary[ \t]+of|upcoming|remaining"
    rf"|individual|required)[ \t]+{_ACTIONS}"
    rf"|{_ACTIONS}[ \t]+(?:agreed|arising|assigned|identified|taken|summary|required|to[ \t]+(?:take|complete|be[ \t]+done))"
    # "Things to do", "Work to be done", "What needs to be done", "Actionables"
    r"|(?:things|work|stuff)[ \t]+to[ \t]+(?:do|be[ \t]+done)|to[ \t]+be[ \t]+done|what[ \t]+needs[ \t]+to[ \t]+be[ \t]+done"
    r"|actionables?"
    # what was put off to a later meeting is still to do: "Items deferred", "Parking lot"
    r"|items[ \t]+deferred|deferred(?:[ \t]+items)?|parking[ \t]+lot|carried[ \t]+forward"
    r"|action[ \t]+(?:plan|log|register)"
    # "Goals for next week", "Suggestions before next grading", "To do before the next lab"
    rf"|(?:{_ACTIONS}|goals|plans?|targets|work|suggestions?|to[ \t]+do)[ \t]+(?:for|until|before|by)[ \t]+(?:the[ \t]+)?"
    r"(?:next|following|coming)[ \t]+[a-z]+"
    r"|task[ \t]+(?:assignments?|allocation|list)|work[ \t]+allocation|next[ \t]+actions"
    # "Decisions and action items", "Action items & next steps"
    rf"|(?:decisions?|next[ \t]+steps)[ \t]+(?:and|&)[ \t]+{_ACTIONS}|{_ACTIONS}[ \t]+(?:and|&)[ \t]+(?:decisions?|next[ \t]+steps)"
    r"|follow[- ]?up[ \t]+(?:items|actions|tasks))"
)
SECTION_FULL = re.compile(rf"^{_SECTION_WORDS}[ \t]*:?$", re.IGNORECASE)



@dataclass
class Line:
    number: int  # 1-based
    start: int
    text: str

    @property
    def end(self) -> int:
        return self.start + len(self.text)

    @property
    def indent(self) -> int:
        """Leading whitespace width, a tab counting as four spaces."""
        lead = self.text[: len(self.text) - len(self.text.lstrip(" \t"))]
        return lead.count(" ") + 4 * lead.count("\t")

    @property
    def blank(self) -> bool:
        return not self.text.strip()


@dataclass
class Run:
    doc: Document
    base_ms: int
    items: list[ExtractedItem] = field(default_factory=list)
    _lines: list[Line] | None = None
    _minutes: bool | None = None
    _people: frozenset[str] | None = None
    _width: int | None = None
    _markdown: Any = None  # rules.markdown.Structure, parsed on first use

    # ---- helpers -------------------------------------------------------------------------

    @property
    def all_lines(self) -> list[Line]:
        if self._lines is None:
            lines: list[Line] = []
            offset = 0
            for number, raw in enumerate(self.doc.text.split("\n"), start=1):
                lines.append(Line(number=number, start=offset, text=raw))
                offset += len(raw) + 1
            self._lines = lines
        return self._lines

    def span(self, first: Line, last: Line | None = None) -> Span:
        last = last or first
        return Span(
            start=first.start, end=max(first.start, last.end), line_start=first.number, line_end=last.number
        )

    def add(self, **kwargs: object) -> bool:
        signal = str(kwargs["signal"])
        kwargs.setdefault("confidence", CONFIDENCE[signal])
        try:
            self.items.append(ExtractedItem(**kwargs))  # type: ignore[arg-type]
        except ValidationError:
            return False  # e.g. a title that cleaned down to nothing: not an item
        return True

    def add_task(
        self,
        raw: str,
        first: Line,
        last: Line | None,
        signal: str,
        *,
        status: Status = "todo",
        owner_hint: str | None = None,
        dash_owner: bool = False,
        description: str | None = None,
        due_ms: int | None = None,
        min_words: int = 1,
    ) -> bool:
        raw = raw[:MAX_RAW_TITLE]
        raw, done = done_marker(raw)
        if done:
            status = "done"
        fields = task_fields(
            raw,
            self.base_ms,
            owner_hint=owner_hint,
            dash_owner=dash_owner,
            lead_owner=signal in LEAD_OWNER_SIGNALS,
        )
        title, rest = first_sentence(fields.title, joined=last is not None and last is not first)
        title, aside = clean_task_title(title)
        if not title or NOTHING.match(title) or len(re.findall(r"\w+", title)) < min_words:
            return False
        if is_record_heading(title):
            return False  # "Date & Time", "Meeting Minutes & Action Items": the record's own headings
        if not re.search(r"[^\W\d_]", title):
            return False  # "5", "2.1": a page number or a bare outline number is no task
        for extra in (rest, aside):
            if extra:
                description = f"{extra}\n{description}" if description else extra
        return self.add(
            type="task",
            title=title,
            description=description,
            due_date=due_ms if due_ms is not None else fields.due_ms,
            priority=fields.priority,
            assignees=fields.assignees,
            status=status,
            span=self.span(first, last),
            signal=signal,
        )
