"""Output blocks (home mode; DESIGN §4, the seed's output formatter).

The model writes a block as a fenced code block with the info string ``block`` holding one JSON
object with a ``type``::

    ```block
    {"type": "chart", "chartType": "bar", "title": "Tasks per project", "data": [...],
     "config": {"open": {"label": "Open", "color": "#2563eb"}}}
    ```

:class:`BlockSplitter` finds blocks in the streamed text: text streams as it comes, a block is
held back until its closing fence, then validated (:func:`parse_block`, against the models
below, whose JSON Schema is ``schemas/agui.custom.block.json``), removed from the text and sent
as one AG-UI ``CUSTOM`` event ``block`` whose value is the block. An invalid block (bad JSON,
unknown ``type`` or ``chartType``, over :data:`MAX_BLOCK_CHARS`, unclosed) is logged and
dropped; it never ends the stream. ``entity_ref`` rows are never what the model typed: they are
the rows this run's tool results showed the model (``ToolScope.shown``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError
from pydantic.alias_generators import to_camel

from sidecar.basemodel import Model

log = logging.getLogger(__name__)

#: A block's JSON text longer than this (characters) is dropped.
MAX_BLOCK_CHARS = 20_000
FENCE = "```"
OPENER = FENCE + "block"

Scalar = str | int | float | bool | None


class _Block(Model):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class ChartSeries(_Block):
    """One entry of shadcn's ``ChartConfig``: how a data key is labelled and coloured."""

    label: str = Field(max_length=100)
    color: str | None = Field(default=None, max_length=64)


class ChartBlock(_Block):
    """A chart: ``data`` is an array of objects (one per x value), ``config`` maps each plotted
    data key to its label and colour (shadcn ChartConfig ``{dataKey: {label, color}}``)."""

    type: Literal["chart"]
    chart_type: Literal["area", "bar", "line", "pie", "radar", "radial"]
    title: str = Field(max_length=200)
    data: list[dict[str, Scalar]] = Field(max_length=500)
    config: dict[str, ChartSeries] = Field(max_length=20)


class TableBlock(_Block):
    """A table: ``headers`` and ``rows`` of cells (each row as long as ``headers``)."""

    type: Literal["table"]
    title: str | None = Field(default=None, max_length=200)
    headers: list[str] = Field(min_length=1, max_length=20)
    rows: list[list[Scalar]] = Field(max_length=500)


class Checkpoint(_Block):
    """A point on a timeline; ``date`` in Unix ms."""

    id: str = Field(max_length=100)
    title: str = Field(max_length=200)
    date: int


class TimelineBlock(_Block):
    """A timeline of checkpoints."""

    type: Literal["timeline"]
    title: str | None = Field(default=None, max_length=200)
    checkpoints: list[Checkpoint] = Field(min_length=1, max_length=200)


class EntityRefBlock(_Block):
    """Items of one kind shown as cards: ``ids`` named by the model, ``rows`` filled by the
    sidecar from this run's tool results (the API's JSON for each row; ids the run never saw in a
    tool result are left out)."""

    type: Literal["entity_ref"]
    entity: Literal["task", "project", "note", "timeline"]
    ids: list[str] = Field(min_length=1, max_length=50)
    rows: list[dict[str, Any]] = Field(default_factory=list)


Block = Annotated[ChartBlock | TableBlock | TimelineBlock | EntityRefBlock, Field(discriminator="type")]
#: Built on first use (``defer_build``): most runs emit no block, and building it at import cost
#: a run's first event ~25 ms of start-up CPU.
BLOCK_ADAPTER: TypeAdapter[ChartBlock | TableBlock | TimelineBlock | EntityRefBlock] = TypeAdapter(
    Block, config=ConfigDict(defer_build=True))


class BlockEvent(Model):
    """AG-UI ``CUSTOM`` event ``block`` (home mode): one validated output block."""

    type: Literal["CUSTOM"]
    name: Literal["block"]
    value: Block


