"""Waiting for a spawned sidecar's background start-up work (index catch-up, library loads) to
finish before a benchmark measures something else."""

from __future__ import annotations

import time

import psutil


def settle_cpu(pid: int, *, window_s: float = 2.0, idle_pct: float = 10.0, limit_s: float = 180.0) -> float | None:
    """Wait until process ``pid`` uses less than ``idle_pct`` % of a core over ``window_s``;
    returns the seconds waited, None if it never settled within ``limit_s``."""
    proc, t0 = psutil.Process(pid), time.monotonic()
    while time.monotonic() - t0 < limit_s:
        if proc.cpu_percent(interval=window_s) < idle_pct:
            return time.monotonic() - t0
    return None
