"""Meeting minutes (and email requests): actions written as sentences, dated events.

Minutes rarely mark actions with a keyword; they are written as who-does-what sentences. In a
document that :func:`looks_like_minutes` (a meeting header: two of *minutes*, *attendees*,
*present*, *agenda*, *scribe*, *members*, *apologies*, *meeting*), a line — a list item, a
paragraph line or a heading, optionally after a speaker prefix such as ``JB:`` or ``Rich:`` —
that *starts* with one of these forms is a task (signal ``minutes-action``):

* ``NAME to VERB …``, ``NAME will VERB …``, ``NAME volunteered/agreed/offered to VERB …``,
  ``NAME is going to VERB …``, ``NAME will take action to VERB …``, ``NAME takes action to VERB …``
  — NAME (one or more
  capitalised names or ``@handles``) is the owner; so is a listed NAME in the passive ``X to be
  VERBed by NAME …`` ("New PR to be opened by Adam on the README");
* ``NAME VERBing … will VERB …`` ("Robin going through the training will report back") and, after a
  clause of three words or more, ``…, (but) NAME will VERB …`` — NAME must be a listed person;
* a clause without its subject, ``…, will VERB …`` / ``…; will VERB …``, after a speaker prefix
  (the speaker owns it) or in a line that starts with a listed person's name;
* after a speaker prefix: ``I will VERB …`` / ``I'll VERB …`` / ``Will VERB …`` / ``Have to VERB …`` — the speaker is
  the owner; so is a speaker's sentence that starts with an instruction verb (``KK: Engage the
  design team …``, ``JB: Make sure …``; not "Need …", "See …", "Consider …", which are remarks);
* ``Please VERB …``, ``Let's VERB …`` (also after "So", "OK"), ``Remember to VERB …``, ``Action to VERB …`` — a request to the group, or to the
  people it names first (``@ana please review …``, ``Folks, please …``).

* a call for help anywhere in the line: ``need more eyes on PR 123``, ``looking for reviewers
  for …``, ``volunteers needed for …`` (the title starts at the call).

A speaker prefix is initials, a first name (``Rich:``, ``Michael D:``) or an ``@handle:``.

Only the line's first sentence is the title. Reports ("NAME worked on …"), plans in the middle
of a sentence ("Ultimately, Sam will …"), verbs that name no action ("will be", "to do") and
commitments to refrain or watch ("I'll abstain from …", "will keep an eye on …") are
not tasks. Email bodies (the newest part) use the request forms (``Please …``, ``Could you …``).

Dated events (signal ``dated-event``): in minutes, a line that names an event (meeting, call,
release, deadline, due date, milestone, cutoff, summit, conference, workshop, demo, session, board
meeting, …) together with an explicit absolute date (``16 May, 2024``, ``2023-04-30``,
``17/02/2020`` when the document proves the day/month order) is a timeline entry at that date.
A line that only says ``due date: DATE`` takes its title from the heading above it. The date
the meeting itself was held (the document's date) is not an event, unless the line names a
deadline, due date or milestone on that day.
"""

from __future__ import annotations

import datetime as dt
import re

from sidecar.ingest.dates import DateMatch, find_date, numeric_date_order, parse_numeric_date
from sidecar.ingest.items import Document
from sidecar.ingest.rules.owners import IMPERATIVES
from sidecar.ingest.rules.titles import BULLETS

#: Words of a meeting header; two distinct ones near the top make a document minutes.
_MINUTES_WORDS = re.compile(
    r"\b(minutes|attendees|present|agenda|scribes?|members|apologies|meeting|action items?)\b", re.I
)
_HEAD_CHARS = 3000

