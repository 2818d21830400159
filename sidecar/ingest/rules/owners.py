"""Owners, priority and due date of one task line (shared by every document kind).

Owners come only from explicit forms — a leading or trailing ``@name``, a leading ``For Name:``, ``(Owner: …)`` /
``Owner: …``, a leading ``Name to …``/``Name will …`` where the caller allows it, ``Name - …`` or
``Name: …`` in an action section, an owner hint (table column, ``AI(…)`` label). Priority comes only from
explicit markers: ``!high`` / ``!medium`` / ``!low``, ``(P0)``–``(P3)``, ``priority: high``, the
words *urgent* and *ASAP*. Due dates come from explicit date phrases
(:func:`sidecar.ingest.dates.find_date`) read relative to the reference time given.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sidecar.ingest.dates import find_date
from sidecar.ingest.items import Priority
from sidecar.ingest.rules.titles import clean_markup, tidy

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
#: "Ana: book the room" / "Ana Lima: …" in an action section: the name before the colon owns it
#: (a field label such as "Note:" or "Update:" does not).
_COLON_OWNER = re.compile(r"^(?P<owners>[A-Z][a-z'’-]+(?:[ \t][A-Z][a-z'’-]+)?(?:[ \t]*(?:/|&|,|and)[ \t]*[A-Z][a-z'’-]+)*)[ \t]*:[ \t]+(?P<rest>\S.*)$")
_NOT_NAMES = frozenset(
    {"note", "notes", "update", "updates", "status", "decision", "decisions", "done", "todo", "action", "actions",
     "owner", "due", "deadline", "date", "time", "goal", "goals", "task", "tasks", "next", "next steps", "issue",
     "issues", "question", "questions", "answer", "topic", "agenda", "summary", "result", "outcome", "priority",
     "important", "optional", "urgent", "blocked", "bug", "bugs", "feature", "features", "idea", "ideas", "docs",
     "documentation", "design", "frontend", "backend", "testing", "tests", "research", "meeting", "all", "everyone",
     "team", "group"}
)
#: Verbs that start an instruction ("Use SPAG to …", "Ask Ana to …", "Get Bo to …"): a leading
#: ``NAME to …`` whose first word is one of them names no owner.
IMPERATIVES = frozenset(
    "use add make fix run write update check create remove delete move test try get set find ask send call "
    "tell talk read review merge land open close build port allow let see look implement support document "
    "clean refactor rename replace change convert switch start stop finish keep need want help have go "
    "bring take put give prepare plan schedule book email contact invite remind follow consider investigate "
    "research explore decide define draft edit publish post share upload download install configure deploy "
    "release submit push pull print sign buy order pay ensure verify confirm list split combine improve engage "
    "reach coordinate organise organize assign".split()
)
#: "For Silona: …", "For Ana and Bo: …" at the start of an action item names its owners.
_FOR_OWNER = re.compile(rf"^[Ff]or[ \t]+(?P<owners>{_NAME}(?:(?:[ \t]*,[ \t]*|[ \t]+and[ \t]+|[ \t]*&[ \t]*){_NAME})*)[ \t]*:[ \t]+(?=\S)")
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

def split_owners(raw: str) -> list[str]:
    """Owner names from ``"Ana, Bo and Cy"``, ``"Innes/George"`` or ``"@li @sam"``; generic words dropped."""
    if "@" in raw:
        return [m for m in re.findall(r"@([\w.-]*\w)", raw) if m.lower() not in _GENERIC_OWNERS]
    names = []
    for part in re.split(r"[ \t]*(?:,|&|/|\+|\band\b)[ \t]*", raw):
        name = part.strip().lstrip("@").strip(" .")
        if name and name.lower() not in _GENERIC_OWNERS and len(name) <= 60:
            names.append(name)
    return names


@dataclass
class Fields:
    title: str
    assignees: list[str] = field(default_factory=list)
    due_ms: int | None = None
    priority: Priority | None = None


def task_fields(
    raw: str,
    base_ms: int,
    *,
    owner_hint: str | None = None,
    dash_owner: bool = False,
    lead_owner: bool = False,
) -> Fields:
    """Title cleaned of markup, owner, priority and date tokens, plus what they said.

    ``lead_owner`` allows ``Name to …``/``Name will …`` (labelled lines and action sections
    only); ``dash_owner`` allows ``Name - …`` and ``Name: …`` (action sections).
    """
    text = clean_markup(raw)
    assignees: list[str] = split_owners(owner_hint) if owner_hint else []
    priority: Priority | None = None
    for pattern, level, remove in _PRIORITY_MARKERS:
        if pattern.search(text):
            priority = priority or level
            if remove:
                text = pattern.sub(" ", text)
    for field_match in list(_OWNER_FIELD.finditer(text)):
        assignees += split_owners(field_match.group("owners"))
    text = _OWNER_FIELD.sub(" ", text).strip()
    m: re.Match[str] | None = _FOR_OWNER.match(text)
    if m:  # "For Silona: Provide guideline …"
        assignees += split_owners(m.group("owners"))
        text = text[m.end() :]
    m = _LEADING_MENTIONS.match(text)
    if m and m.end() < len(text):
        assignees += split_owners(m.group("owners"))
        text = text[m.end() :]
    due = find_date(text, base_ms)
    if due is not None:
        text = text[: due.start] + " " + text[due.end :]
    m = _TRAILING_MENTIONS.search(text)
    if m and m.start() > 0:
        assignees += split_owners(m.group("owners"))
        text = text[: m.start()]
    text = text.strip()
    m = _LEADING_OWNERS.match(text) if lead_owner else None
    if m and m.group("owners").split()[0].lower().lstrip("@") in IMPERATIVES:
        m = None  # "Use SPAG to beautify code": an instruction, not "SPAG" owning "beautify code"
    if m:
        owners = split_owners(m.group("owners"))
        if owners:
            assignees += owners
            text = m.group("rest")
            # "Ben to update the repo, and JF to update the tracking issue": JF owns a part too
            for more in _MORE_OWNERS.finditer(text):
                assignees += split_owners(more.group("owners"))
    elif dash_owner:
        m = _DASH_OWNERS.match(text)
        if m is None:
            m = _COLON_OWNER.match(text)
            if m and m.group("owners").lower() in _NOT_NAMES:
                m = None
        if m:
            assignees += split_owners(m.group("owners"))
            text = m.group("rest")
            if text.lower().startswith("to "):
                text = text[3:]
    unique: list[str] = []
    for name in assignees:
        if name not in unique:
            unique.append(name)
    return Fields(title=tidy(text), assignees=unique, due_ms=due.ms if due else None, priority=priority)
