"""A scripted OpenAI-compatible chat-completions server on real HTTP (loopback only).

Tests point the model layer (LiteLLM with ``api_base``) at it instead of a real provider.
It speaks ``POST /v1/chat/completions`` (streaming SSE and plain JSON) and ``GET /v1/models``,
and records every request body so a test can assert what the model was sent.

Scripting (in-process)::

    async with FakeLLMServer() as fake:          # binds 127.0.0.1 on an OS-chosen port
        fake.push(TextReply(text="<task>[id1,id2]</task>", chunks=["<ta", "sk>[id1", ",id2]</task>"]))
        fake.push(ToolCallsReply(calls=[ToolCallSpec(name="add", arguments={"a": 1, "b": 2})]))
        fake.push(ErrorReply(status=429, retry_after=1))
        fake.add_rule(Rule(match="hello", reply=TextReply(text="hi")))
        ... LiteLLM with api_base=fake.base_url ...
        fake.requests[0].body["messages"]       # what the model was sent

Replies come from the FIFO queue first, then from the first matching rule, then ``default``;
with none of those the server answers HTTP 500 ``fake: no scripted reply``.

Scripting (separate process, for end-to-end tests)::

    python -m tests.fakes.llm_server --script script.json
    # prints one JSON line: {"event": "ready", "port": N, "base_url": "http://127.0.0.1:N/v1"}

``script.json`` is a :class:`Script` (``{"queue": [...], "rules": [...], "default": {...}}``,
each reply a JSON object with a ``type`` of ``text | tool_calls | error | reset | burst``).
While running, ``POST /_fake/script`` appends a script, ``GET /_fake/requests`` returns the
recorded requests and ``POST /_fake/reset`` clears queue, rules and records.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import signal
import socket
import struct
import sys
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

# ---------------------------------------------------------------------------------------------
# The script: what the server answers
# ---------------------------------------------------------------------------------------------


class Usage(BaseModel):
    """Token counts reported in the response (OpenAI ``usage``)."""

    model_config = ConfigDict(extra="forbid")

    prompt_tokens: int = 10
    completion_tokens: int = 5


class _ReplyBase(BaseModel):
    """Timing and failure knobs shared by every successful reply.

    ``delay_s``: seconds before the response headers are sent.
    ``chunk_delay_s``: seconds between streamed chunks.
    ``stall_after``/``stall_s``: after that many content chunks, send nothing for ``stall_s`` s
    (headers and the first chunks have gone out), then carry on.
    ``reset_after``: after that many content chunks, abort the TCP connection (RST).
    ``stream``: force streaming (True) or a plain JSON body (False); ``None`` follows the
    request's ``stream`` flag.
    ``usage``: the reported usage; ``None`` estimates it (about 4 characters a token).
    ``send_usage``: ``False`` never sends usage, even when the request asks for it (as some local
    servers do).
    """

    model_config = ConfigDict(extra="forbid")

    delay_s: float = 0.0
    chunk_delay_s: float = 0.0
    stall_after: int | None = None
    stall_s: float = 0.0
    reset_after: int | None = None
    stream: bool | None = None
    usage: Usage | None = None
    send_usage: bool = True
    model: str | None = None


class TextReply(_ReplyBase):
    """An assistant text answer.

    Streamed as ``chunks`` when given (their concatenation is the text, split anywhere, e.g.
    inside ``<task>[id1,id2]</task>``), else as ``n_chunks`` roughly equal deltas.
    ``reasoning``: deltas streamed first as ``reasoning_content`` (as reasoning models do).
    """

    type: Literal["text"] = "text"
    text: str = ""
    reasoning: list[str] | None = None
    chunks: list[str] | None = None
    n_chunks: int = Field(default=1, ge=1)
    finish_reason: str = "stop"

    def deltas(self) -> list[str]:
        """The content deltas in order (``chunks`` or ``text`` cut into ``n_chunks``)."""
        if self.chunks is not None:
            return list(self.chunks)
        return _split(self.text, self.n_chunks)

    def full_text(self) -> str:
        """The whole answer text."""
        return "".join(self.chunks) if self.chunks is not None else self.text


class ToolCallSpec(BaseModel):
    """One tool call. ``arguments`` is a JSON string or an object (serialised compactly).

    Streamed OpenAI-style: the first delta of the call carries ``id`` and ``name`` (and no
    arguments); the arguments follow in ``arg_chunks`` pieces (or ``n_chunks`` equal pieces).
    """

    model_config = ConfigDict(extra="forbid")

    name: str
    arguments: str | dict[str, Any] = "{}"
    id: str | None = None
    arg_chunks: list[str] | None = None
    n_chunks: int = Field(default=3, ge=1)

    def arguments_json(self) -> str:
        """The arguments as the JSON string sent on the wire."""
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(self.arguments, separators=(",", ":"))

    def arg_deltas(self) -> list[str]:
        """The argument fragments in order."""
        if self.arg_chunks is not None:
            return list(self.arg_chunks)
        return _split(self.arguments_json(), self.n_chunks)


class ToolCallsReply(_ReplyBase):
    """One or more (parallel) tool calls, optionally preceded by text.

    ``interleave``: when streaming, send the calls' argument deltas round-robin across calls
    (as some providers do for parallel calls) instead of one call after another.
    """

    type: Literal["tool_calls"] = "tool_calls"
    calls: list[ToolCallSpec]
    text: str | None = None
    interleave: bool = False
    finish_reason: str = "tool_calls"


class ErrorReply(BaseModel):
    """An HTTP error answer: ``status`` with an OpenAI-style error body.

    ``retry_after`` (seconds) adds a ``Retry-After`` header (typically with 429 or 503).
    """

    model_config = ConfigDict(extra="forbid")

    type: Literal["error"] = "error"
    status: int = 500
    message: str | None = None
    retry_after: float | None = None
    delay_s: float = 0.0
    headers: dict[str, str] = Field(default_factory=dict)


class ResetReply(BaseModel):
    """Abort the TCP connection (RST) after reading the request, before any response byte."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["reset"] = "reset"
    delay_s: float = 0.0


