"""The AG-UI side of a run is imported with its pydantic models built on first use
(sidecar/agent/stack.py): a run posted right after the handshake waits for that import before its
``RUN_STARTED``. Each check runs in a fresh interpreter, where nothing has built the models yet."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

#: Imports the run's AG-UI side, reports which models are still unbuilt, then encodes the events a
#: run sends and validates a block (each built on that first use).
PROBE = textwrap.dedent("""
    import json
    from sidecar.agent.stack import import_run_events
    import_run_events()
    import ag_ui.core as core
    from ag_ui.encoder import EventEncoder
    from pydantic import BaseModel
    from sidecar.agent.blocks import BLOCK_ADAPTER

    class DefinedAfter(BaseModel):  # models of later imports are built as usual
        x: int

    unbuilt = {
        "events": sorted(name for name in ("RunStartedEvent", "TextMessageContentEvent", "ToolCallResultEvent",
                                           "RunFinishedEvent", "CustomEvent")
                         if not getattr(core, name).__pydantic_complete__),
        "block_adapter": not BLOCK_ADAPTER.pydantic_complete,
        "defined_after": not DefinedAfter.__pydantic_complete__,
    }
    encoder = EventEncoder()
    wire = [encoder.encode(e) for e in (
        core.RunStartedEvent(thread_id="t", run_id="r"),
        core.TextMessageContentEvent(message_id="m", delta="hi"),
        core.ToolCallResultEvent(message_id="m2", tool_call_id="c", content="{}"),
        core.CustomEvent(name="block", value={"type": "table"}),
        core.RunFinishedEvent(thread_id="t", run_id="r"),
    )]
    block = BLOCK_ADAPTER.validate_python({"type": "table", "headers": ["a"], "rows": [[1]]})
    print(json.dumps({"unbuilt": unbuilt, "wire": wire, "block": block.model_dump(mode="json")}))
""")


def _probe() -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, capture_output=True, text=True, timeout=120,
                         check=True)
    return json.loads(out.stdout)


def test_run_event_models_are_built_on_first_use_and_encode_as_before() -> None:
    got = _probe()
    # deferred: nothing of these was built by the import (the guard: without the deferral all are)
    assert got["unbuilt"]["events"] == ["CustomEvent", "RunFinishedEvent", "RunStartedEvent",
                                        "TextMessageContentEvent", "ToolCallResultEvent"]
    assert got["unbuilt"]["block_adapter"] is True
    # the default is restored: a model defined after the import is built at once
    assert got["unbuilt"]["defined_after"] is False
    # built on first use, they put the same AG-UI on the wire (camelCase, no nulls)
    assert [json.loads(w.removeprefix("data: ")) for w in got["wire"]] == [
        {"type": "RUN_STARTED", "threadId": "t", "runId": "r"},
        {"type": "TEXT_MESSAGE_CONTENT", "messageId": "m", "delta": "hi"},
        {"type": "TOOL_CALL_RESULT", "messageId": "m2", "toolCallId": "c", "content": "{}"},
        {"type": "CUSTOM", "name": "block", "value": {"type": "table"}},
        {"type": "RUN_FINISHED", "threadId": "t", "runId": "r"},
    ]
    assert got["block"]["headers"] == ["a"] and got["block"]["rows"] == [[1]]