#: ``JB:`` / ``TBL:`` / ``eP:`` / ``Rich:`` / ``Michael D:`` at the start of a line (after a bullet).
_SPEAKER = re.compile(
    r"^(?P<speaker>[A-Za-z][A-Za-z]{0,3}|[A-Z][a-z]{2,12}(?:[ \t][A-Z]\.?)?|@[\w-]{2,39})[ \t]*:[ \t]+(?=\S)"
)
#: Field labels that look like a speaker prefix but are not a person.
_NOT_SPEAKERS = frozenset(
    {
        "note", "notes", "date", "time", "url", "action", "actions", "ai", "todo", "decision", "proposal",
        "location", "call", "chat", "repository", "status", "issue", "goals", "members", "attendees",
        "agenda", "subject", "re", "fwd", "from", "to", "sent", "cc", "question", "answer", "q", "a",
        "summary", "topic", "item", "edit", "fyi", "update", "next", "link", "links", "see", "via",
        "result", "results", "outcome", "tbd", "http", "https", "mailto", "due", "deadline", "owner",
        "who", "what", "when", "where", "why", "how", "step", "steps", "goal", "plan", "title",
    }
)
_NAME = r"(?:@[\w.-]+|[A-Z][\w'’.-]*(?:[ \t][A-Z][\w'’.-]*)?)"
_NAMES = rf"{_NAME}(?:(?:[ \t]*[,/&+][ \t]*|[ \t]+and[ \t]+|[ \t]*\(or[ \t]+){_NAME}\)?)*"
#: Subjects that are not owners.
_NOT_OWNERS = frozenset(
    {"i", "we", "it", "this", "that", "there", "they", "he", "she", "you", "these", "those", "which",
     "what", "who", "someone", "nobody", "nothing", "one", "each", "if", "when", "then", "so", "but"}
)
_LINK = (
    r"(?:will(?:[ \t]+take[ \t]+(?:the[ \t]+)?action[ \t]+to)?|to|takes?[ \t]+(?:the[ \t]+|an[ \t]+)?action[ \t]+to"
    r"|(?:has[ \t]+|have[ \t]+)?(?:volunteered|agreed|offered)[ \t]+to|(?:is|are)?[ \t]*going[ \t]+to)"
)
#: A verb that names no action on its own.
_NOT_ACTIONS = r"(?:be|been|being|have|has|had|do|not|the|a|an|this|that|these|those|his|her|its|their|our|my|your|all|see|discuss(?:ed)?)\b"
_OWNER_ACTION = re.compile(rf"^(?P<owners>{_NAMES})[ \t]*,?[ \t]+{_LINK}[ \t]+(?!{_NOT_ACTIONS})(?P<rest>[a-z]\S*.*)$")
#: "New PR to be opened by Adam on the README …": work assigned in the passive, to a listed person.
_PASSIVE_ASSIGNED = re.compile(
    rf"^[A-Z][^,.;:]{{2,80}}?[ \t]+to[ \t]+be[ \t]+[a-z]+(?:ed|en|ne|de|nt)[ \t]+by[ \t]+(?P<owners>{_NAMES})\b"
)
#: "Robin going through LF training will report back …": the listed person, what they are doing, the action.
_OWNER_DOING_WILL = re.compile(
    rf"^(?P<owners>{_NAMES})[ \t]+[a-z]+ing\b[^,.;:]{{0,60}}?[ \t]+will[ \t]+(?!{_NOT_ACTIONS})(?P<rest>[a-z]\S*.*)$"
)
#: "Should be part of the infra workstream, Ben will add a comment": a clause of three words or
#: more, then a listed person's commitment (one adverb before the comma — "Ultimately, Tim will
#: …" — is a remark about who decides, not an action).
_CLAUSE_THEN_OWNER = re.compile(
    rf"^\S+(?:[ \t]+\S+){{2,}}?,[ \t]+(?:(?:but|and|so|then)[ \t]+)?(?P<owners>{_NAMES})[ \t]+(?:will|to)[ \t]+(?!{_NOT_ACTIONS})(?P<rest>[a-z]\S*.*)$"
)
#: "So let's …", "OK, please …": a filler word before a request.
_FILLER = re.compile(r"^(?:so|ok|okay|then|and|yes|right)[ \t,]+(?=(?:please|pls|kindly|let[’']?s|let[ \t]+us)\b)", re.I)
#: After a speaker prefix, a sentence that starts with an instruction verb ("JB: Make sure …").
_SPOKEN_IMPERATIVE = re.compile(r"^(?P<verb>[A-Z][a-z]+)[ \t]+(?!(?:is|are|was|were|be|has|have|had)\b)\S+(?:[ \t]+\S+)+")
#: Instruction verbs that, spoken, are more often a remark ("Need …", "See …", "Consider …").
_NOT_SPOKEN_ACTIONS = frozenset(
    "need want have go see look list keep consider contact find buy allow support let help use test try get "
    "set change start stop plan release print order pay split combine improve".split()
)
#: A second clause without its subject: "…, will open an issue", "…; will report back".
_THEN_WILL = re.compile(rf"[,;][ \t]+(?:and[ \t]+)?(?:then[ \t]+)?will[ \t]+(?:also[ \t]+)?(?!{_NOT_ACTIONS})(?P<rest>[a-z]\S*.*)$")
_LEADING_NAME = re.compile(r"^([A-Z][a-z'’-]+)\b")
_SELF_ACTION = re.compile(
    rf"^(?:I[ \t]+will|I[’']ll|I[ \t]+am[ \t]+going[ \t]+to|[Ww]ill|(?:I[ \t]+)?[Hh]ave[ \t]+to)[ \t]+(?:also[ \t]+)?(?:take[ \t]+(?:the[ \t]+)?action[ \t]+to[ \t]+)?"
    rf"(?!{_NOT_ACTIONS})(?P<rest>[a-z]\S*.*)$"
)
#: Commitments to refrain, wait or watch ("abstain from …", "keep an eye on …", "wait for …").
_NOT_DOING = re.compile(r"^(?:abstain|refrain|wait|hold[ \t]+off|keep[ \t]+an[ \t]+eye|stay[ \t]+tuned|watch)\b", re.I)
#: "Please …", "Let's …", also after the people asked: "@ana please review …", "Folks, please …".
_REQUEST = re.compile(
    r"^(?:(?P<asked>@[\w-]+(?:[ \t]*(?:,|&|and)?[ \t]*@[\w-]+)*|everyone|everybody|all|folks|y[’']all)[ \t]*[,:]?[ \t]+(?=please|pls|kindly))?"
    rf"(?:please|pls|kindly|let[’']?s|let[ \t]+us|remember[ \t]+to|action[ \t]+to)[ \t,]+(?!{_NOT_ACTIONS})(?P<rest>[a-z]\S*.*)$",
    re.I,
)
#: A call for help anywhere in a minutes line: "need(s) more eyes on PR 123", "looking for
#: reviewers for …", "volunteers needed for …", "reviews welcome on …".
_CALL_FOR_HELP = re.compile(
    r"\b(?:(?:we[ \t]+)?needs?[ \t]+(?:more[ \t]+|some[ \t]+)?(?:eyes|reviews?|reviewers|volunteers|help|feedback|input)"
    r"|(?:looking|asking)[ \t]+for[ \t]+(?:more[ \t]+)?(?:reviews?|reviewers|volunteers|help|feedback|input|champions?)"
    r"|(?:reviews?|reviewers|volunteers|help|feedback)[ \t]+(?:needed|wanted|welcome|requested))\b"
    r"(?P<rest>[ \t]+(?:on|for|with|in|at|to)\b.*|[ \t]*[:,-][ \t]*\S.*)$",
    re.I,
)
_EMAIL_REQUEST = re.compile(
    rf"^(?:(?:could|can|would)[ \t]+you[ \t]+(?:please[ \t]+)?|please[ \t]+|pls[ \t]+|kindly[ \t]+)(?!{_NOT_ACTIONS})(?P<rest>[a-z]\S*.*?)\??$",
    re.I,
)
_BULLET = re.compile(rf"^[ \t]*(?:[{BULLETS}]|\d{{1,3}}(?:\.\d{{1,3}})*[.)])[ \t]+")
_HEADING_MARK = re.compile(r"^[ \t]{0,3}#{1,6}[ \t]+")
_SENTENCE_END = re.compile(r"(?<=[a-z0-9)\]])[.!;][ \t]+(?=[A-Z(+])|[.!;]?[ \t]*$")

