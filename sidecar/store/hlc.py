"""Hybrid logical clock (Kulkarni et al., "Logical Physical Clocks", 2014).

An HLC timestamp is ``(l, c, node)``: ``l`` the largest wall time seen in ms, ``c`` a counter
that breaks ties while the wall clock stands still or steps back, ``node`` the device id.
It is encoded as fixed-width text, ``"{l:015d}-{c:08d}-{node}"``, so that plain string order
is causal order and last-writer-wins can compare strings (DESIGN §3, §6).
"""

from __future__ import annotations

from collections.abc import Callable

from sidecar import clock

_COUNTER_LIMIT = 100_000_000  # 8 digits; on overflow ``l`` is advanced by 1 ms instead


def encode(l_ms: int, counter: int, node: str) -> str:
    """Text form of an HLC timestamp; sorts like the tuple ``(l_ms, counter, node)``."""
    return f"{l_ms:015d}-{counter:08d}-{node}"


def decode(text: str) -> tuple[int, int, str]:
    """Inverse of :func:`encode`.

    Raises:
        ValueError: not an HLC timestamp.
    """
    parts = text.split("-", 2)
    if len(parts) != 3 or len(parts[0]) != 15 or len(parts[1]) != 8:
        raise ValueError(f"not an HLC timestamp: {text!r}")
    return int(parts[0]), int(parts[1]), parts[2]


class HybridLogicalClock:
    """Issues strictly increasing HLC timestamps for one device, even if the wall clock goes back.

    Not thread-safe; the store calls it only under its write lock.
    """

    def __init__(self, node: str, *, last: str | None = None, wall: Callable[[], int] | None = None) -> None:
        self.node = node
        self._wall = wall or clock.now_ms
        self._l, self._c = 0, 0
        if last:
            self._l, self._c, _ = decode(last)

    def now(self) -> str:
        """A new timestamp greater than every one issued or received before (send/local event)."""
        pt = self._wall()
        if pt > self._l:
            self._l, self._c = pt, 0
        else:
            self._bump()
        return encode(self._l, self._c, self.node)

    def receive(self, remote: str) -> str:
        """Merge a remote timestamp (receive event) and return a new local one after both."""
        rl, rc, _ = decode(remote)
        pt = self._wall()
        if pt > self._l and pt > rl:
            self._l, self._c = pt, 0
        elif rl > self._l:
            self._l, self._c = rl, rc
            self._bump()
        elif rl == self._l:
            self._c = max(self._c, rc)
            self._bump()
        else:
            self._bump()
        return encode(self._l, self._c, self.node)

    def _bump(self) -> None:
        self._c += 1
        if self._c >= _COUNTER_LIMIT:
            self._l, self._c = self._l + 1, 0
