"""The tool-argument shim (sidecar/agent/tool_args.py): the installed AgentScope still has the
code it replaces, the model gets the same argument errors as without it, and each tool schema is
checked against its metaschema once instead of on every call."""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import agentscope
import jsonschema
import pytest
from agentscope._utils import _common
from agentscope.agent import Agent, InjectionConfig, ReActConfig, _agent
from agentscope.message import UserMsg
from agentscope.tool import Toolkit, _toolkit

from sidecar.agent import tool_args
from sidecar.agent.toolkit import AgentToolkits
from sidecar.store.db import Store
from tests.agent.conftest import ModelFactory
from tests.fakes.llm_server import FakeLLMServer, TextReply, ToolCallSpec, ToolCallsReply

#: Arguments a model may send for ``create_task``: well-formed, wrong, broken.
CALLS: list[str | dict[str, Any]] = [
    {"title": "Pay the invoice", "priority": "high"},  # valid: the fast path
    {"title": "Pay the invoice", "priority": "urgent"},  # not in the enum
    {"priority": "low"},  # the required title missing
    {"title": "Pay", "assignees": "ann"},  # a string for a list
    {"title": 42},  # a number for a string (json_repair's schema pass may coerce it)
    '{"title": "Pay the invoice", "priority": "lo',  # cut off mid-string
    '{"title": NaN}',  # not JSON (json_repair's schema pass makes it the string "nan")
    '["not", "an", "object"]',
    "",  # no arguments at all
]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await Store.open(tmp_path / "sidecar.db")
    yield s
    await s.close()


def test_the_installed_agentscope_has_the_code_the_shim_replaces() -> None:
    """Fails loudly when an AgentScope upgrade moves the tool-call step: re-read it, then update
    tool_args (and SUPPORTED_AGENTSCOPE) rather than losing the speed-up silently."""
    assert agentscope.__version__.startswith(tool_args.SUPPORTED_AGENTSCOPE)
    step = inspect.getsource(Agent._execute_tool_call)
    assert "_json_loads_with_repair(\n                tool_call.input,\n                tool.input_schema," in step
    assert "jsonschema.validate(parsed_input, tool.input_schema)" in step
    assert "except jsonschema.ValidationError as e:" in step
    assert "{e.message} (at {e.json_path})" in step
    call = inspect.getsource(Toolkit.call_tool)
    assert "kwargs = _json_loads_with_repair(\n                tool_call.input,\n                tool_func.input_schema," in call
    # what validate() reproduces (jsonschema 4.x's own validate)
    assert "best_match(validator.iter_errors(instance))" in inspect.getsource(jsonschema.validate)
    assert tool_args.installed(), "import_agent_stack() installs it (tests/agent/conftest.py loads the stack)"
    assert _agent.jsonschema is tool_args.CACHED_JSONSCHEMA
    assert _agent._json_loads_with_repair is tool_args.loads_tool_input
    assert _toolkit._json_loads_with_repair is tool_args.loads_tool_input  # type: ignore[attr-defined]


def _agent_for(store: Store, make_model: ModelFactory) -> Agent:
    return Agent(name="assistant", system_prompt="You manage tasks.", model=make_model(),
                 toolkit=Toolkit(tools=AgentToolkits(store, []).tools(None)),
                 react_config=ReActConfig(max_iters=3),
                 injection_config=InjectionConfig(inject_runtime_state=False, emit_hint_event=False))


async def _tool_results(store: Store, fake: FakeLLMServer, make_model: ModelFactory) -> list[str]:
    """What the model is sent back for each of CALLS (one turn of calls, then an answer)."""
    fake.reset()
    fake.push(ToolCallsReply(calls=[ToolCallSpec(id=f"c{i}", name="create_task", arguments=args)
                                    for i, args in enumerate(CALLS)]),
              TextReply(text="done"))
    async for _ in _agent_for(store, make_model).reply_stream(UserMsg("user", "make tasks")):
        pass
    tool_messages = [m for m in fake.chat_requests[1].messages if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in tool_messages] == [f"c{i}" for i in range(len(CALLS))]
    # created rows get new ids each time
    return [re.sub(r"\[[0-9a-f-]{36}\]", "[id]", str(m["content"])) for m in tool_messages]


