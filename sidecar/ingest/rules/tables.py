"""Action tables: Markdown tables and PDF-text tables with an action and an owner/deadline column.

Signal ``action-table``. A Markdown table counts when its header has an action/task column and
an owner or deadline column; a PDF-text table when its header line names an owner/responsible
column and a deadline/due column (under an "Actions" heading or with "Action" in the header). A
text row must end in its date (``04/03/19``, ``01 SEP``, ``N/A``) and optional status; rows that
do not are dropped. Numeric dates are read day- or month-first only when the document proves the
order (a field above 12), else the due date is left empty.
"""

from __future__ import annotations

import re

from sidecar.ingest.dates import find_date, numeric_date_order, parse_numeric_date
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
        col_action = next(
            (k for k, h in enumerate(header) if _TABLE_ACTION_COL.fullmatch(clean_markup(h))), None
        )
        col_owner = next((k for k, h in enumerate(header) if _TABLE_OWNER_COL.search(h)), None)
        col_due = next((k for k, h in enumerate(header) if _TABLE_DUE_COL.search(h)), None)
        col_status = next((k for k, h in enumerate(header) if re.search(r"\bstatus\b", h, re.I)), None)
        if col_action is None or (col_owner is None and col_due is None):
            return 0
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
            self.add_task(
                cells[col_action], line, None, "action-table", owner_hint=owner, due_ms=due, status=status
            )
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
        return found.ms if found else None


def row_status(text: str) -> Status:
    word = text.strip().lower()
    if word in ("done", "complete", "completed", "closed", "finished"):
        return "done"
    if word in ("ongoing", "in progress", "started"):
        return "in_progress"
    return "todo"
