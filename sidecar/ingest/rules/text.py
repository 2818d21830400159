"""Text, Markdown, HTML and PDF text: tasks from the lines where actions live.

Signals, by ``ExtractedItem.signal``:

``checkbox``
    A task box, after a list marker or on its own: ``- [ ]``/``[ ]``/``☐`` → todo, ``[x]``,
    ``[✓]``, ``☑``, ``☒``, ``✅`` → done, ``[~]`` or ``[/]`` → in progress (``[-]``, cancelled, is
    skipped). Struck-out words (``~~…~~``) are dropped from the title. Any task whose text is
    struck out entirely, or carries a done marker (``(done)``, ``[done]``, ``DONE:``, a check
    mark at either end), is reported with status ``done`` (:func:`.titles.done_marker`).
``todo-line`` / ``action-line`` / ``ai-line`` / ``next-step-line`` / ``follow-up-line``
    A line (optionally a list item, optionally emphasised as ``*AI:*`` or ``**Action:**``)
    starting with ``TODO`` (upper case; ``todo:``/``to-do:`` need the colon), ``Action:``, ``Actions:``, ``Action point(s):``, ``Next action(s):``,
    ``Action item(s):``, ``AI:`` (upper case, as in W3C/WebAssembly minutes), ``Next step(s):``
    or ``Follow-up(s):``. ``AI(JF):`` / ``Action item (Ana):`` name the owner.
``action-section``
    Items under a heading or label line that *is* such a label — ``## Action items``,
    ``### TODO``, ``Action Points:``, ``Action List``, ``Next steps:``, ``Items deferred`` — or a short line ending
    in ``action items:``. The section's list items (or, when the first line after the label is
    not a list item, its plain lines up to a blank line) are tasks. It ends at the next
    heading, a rule line (``---``), a blank line followed by text, or text outdented to the
    label. Items of one word (group labels such as "Design") are skipped; items grouped under
    a person's name (``- Ana`` over her items) are tasks that person owns, as is ``Ana: …``.
``person-group``
    In minutes, work delegated under a person's name: list items under an item that is only a
    listed name ("- Leon" then "- Update quiz question"), or ``Leon - Elicitation``. Reports
    ("Finished …", "Starting today", "Will …") are skipped; so are attendee lists (under a
    "Present"/"Attendees" label, or mostly full names) and names that own no action.
``todo-marker``
    A list item ending in ``- TODO`` (todo) or ``- DONE`` (done).
``todo-file``
    In a file *named* as a to-do list (``TODO.md``, ``project-TODO.txt``, ``todo-list.md``),
    every list item of two words or more, sub-items too (not group labels such as ``PAM`` or
    ``Bugs:``, nor remarks under an item). A to-do file without list markers is read line by
    line: each line (with its continuation lines) is an item.
``action-table``
    See :mod:`.tables`.
``next-meeting``
    A timeline entry from a ``Next meeting: 5th April, 2pm`` line, or ``Next Meeting`` followed
    by a ``Date:`` line, or by a line that is only a date (a PDF form's label over its value).
"""

from __future__ import annotations

import re
from bisect import bisect_left

from sidecar.ingest.dates import find_date, parse_date_phrase
from sidecar.ingest.items import EmailMessageInfo, Status
from sidecar.ingest.rules.base import (
    CHECKBOX,
    DONE_MARKS,
    FENCE,
    HEADING,
    LIST_ITEM,
    Line,
)
from sidecar.ingest.rules.delegation import DelegationRules
from sidecar.ingest.rules.minutes import (
    dated_event,
    email_request,
    looks_like_minutes,
    minutes_action,
    strip_prefixes,
)
from sidecar.ingest.rules.sections import (
    NUMBERING,
    PERSON_LINE,
    Section,
    is_commentary,
    is_group_label,
    is_todo_file,
)
from sidecar.ingest.rules.titles import clean_markup, tidy

__all__ = ["TextRules", "is_todo_file"]

_MARKER = re.compile(r"^(?P<body>.*\S)[ \t]+[-–:][ \t]*(?P<mark>TODO|DONE)!*[ \t]*$")
_NEXT_MEETING = re.compile(
    r"^[ \t]*(?:[-*+•][ \t]+)?(?:\*\*)?next[ \t]+meeting(?:\*\*)?[ \t]*(?:[:\-–][ \t]*)?(?P<rest>.*)$", re.I
)
#: A line that can be a date alone: starts with a weekday, a month or a digit, and is short.
_DATE_ONLY = re.compile(
    r"^[ \t]*(?:(?:mon|tue|wed|thu|fri|sat|sun)[a-z]*\.?,?[ \t]+|(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?[ \t]+\d|\d)"
    r"[^\n]{0,60}$",
    re.I,
)
#: An action of one or two words that needs its topic ("land", "comment", "follow up").
_BARE_ACTION = re.compile(r"^[ \t]*[a-z]+(?:[ \t]+(?:up|on|in|back|it|this|that|them))?[ \t.!]*$")