_EVENT_WORDS = re.compile(
    r"\b(?:meeting|meet-?up|call|release[ds]?|deadline|due(?:[ \t]+date)?|milestone|cut-?off|summit|conference|"
    r"workshop|demo|session|hackathon|launch|presentation|review|vote|election|interview|event|day|"
    r"submission|retreat|webinar|board)\b",
    re.I,
)
_DEADLINE_WORDS = re.compile(r"\b(?:deadline|due|milestone|cut-?off|submission)\b", re.I)
_ABSOLUTE = re.compile(
    r"\d{4}-\d{2}-\d{2}|\b\d{1,2}(?:st|nd|rd|th)?[ \t]+(?:of[ \t]+)?[A-Z][a-z]{2,8}\.?,?(?:[ \t]+\d{4})?\b"
    r"|\b[A-Z][a-z]{2,8}\.?[ \t]+\d{1,2}(?:st|nd|rd|th)?\b",
)
_NUMERIC_DATE = re.compile(r"(?<![\d/])\d{1,2}[/.]\d{1,2}[/.](?:\d{4}|\d{2})(?![\d/])")
_DUE_ONLY = re.compile(r"^(?:tentative[ \t]+)?(?:due[ \t]+date|deadline|target[ \t]+date)[ \t]*:?[ \t]*$", re.I)
_FIELD_LINE = re.compile(r"^[ \t]*[-*]?[ \t]*\**(?:date|time|when)\**[ \t]*:", re.I)
_NEXT_MEETING = re.compile(r"\bnext[ \t]+(?:meeting|minutes|call)\b", re.I)


