"""Exit stays bounded while a worker thread is busy (``sidecar.lifecycle.NoWaitExecutor``).

``serve`` runs its loop with ``NoWaitExecutor`` as the default executor: a background import
(LanceDB, the agent stack) or a long parse still running in ``asyncio.to_thread`` when the loop
ends must not hold ``asyncio.run`` — and so the process's exit — until it finishes.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

from sidecar.lifecycle import NoWaitExecutor

BUSY_S = 1.5


def _loop_end_seconds(executor: ThreadPoolExecutor) -> float:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_default_executor(executor)
        loop.run_in_executor(None, time.sleep, BUSY_S)  # still running when main returns
        await asyncio.sleep(0.05)

    started = time.monotonic()
    asyncio.run(main())
    return time.monotonic() - started


def test_the_loop_ends_without_waiting_for_a_busy_worker() -> None:
    assert _loop_end_seconds(NoWaitExecutor()) < 0.5


def test_a_plain_executor_would_wait() -> None:
    """The control: asyncio's own shutdown waits for the worker (what the guard prevents)."""
    assert _loop_end_seconds(ThreadPoolExecutor()) >= BUSY_S - 0.1