#: An action that points back at its topic: "take this on", "dedicate some time to address this".
_POINTS_BACK = re.compile(r"\b(?:this|it|that)(?:[ \t]+(?:on|up|over|forward))?[ \t.!]*$")


def _heading_topic(heading: str | None) -> str | None:
    """A heading as the topic of the actions under it, without issue numbers (2–15 words)."""
    if not heading:
        return None
    topic = re.sub(r"\[?#\d+\]?(?:\([^)]*\))?", " ", heading).strip(" :*-–")
    return topic if 2 <= len(topic.split()) <= 15 else None


#: An agenda item that is an issue's or pull request's title, its link last:
#: "* Chore: Move to OpenJS slack (TBD) [#421](https://github.com/nodejs/nodejs.dev/issues/421)".
_ISSUE_TITLE = re.compile(r"\[#\d+\]\(https?://[^)\s]+/(?:issues|pull)/\d+\)[ \t*_]*$")
_DATE_FIELD = re.compile(r"^[ \t]*date[ \t]*:[ \t]*(?P<value>\S.*)$", re.I)
_TIME_FIELD = re.compile(r"^[ \t]*time[ \t]*:[ \t]*(?P<value>\S.*)$", re.I)
_EMAIL_STOP = re.compile(
    r"^(?:-- ?|-{2,}[ \t]*(?:original message|forwarded message)[ \t]*-*|_{10,}|on\b.{0,200}\bwrote:)[ \t]*$",
    re.IGNORECASE,
)


def _standup_person(lines: list[Line], i: int) -> str | None:
    """The "Name:" line that heads a stand-up entry above ``lines[i]`` (within 4 lines)."""
    for j in range(i - 1, max(-1, i - 5), -1):
        m = PERSON_LINE.match(lines[j].text)
        if m:
            return m.group("name")
        if lines[j].blank:
            return None
    return None


