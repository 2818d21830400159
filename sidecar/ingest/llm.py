"""The ``llm`` extractor: the watch's prompt template + the document → items, through the
configured model (DESIGN §5).

* The model is the agent stack's :class:`sidecar.agent.model.LiteLLMChatModel`, called with
  ``complete(msgs)`` and **no tools**: extraction can only propose items.
* The answer must be one JSON object ``{"items": [...]}`` validated against :class:`LlmItem`
  (``type`` task|timeline|note, ``title``, optional ``description``, ``dueDate``/``date`` as
  ISO 8601 — models are bad at epoch milliseconds —, ``priority``, ``assignees``, ``status``,
  ``quote``: the source text the item came from, used for its span). A Markdown code fence
  around the JSON is tolerated.
* Invalid output is retried once, telling the model what was wrong; invalid twice raises
  :class:`LlmOutputInvalid` (the file ends as ``error`` with that reason).
* Any :class:`~sidecar.agent.model.ModelError` (unreachable, timeout, auth, rate limit, refused)
  raises :class:`LlmUnavailable`; the pipeline then falls back to ``rules`` and marks the run
  ``partial``.
* Long documents are cut into chunks of at most ``IngestOptions.llm_chunk_chars`` characters
  at line ends (at most ``llm_max_chunks`` of them); items found in several chunks are kept once
  (by fingerprint).

The agent stack (AgentScope, LiteLLM) is imported only when a model is first needed, in a
thread, so neither start-up nor the rules path pays for it.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import re
from collections.abc import Awaitable, Callable, Collection
from typing import Any, Literal

from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator

from sidecar import clock
from sidecar.basemodel import Model
from sidecar.ingest.items import TITLE_MAX, Document, ExtractedItem, Span

EXTRACTOR_NAME = "llm"
#: Bumped whenever the prompt or the mapping of answers changes.
EXTRACTOR_VERSION = "1.0.0"
_TYPE_OF_KIND = {"tasks": "task", "timelines": "timeline", "notes": "note"}
_FENCE = re.compile(r"^\s*```(?:json)?\s*\n?(.*?)\n?\s*```\s*$", re.DOTALL | re.IGNORECASE)


class LlmUnavailable(Exception):
    """The model could not be used (not configured, unreachable, refused…). ``reason`` is short."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class LlmOutputInvalid(Exception):
    """The model's answer was not valid item JSON, twice. ``reason`` says what was wrong."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class LlmItem(Model):
    """One item as the model must answer it (camelCase or snake_case keys)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    type: Literal["task", "timeline", "note"]
    title: str = Field(min_length=1)
    description: str | None = None
    due_date: str | None = Field(default=None, alias="dueDate")
    date: str | None = None
    priority: Literal["high", "medium", "low"] | None = None
    assignees: list[str] = Field(default_factory=list)
    status: Literal["todo", "in_progress", "done"] = "todo"
    quote: str | None = None

    @field_validator("title")
    @classmethod
    def _title(cls, v: str) -> str:
        v = " ".join(v.split())
        if not v:
            raise ValueError("title is blank")
        return v[:TITLE_MAX]

    @field_validator("due_date", "date")
    @classmethod
    def _iso(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        clock.parse_iso_to_ms(v)  # raises ValueError with a helpful message
        return v.strip()

    @model_validator(mode="after")
    def _needs_date(self) -> LlmItem:
        if self.type == "timeline" and self.date is None:
            raise ValueError("a timeline item needs a date (ISO 8601)")
        return self


class LlmOutput(Model):
    """The whole answer: ``{"items": [...]}``."""

    model_config = ConfigDict(extra="ignore")

    items: list[LlmItem]


SCHEMA_HINT = """Answer with exactly one JSON object and nothing else:
{"items": [{"type": "task" | "timeline" | "note", "title": string, "description": string?,
  "dueDate": "YYYY-MM-DD" or "YYYY-MM-DDTHH:MM" (tasks only, optional),
  "date": "YYYY-MM-DD" or "YYYY-MM-DDTHH:MM" (timeline items only, required),
  "priority": "high" | "medium" | "low" (only when the text says so),
  "assignees": [string] (only people the text names as owners),
  "status": "todo" | "in_progress" | "done",
  "quote": the exact text of the document the item comes from}]}
Use {"items": []} when there is nothing to extract. Never invent items, dates or owners."""


def system_prompt(want: Collection[str], doc: Document, now_ms: int) -> str:
    """The fixed instructions: what to extract, the schema, and the document's reference date."""
    kinds = {"tasks": "tasks (things someone has to do)", "timelines": "timeline items (dated milestones, events, "
             "deadlines)", "notes": "notes (information worth keeping)"}
    wanted = ", ".join(kinds[k] for k in ("tasks", "timelines", "notes") if k in want)
    ref = doc.doc_date_ms if doc.doc_date_ms is not None else now_ms
    return (
        f"You extract {wanted} from a document for a personal task manager. You cannot act; you only "
        f"propose items.\nThe document is dated {clock.ms_to_iso(ref)[:10]}; resolve relative dates "
        f"(\"next Friday\") against it.\n{SCHEMA_HINT}"
    )


def chunks(text: str, size: int, limit: int) -> list[tuple[int, str]]:
    """``text`` cut at line ends into pieces of at most ``size`` characters (a longer line is cut
    where it must): ``[(offset, piece)]``, at most ``limit`` pieces."""
    out: list[tuple[int, str]] = []
    start = 0
    n = len(text)
    while start < n and len(out) < limit:
        end = min(n, start + size)
        if end < n:
            cut = text.rfind("\n", start, end)
            if cut > start:
                end = cut + 1
        out.append((start, text[start:end]))
        start = end
    return out or [(0, "")]


def strip_fence(text: str) -> str:
    """``text`` stripped, without a Markdown code fence (```` ```json … ``` ````) around it."""
    body = text.strip()
    m = _FENCE.match(body)
    return m.group(1).strip() if m else body


def parse_answer(text: str) -> LlmOutput:
    """The model's answer as :class:`LlmOutput`.

    Raises:
        ValueError: not JSON, or JSON that breaks the schema (the message says where).
    """
    body = strip_fence(text)
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise ValueError(f"the answer is not JSON ({exc})") from None
    if isinstance(data, list):
        data = {"items": data}
    try:
        return LlmOutput.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[:3]
        where = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in first)
        raise ValueError(f"the JSON does not match the schema ({where})") from None