def parse_block(raw: str, shown: Callable[[str, str], dict[str, Any] | None]) -> dict[str, Any] | None:
    """The block a fenced ``block`` body holds, as the ``block`` event's value; ``None`` (with a
    log line saying why) when it is invalid. ``shown(entity, id)``: a row the run's tools showed
    the model (``ToolScope.shown_row``), or None."""
    if len(raw) > MAX_BLOCK_CHARS:
        log.warning("output block dropped: over the size limit", extra={"chars": len(raw), "limit": MAX_BLOCK_CHARS})
        return None
    try:
        data = json.loads(raw)
        if isinstance(data, dict) and data.get("type") == "entity_ref":
            data.pop("rows", None)  # never the model's own rows
        block = BLOCK_ADAPTER.validate_python(data)
    except (ValueError, ValidationError) as exc:
        log.warning("output block dropped: invalid", extra={"error": str(exc).splitlines()[0][:200]})
        return None
    if isinstance(block, TableBlock) and any(len(r) != len(block.headers) for r in block.rows):
        log.warning("output block dropped: a table row does not match the headers")
        return None
    if isinstance(block, EntityRefBlock):
        block.rows = [row for i in block.ids if (row := shown(block.entity, i)) is not None]
        if not block.rows:
            log.warning("output block dropped: entity_ref names no row of this run's tool results",
                        extra={"entity": block.entity})
            return None
        block.ids = [r["id"] for r in block.rows]
    return block.model_dump(mode="json", by_alias=True, exclude_none=True)


class BlockSplitter:
    """Splits one streamed text into text pieces and block bodies, in order.

    :meth:`feed` returns ``[("text", str) | ("block", body)]``: text that cannot be the start of a
    block fence goes out at once; from an opening fence (```` ```block ```` then whitespace) to its
    closing fence everything is held; a block body longer than :data:`MAX_BLOCK_CHARS` stops being
    held (its body is reported as over the limit and the rest up to the closing fence is dropped).
    Other fenced code (```` ```python ````) is text.
    """

    def __init__(self) -> None:
        self._pending = ""
        self._in_block = False
        self._skipping = False

    def feed(self, delta: str) -> list[tuple[str, str]]:
        """Add a delta; return what is complete now."""
        self._pending += delta
        out: list[tuple[str, str]] = []
        while self._pending:
            if self._in_block:
                end = self._pending.find(FENCE, self._body_start())
                if end < 0:
                    if len(self._pending) > MAX_BLOCK_CHARS + len(OPENER) + 1 and not self._skipping:
                        out.append(("block", self._pending))  # parse_block drops it as too long
                        self._skipping = True
                    if self._skipping:  # keep just enough to see the closing fence
                        self._pending = OPENER + "\n" + self._pending[-(len(FENCE) - 1):]
                    break
                body = self._pending[self._body_start():end]
                if not self._skipping:
                    out.append(("block", body))
                self._pending = self._pending[end + len(FENCE):]
                self._in_block = self._skipping = False
                continue
            i = self._pending.find(OPENER)
            if i < 0:
                keep = self._prefix_len(self._pending)
                if len(self._pending) > keep:
                    out.append(("text", self._pending[: len(self._pending) - keep]))
                self._pending = self._pending[len(self._pending) - keep:]
                break
            after = self._pending[i + len(OPENER): i + len(OPENER) + 1]
            if not after:  # "```block" at the very end: wait for the next character
                if i:
                    out.append(("text", self._pending[:i]))
                self._pending = self._pending[i:]
                break
            if not after.isspace():  # "```blocks…": not ours
                out.append(("text", self._pending[: i + len(OPENER)]))
                self._pending = self._pending[i + len(OPENER):]
                continue
            if i:
                out.append(("text", self._pending[:i]))
            self._pending = self._pending[i:]
            self._in_block = True
        return [(k, v) for k, v in out if v or k == "block"]

    def flush(self) -> list[tuple[str, str]]:
        """At the end of the text: held text goes out; an unclosed block is reported (and dropped)."""
        pending, self._pending = self._pending, ""
        if self._in_block:
            self._in_block = False
            if not self._skipping:
                log.warning("output block dropped: the text ended before its closing fence")
            self._skipping = False
            return []
        return [("text", pending)] if pending else []

    def _body_start(self) -> int:
        return len(OPENER)

    @staticmethod
    def _prefix_len(text: str) -> int:
        """Length of the longest end of ``text`` that could begin an opening fence."""
        for n in range(min(len(OPENER), len(text)), 0, -1):
            if OPENER.startswith(text[-n:]):
                return n
        return 0
