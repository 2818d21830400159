"""The one clock: wall time in Unix milliseconds and the user's time zone.

Everything that stamps a time (rows' createdAt/updatedAt, the HLC, run logs) asks this
module, so tests can step the clock (including backwards) in one place.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from zoneinfo import ZoneInfo

import tzlocal


def _system_ms() -> int:
    return time.time_ns() // 1_000_000


#: Source of wall time in Unix ms. Tests replace it with :func:`set_wall_clock`.
_wall_ms: Callable[[], int] = _system_ms


def now_ms() -> int:
    """Current wall-clock time in Unix milliseconds (may step backwards; the HLC copes)."""
    return _wall_ms()


def set_wall_clock(fn: Callable[[], int] | None) -> None:
    """Replace the wall clock (``None`` restores the system clock). For tests only."""
    global _wall_ms
    _wall_ms = fn if fn is not None else _system_ms


def local_timezone() -> dt.tzinfo:
    """The user's time zone (IANA zone from the OS), falling back to UTC when unknown."""
    try:
        name = tzlocal.get_localzone_name()
        return ZoneInfo(name) if name else dt.UTC
    except Exception:  # an unusual OS set-up must not break date handling
        return dt.UTC


def to_ms(value: dt.datetime | dt.date, tz: dt.tzinfo | None = None) -> int:
    """Unix ms for a datetime or date.

    A naive datetime, and a plain date (taken as 00:00 that day), are read in ``tz``
    (default: the user's time zone).
    """
    zone = tz or local_timezone()
    if not isinstance(value, dt.datetime):
        value = dt.datetime(value.year, value.month, value.day)
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    return int(value.timestamp() * 1000)


def parse_iso_to_ms(text: str, tz: dt.tzinfo | None = None) -> int:
    """Parse an ISO 8601 date or date-time (``2026-12-03``, ``2026-12-03T15:00``,
    ``2026-12-03T15:00:00Z``) into Unix ms; naive values are in the user's time zone.

    Raises:
        ValueError: the text is not an ISO 8601 date or date-time.
    """
    s = text.strip()
    if not s:
        raise ValueError("empty date")
    if s.endswith(("Z", "z")):
        s = s[:-1] + "+00:00"
    try:
        if len(s) == 10:
            return to_ms(dt.date.fromisoformat(s), tz)
        return to_ms(dt.datetime.fromisoformat(s), tz)
    except ValueError:
        raise ValueError(
            f"not an ISO 8601 date: {text!r} (expected e.g. 2026-12-03 or 2026-12-03T15:00)"
        ) from None


def ms_to_iso(ms: int, tz: dt.tzinfo | None = None) -> str:
    """Unix ms as an ISO 8601 date-time in ``tz`` (default: the user's zone), minute precision."""
    return dt.datetime.fromtimestamp(ms / 1000, tz or local_timezone()).isoformat(timespec="minutes")