PEOPLE_LABEL = re.compile(
    r"^[ \t#*_]*(?:present|attendees|attendance|members(?:[ \t]+present)?|participants|chairs?|scribes?|regrets|apologies"
    r"|group[ \t]+members[ \t]+present|in[ \t]+attendance|attending|guests|observers|absent|invited|facilitators?"
    r"|moderators?|hosts?|(?:note|minute)[- ]?takers?|recorders?|team[ \t]+members)\b[^:\n]{0,20}:?", re.I
)
_NAME_LINE = re.compile(r"^[ \t]*(?:[-*•][ \t]+)?(?!#)[^.!?;]{1,120}$")
_ENTITY = re.compile(r"&#?\w{1,8};")  # "Douglas&#x20;" in exported Markdown
_PERSON_WORD = re.compile(r"@?\b[A-Z][\w'’-]*|@[\w.-]+")
_SPEAKER_ANYWHERE = re.compile(r"^[ \t]*(?:[-*•][ \t]+)?([A-Za-z][A-Za-z]{1,3}|[A-Z][a-z]{2,12})[ \t]*:[ \t]", re.M)


def people(doc: Document) -> frozenset[str]:
    """Lower-cased name words of the people a meeting record lists ("Present", "Attendees",
    "Members" …, the lines after such a label up to a blank line, a heading or the next label
    line ending in a colon) and the speaker
    initials it uses (``JB:`` twice or more). Owners of minutes actions must be among them."""
    names: set[str] = set()
    lines = doc.text.split("\n")
    i = 0
    while i < len(lines):
        m = PEOPLE_LABEL.match(lines[i])
        if not m:
            i += 1
            continue
        chunk = [lines[i][m.end():]]
        j = i + 1
        if not chunk[0].strip(" \t:*_#"):
            while j < len(lines) and not lines[j].strip():
                j += 1  # "## Present", a blank line, then the list
            # the names: short lines (one person each, or a comma list) up to a blank line
            while j < len(lines) and j < i + 60 and _NAME_LINE.match(_ENTITY.sub(" ", lines[j])):
                if lines[j].rstrip().endswith(":"):
                    break  # the next label ("Notes:") ends the list, blank line or not
                chunk.append(lines[j])
                j += 1
        for text in chunk:
            text = re.sub(r"\]\([^)]*\)|https?://\S+", " ", text)
            names.update(w.lstrip("@").lower() for w in _PERSON_WORD.findall(text))
        i = j
    counts: dict[str, int] = {}
    for m in _SPEAKER_ANYWHERE.finditer(doc.text):
        counts[m.group(1)] = counts.get(m.group(1), 0) + 1
    names.update(k.lower() for k, n in counts.items() if n >= 2 and k.lower() not in _NOT_SPEAKERS)
    return frozenset(names)


