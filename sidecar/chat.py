"""``sidecar chat "…" [--thread ID]``: talk to the agent from a terminal, in-process.

The way to try the agent without a desktop app: the same application as ``sidecar serve`` (its
run service, store, parts and so its tools and memory), without a listening socket, with the
streamed text, tool calls and a usage line printed to stdout. A command over the whole
application (like ``sidecar doctor``), so it lives beside the factory, not in the agent part
(parts never import the factory: ``tests/test_seam.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any, TextIO

from sidecar.lifecycle import DataDirBusy, ExitCode, claim_data_dir


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``chat`` on the ``sidecar`` command line."""
    p = sub.add_parser("chat", help="talk to the agent in this terminal (no desktop app needed)")
    p.add_argument("message", nargs="?", help="what to say (omit with --approve/--reject)")
    p.add_argument("--thread", default=None, help="continue this thread (default: a new one; its id is printed)")
    p.add_argument("--data-dir", type=Path, help="data directory (default: the platform's user data dir)")
    p.add_argument("--model", help="set the model first, e.g. ollama/llama3.2 or openai/gpt-4o-mini")
    p.add_argument("--api-base", help="set the model server URL first, e.g. http://127.0.0.1:11434")
    p.add_argument("--api-key-secret", help="set the name of the secret holding the API key")
    decision = p.add_mutually_exclusive_group()
    decision.add_argument("--approve", action="store_true", help="approve the thread's pending confirmation")
    decision.add_argument("--reject", action="store_true", help="reject the thread's pending confirmation")
    p.set_defaults(func=_cmd_chat)


def _cmd_chat(args: argparse.Namespace) -> int:
    if not args.message and not (args.approve or args.reject):
        print("sidecar chat: give a message, or --approve/--reject with --thread", file=sys.stderr)
        return int(ExitCode.USAGE)
    if (args.approve or args.reject) and not args.thread:
        print("sidecar chat: --approve/--reject need --thread", file=sys.stderr)
        return int(ExitCode.USAGE)
    from sidecar.logs import setup_logging

    setup_logging("warning")
    return asyncio.run(chat(args, sys.stdout))


class _Printer:
    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.interrupts: list[dict[str, Any]] = []

    def __call__(self, ev: dict[str, Any]) -> None:
        t, w = ev["type"], self.out.write
        if t == "TEXT_MESSAGE_CONTENT":
            w(ev["delta"])
        elif t == "TEXT_MESSAGE_END":
            w("\n")
        elif t == "TOOL_CALL_START":
            w(f"→ {ev['toolCallName']}(")
        elif t == "TOOL_CALL_ARGS":
            w(ev["delta"])
        elif t == "TOOL_CALL_END":
            w(")\n")
        elif t == "TOOL_CALL_RESULT":
            w("  ← " + str(ev["content"]).replace("\n", "\n    ") + "\n")
        elif t == "RUN_ERROR":
            w(f"error [{ev.get('code')}]: {ev['message']}\n")
        elif t == "RUN_FINISHED":
            outcome = (ev.get("outcome") or {}).get("type", "success")
            if outcome == "interrupt":
                self.interrupts = ev["outcome"]["interrupts"]
                for i in self.interrupts:
                    meta = i.get("metadata") or {}
                    w(f"needs your confirmation: {meta.get('toolName')} {meta.get('arguments')}"
                      f" — run again with --thread {ev['threadId']} --approve or --reject\n")
            elif outcome == "cancelled":
                w("(cancelled)\n")
            for u in ev.get("usage") or []:
                w(f"[usage] model={u.get('model')} input={u.get('inputTokens')} output={u.get('outputTokens')}\n")
        self.out.flush()


async def chat(args: argparse.Namespace, out: TextIO) -> int:
    """Run one turn (or resume one confirmation) and print it; exit code 0, or 1 on RUN_ERROR."""
    from sidecar.settings import default_data_dir

    data_dir = (args.data_dir or default_data_dir()).expanduser().absolute()
    try:
        with claim_data_dir(data_dir):
            return await _chat_locked(args, data_dir, out)
    except DataDirBusy:
        out.write(f"another sidecar is using {data_dir}; stop it or talk to it over its API\n")
        return int(ExitCode.ALREADY_RUNNING)


async def _chat_locked(args: argparse.Namespace, data_dir: Path, out: TextIO) -> int:
    from aiohttp import web

    from sidecar.agent.runs import MODEL_SETTING_KEY, new_run_input
    from sidecar.agent.settings import ModelSettings
    from sidecar.app import create_app
    from sidecar.appstate import AGENT, HANDSHAKE_DONE, HISTORY
    from sidecar.lifecycle import NoWaitExecutor
    from sidecar.settings import Settings, make_token

    # The application ``sidecar serve`` runs, with every part (so a run gets the same tools and
    # memory as a served one: the search part adds ``search`` and ``update_core_memory``), but
    # no listening socket: its cleanup contexts open and close the store and the parts.
    # (and, as there, an exit that does not wait for a library still loading in a worker thread)
    asyncio.get_running_loop().set_default_executor(NoWaitExecutor(thread_name_prefix="sidecar-worker"))
    app = create_app(Settings(data_dir=data_dir, token=make_token({})[0], env=dict(os.environ)))
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    try:
        app[HANDSHAKE_DONE].set()
        history, service = app[HISTORY], app[AGENT]
        if args.model or args.api_base or args.api_key_secret:
            current = await history.get_setting(MODEL_SETTING_KEY) or {}
            updates = {k: v for k, v in {"model": args.model, "api_base": args.api_base,
                                         "api_key_secret": args.api_key_secret}.items() if v}
            await history.put_setting(MODEL_SETTING_KEY, ModelSettings.model_validate({**current, **updates}).model_dump(mode="json"))
        thread_id = args.thread or str(uuid.uuid4())
        if not args.thread:
            out.write(f"[thread {thread_id}]\n")
        run_input = new_run_input(thread_id, args.message)
        if args.approve or args.reject:
            pending = next((r for r in reversed(await history.runs(thread_id)) if r.status == "interrupted" and r.interrupt), None)
            if pending is None or pending.interrupt is None:
                out.write("nothing to confirm on this thread\n")
                return int(ExitCode.USAGE)
            run_input = new_run_input(thread_id, None, resume=[
                {"interruptId": c["id"], "status": "resolved", "payload": {"approved": bool(args.approve)}}
                for c in pending.interrupt["toolCalls"]])
        printer = _Printer(out)
        _, queue = await service.start(run_input)
        failed = False
        while (item := await queue.get()) is not None:
            data = json.loads(item.json)
            failed = failed or data["type"] == "RUN_ERROR"
            printer(data)
        return 1 if failed else 0
    finally:
        await runner.cleanup()  # on_shutdown ends runs with their final event; the parts stop