async def test_a_model_gets_the_same_argument_errors_as_without_the_shim(
    store: Store, fake_llm: FakeLLMServer, make_model: ModelFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_shim = await _tool_results(store, fake_llm, make_model)

    monkeypatch.setattr(_agent, "jsonschema", jsonschema)
    monkeypatch.setattr(_agent, "_json_loads_with_repair", _common._json_loads_with_repair)
    monkeypatch.setattr(_toolkit, "_json_loads_with_repair", _common._json_loads_with_repair)
    without = await _tool_results(store, fake_llm, make_model)

    print("\n".join(with_shim))
    assert with_shim == without
    # and they are the errors a model can act on (not a crash, not silence)
    assert with_shim[0].startswith("Created task")
    assert "Input validation failed for tool 'create_task'" in with_shim[1] and "$.priority" in with_shim[1]
    assert "'title' is a required property" in with_shim[2]
    assert "a dict object is expected" in with_shim[7]


async def test_each_tool_schema_is_checked_against_its_metaschema_once(
    store: Store, fake_llm: FakeLLMServer, make_model: ModelFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cost the shim removes: ``jsonschema.validate`` and json_repair re-check the schema
    against the metaschema and build a validator on every call."""
    checked: list[int] = []
    real_check = jsonschema.Draft202012Validator.check_schema

    def counting(schema: Any, *args: Any, **kwargs: Any) -> None:
        checked.append(id(schema))
        real_check(schema, *args, **kwargs)

    agent = _agent_for(store, make_model)  # (the toolkit build checks each schema once)
    monkeypatch.setattr(jsonschema.Draft202012Validator, "check_schema", staticmethod(counting))
    fake_llm.push(ToolCallsReply(calls=[ToolCallSpec(id=f"c{i}", name="list_tasks", arguments={"search": f"x{i}"})
                                        for i in range(6)]), TextReply(text="done"))
    async for _ in agent.reply_stream(UserMsg("user", "look")):
        pass
    assert len([m for m in fake_llm.chat_requests[1].messages if m["role"] == "tool"]) == 6
    assert len(checked) <= 1, f"the schema was checked {len(checked)} times for 6 calls"


def test_validate_raises_what_jsonschema_validate_raises() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 1},
                                               "tags": {"type": "array", "items": {"type": "string"}}},
              "required": ["n"], "additionalProperties": False}
    for instance in ({"n": 0}, {"n": "1"}, {}, {"n": 1, "tags": [1]}, {"n": 1, "x": 2}, {"n": 2}):
        try:
            jsonschema.validate(instance, schema)
            expected = None
        except jsonschema.ValidationError as exc:
            expected = (exc.message, exc.json_path)
        try:
            tool_args.validate(instance, schema)
            got = None
        except jsonschema.ValidationError as exc:
            got = (exc.message, exc.json_path)
        assert got == expected, instance
    with pytest.raises(jsonschema.SchemaError):  # an invalid schema still fails, every time
        tool_args.validate({}, {"type": 5})
    with pytest.raises(jsonschema.SchemaError):
        tool_args.validate({}, {"type": 5})


def test_the_cache_is_bounded_and_keyed_by_the_schema_object(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tool_args, "CACHE_SIZE", 4)
    schemas = [{"type": "object", "properties": {f"p{i}": {"type": "string"}}} for i in range(10)]
    first = tool_args.compiled_validator(schemas[0])[0]
    assert tool_args.compiled_validator(schemas[0])[0] is first
    equal_copy = json.loads(json.dumps(schemas[0]))
    assert tool_args.compiled_validator(equal_copy)[0] is not first  # identity, not equality
    for s in schemas[1:]:
        tool_args.compiled_validator(s)
    assert len(tool_args._validators) == 4
    assert tool_args.compiled_validator(schemas[0])[0] is not first  # evicted, rebuilt


async def test_tool_schemas_are_compiled_when_the_toolkit_is_built_not_at_the_first_call(
    store: Store, fake_llm: FakeLLMServer, make_model: ModelFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Checking a schema and building its validator took 5-15 ms at each tool's first call, on
    the event loop; the toolkit build (in a worker thread) does it instead."""
    checked: list[int] = []
    real_check = jsonschema.Draft202012Validator.check_schema

    def counting(schema: Any, *args: Any, **kwargs: Any) -> None:
        checked.append(id(schema))
        real_check(schema, *args, **kwargs)

    monkeypatch.setattr(jsonschema.Draft202012Validator, "check_schema", staticmethod(counting))
    agent = _agent_for(store, make_model)  # builds the toolkit
    built = len(checked)
    assert built >= 1
    fake_llm.push(ToolCallsReply(calls=[ToolCallSpec(id="c0", name="list_projects", arguments={}),
                                        ToolCallSpec(id="c1", name="create_task", arguments={"title": "x"})]),
                  TextReply(text="done"))
    async for _ in agent.reply_stream(UserMsg("user", "go")):
        pass
    assert len([m for m in fake_llm.chat_requests[-1].messages if m["role"] == "tool"]) == 2
    assert len(checked) == built, "a tool's schema was checked again at its first call"


async def test_each_calls_arguments_are_checked_once(
    store: Store, fake_llm: FakeLLMServer, make_model: ModelFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """AgentScope parses a call's arguments twice and validates them once more (three checks,
    ~0.1 ms each); the checks of the same text against the same schema are made once."""
    checks: list[str] = []
    real = tool_args.compiled_validator

    class Counting:
        def __init__(self, validator: Any) -> None:
            self.validator = validator

        def is_valid(self, instance: Any) -> bool:
            checks.append("is_valid")
            return bool(self.validator.is_valid(instance))

        def iter_errors(self, instance: Any) -> Any:
            checks.append("iter_errors")
            return self.validator.iter_errors(instance)

    def counting(schema: Any) -> tuple[Any, bool]:
        validator, plain = real(schema)
        return Counting(validator), plain

    agent = _agent_for(store, make_model)
    monkeypatch.setattr(tool_args, "compiled_validator", counting)
    fake_llm.push(ToolCallsReply(calls=[ToolCallSpec(id=f"c{i}", name="list_tasks", arguments={"search": f"y{i}"})
                                        for i in range(6)]), TextReply(text="done"))
    async for _ in agent.reply_stream(UserMsg("user", "look")):
        pass
    results = [m["content"] for m in fake_llm.chat_requests[1].messages if m["role"] == "tool"]
    assert len(results) == 6 and not any("Error" in str(r) for r in results)
    assert len(checks) == 6, checks