def _span(text: str, offset: int, piece: str, quote: str | None, title: str) -> Span:
    """Where the item is: its quote (or title) found in the chunk, else the whole chunk."""
    for needle in (quote, title):
        if needle:
            i = piece.find(needle.strip())
            if i >= 0:
                start = offset + i
                end = start + len(needle.strip())
                return Span(start=start, end=end, line_start=text.count("\n", 0, start) + 1,
                            line_end=text.count("\n", 0, end) + 1)
    return Span(start=offset, end=offset + len(piece), line_start=text.count("\n", 0, offset) + 1,
                line_end=text.count("\n", 0, offset + len(piece)) + 1)


def to_items(out: LlmOutput, doc: Document, offset: int, piece: str, *, want: Collection[str],
             skip_done: bool) -> list[ExtractedItem]:
    """Map validated answers to :class:`ExtractedItem` (dates to Unix ms in the user's zone);
    types not in ``want`` and, with ``skip_done``, done tasks are dropped."""
    wanted = {_TYPE_OF_KIND[k] for k in want}
    items: list[ExtractedItem] = []
    for a in out.items:
        if a.type not in wanted or (skip_done and a.type == "task" and a.status == "done"):
            continue
        items.append(ExtractedItem(
            type=a.type,
            title=a.title,
            description=a.description or None,
            due_date=clock.parse_iso_to_ms(a.due_date) if a.type == "task" and a.due_date else None,
            date=clock.parse_iso_to_ms(a.date) if a.type == "timeline" and a.date else None,
            priority=a.priority if a.type == "task" else None,
            assignees=[s.strip() for s in a.assignees if s.strip()] if a.type == "task" else [],
            status=a.status if a.type == "task" else "todo",
            span=_span(doc.text, offset, piece, a.quote, a.title),
            confidence=0.7,
            signal="llm",
        ))
    return items


async def complete_text(model: Any, msgs: list[Any]) -> str:
    """The text of ``model.complete(msgs)`` (AgentScope messages in, no tools).

    Raises:
        LlmUnavailable: the model could not be called (``reason`` = ``"<code>: <message>"``).
    """
    from agentscope.message import TextBlock

    from sidecar.agent.model import ModelError

    try:
        response = await model.complete(msgs)
    except ModelError as exc:
        raise LlmUnavailable(f"{exc.code}: {exc.message}") from None
    return "".join(b.text for b in response.content if isinstance(b, TextBlock))


