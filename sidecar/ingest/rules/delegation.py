"""Who does what in minutes: work delegated under a person's name, and the topic of a bare action.

Shared by :mod:`.text`'s line scanner (signal ``person-group``, described there):

* :meth:`DelegationRules._person_group`: items under a list item that is only a person's name
  ("- Leon" then "- Update quiz question"), and ``Leon - Elicitation`` lines;
* :meth:`DelegationRules._is_person`: a name the record lists, or one that owns an action in it;
* :meth:`DelegationRules._parent_item`: the list item a line is nested under (the topic of "land");
* :meth:`DelegationRules._continues_paragraph` / :meth:`DelegationRules._with_wrapped_lines`: where a
  sentence of the record starts and ends across wrapped lines.
"""

from __future__ import annotations

import re

from sidecar.ingest.rules.base import HEADING, LIST_ITEM, Line
from sidecar.ingest.rules.minutes import PEOPLE_LABEL
from sidecar.ingest.rules.minutes import people as listed_people
from sidecar.ingest.rules.sections import SectionRules
from sidecar.ingest.rules.titles import clean_markup

__all__ = ["DelegationRules"]

#: A list item that is only a person's name ("Leon", "Christian Politis").
_PERSON_ONLY = re.compile(r"^[A-Z][a-z'’-]+(?:[ \t][A-Z][a-z'’-]+){0,2}$")
#: An item that reads as a person: a first and last name, or a name with an ``(@handle)``.
_FULL_NAME = re.compile(r"^[A-Z][a-z'’-]+[ \t]+[A-Z][a-z'’-]+\b|.*\(@")
#: "Leon - Elicitation", "Christian – Design sections".
_NAME_DASH_TASK = re.compile(r"^(?P<name>[A-Z][a-z'’-]+(?:[ \t][A-Z][a-z'’-]+)?)[ \t]+[-–—][ \t]+(?P<task>[A-Z]\S*.*)$")
#: "Samuel to complete …" at the start of a line: Samuel owns an action, so is a person.
_LINE_START_OWNER = re.compile(r"^[ \t]*(?:[-*•●][ \t]+)?([A-Z][a-z'’-]+)[ \t]+(?:to|will)[ \t]+[a-z]")
#: How a stand-up report starts: past tense, progress, status ("Finished …", "Starting today", "Waiting on …").
_REPORT = re.compile(
    r"^(?:\w+ed|\w+ing|done|finished|basically|almost|mostly|still|already|no|nothing|lots|gonna|will|should|"
    r"has|have|had|is|was|are|were|can|could|might|may|everyone|all)\b",
    re.I,
)


#: A name rather than work: three capitalised words first ("Major Project Presentation W11 …", an
#: event or a heading noted under a person).
_TITLE_CASE = re.compile(r"^[A-Z][\w'’-]*[ \t]+[A-Z][\w'’-]*[ \t]+[A-Z0-9][\w'’-]*\b")


def _is_report(text: str) -> bool:
    text = text.strip()
    return bool(_REPORT.match(text) or _TITLE_CASE.match(text))


