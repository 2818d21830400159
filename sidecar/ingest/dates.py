"""Explicit dates inside one line of text, for the ``rules`` extractor.

Free text is full of words that *could* be dates ("may", "second", "now"), so this module does
not let a parser search a whole line. It first finds a small set of explicit date phrases with
patterns, and only those substrings are parsed — by :mod:`dateparser`, relative to the
document's own date:

* ISO 8601 dates and date-times: ``2026-12-03``, ``2026-12-03 15:00``
* day–month and month–day with a month name: ``3 December 2026``, ``3rd Dec``, ``Dec 3``,
  ``December 3, 2026``
* a weekday after ``by``/``on``/``due``/``before``/``until``/``next``/``this``: ``by Friday``
* ``today``, ``tonight``, ``tomorrow``, ``next week``, ``next month``, ``in 3 days``
* optionally followed by a time: ``at 3pm``, ``15:00``

Purely numeric dates such as ``04/03/19`` are ambiguous (day or month first) and are left to
:func:`parse_numeric_date`, which the caller gives an explicit order.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from dataclasses import dataclass

import dateparser

from sidecar import clock

__all__ = [
    "DateMatch",
    "date_in_head",
    "date_in_name",
    "document_date",
    "find_date",
    "numeric_date_order",
    "parse_date_phrase",
    "parse_numeric_date",
]

_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|(?-i:May|MAY)|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
)
_WEEKDAY = r"(?:mon|tues?|wed(?:nes)?|thu(?:rs?)?|fri|sat(?:ur)?|sun)(?:day)?"
_ORD = r"(?:st|nd|rd|th)?"
_TIME = r"(?:\s*,?\s*(?:at\s+)?(?:\d{1,2}(?::\d{2})?\s*[ap]\.?m\.?|\d{1,2}:\d{2})(?![\w:]))"
_PREP = r"(?:(?:by|due(?:\s+(?:on|by))?|before|on|until|till|deadline:?)\s+)"

_PHRASES: tuple[str, ...] = (
    r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2})?)?(?![\d:])",
    rf"\d{{1,2}}{_ORD}\s+(?:of\s+)?{_MONTH}\.?(?:,?\s+\d{{4}})?(?![\w])",
    rf"{_MONTH}\.?\s+\d{{1,2}}{_ORD}(?:,?\s+\d{{4}})?(?![\w])",
    rf"(?:(?<=by\s)|(?<=on\s)|(?<=due\s)|(?<=before\s)|(?<=until\s)|next\s+|this\s+){_WEEKDAY}(?![\w])",
    r"(?:today|tonight|tomorrow|next\s+week|next\s+month|in\s+\d{1,2}\s+(?:days?|weeks?))(?![\w])",
)
_PHRASE_RE = re.compile(
    rf"(?<![\w-])(?P<prep>{_PREP})?(?P<date>(?:{'|'.join(_PHRASES)}){_TIME}?)",
    re.IGNORECASE,
)
_HAS_TIME = re.compile(rf"{_TIME}$", re.IGNORECASE)
_NUMERIC = re.compile(r"(?<![\d/])(\d{1,2})[/.](\d{1,2})[/.](\d{2}|\d{4})(?![\d/])")


@dataclass(frozen=True)
class DateMatch:
    """An explicit date phrase found in a string.

    Attributes:
        ms: the instant in Unix ms (a phrase without a time is 00:00 that day, user's zone).
        start / end: ``[start, end)`` offsets of the phrase in the searched string, including a
            leading ``by``/``due``/``on``… so the caller can cut it out of a title.
        text: the phrase as written (without the leading preposition).
        has_time: the phrase named a time of day.
    """

    ms: int
    start: int
    end: int
    text: str
    has_time: bool


def _base_datetime(base_ms: int, tz: dt.tzinfo | None) -> dt.datetime:
    zone = tz or clock.local_timezone()
    return dt.datetime.fromtimestamp(base_ms / 1000, zone).replace(tzinfo=None)


def parse_date_phrase(phrase: str, base_ms: int, *, tz: dt.tzinfo | None = None) -> int | None:
    """Unix ms of one date phrase read relative to ``base_ms``, or ``None`` if not a date.

    Dates without a year, weekdays and relative words resolve to the nearest *future* date as
    seen from ``base_ms`` (the document's date): ``"Dec 3"`` in a note dated 2026-11-25 is
    2026-12-03, ``"Friday"`` is the Friday after it. A phrase without a time of day is 00:00
    in ``tz`` (default: the user's zone). Results are cached (same phrase, base and zone).
    """
    return _parse_date_phrase(" ".join(phrase.split()), base_ms, tz or clock.local_timezone())


@functools.lru_cache(maxsize=4096)
def _parse_date_phrase(text: str, base_ms: int, zone: dt.tzinfo) -> int | None:
    if not text:
        return None
    try:
        return clock.parse_iso_to_ms(text, zone)
    except ValueError:
        pass
    settings = {
        "RELATIVE_BASE": _base_datetime(base_ms, zone),
        "PREFER_DATES_FROM": "future",
        "RETURN_AS_TIMEZONE_AWARE": False,
    }
    try:
        parsed = dateparser.parse(text, languages=["en"], settings=settings)  # type: ignore[arg-type]
    except Exception:  # dateparser can trip over odd input; an unparsed phrase is no date
        return None
    if parsed is None:
        return None
    if not _HAS_TIME.search(text):
        parsed = parsed.replace(hour=0, minute=0, second=0, microsecond=0)
    return clock.to_ms(parsed, zone)


def find_date(text: str, base_ms: int, *, tz: dt.tzinfo | None = None) -> DateMatch | None:
    """The first explicit date phrase in ``text`` (see the module docstring), parsed.

    Args:
        text: one line (a task title candidate).
        base_ms: the document's date in Unix ms; relative phrases are resolved from it.
        tz: zone for dates without one (default: the user's).

    Returns:
        The leftmost phrase that parses, or ``None``.
    """
    for match in _PHRASE_RE.finditer(text):
        phrase = match.group("date")
        ms = parse_date_phrase(phrase, base_ms, tz=tz)
        if ms is None:
            continue
        return DateMatch(
            ms=ms,
            start=match.start(),
            end=match.end(),
            text=phrase,
            has_time=bool(_HAS_TIME.search(phrase)),
        )
    return None


def numeric_date_order(text: str) -> str | None:
    """``"DMY"`` or ``"MDY"`` when the numeric dates in ``text`` prove an order, else ``None``.

    A first field above 12 proves day-first, a second field above 12 proves month-first;
    conflicting or no evidence gives ``None`` (the caller should then not guess).
    """
    day_first = month_first = False
    for m in _NUMERIC.finditer(text):
        first, second = int(m.group(1)), int(m.group(2))
        if first > 12 and second <= 12:
            day_first = True
        elif second > 12 and first <= 12:
            month_first = True
    if day_first == month_first:
        return None
    return "DMY" if day_first else "MDY"


def parse_numeric_date(text: str, order: str, base_ms: int, *, tz: dt.tzinfo | None = None) -> int | None:
    """Unix ms of a ``d/m/y``-style date read in ``order`` (``"DMY"`` or ``"MDY"``), or ``None``.

    Two-digit years are read by :mod:`dateparser` (``19`` → 2019).
    """
    zone = tz or clock.local_timezone()
    settings = {
        "DATE_ORDER": order,
        "RELATIVE_BASE": _base_datetime(base_ms, zone),
        "RETURN_AS_TIMEZONE_AWARE": False,
    }
    try:
        parsed = dateparser.parse(text.strip(), languages=["en"], settings=settings)  # type: ignore[arg-type]
    except Exception:
        return None
    if parsed is None:
        return None
    return clock.to_ms(parsed.replace(hour=0, minute=0, second=0, microsecond=0), zone)


# --------------------------------------------------------------------------------------------
# the document's own date

#: An ISO date in a file name: ``standup-2026-03-04.txt``, ``2016_08_22 notes.md``, ``20260304-x``.
_NAME_DATE = re.compile(r"(?<!\d)(?P<y>(?:19|20)\d{2})(?P<sep>[-_.]?)(?P<m>0[1-9]|1[0-2])(?P=sep)(?P<d>0[1-9]|[12]\d|3[01])(?!\d)")
#: How many non-blank lines from the top may carry the document's date.
HEAD_LINES = 6
#: A date that names its year: ISO, a month name with a year, or d/m/yyyy (order from the text).
_DATED = re.compile(
    rf"\d{{4}}-\d{{2}}-\d{{2}}|\d{{1,2}}{_ORD}\s+(?:of\s+)?{_MONTH}\.?,?\s+\d{{4}}|{_MONTH}\.?\s+\d{{1,2}}{_ORD},?\s+\d{{4}}"
    r"|(?<![\d/])\d{1,2}[/.]\d{1,2}[/.]\d{4}(?![\d/])",
    re.IGNORECASE,
)


def date_in_head(text: str, *, tz: dt.tzinfo | None = None) -> int | None:
    """Unix ms (00:00, ``tz``) of the first date *with a year* in the first :data:`HEAD_LINES`
    non-blank lines of ``text`` (a title such as "Daily stand-up, 4 March 2026", a
    ``Date: 2018-11-05`` line), or None. Numeric dates need a four-digit year and an order the
    whole text proves (:func:`numeric_date_order`)."""
    head = [ln for ln in text.split("\n", 200)[:200] if ln.strip()][:HEAD_LINES]
    for line in head:
        for m in _DATED.finditer(line):
            phrase = m.group()
            if re.fullmatch(r"\d{1,2}[/.]\d{1,2}[/.]\d{4}", phrase):
                order = numeric_date_order(text)
                ms = parse_numeric_date(phrase, order, 0, tz=tz) if order else None
            else:
                ms = parse_date_phrase(phrase, 0, tz=tz)
            if ms is not None:
                return ms
    return None


def date_in_name(name: str, *, tz: dt.tzinfo | None = None) -> int | None:
    """Unix ms (00:00, ``tz``) of an ISO date in a file name (``standup-2026-03-04.txt``), or None."""
    m = _NAME_DATE.search(name)
    if not m:
        return None
    try:
        return clock.to_ms(dt.date(int(m.group("y")), int(m.group("m")), int(m.group("d"))), tz)
    except ValueError:
        return None


def document_date(text: str, name: str, *, tz: dt.tzinfo | None = None) -> int | None:
    """The date a text document states for itself: a date in its title or first lines, else
    an ISO date in its file name, else None (the caller falls back to the file's mtime).

    Readers call this after the format's own date fields (front matter ``date:``, an email's
    ``Date``, a calendar's ``DTSTAMP``), which come first (DESIGN §5).
    """
    found = date_in_head(text, tz=tz)
    return found if found is not None else date_in_name(name, tz=tz)
