"""Validated shapes shared by the readers and the extractors (DESIGN §5).

A *reader* turns a file into a :class:`Document` (plain text plus what the format itself
says: sender, dates, calendar components). An *extractor* turns a :class:`Document` into
:class:`ExtractedItem` proposals. Neither touches the database: the watcher stores the
proposals with ``isAiSuggested=1, isApproved=0`` and their provenance.

All times are Unix milliseconds (UTC instants); conversions go through :mod:`sidecar.clock`.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from sidecar.basemodel import Model

ItemType = Literal["task", "timeline", "note"]
Priority = Literal["high", "medium", "low"]
Status = Literal["todo", "in_progress", "done"]
DocumentKind = Literal["text", "markdown", "email", "calendar", "pdf", "html"]

#: Longest title an item may carry (characters, after stripping).
TITLE_MAX = 500


class Span(Model):
    """Where an item came from: ``[start, end)`` character offsets into ``Document.text``.

    ``line_start``/``line_end`` are 1-based line numbers of the same range when known.
    """

    model_config = ConfigDict(frozen=True)

    start: int = Field(ge=0)
    end: int = Field(ge=0)
    line_start: int | None = Field(default=None, ge=1)
    line_end: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> Span:
        if self.end < self.start:
            raise ValueError(f"span end {self.end} is before start {self.start}")
        if self.line_start is not None and self.line_end is not None and self.line_end < self.line_start:
            raise ValueError("span line_end is before line_start")
        return self


def normalise_title(title: str) -> str:
    """The comparison form of a title: NFKC, case-folded, punctuation dropped, spaces collapsed.

    ``"  Buy MILK!! "`` and ``"buy milk"`` normalise to the same string.
    """
    text = unicodedata.normalize("NFKC", title).casefold()
    text = re.sub(r"[^\w\s]", " ", text)
    return " ".join(text.split())


class ExtractedItem(Model):
    """One proposed task, timeline entry or note.

    Fields:
        type: ``"task"``, ``"timeline"`` or ``"note"``.
        title: 1..500 characters, surrounding whitespace stripped, never blank.
        description: free text or ``None``.
        due_date: Unix ms; tasks only (``None`` when the source names no date).
        date: Unix ms; required for timelines, ``None`` for other types.
        priority: ``"high"|"medium"|"low"`` from explicit markers only, else ``None``.
        assignees: explicit owners named in the source (may be empty).
        status: ``"todo"`` (default), ``"in_progress"`` or ``"done"``.
        span: where in ``Document.text`` the item was found.
        confidence: 0..1, the extractor's belief that this is a real item.
        signal: which rule fired (``"checkbox"``, ``"todo-line"``, ``"vtodo"``, …).

    Raises:
        pydantic.ValidationError: on any violation above (blank title, timeline without date,
            confidence outside 0..1, …).
    """

    model_config = ConfigDict(frozen=True)

    type: ItemType
    title: str = Field(min_length=1, max_length=TITLE_MAX)
    description: str | None = None
    due_date: int | None = None
    date: int | None = None
    priority: Priority | None = None
    assignees: list[str] = Field(default_factory=list)
    status: Status = "todo"
    span: Span
    confidence: float = Field(ge=0.0, le=1.0)
    signal: str = Field(min_length=1)

    @field_validator("title", mode="before")
    @classmethod
    def _strip_title(cls, value: object) -> object:
        return value.strip() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _type_rules(self) -> ExtractedItem:
        if self.type == "timeline" and self.date is None:
            raise ValueError("a timeline item needs a date")
        if self.type != "task" and self.due_date is not None:
            raise ValueError("only tasks carry a due_date")
        if self.type != "timeline" and self.date is not None:
            raise ValueError("only timeline items carry a date")
        return self

    def fingerprint(self) -> str:
        """Stable identity: hex SHA-256 of ``type``, the normalised title and, for a timeline
        entry, its day (UTC day number of ``date``).

        Offsets, due dates and confidence are deliberately left out, so the same checkbox found
        again after the file was edited above it gets the same fingerprint. A timeline's day is
        part of it because two entries with one title on different days ("Next meeting", a
        calendar's moved occurrence of "Busy") are different events.
        """
        payload = f"{self.type}\x1f{normalise_title(self.title)}"
        if self.type == "timeline" and self.date is not None:
            payload += f"\x1f{self.date // 86_400_000}"  # the UTC day number: no calendar range limit
        return hashlib.sha256(payload.encode()).hexdigest()


class CalendarComponent(Model):
    """One VEVENT, VTODO or VJOURNAL as read from an iCalendar file (RFC 5545 §3.6).

    Fields:
        kind: component name.
        uid: UID property or ``None``.
        summary / description / location: text properties (``None`` when absent).
        start_ms: DTSTART in Unix ms (a DATE is 00:00 in the user's time zone; a floating or
            unknown-TZID DATE-TIME is read in the user's time zone).
        end_ms: DTEND (events), or DTSTART + DURATION.
        due_ms: VTODO DUE, or DTSTART + DURATION when DUE is absent (RFC 5545 §3.6.2).
        stamp_ms: DTSTAMP.
        all_day: DTSTART is a DATE, not a DATE-TIME.
        status: STATUS value upper-cased (``NEEDS-ACTION``, ``COMPLETED``, ``CANCELLED``, …).
        priority: PRIORITY 0..9 (0 = undefined) or ``None``.
        rrule: the RRULE text when the component recurs (only DTSTART is reported).
        recurrence_id_ms: RECURRENCE-ID when the component overrides one instance.
        span: the component's ``BEGIN:``…``END:`` lines in ``Document.text`` (whole text if
            the lines could not be located).
    """

    model_config = ConfigDict(frozen=True)

    kind: Literal["VEVENT", "VTODO", "VJOURNAL"]
    uid: str | None = None
    summary: str | None = None
    description: str | None = None
    location: str | None = None
    start_ms: int | None = None
    end_ms: int | None = None
    due_ms: int | None = None
    stamp_ms: int | None = None
    all_day: bool = False
    status: str | None = None
    priority: int | None = None
    rrule: str | None = None
    recurrence_id_ms: int | None = None
    span: Span


class EmailMessageInfo(Model):
    """One message inside an email document (``.eml`` has one, ``.mbox`` one per message).

    Fields:
        span: the message's rendering (header lines + body) in ``Document.text``.
        body_start: offset in ``Document.text`` where the body starts (after the header lines).
        sender / to / subject / message_id: header values (``None`` when absent or unreadable).
        date_ms: the Date header (RFC 5322 §3.6.1) in Unix ms, ``None`` when absent/invalid.
        html_only: the body was converted from HTML because no text/plain part existed.
    """

    model_config = ConfigDict(frozen=True)

    span: Span
    body_start: int = Field(ge=0)
    sender: str | None = None
    to: str | None = None
    subject: str | None = None
    message_id: str | None = None
    date_ms: int | None = None
    html_only: bool = False


class Document(Model):
    """What a reader produced from one file.

    Fields:
        path: the file read.
        kind: ``"text"|"markdown"|"email"|"calendar"|"pdf"|"html"``.
        text: the readable text; every :class:`Span` indexes into it. For calendars this is
            the decoded iCalendar source; for email a ``Header: value`` block plus the body of
            each message; for PDF the pages' text joined by form feeds (``\\f``).
        title: front-matter/heading/PDF title/email subject, else ``None``.
        doc_date_ms: the document's own date in Unix ms (email Date header, front-matter
            ``date:``, calendar DTSTAMP, PDF CreationDate), else ``None`` — the caller then
            passes the file mtime.
        metadata: format details (``sender``, ``subject``, ``encoding``, ``pages``, …).
        calendar_components: for ``.ics`` files, each VEVENT/VTODO/VJOURNAL in file order.
        messages: for email, each message in file order.
        warnings: things that were read leniently (replaced bytes, unknown TZID, …).
    """

    model_config = ConfigDict(arbitrary_types_allowed=False)

    path: Path
    kind: DocumentKind
    text: str
    title: str | None = None
    doc_date_ms: int | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    calendar_components: list[CalendarComponent] = Field(default_factory=list)
    messages: list[EmailMessageInfo] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
