"""iCalendar files (``.ics``, RFC 5545) by the icalendar library: every VEVENT, VTODO and
VJOURNAL as a :class:`~sidecar.ingest.items.CalendarComponent`, its span the ``BEGIN``…``END``
lines. A TZID naming no known zone is read as floating (user's zone) with a warning; a broken
VTIMEZONE is dropped and TZIDs resolved as IANA names. The document date is the first
``DTSTAMP``."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import icalendar

from sidecar import clock
from sidecar.ingest.items import CalendarComponent, Document, Span
from sidecar.ingest.readers.base import ReadError, decode_text, make_span, short_reason

_COMPONENT_KINDS = ("VEVENT", "VTODO", "VJOURNAL")
_VTIMEZONE = re.compile(r"^BEGIN:VTIMEZONE[ \t]*\r?$.*?^END:VTIMEZONE[ \t]*\r?\n?", re.MULTILINE | re.DOTALL)
_BEGIN_END = re.compile(r"^(BEGIN|END):(VEVENT|VTODO|VJOURNAL)[ \t]*$", re.MULTILINE | re.IGNORECASE)


def _component_spans(text: str) -> dict[str, list[tuple[int, int]]]:
    """``BEGIN:X``…``END:X`` offsets per component name, in file order (used for spans only)."""
    spans: dict[str, list[tuple[int, int]]] = {k: [] for k in _COMPONENT_KINDS}
    open_at: dict[str, int] = {}
    for m in _BEGIN_END.finditer(text):
        which, name = m.group(1).upper(), m.group(2).upper()
        if which == "BEGIN":
            open_at[name] = m.start()
        elif name in open_at:
            spans[name].append((open_at.pop(name), m.end()))
    return spans


def _ical_text(component: Any, name: str) -> str | None:
    value = component.get(name)
    if value is None:
        return None
    if isinstance(value, list):
        value = value[0] if value else None
        if value is None:
            return None
    text = str(value).strip()
    return text or None


def _ical_ms(component: Any, name: str, summary: str | None, warnings: list[str]) -> tuple[int | None, bool]:
    """``(Unix ms, is_date)`` of a DATE/DATE-TIME property; floating/unknown TZID → user zone."""
    prop = component.get(name)
    if prop is None:
        return None, False
    if isinstance(prop, list):
        prop = prop[0] if prop else None
    try:
        value = getattr(prop, "dt", None)
    except Exception as exc:  # icalendar raises on access for a property it could not parse
        warnings.append(f"{name} of {summary or 'a component'} not understood ({short_reason(exc)})")
        return None, False
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            tzid = getattr(prop, "params", {}).get("TZID")
            if tzid:
                zone = _iana_zone(str(tzid))
                if zone is not None:
                    value = value.replace(tzinfo=zone)
                else:
                    warnings.append(
                        f"unknown TZID {tzid!r} on {name} of {summary or 'a component'}: read as local time"
                    )
        return clock.to_ms(value), False
    if isinstance(value, dt.date):
        return clock.to_ms(value), True
    return None, False


def _iana_zone(tzid: str) -> dt.tzinfo | None:
    """The IANA zone named ``tzid`` (icalendar leaves e.g. a TZID on DTSTAMP unresolved)."""
    try:
        return ZoneInfo(tzid.strip())
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def _ical_duration(component: Any) -> dt.timedelta | None:
    prop = component.get("DURATION")
    try:
        value = getattr(prop, "dt", None)
    except Exception:
        return None
    return value if isinstance(value, dt.timedelta) else None


def _calendar_component(component: Any, span: Span, warnings: list[str]) -> CalendarComponent:
    kind = str(component.name).upper()
    summary = _ical_text(component, "SUMMARY")
    start, all_day = _ical_ms(component, "DTSTART", summary, warnings)
    end, _ = _ical_ms(component, "DTEND", summary, warnings)
    due, _ = _ical_ms(component, "DUE", summary, warnings)
    stamp, _ = _ical_ms(component, "DTSTAMP", summary, warnings)
    recurrence, _ = _ical_ms(component, "RECURRENCE-ID", summary, warnings)
    duration = _ical_duration(component)
    if duration is not None and start is not None:
        shifted = start + int(duration.total_seconds() * 1000)
        if kind == "VTODO" and due is None:
            due = shifted  # RFC 5545 §3.6.2: DTSTART + DURATION gives the due time
        elif kind == "VEVENT" and end is None:
            end = shifted
    priority: int | None = None
    raw_priority = component.get("PRIORITY")
    if raw_priority is not None:
        try:
            priority = int(raw_priority)
        except (TypeError, ValueError):
            warnings.append(f"PRIORITY {raw_priority!r} is not an integer")
    rrule = component.get("RRULE")
    rrule_text: str | None = None
    if rrule is not None:
        try:
            rrule_text = rrule.to_ical().decode("utf-8", errors="replace")
        except Exception:
            rrule_text = str(rrule)
    status = _ical_text(component, "STATUS")
    for prop_name, error in getattr(component, "errors", [])[:5]:
        warnings.append(f"{kind} property {prop_name} not understood: {error}")
    return CalendarComponent(
        kind=kind,  # type: ignore[arg-type]
        uid=_ical_text(component, "UID"),
        summary=summary,
        description=_ical_text(component, "DESCRIPTION"),
        location=_ical_text(component, "LOCATION"),
        start_ms=start,
        end_ms=end,
        due_ms=due,
        stamp_ms=stamp,
        all_day=all_day,
        status=status.upper() if status else None,
        priority=priority,
        rrule=rrule_text,
        recurrence_id_ms=recurrence,
        span=span,
    )


def read_ics(path: Path, data: bytes) -> Document:
    text, encoding, warnings = decode_text(data)
    if not text.strip():
        return Document(
            path=path, kind="calendar", text=text, metadata={"encoding": encoding}, warnings=warnings
        )
    try:
        calendars = icalendar.Calendar.from_ical(text, multiple=True)
    except Exception as exc:
        # A broken VTIMEZONE (iCloud writes historical offsets icalendar refuses, e.g. +5328)
        # must not cost the events: drop the definitions and resolve TZIDs by IANA name.
        without_zones = _VTIMEZONE.sub("", text)
        if without_zones == text:
            raise ReadError(f"not a valid iCalendar file ({short_reason(exc)})") from None
        try:
            calendars = icalendar.Calendar.from_ical(without_zones, multiple=True)
        except Exception:
            raise ReadError(f"not a valid iCalendar file ({short_reason(exc)})") from None
        warnings.append(f"time zone definitions ignored ({short_reason(exc)}); TZIDs read as IANA names")
    located = _component_spans(text)
    used = {k: 0 for k in _COMPONENT_KINDS}
    components: list[CalendarComponent] = []
    title: str | None = None
    method: str | None = None
    for cal in calendars:
        title = title or _ical_text(cal, "X-WR-CALNAME")
        method = method or _ical_text(cal, "METHOD")
        for component in cal.walk():
            name = str(component.name).upper()
            if name not in _COMPONENT_KINDS:
                continue
            index = used[name]
            used[name] += 1
            where = located[name][index] if index < len(located[name]) else (0, len(text))
            try:
                components.append(_calendar_component(component, make_span(text, *where), warnings))
            except Exception as exc:  # one odd component must not cost the rest of the calendar
                warnings.append(f"skipped a {name} ({short_reason(exc)})")
    stamps = [c.stamp_ms for c in components if c.stamp_ms is not None]
    return Document(
        path=path,
        kind="calendar",
        text=text,
        title=title,
        doc_date_ms=stamps[0] if stamps else None,
        metadata={"encoding": encoding, "component_count": len(components)}
        | ({"method": method.upper()} if method else {}),
        calendar_components=components,
        warnings=warnings,
    )

