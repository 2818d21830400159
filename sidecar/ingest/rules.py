"""The offline ``rules`` extractor: clear signals only, precision over recall (DESIGN §5).

:func:`extract` turns a :class:`~sidecar.ingest.items.Document` into proposed items. It needs no
model and no network; it never guesses from prose. The signals, by ``ExtractedItem.signal``:

Tasks (text, Markdown, HTML, PDF text and email bodies):

``checkbox``
    A list item with a Markdown task box: ``- [ ]`` → todo, ``- [x]`` → done, ``- [~]`` or
    ``- [/]`` → in progress (``- [-]``, cancelled, is skipped). Struck-out text (``~~…~~``) is
    dropped from the title; a fully struck item is skipped.
``todo-line`` / ``action-line`` / ``ai-line`` / ``next-step-line`` / ``follow-up-line``
    A line (optionally a list item, optionally emphasised as ``*AI:*`` or ``**Action:**``)
    starting with ``TODO`` (upper case; ``todo:``/``to-do:`` need the colon), ``Action:``,
    ``Action item(s):``, ``AI:`` (upper case, as in W3C/WebAssembly minutes), ``Next step(s):``
    or ``Follow-up(s):``. ``AI(JF):`` / ``Action item (Ana):`` name the owner.
``action-section``
    Items under a heading or label line that *is* such a label — ``## Action items``,
    ``### TODO``, ``Action Points:``, ``Action List``, ``Next steps:`` — or a short line ending
    in ``action items:``. The section's list items (or, when the first line after the label is
    not a list item, its plain lines up to a blank line) are tasks. It ends at the next
    heading, a rule line (``---``), a blank line followed by text, or text outdented to the
    label. Items of one word (group labels such as "Design") are skipped.
``todo-marker``
    A list item ending in ``- TODO`` (todo) or ``- DONE`` (done).
``todo-file``
    In a file *named* as a to-do list (``TODO.md``, ``project-TODO.txt``, ``todo-list.md``),
    every list item of two words or more.
``action-table``
    Rows of an action table: a Markdown table whose header has an action/task column and an
    owner or deadline column, or a PDF-text table whose header line names an owner/responsible
    column and a deadline/due column (under an "Actions" heading or with "Action" in the
    header). A text row must end in its date (``04/03/19``, ``01 SEP``, ``N/A``) and optional
    status; rows that do not are dropped. Numeric dates are read day- or month-first only when
    the document proves the order (a field above 12), else the due date is left empty.

Timelines: ``vevent`` (one per VEVENT at its DTSTART — for a recurring event that is the
*first* occurrence; overridden instances with RECURRENCE-ID are their own VEVENTs), and
``next-meeting`` (a ``Next meeting: 5th April, 2pm`` line, or ``Next Meeting`` followed by a
``Date:`` line).

Notes: ``vjournal`` (VJOURNAL), and ``email-note``: a message whose body has none of the task
signals becomes a note (subject as title, body as description). A message *with* task signals
gives tasks and no note, whatever ``want`` says.

Fields: owners come only from explicit forms — a leading or trailing ``@name``, ``(Owner: …)``
/ ``Owner: …``, the ``AI(…)`` label, a leading ``Name to …``/``Name will …`` in a labelled line,
``Name - …`` in an action section, the owner column of a table. Due dates come from explicit date
phrases in the task line (see :mod:`sidecar.ingest.dates`), read relative to
``Document.doc_date_ms`` (else ``now_ms``). Priority comes only from explicit markers: ``!high``
/ ``!medium`` / ``!low``, ``(P0)``–``(P3)``, ``priority: high``, the words *urgent* and *ASAP*;
VTODO PRIORITY follows RFC 5545 §3.8.1.9 (1–4 high, 5 medium, 6–9 low).

Within one document, items with the same fingerprint (type + normalised title) are reported once
(the first); the caller relies on fingerprints for identity.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field

from pydantic import ValidationError

from sidecar import clock
from sidecar.ingest.dates import find_date, numeric_date_order, parse_date_phrase, parse_numeric_date
from sidecar.ingest.items import (
    TITLE_MAX,
    CalendarComponent,
    Document,
    EmailMessageInfo,
    ExtractedItem,
    Priority,
    Span,
    Status,
)

__all__ = ["ALL_KINDS", "EXTRACTOR_NAME", "EXTRACTOR_VERSION", "extract"]

EXTRACTOR_NAME = "rules"
#: Bumped whenever a rule changes what is extracted (stored with each item's provenance).
EXTRACTOR_VERSION = "1.0.0"

#: The ``want`` values :func:`extract` understands, and the default.
ALL_KINDS: frozenset[str] = frozenset({"tasks", "timelines", "notes"})
#: Signals whose text may start with "Name to …" naming the owner.
_LEAD_OWNER_SIGNALS = frozenset(
    {"todo-line", "action-line", "ai-line", "next-step-line", "follow-up-line", "action-section"}
)
_TYPE_OF_KIND = {"tasks": "task", "timelines": "timeline", "notes": "note"}

_CONFIDENCE = {
    "checkbox": 0.95,
    "todo-line": 0.9,
    "action-line": 0.9,
    "ai-line": 0.9,
    "next-step-line": 0.85,
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
}


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
    run = _Run(doc=doc, base_ms=base_ms)
    if doc.kind == "calendar":
        run.calendar()
    elif doc.kind == "email":
        run.emails()
    else:
        run.lines(0, len(doc.text), todo_file=_is_todo_file(doc))
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


# --------------------------------------------------------------------------------------------
# patterns

#: A table row in PDF text wraps over at most this many lines.
_MAX_ROW_LINES = 8
#: Characters of a line looked at for one item (titles are cut to 500 anyway).
_MAX_RAW_TITLE = 2000

_LIST_ITEM = re.compile(r"^(?P<indent>[ \t]*)(?P<marker>[-*+•]|\d{1,3}[.)])[ \t]+(?P<body>\S.*)$")
_CHECKBOX = re.compile(
    r"^(?P<indent>[ \t]*)(?:[-*+•]|\d{1,3}[.)])[ \t]+\[(?P<mark>[ xX~/-])\][ \t]+(?P<body>\S.*)$"
)
_FENCE = re.compile(r"^[ \t]*(```|~~~)")
_HEADING = re.compile(r"^[ ]{0,3}(?P<hashes>#{1,6})[ \t]+(?P<text>.*?)[ \t#]*$")
_RULE_LINE = re.compile(r"^[ \t]*([-*_=])(?:[ \t]*\1){2,}[ \t]*$")
_TABLE_ROW = re.compile(r"^[ \t]*\|(.*)\|[ \t]*$")
_TABLE_SEPARATOR = re.compile(r"^[ \t]*\|?[ \t]*:?-{2,}:?[ \t]*(\|[ \t]*:?-{2,}:?[ \t]*)*\|?[ \t]*$")

_SECTION_WORDS = (
    r"(?:action[ \t]+(?:items?|points?|list)|actions?|to[- ]?dos?|todo[ \t]+list|next[ \t]+steps?"
    r"|follow[- ]?ups?|open[ \t]+tasks|tasks)"
)
_SECTION_FULL = re.compile(rf"^{_SECTION_WORDS}[ \t]*:?$", re.IGNORECASE)
_SECTION_TRAILING = re.compile(
    r"\b(?:action[ \t]+items?|action[ \t]+points?|next[ \t]+steps?)[ \t]*:$", re.IGNORECASE
)

_LABEL = re.compile(
    r"""^[ \t]*(?:(?:[-*+•]|\d{1,3}[.)])[ \t]+)?
    (?P<em>\*\*|\*|__|_)?
    (?P<label>TODO|to-?do|action[ \t]+items?|action|AI|next[ \t]+steps?|follow[- ]?ups?)
    (?:[ \t]*\((?P<owner>[^()]{1,60})\))?
    (?P<colon1>[ \t]*:)?
    (?:\*\*|\*|__|_)?
    (?P<colon2>[ \t]*:)?
    [ \t]*(?P<rest>.*)$""",
    re.IGNORECASE | re.VERBOSE,
)
_MARKER = re.compile(r"^(?P<body>.*\S)[ \t]+[-–:][ \t]*(?P<mark>TODO|DONE)!*[ \t]*$")
_NEXT_MEETING = re.compile(
    r"^[ \t]*(?:[-*+•][ \t]+)?(?:\*\*)?next[ \t]+meeting(?:\*\*)?[ \t]*(?:[:\-–][ \t]*)?(?P<rest>.*)$", re.I
)
_DATE_FIELD = re.compile(r"^[ \t]*date[ \t]*:[ \t]*(?P<value>\S.*)$", re.I)
_TIME_FIELD = re.compile(r"^[ \t]*time[ \t]*:[ \t]*(?P<value>\S.*)$", re.I)
_NOTHING = re.compile(r"^(?:n/?a|none|nothing|tbd|tbc|no actions?|-+|\?+)\b", re.I)

_MONTH_WORD = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?"
_ROW_DATE = (
    rf"(?:\d{{1,2}}[/.-]\d{{1,2}}[/.-]\d{{2,4}}|\d{{1,2}}(?:st|nd|rd|th)?[ \t]+{_MONTH_WORD}(?:[ \t]+\d{{4}})?"
    r"|n/?a|tbd|tbc|asap)"
)
_ROW_STATUS = r"(?:new|open|not[ \t]+started|to[ \t]?do|ongoing|in[ \t]+progress|started|done|complete|completed|closed|finished)"
_ROW_END = re.compile(
    rf"^(?P<body>.*?)[ \t]*(?P<date>{_ROW_DATE})(?:[ \t]+(?P<status>{_ROW_STATUS}))?[ \t]*$", re.I
)
_TABLE_OWNER_COL = re.compile(r"\b(?:owners?(?:\(s\))?|responsible|assigned[ \t]+to|assignees?|who)\b", re.I)
_TABLE_DUE_COL = re.compile(
    r"\b(?:deadline|due|date[ \t]+of[ \t]+completion|completion[ \t]+date|by[ \t]+when|target[ \t]+date)\b",
    re.I,
)
_TABLE_ACTION_COL = re.compile(r"\b(?:actions?|action[ \t]+items?|tasks?|to[- ]?dos?)\b", re.I)
_INITIALS = r"(?:[A-Z]{2,4}|All(?:[ \t]+[Mm]embers)?|Everyone|Team)"
_ROW_OWNERS = re.compile(rf"(?P<owners>{_INITIALS}(?:[ \t]*(?:,|&|/|and)[ \t]*{_INITIALS})*)[ \t]*$")
_FULL_NAME = r"[A-Z][a-z]+(?:[ \t]+[A-Z]\.)?[ \t]+[A-Z][a-z]+(?:[ \t]+\([A-Z][a-z]+\))?"
_ROW_FULL_NAME = re.compile(
    rf"(?<=[a-z.,)][ \t])(?P<owners>{_FULL_NAME}(?:[ \t]*(?:,|&|and)[ \t]*{_FULL_NAME})*)[ \t]*$"
)
#: pypdf keeps a run of spaces between table cells: the last cell before the date is the owner.
_ROW_GAP_OWNER = re.compile(r"[ \t]{2,}(?P<owners>[A-Z][\w.()]*(?:[ \t]+[\w.()&,/]+){0,5})[ \t]*$")

_NAME = r"@?[A-Z][\w.'-]*(?:[ \t][A-Z][\w.'-]*)?"
_LEADING_OWNERS = re.compile(
    rf"^(?P<owners>{_NAME}(?:(?:[ \t]*,[ \t]*|[ \t]+and[ \t]+|[ \t]*&[ \t]*){_NAME})*)[ \t]+(?:to|will)[ \t]+"
    r"(?!(?:the|a|an|this|that|these|those|his|her|its|their|our|my|your|all|be|do)\b)(?P<rest>[a-z]\S*.*)$"
)
_MORE_OWNERS = re.compile(
    rf"(?:,[ \t]*(?:and[ \t]+)?|[.;][ \t]+|[ \t]and[ \t]+)(?P<owners>{_NAME})[ \t]+(?:to|will)[ \t]+[a-z]"
)
_DASH_OWNERS = re.compile(
    r"^(?P<owners>[A-Z][\w'.]*(?:[ \t]*(?:/|\+|&|,|and)[ \t]*[A-Za-z][\w'.]*){0,3})[ \t]+[-–—][ \t]+(?P<rest>\S.*)$"
)
_LEADING_MENTIONS = re.compile(
    r"^(?P<owners>@[\w.-]+(?:[ \t]*(?:,|&|and)?[ \t]*@[\w.-]+)*)[ \t:,-]*(?:(?:to|will)[ \t]+)?"
)
_TRAILING_MENTIONS = re.compile(r"(?P<owners>(?:[ \t,]+@[\w.-]*\w)+)[ \t.]*$")
_OWNER_FIELD = re.compile(
    r"[(\[]?\b(?:owners?|assignees?|assigned[ \t]+to)[ \t]*:[ \t]*(?P<owners>[^()\[\];]{1,80}?)[)\]]?(?=$|[;.)\]])",
    re.I,
)
_GENERIC_OWNERS = frozenset(
    {
        "all",
        "all members",
        "everyone",
        "everybody",
        "team",
        "group",
        "others",
        "other",
        "we",
        "someone",
        "anyone",
        "tbd",
        "n/a",
    }
)

_PRIORITY_MARKERS: tuple[tuple[re.Pattern[str], Priority, bool], ...] = (
    (re.compile(r"(?<!\w)!(?:high|urgent)\b|!!!", re.I), "high", True),
    (re.compile(r"(?<!\w)!(?:medium|med)\b", re.I), "medium", True),
    (re.compile(r"(?<!\w)!low\b", re.I), "low", True),
    (re.compile(r"[(\[]P[01][)\]]"), "high", True),
    (re.compile(r"[(\[]P2[)\]]"), "medium", True),
    (re.compile(r"[(\[]P3[)\]]"), "low", True),
    (re.compile(r"[(\[]?priority[ \t]*:[ \t]*high[)\]]?", re.I), "high", True),
    (re.compile(r"[(\[]?priority[ \t]*:[ \t]*medium[)\]]?", re.I), "medium", True),
    (re.compile(r"[(\[]?priority[ \t]*:[ \t]*low[)\]]?", re.I), "low", True),
    (
        re.compile(
            r"^(?:urgent|asap)[ \t]*[:!-][ \t]*|[(\[](?:urgent|asap)[)\]]|[,;–-][ \t]*(?:urgent|asap)[.!]*$",
            re.I,
        ),
        "high",
        True,
    ),
    (re.compile(r"\b(?:urgent|urgently|ASAP)\b", re.I), "high", False),
)

_EMAIL_STOP = re.compile(
    r"^(?:-- ?|-{2,}[ \t]*(?:original message|forwarded message)[ \t]*-*|_{10,}|on\b.{0,200}\bwrote:)[ \t]*$",
    re.IGNORECASE,
)
_SUBJECT_PREFIX = re.compile(r"^(?:[ \t]*(?:\[[^\]]{1,40}\]|(?:re|fwd?|aw|wg|sv|antw)[ \t]*:))+[ \t]*", re.I)
_TODO_FILE = re.compile(r"(?:^|[-_. ])to-?dos?(?:[-_ ]?list)?$", re.I)


def _is_todo_file(doc: Document) -> bool:
    return bool(_TODO_FILE.search(doc.path.stem)) and doc.kind in ("markdown", "text")


# --------------------------------------------------------------------------------------------
# title clean-up


_MARKUP_SUBS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"~~.*?~~"), " "),
    (re.compile(r"!\[[^\]]*\]\([^)]*\)"), " "),
    (re.compile(r"\[([^\]]+)\]\([^)]*\)"), r"\1"),
    (re.compile(r"`([^`]*)`"), r"\1"),
    (re.compile(r"(\*\*|__)(.+?)\1"), r"\2"),
    (re.compile(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])"), r"\1"),
    (re.compile(r"(?<![\w])_(?!\s)(.+?)(?<!\s)_(?![\w])"), r"\1"),
)
_EMPTY_BRACKETS = re.compile(r"\(\s*\)|\[\s*\]")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,.;:!?])")
_DANGLING_PREP = re.compile(r"\s+(?:by|due|on|before|until)$", re.I)


def _clean_markup(text: str) -> str:
    """Markdown inline syntax out: links → their text, images/struck text dropped, no emphasis."""
    for pattern, replacement in _MARKUP_SUBS:
        text = pattern.sub(replacement, text)
    return " ".join(text.split())


def _tidy(text: str) -> str:
    """Whitespace collapsed, empty brackets and dangling separators/prepositions removed, ≤ 500 chars."""
    text = _EMPTY_BRACKETS.sub(" ", text)
    text = " ".join(text.split())
    text = _SPACE_BEFORE_PUNCT.sub(r"\1", text)
    text = text.strip(" \t-–—:;,|")
    text = _DANGLING_PREP.sub("", text)
    if len(text) > TITLE_MAX:
        cut = text[: TITLE_MAX - 1].rsplit(" ", 1)[0]
        text = cut + "…"
    return text


def _split_owners(raw: str) -> list[str]:
    """Owner names from ``"Ana, Bo and Cy"``, ``"Innes/George"`` or ``"@li @sam"``; generic words dropped."""
    if "@" in raw:
        return [m for m in re.findall(r"@([\w.-]*\w)", raw) if m.lower() not in _GENERIC_OWNERS]
    names = []
    for part in re.split(r"[ \t]*(?:,|&|/|\+|\band\b)[ \t]*", raw):
        name = part.strip().lstrip("@").strip(" .")
        if name and name.lower() not in _GENERIC_OWNERS and len(name) <= 60:
            names.append(name)
    return names


def _first_sentence(text: str, *, joined: bool) -> tuple[str, str | None]:
    """``(title, rest)``: text joined from wrapped lines, or longer than 120 characters, is cut
    after its first sentence (the rest goes to the description)."""
    if not joined and len(text) <= 120:
        return text, None
    parts = re.split(r"(?<=[.!?])\s+(?=[A-Z(])", text, maxsplit=1)
    if len(parts) == 2 and len(parts[0]) >= 10:
        return parts[0], parts[1]
    return text, None


@dataclass
class _Fields:
    title: str
    assignees: list[str] = field(default_factory=list)
    due_ms: int | None = None
    priority: Priority | None = None


def _task_fields(
    raw: str,
    base_ms: int,
    *,
    owner_hint: str | None = None,
    dash_owner: bool = False,
    lead_owner: bool = False,
) -> _Fields:
    """Title cleaned of markup, owner, priority and date tokens, plus what they said.

    ``lead_owner`` allows ``Name to …``/``Name will …`` (labelled lines and action sections
    only); ``dash_owner`` allows ``Name - …`` (action sections).
    """
    text = _clean_markup(raw)
    assignees: list[str] = _split_owners(owner_hint) if owner_hint else []
    priority: Priority | None = None
    for pattern, level, remove in _PRIORITY_MARKERS:
        if pattern.search(text):
            priority = priority or level
            if remove:
                text = pattern.sub(" ", text)
    for field_match in list(_OWNER_FIELD.finditer(text)):
        assignees += _split_owners(field_match.group("owners"))
    text = _OWNER_FIELD.sub(" ", text).strip()
    m: re.Match[str] | None = _LEADING_MENTIONS.match(text)
    if m and m.end() < len(text):
        assignees += _split_owners(m.group("owners"))
        text = text[m.end() :]
    due = find_date(text, base_ms)
    if due is not None:
        text = text[: due.start] + " " + text[due.end :]
    m = _TRAILING_MENTIONS.search(text)
    if m and m.start() > 0:
        assignees += _split_owners(m.group("owners"))
        text = text[: m.start()]
    text = text.strip()
    m = _LEADING_OWNERS.match(text) if lead_owner else None
    if m:
        owners = _split_owners(m.group("owners"))
        if owners:
            assignees += owners
            text = m.group("rest")
            # "Ben to update the repo, and JF to update the tracking issue": JF owns a part too
            for more in _MORE_OWNERS.finditer(text):
                assignees += _split_owners(more.group("owners"))
    elif dash_owner:
        m = _DASH_OWNERS.match(text)
        if m:
            assignees += _split_owners(m.group("owners"))
            text = m.group("rest")
            if text.lower().startswith("to "):
                text = text[3:]
    unique: list[str] = []
    for name in assignees:
        if name not in unique:
            unique.append(name)
    return _Fields(title=_tidy(text), assignees=unique, due_ms=due.ms if due else None, priority=priority)


# --------------------------------------------------------------------------------------------
# the run


@dataclass
class _Line:
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
class _Section:
    indent: int
    mode: str | None = None  # "list" | "plain", fixed by the first line after the label
    items: int = 0
    blank_run: int = 0


@dataclass
class _Run:
    doc: Document
    base_ms: int
    items: list[ExtractedItem] = field(default_factory=list)
    _lines: list[_Line] | None = None

    # ---- helpers -------------------------------------------------------------------------

    @property
    def all_lines(self) -> list[_Line]:
        if self._lines is None:
            lines: list[_Line] = []
            offset = 0
            for number, raw in enumerate(self.doc.text.split("\n"), start=1):
                lines.append(_Line(number=number, start=offset, text=raw))
                offset += len(raw) + 1
            self._lines = lines
        return self._lines

    def span(self, first: _Line, last: _Line | None = None) -> Span:
        last = last or first
        return Span(
            start=first.start, end=max(first.start, last.end), line_start=first.number, line_end=last.number
        )

    def add(self, **kwargs: object) -> bool:
        signal = str(kwargs["signal"])
        kwargs.setdefault("confidence", _CONFIDENCE[signal])
        try:
            self.items.append(ExtractedItem(**kwargs))  # type: ignore[arg-type]
        except ValidationError:
            return False  # e.g. a title that cleaned down to nothing: not an item
        return True

    def add_task(
        self,
        raw: str,
        first: _Line,
        last: _Line | None,
        signal: str,
        *,
        status: Status = "todo",
        owner_hint: str | None = None,
        dash_owner: bool = False,
        description: str | None = None,
        due_ms: int | None = None,
        min_words: int = 1,
    ) -> bool:
        raw = raw[:_MAX_RAW_TITLE]
        if re.fullmatch(r"\s*~~.*~~\s*", raw):
            return False  # struck out entirely: cancelled
        fields = _task_fields(
            raw,
            self.base_ms,
            owner_hint=owner_hint,
            dash_owner=dash_owner,
            lead_owner=signal in _LEAD_OWNER_SIGNALS,
        )
        title, rest = _first_sentence(fields.title, joined=last is not None and last is not first)
        if not title or _NOTHING.match(title) or len(re.findall(r"\w+", title)) < min_words:
            return False
        if rest:
            description = f"{rest}\n{description}" if description else rest
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

    # ---- calendars -----------------------------------------------------------------------

    def calendar(self) -> None:
        for comp in self.doc.calendar_components:
            self.component(comp)

    def component(self, comp: CalendarComponent) -> None:
        status = comp.status or ""
        if status == "CANCELLED":
            return
        if comp.kind == "VTODO" and comp.summary:
            item_status: Status = {"COMPLETED": "done", "IN-PROCESS": "in_progress"}.get(status, "todo")  # type: ignore[assignment]
            self.add(
                type="task",
                title=_tidy(comp.summary),
                description=comp.description,
                due_date=comp.due_ms,
                priority=_ical_priority(comp.priority),
                status=item_status,
                span=comp.span,
                signal="vtodo",
            )
        elif comp.kind == "VEVENT" and comp.summary and comp.start_ms is not None:
            details = [comp.description or ""]
            if comp.location:
                details.append(f"Location: {comp.location}")
            if comp.rrule:
                details.append(f"Repeats ({comp.rrule}); the date is the first occurrence.")
            description = "\n".join(d for d in details if d) or None
            self.add(
                type="timeline",
                title=_tidy(comp.summary),
                description=description,
                date=comp.start_ms,
                span=comp.span,
                signal="vevent",
            )
        elif comp.kind == "VJOURNAL":
            title = comp.summary or (comp.description or "").strip().split("\n", 1)[0]
            if title.strip():
                self.add(
                    type="note",
                    title=_tidy(title),
                    description=comp.description,
                    span=comp.span,
                    signal="vjournal",
                )

    # ---- email ---------------------------------------------------------------------------

    def emails(self) -> None:
        for message in self.doc.messages:
            before = len(self.items)
            self.lines(message.body_start, message.span.end, email=True, message=message)
            found_task = any(item.type == "task" for item in self.items[before:])
            if not found_task:
                self.email_note(message)

    def email_note(self, message: EmailMessageInfo) -> None:
        body = self.doc.text[message.body_start : message.span.end].strip()
        title = _SUBJECT_PREFIX.sub("", message.subject or "").strip()
        if not title:
            first = next((ln.strip() for ln in body.split("\n") if ln.strip()), "")
            title = first[:120] or (f"Email from {message.sender}" if message.sender else "")
        if not title:
            return
        self.add(
            type="note",
            title=_tidy(title),
            description=body[:20_000] or None,
            span=message.span,
            signal="email-note",
        )

    # ---- line rules ----------------------------------------------------------------------

    def region(self, start: int, end: int) -> list[_Line]:
        """The lines starting in ``[start, end)``."""
        lines = self.all_lines
        starts = [ln.start for ln in lines]
        return lines[bisect_left(starts, start) : bisect_left(starts, end)]

    def lines(
        self,
        start: int,
        end: int,
        *,
        todo_file: bool = False,
        email: bool = False,
        message: EmailMessageInfo | None = None,
    ) -> None:
        lines = self.region(start, end)
        if message is not None and message.date_ms is not None:
            saved_base, self.base_ms = self.base_ms, message.date_ms
        else:
            saved_base = self.base_ms
        try:
            self._scan(lines, todo_file=todo_file, email=email)
        finally:
            self.base_ms = saved_base

    def _scan(self, lines: list[_Line], *, todo_file: bool, email: bool) -> None:
        in_fence = False
        section: _Section | None = None
        list_base: int | None = None  # indent of the current list's top-level items
        i = 0
        n = len(lines)
        while i < n:
            line = lines[i]
            text = line.text
            if not line.blank:
                if _LIST_ITEM.match(text):
                    if list_base is None or line.indent < list_base:
                        list_base = line.indent
                elif _HEADING.match(text) or line.indent <= (list_base or 0):
                    list_base = None
            if _FENCE.match(text):
                in_fence = not in_fence
                i += 1
                continue
            if in_fence:
                i += 1
                continue
            if email:
                if _EMAIL_STOP.match(text) or (
                    text.startswith("From:") and i + 1 < n and lines[i + 1].text.startswith("Sent:")
                ):
                    break
                if text.lstrip().startswith(">"):
                    i += 1
                    continue

            # a table header: rows are consumed here
            consumed = self._table(lines, i)
            if consumed:
                section = None
                i += consumed
                continue

            heading = _HEADING.match(text)
            if section is not None and self._section_ends(section, line, heading, lines, i):
                section = None

            checkbox = _CHECKBOX.match(text)
            if checkbox:
                i = self._checkbox(lines, i, checkbox)
                if section is not None:
                    section.items += 1
                    section.mode = section.mode or "list"
                continue

            meeting = _NEXT_MEETING.match(text)
            if meeting and self._next_meeting(lines, i, meeting.group("rest")):
                i += 1
                continue

            label = self._label(text)
            if label is not None:
                signal, rest, owner = label
                if rest:
                    self.add_task(rest, line, None, signal, owner_hint=owner, dash_owner=signal == "ai-line")
                    i += 1
                    continue
                section = _Section(indent=line.indent)
                i += 1
                continue

            if self._is_section_header(text, heading):
                section = _Section(indent=line.indent)
                i += 1
                continue
            if heading:
                i += 1
                continue

            marker_item = _LIST_ITEM.match(text)
            marker = _MARKER.match(marker_item.group("body")) if marker_item else None
            if marker_item and marker:
                status: Status = "done" if marker.group("mark") == "DONE" else "todo"
                self.add_task(marker.group("body"), line, None, "todo-marker", status=status)
                i += 1
                continue

            nested = marker_item is not None and list_base is not None and line.indent > list_base
            if section is not None and not line.blank:
                i = self._section_item(lines, i, section, None if nested else marker_item)
                continue
            if todo_file and marker_item and not nested:
                body, last = self._joined(lines, i, marker_item)
                self.add_task(body, line, lines[last], "todo-file", min_words=2)
                i = last + 1
                continue
            i += 1

    def _label(self, text: str) -> tuple[str, str, str | None] | None:
        m = _LABEL.match(text)
        if not m:
            return None
        label = m.group("label")
        lower = " ".join(label.lower().split())
        has_colon = bool(m.group("colon1") or m.group("colon2"))
        rest = m.group("rest").strip()
        if lower == "ai":
            if label != "AI" or not has_colon:
                return None
            signal = "ai-line"
        elif lower == "todo" and label == "TODO":
            if not has_colon and (not rest or (not rest[0].isalnum() and rest[0] not in "@*_[")):
                return None
            signal = "todo-line"
        elif lower in ("todo", "to-do", "to do"):
            if not has_colon:
                return None
            signal = "todo-line"
        elif lower.startswith("action"):
            if not has_colon:
                return None
            signal = "action-line"
        elif lower.startswith("next"):
            if not has_colon:
                return None
            signal = "next-step-line"
        else:
            if not has_colon:
                return None
            signal = "follow-up-line"
        if rest.startswith(("*", "_")) and m.group("em") and rest.lstrip("*_").strip() == "":
            rest = ""
        return signal, rest, m.group("owner")

    @staticmethod
    def _is_section_header(text: str, heading: re.Match[str] | None) -> bool:
        inner = heading.group("text") if heading else text
        inner = _clean_markup(inner).strip()
        if _SECTION_FULL.match(inner):
            return True
        return bool(not heading and _SECTION_TRAILING.search(inner) and len(inner.split()) <= 12)

    def _section_ends(
        self, section: _Section, line: _Line, heading: re.Match[str] | None, lines: list[_Line], i: int
    ) -> bool:
        if heading or _RULE_LINE.match(line.text) or "\f" in line.text:
            return True
        if line.blank:
            section.blank_run += 1
            return section.mode == "plain" and section.items > 0
        after_blank = section.blank_run > 0
        section.blank_run = 0
        is_item = bool(_LIST_ITEM.match(line.text) or _CHECKBOX.match(line.text))
        if section.mode is None:
            section.mode = "list" if is_item else "plain"
            return False
        if section.mode == "list" and not is_item:
            deeper = line.indent > section.indent
            if after_blank or not deeper:
                # a wrapped PDF line continues the previous item; anything else ends the list
                return not (self.doc.kind == "pdf" and section.items > 0 and not after_blank)
        return False

    def _section_item(self, lines: list[_Line], i: int, section: _Section, item: re.Match[str] | None) -> int:
        line = lines[i]
        if section.mode == "plain":
            if section.items >= 12:
                return i + 1
            section.items += 1
            self.add_task(line.text.strip(), line, None, "action-section", dash_owner=True)
            return i + 1
        if item is None:
            return i + 1  # indented detail under an item
        body, last = self._joined(lines, i, item)
        parent = self._has_children(lines, last, line.indent)
        section.items += 1
        self.add_task(
            body, line, lines[last], "action-section", dash_owner=True, min_words=2 if parent else 1
        )
        return last + 1

    def _joined(self, lines: list[_Line], i: int, item: re.Match[str]) -> tuple[str, int]:
        """A list item's text with its wrapped continuation lines (at most 4), and its last index."""
        body = item.group("body").strip()
        base_indent = lines[i].indent
        j = i + 1
        while j < len(lines) and j <= i + 4:
            nxt = lines[j]
            if (
                nxt.blank
                or _LIST_ITEM.match(nxt.text)
                or _HEADING.match(nxt.text)
                or _RULE_LINE.match(nxt.text)
            ):
                break
            if self._label(nxt.text) is not None or _TABLE_ROW.match(nxt.text) or "\f" in nxt.text:
                break
            if self.doc.kind != "pdf" and nxt.indent <= base_indent:
                break
            if self._is_section_header(nxt.text, None):
                break
            piece = nxt.text.strip()
            if body.endswith("-") and piece[:1].islower():
                body = body[:-1] + piece
            else:
                body = f"{body} {piece}"
            j += 1
        return body, j - 1

    @staticmethod
    def _has_children(lines: list[_Line], i: int, indent: int) -> bool:
        for j in range(i + 1, len(lines)):
            if lines[j].blank:
                continue
            return bool(_LIST_ITEM.match(lines[j].text)) and lines[j].indent > indent
        return False

    def _checkbox(self, lines: list[_Line], i: int, m: re.Match[str]) -> int:
        line = lines[i]
        mark = m.group("mark")
        if mark == "-":
            return i + 1
        status: Status = "todo" if mark == " " else ("done" if mark in "xX" else "in_progress")
        body = m.group("body")
        # deeper-indented lines below (that are not boxes themselves) describe the item
        details: list[str] = []
        j = i + 1
        while j < len(lines) and len(details) < 10:
            nxt = lines[j]
            if nxt.blank:
                break
            if nxt.indent <= line.indent or _CHECKBOX.match(nxt.text) or _HEADING.match(nxt.text):
                break
            details.append(_clean_markup(_LIST_ITEM.sub(r"\g<body>", nxt.text).strip()))
            j += 1
        self.add_task(body, line, None, "checkbox", status=status, description="\n".join(details) or None)
        return i + 1

    def _next_meeting(self, lines: list[_Line], i: int, rest: str) -> bool:
        line = lines[i]
        last = line
        phrase = rest.strip()
        if not phrase:
            for nxt in lines[i + 1 : i + 4]:
                m = _DATE_FIELD.match(nxt.text)
                if m:
                    phrase = m.group("value")
                    last = nxt
                    continue
                t = _TIME_FIELD.match(nxt.text)
                if (
                    t
                    and phrase
                    and re.match(r"\d{1,2}(?::\d{2})?\s*(?:[ap]\.?m\.?)?$", t.group("value").strip(), re.I)
                ):
                    if ":" in t.group("value") or re.search(r"[ap]\.?m", t.group("value"), re.I):
                        phrase = f"{phrase} {t.group('value').strip()}"
                    last = nxt
        if not phrase:
            return False
        found = find_date(phrase, self.base_ms)
        ms = found.ms if found else parse_date_phrase(phrase.split("(")[0], self.base_ms)
        if ms is None:
            return False
        title = "Next meeting" + (f" – {self.doc.title}" if self.doc.title else "")
        return self.add(
            type="timeline", title=_tidy(title), date=ms, span=self.span(line, last), signal="next-meeting"
        )

    # ---- tables --------------------------------------------------------------------------

    def _table(self, lines: list[_Line], i: int) -> int:
        """Consume an action table starting at ``lines[i]``; returns the lines consumed (0 if none)."""
        text = lines[i].text
        md = _TABLE_ROW.match(text)
        if md:
            return self._markdown_table(lines, i)
        if not (_TABLE_OWNER_COL.search(text) and _TABLE_DUE_COL.search(text)):
            return 0
        context = [ln.text for ln in lines[max(0, i - 3) : i] if not ln.blank][-2:]
        if not (_TABLE_ACTION_COL.search(text) or any(_SECTION_FULL.match(c.strip()) for c in context)):
            return 0
        return self._text_table(lines, i)

    def _markdown_table(self, lines: list[_Line], i: int) -> int:
        header = [c.strip() for c in _TABLE_ROW.match(lines[i].text).group(1).split("|")]  # type: ignore[union-attr]
        if i + 1 >= len(lines) or not _TABLE_SEPARATOR.match(lines[i + 1].text):
            return 0
        col_action = next(
            (k for k, h in enumerate(header) if _TABLE_ACTION_COL.fullmatch(_clean_markup(h))), None
        )
        col_owner = next((k for k, h in enumerate(header) if _TABLE_OWNER_COL.search(h)), None)
        col_due = next((k for k, h in enumerate(header) if _TABLE_DUE_COL.search(h)), None)
        col_status = next((k for k, h in enumerate(header) if re.search(r"\bstatus\b", h, re.I)), None)
        if col_action is None or (col_owner is None and col_due is None):
            return 0
        j = i + 2
        rows: list[tuple[_Line, list[str]]] = []
        while j < len(lines):
            row = _TABLE_ROW.match(lines[j].text)
            if not row:
                break
            rows.append((lines[j], [c.strip() for c in row.group(1).split("|")]))
            j += 1
        order = numeric_date_order(
            " ".join(c[col_due] for _, c in rows if col_due is not None and col_due < len(c))
        )
        for line, cells in rows:
            if col_action >= len(cells):
                continue
            owner = cells[col_owner] if col_owner is not None and col_owner < len(cells) else None
            due = (
                self._cell_date(cells[col_due], order)
                if col_due is not None and col_due < len(cells)
                else None
            )
            status = (
                _row_status(cells[col_status])
                if col_status is not None and col_status < len(cells)
                else "todo"
            )
            self.add_task(
                cells[col_action], line, None, "action-table", owner_hint=owner, due_ms=due, status=status
            )
        return j - i

    def _text_table(self, lines: list[_Line], i: int) -> int:
        j = i + 1
        pending: list[_Line] = []
        rows: list[tuple[list[_Line], re.Match[str]]] = []
        while j < len(lines):
            line = lines[j]
            if line.blank or "\f" in line.text or _HEADING.match(line.text):
                break
            pending.append(line)
            if len(pending) > _MAX_ROW_LINES:
                pending.pop(0)  # no row wraps this far: the oldest line was not part of one
            end = _ROW_END.match(" ".join(ln.text.strip() for ln in pending))
            if end and end.group("body").strip():
                rows.append((pending, end))
                pending = []
            j += 1
        order = numeric_date_order(self.doc.text)
        for row_lines, m in rows:
            body = m.group("body").strip()
            owners = _ROW_OWNERS.search(body) or _ROW_FULL_NAME.search(body) or _ROW_GAP_OWNER.search(body)
            owner_text = owners.group("owners") if owners else None
            title = body[: owners.start()] if owners else body
            due = self._cell_date(m.group("date"), order)
            status = _row_status(m.group("status") or "")
            self.add_task(
                title,
                row_lines[0],
                row_lines[-1],
                "action-table",
                owner_hint=owner_text,
                due_ms=due,
                status=status,
            )
        return max(1, j - i)

    def _cell_date(self, cell: str, order: str | None) -> int | None:
        cell = _clean_markup(cell).strip()
        if not cell or _NOTHING.match(cell) or re.fullmatch(r"asap", cell, re.I):
            return None
        if re.fullmatch(r"\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}", cell):
            return parse_numeric_date(cell, order, self.base_ms) if order else None
        if re.fullmatch(rf"\d{{1,2}}(?:st|nd|rd|th)?[ \t]+{_MONTH_WORD}(?:[ \t]+\d{{4}})?", cell, re.I):
            # a minutes table is usually written (and exported) after its deadlines were set:
            # a date without a year is the one nearest the document date, not the next one
            return parse_numeric_date(cell, "DMY", self.base_ms)
        found = find_date(cell, self.base_ms)
        return found.ms if found else None


def _row_status(text: str) -> Status:
    word = text.strip().lower()
    if word in ("done", "complete", "completed", "closed", "finished"):
        return "done"
    if word in ("ongoing", "in progress", "started"):
        return "in_progress"
    return "todo"


def _ical_priority(value: int | None) -> Priority | None:
    """RFC 5545 §3.8.1.9: 1–4 high, 5 medium, 6–9 low, 0 (or absent) undefined."""
    if value is None or value <= 0 or value > 9:
        return None
    if value <= 4:
        return "high"
    return "medium" if value == 5 else "low"


def iter_signals() -> Iterator[str]:
    """The signal names this extractor may put on items (for run logs and tests)."""
    yield from _CONFIDENCE
