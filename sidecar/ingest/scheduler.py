"""Cron schedules of watches (croniter), in the user's time zone (:func:`sidecar.clock.local_timezone`).

Schedules fire while the process runs. A schedule whose next slot after the watch's last run
has passed (the machine was off, or the sidecar was not running) is *overdue*: it runs once at
start-up, not once per missed slot.
"""

from __future__ import annotations

import datetime as dt

from croniter import croniter

from sidecar import clock


def next_fire_ms(expr: str, after_ms: int, tz: dt.tzinfo | None = None) -> int:
    """The first time (Unix ms) strictly after ``after_ms`` that matches the cron expression.

    Raises:
        ValueError: the expression is not valid (watches are validated when stored).
    """
    zone = tz or clock.local_timezone()
    start = dt.datetime.fromtimestamp(after_ms / 1000, zone)
    try:
        it = croniter(expr, start)
    except (ValueError, KeyError) as exc:
        raise ValueError(f"invalid cron expression {expr!r}: {exc}") from None
    return int(it.get_next(float) * 1000)


def is_overdue(expr: str, last_run_ms: int, now_ms: int, tz: dt.tzinfo | None = None) -> bool:
    """True when a slot of the schedule fell between the last run and now."""
    return next_fire_ms(expr, last_run_ms, tz) <= now_ms
