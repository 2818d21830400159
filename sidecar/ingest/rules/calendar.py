"""Calendars (``.ics``): VTODO → task, VEVENT → timeline, VJOURNAL → note.

Signals: ``vtodo`` (status from STATUS, priority from PRIORITY per RFC 5545 §3.8.1.9: 1–4 high,
5 medium, 6–9 low), ``vevent`` (one per VEVENT at its DTSTART — for a recurring event that is
the *first* occurrence; overridden instances with RECURRENCE-ID are their own VEVENTs),
``vjournal``. CANCELLED components are skipped, and so are the events of an iTIP REPLY/CANCEL (RFC 5546):
an answer to an invitation is not an entry of the user's calendar.
"""

from __future__ import annotations

from sidecar.ingest.items import CalendarComponent, Priority, Status
from sidecar.ingest.rules.base import Run
from sidecar.ingest.rules.titles import tidy

#: iTIP methods (RFC 5546 §1.4) whose events are not entries of the user's calendar: an
#: attendee's answer (often "Declined: …") and a cancellation.
_NOT_IN_CALENDAR = frozenset({"REPLY", "CANCEL", "DECLINECOUNTER"})


def extract_calendar(run: Run) -> None:
    """One item per VTODO (task), VEVENT (timeline at its DTSTART) and VJOURNAL (note)."""
    method = str(run.doc.metadata.get("method", "")).upper()
    for comp in run.doc.calendar_components:
        if comp.kind == "VEVENT" and method in _NOT_IN_CALENDAR:
            continue
        _component(run, comp)

def _component(run: Run, comp: CalendarComponent) -> None:
    status = comp.status or ""
    if status == "CANCELLED":
        return
    if comp.kind == "VTODO" and comp.summary:
        item_status: Status = {"COMPLETED": "done", "IN-PROCESS": "in_progress"}.get(status, "todo")  # type: ignore[assignment]
        run.add(
            type="task",
            title=tidy(comp.summary),
            description=comp.description,
            due_date=comp.due_ms,
            priority=ical_priority(comp.priority),
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
        run.add(
            type="timeline",
            title=tidy(comp.summary),
            description=description,
            date=comp.start_ms,
            span=comp.span,
            signal="vevent",
        )
    elif comp.kind == "VJOURNAL":
        title = comp.summary or (comp.description or "").strip().split("\n", 1)[0]
        if title.strip():
            run.add(
                type="note",
                title=tidy(title),
                description=comp.description,
                span=comp.span,
                signal="vjournal",
            )


def ical_priority(value: int | None) -> Priority | None:
    """RFC 5545 §3.8.1.9: 1–4 high, 5 medium, 6–9 low, 0 (or absent) undefined."""
    if value is None or value <= 0 or value > 9:
        return None
    if value <= 4:
        return "high"
    return "medium" if value == 5 else "low"