def looks_like_minutes(doc: Document) -> bool:
    """True when the top of ``doc`` reads like a meeting record (see the module docstring)."""
    head = f"{doc.title or ''}\n{doc.path.stem}\n{doc.text[:_HEAD_CHARS]}"
    return len({m.group(1).lower().rstrip("s") for m in _MINUTES_WORDS.finditer(head)}) >= 2


def strip_prefixes(text: str) -> tuple[str, str | None]:
    """``(text, speaker)``: a line without its bullet, heading marks, emphasis and speaker prefix."""
    text = _HEADING_MARK.sub("", _BULLET.sub("", text)).strip()
    text = re.sub(r"^(\*\*|__)(.+?)\1[ \t]*", r"\2 ", text).strip()
    m = _SPEAKER.match(text)
    if m and m.group("speaker").lower() not in _NOT_SPEAKERS:
        return text[m.end() :].strip(), m.group("speaker")
    return text, None


def first_sentence(text: str) -> str:
    """The text up to the end of its first sentence."""
    m = _SENTENCE_END.search(text)
    return text[: m.start()] if m else text


def minutes_action(text: str, known: frozenset[str]) -> tuple[str, str | None] | None:
    """``(title text, owner hint)`` when a sentence of a minutes line states an action (module
    docstring): the line's first sentence, else a later one ("JB: Can take the lead. Will make
    a github issue").

    ``known``: :func:`people` of the document; a ``NAME to/will …`` owner must be one of them.
    """
    body, speaker = strip_prefixes(text)
    if not body:
        return None
    found = _sentence_action(body, speaker, known)
    if found is not None:
        return found
    for m in _LATER_SENTENCE.finditer(body):
        found = _sentence_action(body[m.end() :], speaker, known)
        if found is not None:
            return found
    return None


_LATER_SENTENCE = re.compile(r"(?<=[a-z0-9)\]])[.!;][ \t]+(?=[A-Z])")


def _sentence_action(body: str, speaker: str | None, known: frozenset[str]) -> tuple[str, str | None] | None:
    m = _OWNER_ACTION.match(body)
    if m:
        owners = m.group("owners")
        first = owners.split()[0].lower().strip(",").lstrip("@")
        # an @handle names a person by itself; a plain name must be one the record lists
        if first not in _NOT_OWNERS and (first in known or owners.startswith("@")):
            return first_sentence(m.group("rest")), m.group("owners")
    m = _PASSIVE_ASSIGNED.match(body)
    if m and m.group("owners").split()[0].lower().lstrip("@") in known:
        return first_sentence(body), m.group("owners")
    m = _OWNER_DOING_WILL.match(body) or _CLAUSE_THEN_OWNER.search(first_sentence(body))
    if m and m.group("owners").split()[0].lower() in known:
        return first_sentence(m.group("rest")), m.group("owners")
    m = _THEN_WILL.search(first_sentence(body))
    if m:
        subject = speaker or _LEADING_NAME.match(body)
        name = subject if isinstance(subject, str) or subject is None else subject.group(1)
        if name and (speaker or name.lower() in known):
            return first_sentence(m.group("rest")), name  # "Rich: looked into it, will open an issue"
    m = _SELF_ACTION.match(body)
    if m and _NOT_DOING.match(m.group("rest")):
        m = None  # "I'll abstain from reviewing", "I will keep an eye on the list": no action taken
    if m and (speaker is not None or not body.lower().startswith(("will", "have", "i have"))):
        return first_sentence(m.group("rest")), speaker
    m = _REQUEST.match(_FILLER.sub("", body, count=1))
    if m is None and speaker is not None:
        m = _SPOKEN_IMPERATIVE.match(body)
        if m and m.group("verb").lower() in IMPERATIVES and m.group("verb").lower() not in _NOT_SPOKEN_ACTIONS:
            return first_sentence(body), speaker  # "KK: Engage Marrelle to coordinate"
        m = None
    if m:
        asked = m.group("asked")
        return first_sentence(m.group("rest")), asked if asked and asked.startswith("@") else None
    m = _CALL_FOR_HELP.search(first_sentence(body))
    if m:
        return first_sentence(body[m.start() :]), None
    return None


def email_request(text: str) -> str | None:
    """The action of a request line in an email ("Please send …", "Could you check …?")."""
    body, _ = strip_prefixes(text)
    m = _EMAIL_REQUEST.match(first_sentence(body))
    return m.group("rest") if m else None