class BurstReply(BaseModel):
    """Stream ``k`` text deltas of ``delta`` as fast as the socket takes them (throughput bench)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["burst"] = "burst"
    k: int = Field(default=1000, ge=1)
    delta: str = "x"
    #: number and stamp the deltas: ``"000042@<time.perf_counter() when sent>|"`` — on Linux
    #: perf_counter is CLOCK_MONOTONIC, comparable across processes — for per-delta latency
    numbered: bool = False
    #: seconds to wait between deltas (0 = as fast as the socket takes them)
    pace_s: float = Field(default=0.0, ge=0)
    usage: Usage | None = None


Reply = Annotated[
    TextReply | ToolCallsReply | ErrorReply | ResetReply | BurstReply, Field(discriminator="type")
]
_REPLY_ADAPTER: TypeAdapter[Any] = TypeAdapter(Reply)


class Rule(BaseModel):
    """Pick a reply by the request's content (checked after the queue is empty).

    ``match``: regular expression searched in the text of the last user message (user messages
    that are only ``<system-reminder>…`` runtime hints are skipped); ``None`` matches anything.
    ``after_tool``: ``True`` only when the last message is a tool result, ``False`` only when
    it is not, ``None`` either way. ``times``: how often the rule may fire (``None``: always).
    """

    model_config = ConfigDict(extra="forbid")

    reply: Reply
    match: str | None = None
    after_tool: bool | None = None
    times: int | None = None


class Script(BaseModel):
    """A whole script: a queue of replies, rules, and a default reply."""

    model_config = ConfigDict(extra="forbid")

    queue: list[Reply] = Field(default_factory=list)
    rules: list[Rule] = Field(default_factory=list)
    default: Reply | None = None
    models: list[str] | None = None
    api_key: str | None = None


def parse_reply(data: dict[str, Any]) -> TextReply | ToolCallsReply | ErrorReply | ResetReply | BurstReply:
    """Validate one reply given as JSON data (``{"type": "text", ...}``).

    Raises:
        pydantic.ValidationError: the data is not a valid reply.
    """
    reply: TextReply | ToolCallsReply | ErrorReply | ResetReply | BurstReply = _REPLY_ADAPTER.validate_python(
        data
    )
    return reply


# ---------------------------------------------------------------------------------------------
# Records: what the server received
# ---------------------------------------------------------------------------------------------


@dataclass
class RecordedRequest:
    """One request as received: path, headers, decoded JSON body (``None`` if not JSON)."""

    path: str
    method: str
    headers: dict[str, str]
    body: Any
    received_at: float = field(default_factory=time.monotonic)
    disconnected: bool = False

    def to_json(self) -> dict[str, Any]:
        """JSON form (for ``GET /_fake/requests``)."""
        return {
            "path": self.path,
            "method": self.method,
            "headers": self.headers,
            "body": self.body,
            "disconnected": self.disconnected,
        }

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The chat messages of the request body (empty when absent)."""
        if isinstance(self.body, dict):
            return list(self.body.get("messages") or [])
        return []

    @property
    def tools(self) -> list[dict[str, Any]]:
        """The tool schemas of the request body (empty when absent)."""
        if isinstance(self.body, dict):
            return list(self.body.get("tools") or [])
        return []


