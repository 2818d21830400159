"""Action tables: Markdown tables and PDF tables with an action and an owner/deadline column.

Signal ``action-table``. A PDF's ruled tables come from its layout (the reader's
``metadata["tables"]``, cells found by pdfplumber): one whose header row (among the first four)
names an action/task column and an owner or deadline column gives a task per row, and replaces
what the line rules made of the same rows' text. A Markdown table counts when its header has an action/task column and
an owner or deadline column, or a combined "Actions: Responsible" column of ``NAME to VERB`` items
beside a "Notes/Action Items" column (notes, not actions); cells written as HTML lists give an
item per ``<li>`` (beside both an owner and a deadline column, "What"/"Item"/
"Description" is the action column and "When" the deadline: who/what/when tables); a PDF-text table when its header line names an owner/responsible
column and a deadline/due column (under an "Actions" heading or with "Action" in the header). A
text row must end in its date (``04/03/19``, ``01 SEP``, ``N/A``) and optional status; rows that
do not are dropped. Numeric dates are read day- or month-first only when the document proves the
order (a field above 12), else the due date is left empty.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from typing import Any

from sidecar.ingest.dates import find_date, numeric_date_order, parse_date_phrase, parse_numeric_date
from sidecar.ingest.items import Status
from sidecar.ingest.rules.base import HEADING, SECTION_FULL, TABLE_ROW, TABLE_SEPARATOR, Line, Run
from sidecar.ingest.rules.titles import NOTHING, clean_markup

#: A table row in PDF text wraps over at most this many lines.
_MAX_ROW_LINES = 8
MONTH_WORD = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?"
_ROW_DATE = (
    rf"(?:\d{{1,2}}[/.-]\d{{1,2}}[/.-]\d{{2,4}}|\d{{1,2}}(?:st|nd|rd|th)?[ \t]+{MONTH_WORD}(?:[ \t]+\d{{4}})?"
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
#: A column of notes that may hold actions among them ("Notes/Action Items", "Discussion & actions").
_TABLE_NOTES_COL = re.compile(r"\b(?:notes?|discussion|minutes|comments?)\b", re.I)
#: Other names of the action column, taken only beside both an owner and a deadline column
#: ("What | Who | When", "Item | Owner | Due date").
_TABLE_WHAT_COL = re.compile(r"^(?:what|items?|descriptions?|activit(?:y|ies)|deliverables?|work)[ \t]*:?$", re.I)
#: "When" names the deadline column in a who/what/when table.
_TABLE_WHEN_COL = re.compile(r"^when[ \t]*:?$", re.I)
_INITIALS = r"(?:[A-Z]{2,4}|All(?:[ \t]+[Mm]embers)?|Everyone|Team)"
_ROW_OWNERS = re.compile(rf"(?P<owners>{_INITIALS}(?:[ \t]*(?:,|&|/|and)[ \t]*{_INITIALS})*)[ \t]*$")
_FULL_NAME = r"[A-Z][a-z]+(?:[ \t]+[A-Z]\.)?[ \t]+[A-Z][a-z]+(?:[ \t]+\([A-Z][a-z]+\))?"
_ROW_FULL_NAME = re.compile(
    rf"(?<=[a-z.,)][ \t])(?P<owners>{_FULL_NAME}(?:[ \t]*(?:,|&|and)[ \t]*{_FULL_NAME})*)[ \t]*$"
)
#: pypdf keeps a run of spaces between table cells: the last cell before the date is the owner.
_ROW_GAP_OWNER = re.compile(r"[ \t]{2,}(?P<owners>[A-Z][\w.()]*(?:[ \t]+[\w.()&,/]+){0,5})[ \t]*$")


class TableRules(Run):
    """The table rules, mixed into the text scanner (:class:`~.text.TextRules`)."""

    def _table(self, lines: list[Line], i: int) -> int:
        """Consume an action table starting at ``lines[i]``; returns the lines consumed (0 if none)."""
        text = lines[i].text
        md = TABLE_ROW.match(text)
        if md:
            return self._markdown_table(lines, i)
        if not (_TABLE_OWNER_COL.search(text) and _TABLE_DUE_COL.search(text)):
            return 0
        context = [ln.text for ln in lines[max(0, i - 3) : i] if not ln.blank][-2:]
        if not (_TABLE_ACTION_COL.search(text) or any(SECTION_FULL.match(c.strip()) for c in context)):
            return 0
        return self._text_table(lines, i)

    def _markdown_table(self, lines: list[Line], i: int) -> int:
        header = [c.strip() for c in TABLE_ROW.match(lines[i].text).group(1).split("|")]  # type: ignore[union-attr]
        if i + 1 >= len(lines) or not TABLE_SEPARATOR.match(lines[i + 1].text):
            return 0
        found = _columns([clean_markup(h) for h in header])
        if found is None:
            return 0
        col_action, col_owner, col_due, col_status = found
        j = i + 2
        rows: list[tuple[Line, list[str]]] = []
        while j < len(lines):
            row = TABLE_ROW.match(lines[j].text)
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
                row_status(cells[col_status])
                if col_status is not None and col_status < len(cells)
                else "todo"
            )
            for action in html_items(cells[col_action]):
                self.add_task(action, line, None, "action-table", owner_hint=owner, due_ms=due, status=status)
        return j - i

    def _text_table(self, lines: list[Line], i: int) -> int:
        j = i + 1
        pending: list[Line] = []
        rows: list[tuple[list[Line], re.Match[str]]] = []
        while j < len(lines):
            line = lines[j]
            if line.blank or "\f" in line.text or HEADING.match(line.text):
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
            status = row_status(m.group("status") or "")
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

    def pdf_tables(self) -> None:
        """Tasks from the PDF's ruled action tables (module docstring)."""
        tables: list[dict[str, Any]] = self.doc.metadata.get("tables") or []
        offsets: list[int] = self.doc.metadata.get("page_offsets") or [0]
        order: str | None = None
        for table in tables:
            rows: list[list[str]] = table.get("rows") or []
            head = next((k for k, r in enumerate(rows[:4]) if _columns(r) is not None), None)
            if head is None:
                continue
            col_action, col_owner, col_due, col_status = _columns(rows[head])  # type: ignore[misc]
            page = int(table.get("page", 0))
            start = offsets[page] if page < len(offsets) else 0
            end = offsets[page + 1] if page + 1 < len(offsets) else len(self.doc.text)
            order = order or numeric_date_order(self.doc.text)
            found: list[tuple[int, str, str | None, int | None, Status]] = []
            for cells in rows[head + 1 :]:
                action = cells[col_action] if col_action < len(cells) else ""
                if not action or NOTHING.match(action):
                    continue
                at = _locate(self.doc.text, action, start, end)
                if at is not None:
                    start = at  # rows are in order: the next one is further down
                owner = cells[col_owner] if col_owner is not None and col_owner < len(cells) else None
                due = self._cell_date(cells[col_due], order) if col_due is not None and col_due < len(cells) else None
                status = row_status(cells[col_status]) if col_status is not None and col_status < len(cells) else "todo"
                found.append((at if at is not None else -1, action, owner or None, due, status))
            located = [at for at, *_ in found if at >= 0]
            if located:
                lo, hi = min(located), max(located)
                last = self._line_at(hi)
                # the table read by its layout replaces what the line rules made of its text
                self.items = [
                    it for it in self.items
                    if not (it.type == "task" and lo <= it.span.start <= last.end)
                ]
            for at, action, owner, due, status in found:
                line = self._line_at(at if at >= 0 else offsets[page] if page < len(offsets) else 0)
                self.add_task(action, line, None, "action-table", owner_hint=owner, due_ms=due, status=status)

    def _line_at(self, offset: int) -> Line:
        lines = self.all_lines
        k = bisect_right([ln.start for ln in lines], offset) - 1
        return lines[max(0, k)]

    def _cell_date(self, cell: str, order: str | None) -> int | None:
        cell = clean_markup(cell).strip()
        if not cell or NOTHING.match(cell) or re.fullmatch(r"asap", cell, re.I):
            return None
        if re.fullmatch(r"\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}", cell):
            return parse_numeric_date(cell, order, self.base_ms) if order else None
        if re.fullmatch(rf"\d{{1,2}}(?:st|nd|rd|th)?[ \t]+{MONTH_WORD}(?:[ \t]+\d{{4}})?", cell, re.I):
            # a minutes table is usually written (and exported) after its deadlines were set:
            # a date without a year is the one nearest the document date, not the next one
            return parse_numeric_date(cell, "DMY", self.base_ms)
        found = find_date(cell, self.base_ms)
        if found is None and len(cell.split()) <= 4:
            return parse_date_phrase(cell, self.base_ms)  # a deadline cell: "Friday", "next week"
        return found.ms if found else None