class TextRules(DelegationRules):
    """The line scanner: one pass over a region of ``doc.text`` (a whole file, or one message)."""

    def region(self, start: int, end: int) -> list[Line]:
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
            if todo_file and not any(LIST_ITEM.match(ln.text) or CHECKBOX.match(ln.text) for ln in lines):
                self._plain_todo(lines)
            else:
                self._scan(lines, todo_file=todo_file, email=email)
        finally:
            self.base_ms = saved_base

    def _scan(self, lines: list[Line], *, todo_file: bool, email: bool) -> None:
        in_fence = False
        section: Section | None = None
        list_base: int | None = None  # indent of the current list's top-level items
        last_heading: str | None = None
        i = 0
        n = len(lines)
        while i < n:
            line = lines[i]
            text = line.text
            if not line.blank:
                if LIST_ITEM.match(text):
                    if list_base is None or line.indent < list_base:
                        list_base = line.indent
                elif HEADING.match(text) or line.indent <= (list_base or 0):
                    list_base = None
            md = self.markdown
            if md is not None:
                if line.number - 1 in md.code or line.number - 1 in md.covered:
                    i += 1  # code, HTML, a setext underline: no rules apply
                    continue
            elif FENCE.match(text):
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

            heading = self._heading(line)
            if section is not None and self._section_ends(section, line, heading, lines, i):
                section = None

            checkbox = CHECKBOX.match(text)
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
                if signal == "will-do-line" and owner is None:
                    owner = _standup_person(lines, i)
                if rest:
                    self.add_task(rest, line, None, signal, owner_hint=owner, dash_owner=signal == "ai-line")
                    if self.minutes:
                        self._dated_event(line, last_heading)  # "ACTION: schedule the review on 7 May"
                    i += 1
                    continue
                section = Section(indent=line.indent)
                i += 1
                continue

            if self._is_section_header(text, heading):
                number = NUMBERING.match(clean_markup(heading if heading is not None else text).strip())
                section = Section(
                    indent=line.indent,
                    todo=self._is_todo_header(text, heading),
                    depth=number.group().strip().rstrip(".").count(".") + 1 if number else 0,
                )
                i += 1
                continue
            if heading:
                last_heading = clean_markup(heading).strip() or last_heading
            if section is None and self.minutes and not line.blank:
                consumed = self._person_group(lines, i)
                if consumed:
                    i += consumed
                    continue
            if not line.blank and section is None and (self.minutes or email) and self._sentence_rules(
                line, last_heading, email=email
            ):
                i += 1
                continue
            if heading:
                i += 1
                continue

            marker_item = LIST_ITEM.match(text)
            marker = _MARKER.match(marker_item.group("body")) if marker_item else None
            if marker_item and marker:
                status: Status = "done" if marker.group("mark") == "DONE" else "todo"
                self.add_task(marker.group("body"), line, None, "todo-marker", status=status)
                i += 1
                continue

            nested = marker_item is not None and list_base is not None and line.indent > list_base
            if section is not None and not line.blank and self.minutes and self._dated_event(line, last_heading):
                i += 1
                continue
            if section is not None and not line.blank:
                grouped = section.group_indent is not None and line.indent > section.group_indent
                i = self._section_item(
                    lines, i, section, None if nested and not section.todo and not grouped else marker_item
                )
                continue
            if todo_file and marker_item:
                body, last = self._joined(lines, i, marker_item)
                if nested and is_commentary(body):
                    pass  # a remark under an item ("It looks like …", "provided by …")
                elif not self._has_children(lines, last, line.indent) or not is_group_label(body):
                    # an item, or an action with sub-items (those are items of their own)
                    self.add_task(body, line, lines[last], "todo-file", min_words=2)
                i = last + 1
                continue
            i += 1

    @property
    def minutes(self) -> bool:
        """The document reads like a meeting record (sentence rules of :mod:`.minutes` apply)."""
        if self._minutes is None:
            self._minutes = self.doc.kind != "email" and looks_like_minutes(self.doc)
        return self._minutes

    def _sentence_rules(self, line: Line, heading: str | None, *, email: bool) -> bool:
        """Actions and dated events written as sentences (minutes), requests (email)."""
        text = line.text
        if email:
            request = email_request(text)
            return request is not None and self.add_task(request, line, None, "email-request")
        found = False
        if _ISSUE_TITLE.search(text):
            return self._dated_event(line, heading)  # an agenda item naming an issue: its title, no action
        if self._continues_paragraph(line):
            return self._dated_event(line, heading)  # "…, / please comment …": the sentence began above
        text = self._with_wrapped_lines(line)
        body, speaker = strip_prefixes(text)
        label = self._label(body) if speaker else None
        known = self.people
        action = (
            minutes_action(f"{speaker}: {label[1]}", known) if label and label[1] else minutes_action(text, known)
        )
        if label and label[1] and action is None:
            action = (label[1], speaker)
        if action is not None:
            title = action[0]
            bare = clean_markup(title)
            if _BARE_ACTION.match(bare) or _POINTS_BACK.search(bare):
                topic = self._parent_item(line) or _heading_topic(heading)
                if topic:
                    title = f"{title} – {topic}"  # "Myles takes action to land" under "Draft Staging Process"
            found = self.add_task(title, line, None, "minutes-action", owner_hint=action[1])
        return self._dated_event(line, heading) or found

    def _dated_event(self, line: Line, heading: str | None) -> bool:
        event = dated_event(line.text, self.doc, self.base_ms, heading)
        if event is None:
            return False
        return self.add(
            type="timeline", title=tidy(event[0]), date=event[1], span=self.span(line), signal="dated-event"
        )

    def _checkbox(self, lines: list[Line], i: int, m: re.Match[str]) -> int:
        line = lines[i]
        mark = m.group("mark") or m.group("box")
        if mark == "-":
            return i + 1
        status: Status = "todo" if mark in " ☐" else ("done" if mark in DONE_MARKS else "in_progress")
        body = m.group("body")
        # deeper-indented lines below (that are not boxes themselves) describe the item
        details: list[str] = []
        j = i + 1
        while j < len(lines) and len(details) < 10:
            nxt = lines[j]
            if nxt.blank:
                break
            if nxt.indent <= line.indent or CHECKBOX.match(nxt.text) or HEADING.match(nxt.text):
                break
            details.append(clean_markup(LIST_ITEM.sub(r"\g<body>", nxt.text).strip()))
            j += 1
        self.add_task(body, line, None, "checkbox", status=status, description="\n".join(details) or None)
        return j  # the detail lines are the item's description, not items of their own

    def _next_meeting(self, lines: list[Line], i: int, rest: str) -> bool:
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
            # a label over its value, as PDF tables and forms give it: "Next meeting" alone, then
            # a line that is a date ("Wednesday, September 30, 2020 at 10:10am EDT")
            nxt_line = next((ln for ln in lines[i + 1 : i + 4] if not ln.blank), None)
            if nxt_line is not None and _DATE_ONLY.match(nxt_line.text):
                found = find_date(nxt_line.text, self.base_ms)
                rest_words = (nxt_line.text[: found.start] + nxt_line.text[found.end :]).split() if found else []
                if found and len(rest_words) <= 3:
                    phrase, last = nxt_line.text.strip(), nxt_line
        if not phrase:
            return False
        found = find_date(phrase, self.base_ms)
        ms = found.ms if found else parse_date_phrase(phrase.split("(")[0], self.base_ms)
        if ms is None:
            return False
        title = "Next meeting" + (f" – {self.doc.title}" if self.doc.title else "")
        return self.add(
            type="timeline", title=tidy(title), date=ms, span=self.span(line, last), signal="next-meeting"
        )