class DelegationRules(SectionRules):
    """Delegation rules, mixed into the line scanner (:class:`~.text.TextRules`)."""

    _line_starters: frozenset[str] | None = None

    @property
    def people(self) -> frozenset[str]:
        """Lower-cased name words of the people the record lists (:func:`.minutes.people`)."""
        if self._people is None:
            self._people = listed_people(self.doc)
        return self._people

    def _person_group(self, lines: list[Line], i: int) -> int:
        """Work delegated under a person's name in minutes ("- Leon" then "- Update quiz question",
        "- Move a quiz question"; or "- Leon - Elicitation"): each item is a task that person owns,
        except reports ("Finished his part", "Starting today", "Waiting on …"). Returns the lines
        consumed (0 when ``lines[i]`` does not start such a group)."""
        m = LIST_ITEM.match(lines[i].text)
        if m is None:
            return 0
        body = clean_markup(m.group("body")).strip()
        dash = _NAME_DASH_TASK.match(body)
        if dash and self._is_person(dash.group("name")):
            if self._has_children(lines, i, lines[i].indent):
                return 0  # "Saulo - Website redesign" over his report's items: a topic, not a task
            if not _is_report(dash.group("task")):
                self.add_task(dash.group("task"), lines[i], None, "person-group", owner_hint=dash.group("name"))
            return 1
        if not _PERSON_ONLY.match(body) or not self._is_person(body):
            return 0
        k = i - 1
        while k >= 0 and (LIST_ITEM.match(lines[k].text) or (lines[k].blank and k > i - 60)):
            k -= 1
        if k >= 0 and PEOPLE_LABEL.match(lines[k].text):
            return 0  # inside an attendee list ("Attendees:", "## Present")
        j = i + 1
        items: list[tuple[Line, str]] = []
        while j < len(lines) and j < i + 30:
            if lines[j].blank and j + 1 < len(lines) and not lines[j + 1].blank and j == i + 1:
                j += 1  # "- Samuel", a blank line, then his items
            item = LIST_ITEM.match(lines[j].text)
            if item is None or lines[j].indent < lines[i].indent:
                break
            text = clean_markup(item.group("body")).strip()
            if (_PERSON_ONLY.match(text) and self._is_person(text)) or text.split()[0].lower() in self.people:
                break  # the next person's group, or a list of people (an attendee list)
            if _LINE_START_OWNER.match(text) or _NAME_DASH_TASK.match(text):
                break  # "Samuel to …", "Leon - …": someone else's item
            items.append((lines[j], item.group("body")))
            j += 1
        if not items or 2 * sum(bool(_FULL_NAME.match(clean_markup(b).strip())) for _, b in items) > len(items):
            return 0  # names under a name: a list of people, not of work
        for line, raw in items:
            if not _is_report(clean_markup(raw).strip()):
                self.add_task(raw, line, None, "person-group", owner_hint=body)
        return j - i

    def _is_person(self, name: str) -> bool:
        """A name the record lists, or one that owns an action elsewhere in it ("Samuel to …")."""
        first = name.split()[0].lower()
        if first in self.people:
            return True
        if len(first) >= 3 and any(p.startswith(first) and p[:1].isalpha() for p in self.people):
            return True  # a short form of a listed first name: "Chris" (Christian), "Sam" (Samuel)
        if self._line_starters is None:
            self._line_starters = frozenset(
                w.group(1).lower() for ln in self.all_lines if (w := _LINE_START_OWNER.match(ln.text))
            )
        return first in self._line_starters

    def _parent_item(self, line: Line) -> str | None:
        """The text of the list item ``line`` is nested under (within 30 lines, up to a heading),
        without its links' targets and issue numbers: the topic a bare action ("land", "will
        comment") is about."""
        lines = self.all_lines
        for j in range(line.number - 2, max(-1, line.number - 32), -1):
            above = lines[j]
            if above.blank:
                continue
            if HEADING.match(above.text):
                return None
            if above.indent < line.indent:
                m = LIST_ITEM.match(above.text)
                if m is None:
                    return None
                topic = re.sub(r"\[#?\d+\]\([^)]*\)|\(#\d+\)|#\d+\b", " ", m.group("body"))
                topic = clean_markup(topic).strip(" :-–")
                return topic if 2 <= len(topic.split()) <= 15 else None
        return None

    def _continues_paragraph(self, line: Line) -> bool:
        """A line that starts in lower case right under a paragraph line that ends mid-sentence."""
        if not line.text.lstrip()[:1].islower() or line.number < 2:
            return False
        above = self.all_lines[line.number - 2].text.rstrip()
        return bool(above) and not LIST_ITEM.match(above) and not HEADING.match(above) and above[-1] not in ".!?:"

    def _with_wrapped_lines(self, line: Line) -> str:
        """A list item's text with the lines it wraps onto (indented under it, no marker of their
        own; at most three): "Joe will open issues to" / "help identify the representative"."""
        if not LIST_ITEM.match(line.text):
            return line.text
        parts = [line.text.rstrip()]
        lines = self.all_lines
        for j in range(line.number, min(len(lines), line.number + 3)):
            nxt = lines[j]
            if nxt.blank or nxt.indent <= line.indent or LIST_ITEM.match(nxt.text) or HEADING.match(nxt.text):
                break
            parts.append(nxt.text.strip())
        return " ".join(parts)
