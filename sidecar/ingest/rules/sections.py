"""Where actions live in text: action sections, label lines and to-do files (shared by
:mod:`.text`'s line scanner; the signals are described there).

* :class:`Section`: the state of an open action section (``## Action items``, ``Next steps:``,
  ``### TODO``) — how it ends, which of its items are tasks, items grouped under a name.
* Label lines (``TODO:``, ``Action:``, ``AI(JF):``, ``Next steps:``, ``Will do:``).
* To-do files: which files are to-do lists, remarks under an item, files without list markers.
* PDF text: wrapped lines and list items joined with their continuation lines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sidecar.ingest.items import Document
from sidecar.ingest.rules.base import (
    CHECKBOX,
    FENCE,
    HEADING,
    LIST_ITEM,
    RULE_LINE,
    SECTION_FULL,
    TABLE_ROW,
    Line,
)
from sidecar.ingest.rules.markdown import Structure, structure
from sidecar.ingest.rules.tables import TableRules
from sidecar.ingest.rules.titles import clean_markup

_SECTION_TRAILING = re.compile(
    r"\b(?:action[ \t]+items?|action[ \t]+points?|next[ \t]+steps?)[ \t]*:$", re.IGNORECASE
)

_LABEL = re.compile(
    r"""^[ \t]*(?:(?:[-*+•]|\d{1,3}[.)])[ \t]+)?
    (?P<em>\*\*|\*|__|_)?
    (?P<label>TODO|to-?do|action[ \t]+items?|action[ \t]+points?|actions?|AI|next[ \t]+steps?|next[ \t]+actions?|follow[- ]?ups?|will[ \t]+do)
    (?:[ \t]*\((?P<owner>[^()]{1,60})\))?
    (?P<colon1>[ \t]*:)?
    (?:\*\*|\*|__|_)?
    (?P<colon2>[ \t]*:)?
    [ \t]*(?P<rest>.*)$""",
    re.IGNORECASE | re.VERBOSE,
)
#: Outline numbering before a heading's words ("1.1 Action Items", "3. Actions").
NUMBERING = re.compile(r"^(?:\d{1,2}(?:\.\d{1,2})*\.?|[A-Z]\.)[ \t]+")
_TODO_HEADER = re.compile(r"^(?:to[- ]?dos?|to[ \t]+do(?:[ \t]+list)?|todo[ \t]+list|open[ \t]+tasks|tasks)[ \t]*:?$", re.I)
#: A field label that opens a new part of a PDF form or minutes ("Meeting Conclusion:", "Issues:").
_FIELD_LABEL = re.compile(r"^[A-Z][\w’'&/()-]*(?:[ \t]+[\w’'&/()-]+){0,4}[ \t]*:(?:[ \t]|$)")
#: A numbered outline line ("3.1.1 First 48 Hours", "2. Discussion") in PDF text.
_OUTLINE = re.compile(r"^(?P<num>\d{1,2}(?:\.\d{1,2})+\.?|\d{1,2}\.)[ \t]+[A-Z][^.!?:]{0,60}$")
TODO_FILE = re.compile(r"(?:^|[-_. ])to-?dos?(?:[-_ ]?list)?$", re.I)


def is_todo_file(doc: Document) -> bool:
    return bool(TODO_FILE.search(doc.path.stem)) and doc.kind in ("markdown", "text")


@dataclass
class Section:
    indent: int
    mode: str | None = None  # "list" | "plain", fixed by the first line after the label
    items: int = 0
    blank_run: int = 0
    todo: bool = False  # a to-do list ("## Todo"): nested items are tasks, parents group them
    depth: int = 0  # outline depth of a numbered header ("1.1 Action Items" → 2), 0 if none
    skip_line: bool = False  # the current line is a group label inside the section
    group_indent: int | None = None  # items deeper than this are under a person's name ("- Ana")
    group_owner: str | None = None


PERSON_LINE = re.compile(r"^[ \t]*(?P<name>[A-Z][\w'’.-]*(?:[ \t][A-Z][\w'’.-]*)?)[ \t]*:[ \t]*$")



def is_group_label(text: str) -> bool:
    """A parent list item that names a group of items rather than an action: it ends with a
    colon ("64-bit builds on HP-UX:", "edit and delete design, inc:") or is one or two words
    ("PAM", "for delete", "layout stuff")."""
    clean = clean_markup(text).strip()
    return clean.endswith(":") or len(re.findall(r"\w+", clean)) <= 2


#: How a remark under a to-do item starts: a pronoun subject, a hedge, a reference or a
#: participle ("It looks like we could …", "maybe …", "see …", "provided by …").
_COMMENTARY = re.compile(
    r"^(?:it|it[’']s|this|that|these|those|there|which|maybe|perhaps|probably|possibly|note|n\.?b\.?"
    r"|e\.g\.|i\.e\.|see|cf\.?|provided|based|done|fixed|works|currently|because|since|we[ \t]+(?:could|might|may))\b",
    re.I,
)


def is_commentary(text: str) -> bool:
    """A nested to-do line that comments on the item above it rather than naming an action."""
    return bool(_COMMENTARY.match(clean_markup(text).strip()))


def _is_prose(line: Line, nxt: Line | None, prev: Line | None) -> bool:
    """A paragraph line, not an action: long, continuing the line before (which ended mid-
    sentence), or wrapped onto a next line that continues it."""
    text = line.text.strip()
    if len(text) > 100 or text[:1].islower():
        return True
    if prev is not None and not prev.blank and len(prev.text.strip()) > 80 and prev.text.rstrip()[-1:] not in ".!?:":
        return True
    return nxt is not None and not nxt.blank and nxt.text.strip()[:1].islower() and text[-1:] not in ".!?:"


class SectionRules(TableRules):
    """Section, label and to-do file rules, mixed into the line scanner (:class:`~.text.TextRules`)."""

    def _plain_todo(self, lines: list[Line]) -> None:
        """A to-do file written without list markers: each line is an item, with the lines that
        continue it (indented under it, or starting in lower case after a line that ran to a
        wrap width of 60+ characters without ending a sentence); blank lines, headings (``#``, underlined, a short all-capitals line) and
        group labels ending in ``:`` separate them. ``x `` before an item (todo.txt) marks it done."""
        k = 0
        n = len(lines)
        while k < n:
            line = lines[k]
            text = line.text.strip()
            underlined = k + 1 < n and bool(re.fullmatch(r"[ \t]*(?:=+|-+)[ \t]*", lines[k + 1].text))
            group = (
                k + 1 < n and not lines[k + 1].blank and lines[k + 1].indent > line.indent
                and len(text.split()) <= 3 and text[-1:] not in ".!?"
            )  # "Terminal" over indented items: a group heading, not an item with continuations
            if (
                group
                or line.blank
                or underlined
                or RULE_LINE.match(line.text)
                or self._heading(line) is not None
                or text.endswith(":")
                or (text.isupper() and len(text.split()) <= 4)
                or FENCE.match(line.text)
            ):
                k += 2 if underlined else 1
                continue
            body = text
            j = k + 1
            while j < n and j <= k + 4:
                nxt = lines[j]
                piece = nxt.text.strip()
                if nxt.blank or RULE_LINE.match(nxt.text) or piece.endswith(":"):
                    break
                wrapped = len(lines[j - 1].text.rstrip()) >= 60 and body[-1:] not in ".!?"
                if nxt.indent > line.indent or (piece[:1].islower() and wrapped):
                    body = f"{body} {piece}"
                    j += 1
                    continue
                break
            done = re.match(r"x[ \t]+(?:\d{4}-\d{2}-\d{2}[ \t]+)?(?=\S)", body)
            if done:
                body = body[done.end():]
            self.add_task(body, line, lines[j - 1], "todo-file", min_words=2, status="done" if done else "todo")
            k = j

    @property
    def markdown(self) -> Structure | None:
        """The parsed Markdown structure (headings, code) of a Markdown document, else None."""
        if self.doc.kind != "markdown":
            return None
        if self._markdown is None:
            self._markdown = structure(self.doc.text)
        return self._markdown  # type: ignore[no-any-return]

    def _heading(self, line: Line) -> str | None:
        """The heading text when ``line`` is a heading (Markdown: by the parser; other text:
        an ATX ``#`` line), else None."""
        md = self.markdown
        if md is not None:
            return md.headings.get(line.number - 1)
        m = HEADING.match(line.text)
        return m.group("text") if m else None

    @staticmethod
    def _is_todo_header(text: str, heading: str | None) -> bool:
        inner = NUMBERING.sub("", clean_markup(heading if heading is not None else text).strip())
        return bool(_TODO_HEADER.match(inner))

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
        elif lower == "will do":
            if not has_colon or not rest:
                return None
            signal = "will-do-line"  # a stand-up's "Will Do:" (after "Done:"), owner from the name above
        else:
            if not has_colon:
                return None
            signal = "follow-up-line"
        if rest.startswith(("*", "_")) and m.group("em") and rest.lstrip("*_").strip() == "":
            rest = ""
        return signal, rest, m.group("owner")

    @staticmethod
    def _is_section_header(text: str, heading: str | None) -> bool:
        inner = heading if heading is not None else text
        inner = NUMBERING.sub("", clean_markup(inner).strip())
        if heading is None and inner[:1].islower():
            return False  # a label line starts with a capital; "what needs to be done" continues a line
        if SECTION_FULL.match(inner):
            return True
        return bool(heading is None and _SECTION_TRAILING.search(inner) and len(inner.split()) <= 12)

    def _section_ends(
        self, section: Section, line: Line, heading: str | None, lines: list[Line], i: int
    ) -> bool:
        if self.doc.kind == "pdf" and "\f" in line.text and not line.text.strip(" \t\f"):
            return False  # a page break is layout: the section goes on on the next page
        if heading is not None or RULE_LINE.match(line.text) or "\f" in line.text:
            return True
        if line.blank:
            section.blank_run += 1
            return section.mode == "plain" and section.items > 0
        after_blank = section.blank_run > 0
        section.blank_run = 0
        is_item = bool(LIST_ITEM.match(line.text) or CHECKBOX.match(line.text))
        stripped = line.text.strip()
        if _FIELD_LABEL.match(stripped) and not is_item and stripped.endswith(":") and section.mode is not None:
            return True  # "Meeting Conclusion:" after the list
        outline = _OUTLINE.match(stripped)
        if outline and not is_item:
            depth = outline.group("num").rstrip(".").count(".") + 1
            if section.depth and depth <= section.depth:
                return True  # "3.2 Discussion" after "3.1 Action Items"
            section.skip_line = True  # "3.1.1 First 48 Hours": a group label inside the section
            return False
        if section.mode is None:
            section.mode = "list" if is_item else "plain"
            return False
        if section.mode == "list" and not is_item:
            deeper = line.indent > section.indent
            if after_blank or not deeper:
                # a wrapped PDF line continues the previous item; anything else ends the list
                return not (self.doc.kind == "pdf" and section.items > 0 and not after_blank)
        return False

    def _section_item(self, lines: list[Line], i: int, section: Section, item: re.Match[str] | None) -> int:
        line = lines[i]
        if section.skip_line:
            section.skip_line = False
            return i + 1
        if section.mode == "plain" and item is not None:
            section.mode = "list"  # prose first, then the list: the list items are the actions
        if section.mode == "plain":
            nxt = lines[i + 1] if i + 1 < len(lines) else None
            if section.items >= 12 or _is_prose(line, nxt, lines[i - 1] if i > 0 else None):
                return i + 1
            section.items += 1
            self.add_task(line.text.strip(), line, None, "action-section", dash_owner=True)
            return i + 1
        if item is None:
            return i + 1  # indented detail under an item
        body, last = self._joined(lines, i, item)
        parent = self._has_children(lines, last, line.indent)
        if section.group_indent is not None and line.indent <= section.group_indent:
            section.group_indent = section.group_owner = None
        name = PERSON_LINE.match(body if body.rstrip().endswith(":") else f"{body}:")
        if parent and name and not section.todo and len(body.split()) <= 3:
            # "- Ana" over her actions: the items below are tasks, Ana owns them
            section.group_indent, section.group_owner = line.indent, name.group("name")
            return last + 1
        if (parent and section.todo and is_group_label(body)) or body.rstrip().endswith(":"):
            return last + 1  # an item that groups the ones below it ("First week:") is no task
        if section.todo and line.indent > section.indent and is_commentary(body):
            return last + 1
        section.items += 1
        self.add_task(
            body, line, lines[last], "action-section", dash_owner=True, min_words=2 if parent else 1,
            owner_hint=section.group_owner,
        )
        return last + 1

    def _joined(self, lines: list[Line], i: int, item: re.Match[str]) -> tuple[str, int]:
        """A list item's text with its wrapped continuation lines (at most 4), and its last index."""
        body = item.group("body").strip()
        base_indent = lines[i].indent
        j = i + 1
        while j < len(lines) and j <= i + 4:
            nxt = lines[j]
            if (
                nxt.blank
                or LIST_ITEM.match(nxt.text)
                or HEADING.match(nxt.text)
                or RULE_LINE.match(nxt.text)
            ):
                break
            if self._label(nxt.text) is not None or TABLE_ROW.match(nxt.text) or "\f" in nxt.text:
                break
            if self.doc.kind != "pdf" and nxt.indent <= base_indent:
                break
            if self._is_section_header(nxt.text, None):
                break
            if self.doc.kind == "pdf" and not self._wraps(lines[j - 1], nxt):
                break
            piece = nxt.text.strip()
            if body.endswith("-") and piece[:1].islower():
                body = body[:-1] + piece
            else:
                body = f"{body} {piece}"
            j += 1
        return body, j - 1

    @property
    def line_width(self) -> int:
        """The width a PDF's text lines wrap at: the 90th percentile of its line lengths."""
        if self._width is None:
            lengths = sorted(len(ln.text.rstrip()) for ln in self.all_lines if ln.text.strip())
            self._width = lengths[int(len(lengths) * 0.9)] if lengths else 0
        return self._width

    def _wraps(self, line: Line, nxt: Line) -> bool:
        """PDF text has no blank lines between items: ``nxt`` continues ``line`` only when it
        starts in lower case, or ``line`` ran to the wrap width and ``nxt`` opens no new field
        ("Meeting Conclusion:", "3.2 Discussion")."""
        piece = nxt.text.strip()
        if _FIELD_LABEL.match(piece) or _OUTLINE.match(piece):
            return False
        if piece[:1].islower() or piece[:1] in "(&":
            return True
        return len(line.text.rstrip()) >= 0.75 * self.line_width and line.text.rstrip()[-1:] not in ".!?:"

    @staticmethod
    def _has_children(lines: list[Line], i: int, indent: int) -> bool:
        for j in range(i + 1, len(lines)):
            if lines[j].blank:
                continue
            return bool(LIST_ITEM.match(lines[j].text)) and lines[j].indent > indent
        return False