class LlmExtractor:
    """Extracts with a model that has ``async complete(msgs) -> ChatResponse``."""

    def __init__(self, model: Any, *, chunk_chars: int = 12_000, max_chunks: int = 20,
                 user_instructions: str = "") -> None:
        """``user_instructions``: the user's own extraction prompt (``agent-prompts.extraction``),
        added to the system prompt after its fixed rules."""
        self.model = model
        self.chunk_chars = chunk_chars
        self.max_chunks = max_chunks
        self.user_instructions = user_instructions.strip()

    async def _ask(self, msgs: list[Any]) -> str:
        return await complete_text(self.model, msgs)

    async def extract(self, doc: Document, *, prompt_template: str, want: Collection[str], skip_done: bool,
                      now_ms: int) -> list[ExtractedItem]:
        """Items proposed by the model for ``doc`` (see the module docstring).

        Raises:
            LlmUnavailable: the model could not be called.
            LlmOutputInvalid: a chunk's answer was invalid twice.
        """
        from agentscope.message import AssistantMsg, SystemMsg, UserMsg

        system = system_prompt(want, doc, now_ms)
        if self.user_instructions:
            system += f"\n\nThe user's own instructions (they do not override the rules above):\n{self.user_instructions}"
        instruction = prompt_template.strip() or "Extract the items from this document."
        pieces = chunks(doc.text, self.chunk_chars, self.max_chunks)
        seen: set[str] = set()
        items: list[ExtractedItem] = []
        for i, (offset, piece) in enumerate(pieces, 1):
            part = f" (part {i} of {len(pieces)})" if len(pieces) > 1 else ""
            user = f"{instruction}\n\n--- document {doc.path.name}{part} ---\n{piece}\n--- end of document ---"
            msgs: list[Any] = [SystemMsg("system", system), UserMsg("user", user)]
            answer = await self._ask(msgs)
            try:
                found = to_items(parse_answer(answer), doc, offset, piece, want=want, skip_done=skip_done)
            except ValueError as first:
                msgs += [AssistantMsg("assistant", answer),
                         UserMsg("user", f"That answer was invalid: {first}. {SCHEMA_HINT}")]
                answer = await self._ask(msgs)
                try:
                    found = to_items(parse_answer(answer), doc, offset, piece, want=want, skip_done=skip_done)
                except ValueError as second:
                    raise LlmOutputInvalid(f"model output invalid after one retry: {second}") from None
            for item in found:
                fp = item.fingerprint()
                if fp not in seen:
                    seen.add(fp)
                    items.append(item)
        return items


#: ``await get_secret(name)`` → the secret's value or None (e.g. ``SecretStore.get``).
SecretGetter = Callable[[str], Awaitable[str | None]]
#: ``await load()`` → ``(model, None)`` or ``(None, reason)``: :func:`load_model` with its arguments bound.
ModelLoader = Callable[[], Awaitable[tuple[Any | None, str | None]]]


async def extraction_instructions(store: Any) -> str:
    """The user's own extraction prompt (``PUT /v1/settings/agent-prompts`` ``extraction``), or ""."""
    from sidecar.agent.history import History
    from sidecar.agent.settings import AGENT_PROMPTS_KEY

    raw = await History(store).get_setting(AGENT_PROMPTS_KEY)
    value = raw.get("extraction") if isinstance(raw, dict) else None
    return value if isinstance(value, str) else ""


async def load_model(store: Any, get_secret: SecretGetter) -> tuple[Any | None, str | None]:
    """The configured model, or ``(None, reason)`` when none is configured or it cannot be built.

    Settings come from ``History(store).get_setting("model")`` (a :class:`ModelSettings` dict),
    the API key from the secret it names. The agent stack is imported in a thread.
    """
    from sidecar.agent.history import History

    raw = await History(store).get_setting("model")
    if not raw:
        return None, "no model is configured"
    model_mod = await asyncio.to_thread(importlib.import_module, "sidecar.agent.model")
    try:
        settings = model_mod.ModelSettings.model_validate(raw)
    except ValidationError as exc:
        return None, f"the model settings are invalid ({exc.error_count()} errors)"
    key = await get_secret(settings.api_key_secret) if settings.api_key_secret else None
    try:
        model = model_mod.LiteLLMChatModel(settings, key, stream=False)
    except Exception as exc:  # a broken provider string or library problem: say so, use rules
        return None, f"the model could not be set up ({type(exc).__name__}: {exc})"
    return model, None