def message_text(message: dict[str, Any]) -> str:
    """The text of an OpenAI chat message whose ``content`` is a string or a list of parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text"
        )
    return ""


def last_user_text(messages: list[dict[str, Any]]) -> str:
    """Text of the last user message that is not only an agent runtime hint."""
    for message in reversed(messages):
        if message.get("role") != "user":
            continue
        text = message_text(message)
        if text.lstrip().startswith("<system-reminder>") and text.rstrip().endswith("</system-reminder>"):
            continue
        return text
    return ""


def _split(text: str, n: int) -> list[str]:
    """Cut ``text`` into ``n`` contiguous pieces of near-equal length (empty text: one piece)."""
    if not text:
        return [""]
    n = max(1, min(n, len(text)))
    size, extra = divmod(len(text), n)
    pieces: list[str] = []
    start = 0
    for i in range(n):
        end = start + size + (1 if i < extra else 0)
        pieces.append(text[start:end])
        start = end
    return pieces


def _estimate_tokens(text: str) -> int:
    return max(1, (len(text) + 3) // 4)


# ---------------------------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------------------------


class _Disconnected(Exception):
    """The client went away while we were answering."""


class FakeLLMServer:
    """The scripted server. Start with ``await start()`` (or ``async with``), stop with ``close()``.

    Attributes:
        requests: every chat-completions request received, in order.
        queue: replies answered first-in first-out.
        rules: consulted (in order) when the queue is empty.
        default: the reply when neither queue nor rules give one.
        api_key: when set, requests without ``Authorization: Bearer <api_key>`` get HTTP 401.
        models: the ids listed by ``GET /v1/models``.
    """

    def __init__(
        self,
        script: Script | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        """Create a server (not yet listening) on ``host:port`` (port 0: the OS picks)."""
        self.host = host
        self._want_port = port
        self.port: int = 0
        self.requests: list[RecordedRequest] = []
        self.queue: deque[Reply] = deque()
        self.rules: list[Rule] = []
        self.default: Reply | None = None
        self.api_key: str | None = None
        self.models: list[str] = ["fake-model"]
        self.disconnects = 0
        self._disconnect_event = asyncio.Event()
        self._request_event = asyncio.Event()
        #: ``/v1/embeddings``: vector width, per-request delay (s), refuse with 503, calls answered
        self.embedding_dim = 64
        self.embedding_delay_s = 0.0
        self.embeddings_down = False
        self.embedding_calls = 0
        self._runner: web.AppRunner | None = None
        if script is not None:
            self.load(script)

    # -- scripting ------------------------------------------------------------------------

    def load(self, script: Script) -> None:
        """Append a script's queue and rules; replace default/models/api_key when given."""
        self.queue.extend(script.queue)
        self.rules.extend(script.rules)
        if script.default is not None:
            self.default = script.default
        if script.models is not None:
            self.models = list(script.models)
        if script.api_key is not None:
            self.api_key = script.api_key

    def push(self, *replies: Reply) -> None:
        """Queue replies, answered one per chat-completions request in order."""
        self.queue.extend(replies)

    def add_rule(self, rule: Rule) -> None:
        """Add a rule (consulted in insertion order once the queue is empty)."""
        self.rules.append(rule)

    def reset(self) -> None:
        """Forget queue, rules, default and recorded requests."""
        self.queue.clear()
        self.rules.clear()
        self.default = None
        self.requests.clear()
        self.disconnects = 0
        self._disconnect_event = asyncio.Event()

    async def wait_for_chat_requests(self, count: int = 1, within_s: float = 5.0) -> RecordedRequest:
        """Wait until ``count`` chat-completions requests arrived; returns the ``count``-th.

        Raises:
            TimeoutError: fewer arrived within ``within_s`` seconds.
        """
        async with asyncio.timeout(within_s):
            while len(self.chat_requests) < count:
                self._request_event.clear()
                await self._request_event.wait()
        return self.chat_requests[count - 1]

    def reset_disconnects(self) -> None:
        """Forget the disconnects seen so far (``wait_for_disconnect`` waits for a new one)."""
        self.disconnects = 0
        self._disconnect_event = asyncio.Event()

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL, e.g. ``http://127.0.0.1:PORT/v1``."""
        return f"http://{self.host}:{self.port}/v1"

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        """Only the chat-completions requests."""
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    async def wait_for_disconnect(self, within_s: float = 5.0) -> bool:
        """Wait until a client dropped a connection mid-answer; ``False`` after ``within_s`` s."""
        try:
            await asyncio.wait_for(self._disconnect_event.wait(), within_s)
        except TimeoutError:
            return False
        return True

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind and start serving; afterwards ``port`` and ``base_url`` are set."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/chat/completions", self._chat)
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_post("/embeddings", self._embeddings)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/models", self._models)
        app.router.add_post("/_fake/script", self._control_script)
        app.router.add_get("/_fake/requests", self._control_requests)
        app.router.add_post("/_fake/reset", self._control_reset)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self._want_port)
        await site.start()
        address = self._runner.addresses[0]
        self.port = int(address[1])

    async def close(self) -> None:
        """Stop serving and drop open connections."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeLLMServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- handlers -------------------------------------------------------------------------

    async def _embeddings(self, request: web.Request) -> web.Response:
        """OpenAI ``POST /v1/embeddings``: deterministic vectors (hashed bag of words, lower-cased,
        ``embedding_dim`` wide), so equal words give close vectors; ``embedding_delay_s`` per
        request; ``embeddings_down`` answers 503."""
        import hashlib

        body = await request.json()
        self.requests.append(RecordedRequest(path=request.path, method=request.method, headers=dict(request.headers),
                                             body=body))
        self._request_event.set()
        if self.embeddings_down:
            return web.json_response({"error": {"message": "embeddings down", "type": "server_error"}}, status=503)
        if self.embedding_delay_s:
            await asyncio.sleep(self.embedding_delay_s)
        texts = body.get("input")
        texts = [texts] if isinstance(texts, str) else list(texts or [])
        data = []
        for i, text in enumerate(texts):
            vec = [0.0] * self.embedding_dim
            for word in re.findall(r"\w+", str(text).lower()):
                h = int.from_bytes(hashlib.sha256(word.encode()).digest()[:4], "big")
                vec[h % self.embedding_dim] += 1.0
            data.append({"object": "embedding", "index": i, "embedding": vec})
        self.embedding_calls += 1
        return web.json_response({"object": "list", "data": data, "model": body.get("model", "fake-embed"),
                                  "usage": {"prompt_tokens": 0, "total_tokens": 0}})

    async def _models(self, request: web.Request) -> web.Response:
        self.requests.append(RecordedRequest(request.path, request.method, dict(request.headers), None))
        now = int(time.time())
        return web.json_response(
            {
                "object": "list",
                "data": [
                    {"id": m, "object": "model", "created": now, "owned_by": "fake"} for m in self.models
                ],
            }
        )

    async def _control_script(self, request: web.Request) -> web.Response:
        self.load(Script.model_validate(await request.json()))
        return web.json_response({"queued": len(self.queue), "rules": len(self.rules)})

    async def _control_requests(self, request: web.Request) -> web.Response:
        return web.json_response([r.to_json() for r in self.requests])

    async def _control_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"ok": True})

    def _pick(self, body: Any) -> Reply | None:
        if self.queue:
            return self.queue.popleft()
        messages = body.get("messages", []) if isinstance(body, dict) else []
        text = last_user_text(messages)
        last_is_tool = bool(messages) and messages[-1].get("role") == "tool"
        for rule in self.rules:
            if rule.times is not None and rule.times <= 0:
                continue
            if rule.after_tool is not None and rule.after_tool != last_is_tool:
                continue
            if rule.match is not None and not re.search(rule.match, text):
                continue
            if rule.times is not None:
                rule.times -= 1
            return rule.reply
        return self.default

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        record = RecordedRequest(request.path, request.method, dict(request.headers), body)
        self.requests.append(record)
        self._request_event.set()

        if self.api_key is not None and request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return _error_response(401, "Incorrect API key provided.", "invalid_api_key")
        if not isinstance(body, dict):
            return _error_response(400, "request body is not a JSON object", "invalid_request_error")

        reply = self._pick(body)
        if reply is None:
            return _error_response(500, "fake: no scripted reply", "server_error")

        try:
            return await self._answer(request, record, body, reply)
        except _Disconnected:
            self._note_disconnect(record)
            # The client is gone; answer nothing more.
            return web.Response(status=499)

    def _note_disconnect(self, record: RecordedRequest) -> None:
        if not record.disconnected:
            record.disconnected = True
            self.disconnects += 1
            self._disconnect_event.set()

    async def _answer(
        self, request: web.Request, record: RecordedRequest, body: dict[str, Any], reply: Reply
    ) -> web.StreamResponse:
        if isinstance(reply, ErrorReply):
            await _sleep_watching(request, reply.delay_s)
            headers = dict(reply.headers)
            if reply.retry_after is not None:
                ra = reply.retry_after
                headers["Retry-After"] = str(int(ra)) if float(ra).is_integer() else str(ra)
            return _error_response(reply.status, reply.message or _default_error(reply.status), None, headers)

        if isinstance(reply, ResetReply):
            await _sleep_watching(request, reply.delay_s)
            _abort(request)
            raise _Disconnected

        model = str(body.get("model") or "fake-model")
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        prompt_text = json.dumps(body.get("messages", []))

        if isinstance(reply, BurstReply):
            return await self._stream_burst(request, record, model, reply, include_usage, prompt_text)

        await _sleep_watching(request, reply.delay_s)
        stream = reply.stream if reply.stream is not None else bool(body.get("stream"))
        if not stream:
            return web.json_response(_completion_body(reply, model, prompt_text))
        return await self._stream(request, reply, model, include_usage, prompt_text)

    async def _stream(
        self,
        request: web.Request,
        reply: TextReply | ToolCallsReply,
        model: str,
        include_usage: bool,
        prompt_text: str,
    ) -> web.StreamResponse:
        resp = await _open_sse(request)
        cid = f"chatcmpl-{uuid.uuid4().hex[:12]}"
        created = int(time.time())
        name = reply.model or model

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": name,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }

        await _send(request, resp, chunk({"role": "assistant", "content": ""}))
        sent = 0
        for delta in _content_deltas(reply):
            if reply.reset_after is not None and sent >= reply.reset_after:
                _abort(request)
                raise _Disconnected
            if reply.stall_after is not None and sent == reply.stall_after:
                await _sleep_watching(request, reply.stall_s)
            elif sent and reply.chunk_delay_s:
                await _sleep_watching(request, reply.chunk_delay_s)
            await _send(request, resp, chunk(delta))
            sent += 1
        if reply.stall_after is not None and sent <= reply.stall_after:
            await _sleep_watching(request, reply.stall_s)
        await _send(request, resp, chunk({}, reply.finish_reason))
        if include_usage and reply.send_usage:
            usage = _usage(reply, prompt_text)
            await _send(
                request,
                resp,
                {
                    "id": cid,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": name,
                    "choices": [],
                    "usage": usage,
                },
            )
        await _send_raw(request, resp, b"data: [DONE]\n\n")
        with contextlib.suppress(ConnectionError):
            await resp.write_eof()
        return resp

    async def _stream_burst(
        self,
        request: web.Request,
        record: RecordedRequest,
        model: str,
        reply: BurstReply,
        include_usage: bool,
        prompt_text: str,
    ) -> web.StreamResponse:
        resp = await _open_sse(request)
        cid = f"chatcmpl-{uuid.uuid4().hex[:12]}"
        created = int(time.time())
        head = json.dumps({"id": cid, "object": "chat.completion.chunk", "created": created, "model": model})[
            :-1
        ]
        line = (
            "data: "
            + head
            + ',"choices":[{"index":0,"delta":{"content":'
            + json.dumps(reply.delta)
            + '},"finish_reason":null}]}\n\n'
        ).encode()
        await _send_raw(
            request,
            resp,
            b"data: "
            + head.encode()
            + b',"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}\n\n',
        )
        if reply.numbered:
            prefix, suffix = line.split(json.dumps(reply.delta).encode(), 1)
            for i in range(reply.k):
                stamp = f'"{i:06d}@{time.perf_counter():.6f}|"'.encode()
                await _send_raw(request, resp, prefix + stamp + suffix)
                if reply.pace_s:
                    await asyncio.sleep(reply.pace_s)
        else:
            for _ in range(reply.k):
                await _send_raw(request, resp, line)
                if reply.pace_s:
                    await asyncio.sleep(reply.pace_s)
        await _send_raw(
            request,
            resp,
            b"data: " + head.encode() + b',"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n',
        )
        if include_usage:
            usage = (
                reply.usage.model_dump()
                if reply.usage is not None
                else {"prompt_tokens": _estimate_tokens(prompt_text), "completion_tokens": reply.k}
            )
            usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
            payload = json.dumps(
                {
                    "id": cid,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": [],
                    "usage": usage,
                }
            )
            await _send_raw(request, resp, f"data: {payload}\n\n".encode())
        await _send_raw(request, resp, b"data: [DONE]\n\n")
        with contextlib.suppress(ConnectionError):
            await resp.write_eof()
        return resp


# ---------------------------------------------------------------------------------------------
# Wire helpers
# ---------------------------------------------------------------------------------------------


def _default_error(status: int) -> str:
    return {
        400: "Bad request.",
        401: "Incorrect API key provided.",
        403: "You are not allowed to use this model.",
        404: "The model does not exist.",
        429: "Rate limit reached for requests.",
        500: "The server had an error while processing your request.",
        502: "Bad gateway.",
        503: "The engine is currently overloaded, please try again later.",
    }.get(status, f"HTTP {status}")


def _error_response(
    status: int, message: str, code: str | None, headers: dict[str, str] | None = None
) -> web.Response:
    kind = {
        400: "invalid_request_error",
        401: "invalid_request_error",
        403: "permission_error",
        404: "invalid_request_error",
        429: "rate_limit_error",
    }.get(status, "server_error")
    return web.json_response(
        {"error": {"message": message, "type": kind, "param": None, "code": code}},
        status=status,
        headers=headers,
    )


def _content_deltas(reply: TextReply | ToolCallsReply) -> list[dict[str, Any]]:
    """The ``delta`` objects of a streamed reply, in wire order (no role/finish chunks)."""
    if isinstance(reply, TextReply):
        thinking = [{"reasoning_content": r} for r in reply.reasoning or []]
        return thinking + [{"content": d} for d in reply.deltas()]
    deltas: list[dict[str, Any]] = []
    if reply.text:
        deltas.append({"content": reply.text})
    heads: list[dict[str, Any]] = []
    tails: list[list[dict[str, Any]]] = []
    for index, call in enumerate(reply.calls):
        call_id = call.id or f"call_{uuid.uuid4().hex[:10]}"
        heads.append(
            {
                "tool_calls": [
                    {
                        "index": index,
                        "id": call_id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": ""},
                    }
                ]
            }
        )
        tails.append(
            [{"tool_calls": [{"index": index, "function": {"arguments": a}}]} for a in call.arg_deltas()]
        )
    if reply.interleave:
        deltas.extend(heads)
        for round_ in range(max((len(t) for t in tails), default=0)):
            for tail in tails:
                if round_ < len(tail):
                    deltas.append(tail[round_])
    else:
        for head, tail in zip(heads, tails, strict=True):
            deltas.append(head)
            deltas.extend(tail)
    return deltas


def _usage(reply: TextReply | ToolCallsReply, prompt_text: str) -> dict[str, int]:
    if reply.usage is not None:
        prompt, completion = reply.usage.prompt_tokens, reply.usage.completion_tokens
    else:
        if isinstance(reply, TextReply):
            out = reply.full_text()
        else:
            out = (reply.text or "") + "".join(c.arguments_json() for c in reply.calls)
        prompt, completion = _estimate_tokens(prompt_text), _estimate_tokens(out)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _completion_body(reply: TextReply | ToolCallsReply, model: str, prompt_text: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant"}
    if isinstance(reply, TextReply):
        message["content"] = reply.full_text()
    else:
        message["content"] = reply.text
        message["tool_calls"] = [
            {
                "id": call.id or f"call_{uuid.uuid4().hex[:10]}",
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments_json()},
            }
            for call in reply.calls
        ]
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": reply.model or model,
        "choices": [{"index": 0, "message": message, "finish_reason": reply.finish_reason}],
        "usage": _usage(reply, prompt_text),
    }


def _client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def _sleep_watching(request: web.Request, seconds: float) -> None:
    """Sleep ``seconds``, raising ``_Disconnected`` as soon as the client hangs up."""
    if seconds <= 0:
        if _client_gone(request):
            raise _Disconnected
        return
    deadline = time.monotonic() + seconds
    while True:
        if _client_gone(request):
            raise _Disconnected
        left = deadline - time.monotonic()
        if left <= 0:
            return
        await asyncio.sleep(min(0.02, left))


async def _open_sse(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(
        status=200,
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"},
    )
    try:
        await resp.prepare(request)
    except (ConnectionError, RuntimeError) as exc:
        raise _Disconnected from exc
    return resp


async def _send(request: web.Request, resp: web.StreamResponse, payload: dict[str, Any]) -> None:
    await _send_raw(request, resp, f"data: {json.dumps(payload)}\n\n".encode())


async def _send_raw(request: web.Request, resp: web.StreamResponse, data: bytes) -> None:
    if _client_gone(request):
        raise _Disconnected
    try:
        await resp.write(data)
    except (ConnectionError, RuntimeError) as exc:
        raise _Disconnected from exc


def _abort(request: web.Request) -> None:
    """Reset the connection: SO_LINGER 0 then close, so the peer sees a TCP RST."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


# ---------------------------------------------------------------------------------------------
# Stand-alone process
# ---------------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def running(script: Script | None = None) -> AsyncIterator[FakeLLMServer]:
    """``async with running(script) as fake:`` — a started server, closed on exit."""
    server = FakeLLMServer(script)
    await server.start()
    try:
        yield server
    finally:
        await server.close()


async def _serve(script: Script, host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    server = FakeLLMServer(script, host=host, port=port)
    await server.start()
    sys.stdout.write(json.dumps({"event": "ready", "port": server.port, "base_url": server.base_url}) + "\n")
    sys.stdout.flush()
    try:
        await stop.wait()
    finally:
        await server.close()


def main(argv: list[str] | None = None) -> int:
    """CLI: ``python -m tests.fakes.llm_server [--script FILE] [--host H] [--port P]``.

    Prints ``{"event": "ready", "port": N, "base_url": "..."}`` on one line once listening;
    runs until SIGTERM/SIGINT. Exit code 0.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--script", help="JSON file with a Script (queue, rules, default)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    script = Script()
    if args.script:
        with open(args.script, encoding="utf-8") as fh:
            script = Script.model_validate(json.load(fh))
    asyncio.run(_serve(script, args.host, args.port))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