def event_date(text: str, doc: Document, base_ms: int) -> DateMatch | None:
    """An explicit *absolute* date in ``text`` (a month name, ISO, or a numeric date whose
    day/month order the document proves), or None. Relative words ("next week") are not enough
    for an event."""
    found = find_date(text, base_ms)
    if found is not None and (_ABSOLUTE.search(found.text) or re.match(r"\d{4}-", found.text)):
        if not re.search(r"\d{4}", found.text) and found.ms - base_ms > 300 * 86_400_000:
            # "January 26th" in minutes of 26 January is that day, not next year's
            earlier = dt.datetime.fromtimestamp(found.ms / 1000)
            try:
                ms = int(earlier.replace(year=earlier.year - 1).timestamp() * 1000)
            except ValueError:  # 29 February
                ms = found.ms
            if ms >= base_ms - 86_400_000:
                return DateMatch(ms=ms, start=found.start, end=found.end, text=found.text, has_time=found.has_time)
        return found
    m = _NUMERIC_DATE.search(text)
    if m:
        order = numeric_date_order(doc.text)
        numeric = parse_numeric_date(m.group(), order, base_ms) if order else None
        if numeric is not None:
            return DateMatch(ms=numeric, start=m.start(), end=m.end(), text=m.group(), has_time=False)
    return None


_DIGIT = re.compile(r"\d")
_MD_LINK = re.compile(r"\[(?P<text>[^\]]+)\]\([^)]*\)")


def _without(text: str, found: DateMatch) -> str:
    """``text`` without the date phrase ``found`` and the preposition left dangling before it."""
    before = re.sub(r"(?:^|[ \t])(?:on|at|by|for|from|until)[ \t]*$", " ", text[: found.start], flags=re.I)
    rest = (before + " " + text[found.end :]).strip()
    rest = re.sub(r"\(\s*\)|\s+(?:on|at|for|by|from|until)(?=\s*(?:[.,;:)]|$))", " ", rest)
    return " ".join(rest.split()).strip(" .,;:-–()")


def _linked_event(body: str, doc: Document, base_ms: int) -> tuple[str, int] | None:
    """A dated event named by a Markdown link's text ("a meeting for [Web of Things and Solid on
    16 May, 2024](…)"): the link text without its date is the title."""
    if not _EVENT_WORDS.search(_MD_LINK.sub(r"\g<text>", body)):
        return None
    for m in _MD_LINK.finditer(body):
        found = event_date(m.group("text"), doc, base_ms)
        if found is None:
            continue
        title = _without(m.group("text"), found)
        if len(title.split()) < 2 or len(title.split()) > 15:
            return None
        if doc.doc_date_ms is not None and abs(found.ms - doc.doc_date_ms) < 86_400_000:
            return None  # the day of the meeting itself
        return title, found.ms
    return None


def dated_event(text: str, doc: Document, base_ms: int, heading: str | None) -> tuple[str, int] | None:
    """``(title, date ms)`` when a minutes line names a dated event (module docstring)."""
    if not _DIGIT.search(text):
        return None  # every absolute date has a digit: no date parsing on the other lines
    if _FIELD_LINE.match(text):
        return None  # "Date: …" in a header is when the meeting was held
    body, _ = strip_prefixes(text)
    linked = _linked_event(body, doc, base_ms)
    if linked is not None:
        return linked
    body = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", body)  # Markdown links: their text
    body = re.sub(r"<?https?://\S+>?", " ", body)  # a URL's digits are no date
    found = event_date(body, doc, base_ms)
    if found is None:
        return None
    rest = _without(body, found)
    if _DUE_ONLY.match(rest) and heading:
        return heading, found.ms
    if _NEXT_MEETING.search(rest):
        return "Next meeting", found.ms
    if not _EVENT_WORDS.search(rest) or len(rest.split()) > 25:
        return None
    if doc.doc_date_ms is not None and abs(found.ms - doc.doc_date_ms) < 86_400_000 and not _DEADLINE_WORDS.search(rest):
        return None  # the day of the meeting itself (a deadline or milestone that day still counts)
    return first_sentence(rest), found.ms