def row_status(text: str) -> Status:
    word = text.strip().lower()
    if word in ("done", "complete", "completed", "closed", "finished"):
        return "done"
    if word in ("ongoing", "in progress", "started"):
        return "in_progress"
    return "todo"


def _columns(row: list[str]) -> tuple[int, int | None, int | None, int | None] | None:
    """``(action, owner, due, status)`` column indexes when ``row`` is an action table's header
    (an action/task column and an owner or deadline column, all different), else None."""
    short = [c if len(c.split()) <= 5 else "" for c in row]
    action = next((k for k, c in enumerate(short) if _TABLE_ACTION_COL.search(c) and not _TABLE_NOTES_COL.search(c)
                   and not _TABLE_OWNER_COL.search(c) and not _TABLE_DUE_COL.search(c)), None)
    if action is None:
        # "Actions: Responsible" beside "Notes/Action Items": the column of "NAME to VERB" items
        combined = next((k for k, c in enumerate(short) if _TABLE_ACTION_COL.search(c) and _TABLE_OWNER_COL.search(c)), None)
        if combined is not None:
            due = next((k for k, c in enumerate(short) if _TABLE_DUE_COL.search(c) and k != combined), None)
            return combined, None, due, None
    owner = next((k for k, c in enumerate(short) if _TABLE_OWNER_COL.search(c) and k != action), None)
    due = next((k for k, c in enumerate(short) if _TABLE_DUE_COL.search(c) and k not in (action, owner)), None)
    status = next((k for k, c in enumerate(short) if re.search(r"\bstatus\b", c, re.I)), None)
    if due is None:
        due = next((k for k, c in enumerate(short) if _TABLE_WHEN_COL.match(c.strip()) and k not in (action, owner)), None)
    if action is None and owner is not None and due is not None:
        action = next((k for k, c in enumerate(short) if _TABLE_WHAT_COL.match(c.strip()) and k not in (owner, due)), None)
    if action is None or (owner is None and due is None):
        return None
    return action, owner, due, status


_HTML_ITEM = re.compile(r"<li\b[^>]*>(.*?)(?=</li>|<li\b|$)", re.I | re.S)
_HTML_TAG = re.compile(r"<[^>]+>")


def html_items(cell: str) -> list[str]:
    """The items of a table cell written in HTML, as GitBook and Notion export them: one per
    ``<li>``, else the cell without its tags (``<p><br></p>`` is empty)."""
    if "<" not in cell:
        return [cell]
    items = [m.group(1) for m in _HTML_ITEM.finditer(cell)] or [cell]
    out = [" ".join(_HTML_TAG.sub(" ", item).replace("&#x26;", "&").replace("&amp;", "&").split()) for item in items]
    return [item for item in out if item]


def _locate(text: str, cell: str, start: int, end: int) -> int | None:
    """Where the first words of ``cell`` are in ``text[start:end]`` (any whitespace between)."""
    words = cell.split()[:5]
    if not words:
        return None
    m = re.compile(r"\s+".join(re.escape(w) for w in words)).search(text, start, end)
    return m.start() if m else None
