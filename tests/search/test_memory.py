"""Agent memory through real runs against the scripted model server: a stated preference
reaches the next run's prompt, memory text is never readable on disk, repeats are gated into
one memory, forget-all forgets, and without a key nothing is stored."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import keyring
import keyring.backends.fail
import pytest
from aiohttp.test_utils import TestClient, TestServer

from sidecar import clock
from sidecar.app import create_app
from sidecar.appstate import HANDSHAKE_DONE, SEARCH
from sidecar.settings import Settings
from tests.agent.runs_helpers import assert_terminal_rules, configure_model, run, run_input
from tests.conftest import Api
from tests.fakes.llm_server import ErrorReply, FakeLLMServer, Rule, TextReply, ToolCallSpec, ToolCallsReply
from tests.search.helpers import ready_vectors, wait_idle


@pytest.fixture
async def fake() -> AsyncIterator[FakeLLMServer]:
    async with FakeLLMServer() as server:
        yield server


def system_text(fake: FakeLLMServer) -> str:
    msgs = fake.chat_requests[-1].messages
    return "\n".join(str(m.get("content")) for m in msgs if m.get("role") == "system")


def disk_bytes(data_dir: Path) -> bytes:
    """Every byte of every file of the data dir (SQLite file and WAL, LanceDB files)."""
    return b"".join(p.read_bytes() for p in sorted(data_dir.rglob("*")) if p.is_file())


async def memories(api: Api, tier: str | None = None) -> list[dict]:  # type: ignore[type-arg]
    q = f"?tier={tier}" if tier else ""
    return (await api.ok("GET", f"/v1/memory{q}"))["items"]  # type: ignore[no-any-return]


async def test_stated_preference_reaches_the_next_runs_prompt(api: Api, fake: FakeLLMServer) -> None:
    await ready_vectors(api)
    await configure_model(api, fake)
    fake.push(TextReply(text="Noted, mornings it is."))
    final = assert_terminal_rules(await run(api, run_input("t-pref", "I prefer meetings in the morning before 10am.")))
    assert final["type"] == "RUN_FINISHED"
    facts = await memories(api, "associative")
    assert [m["text"] for m in facts] == ["I prefer meetings in the morning before 10am."]
    assert facts[0]["threadId"] == "t-pref" and facts[0]["runId"]
    episodes = await memories(api, "episodic")
    assert len(episodes) == 1 and "Noted, mornings it is." in episodes[0]["text"]
    # a new thread, a related request: the model is told the preference and the last episode
    fake.push(TextReply(text="How about 9:00?"))
    assert_terminal_rules(await run(api, run_input("t-next", "Set up the project kickoff meeting")))
    prompt = system_text(fake)
    assert "I prefer meetings in the morning before 10am." in prompt
    assert "Recent conversations" in prompt and "Noted, mornings it is." in prompt


async def test_core_memory_tool_is_encrypted_and_reaches_the_prompt(api: Api, fake: FakeLLMServer,
                                                                   settings: Settings) -> None:
    await ready_vectors(api)
    await configure_model(api, fake)
    fake.push(ToolCallsReply(calls=[ToolCallSpec(name="update_core_memory",
                                                 arguments={"key": "language", "value": "Answer in Portuguese"})]),
              TextReply(text="Combinado."))
    assert_terminal_rules(await run(api, run_input("t-core", "please remember the language")))
    core = await memories(api, "core")
    assert [(m["key"], m["text"]) for m in core] == [("language", "Answer in Portuguese")]
    fake.push(TextReply(text="Olá"))
    assert_terminal_rules(await run(api, run_input("t-core2", "hello")))
    assert "- language: Answer in Portuguese" in system_text(fake)
    store = api.app[SEARCH].store
    assert await store.fetchall("SELECT * FROM core_memory") == []  # no plaintext copy


async def test_no_memory_text_readable_on_disk_and_forget_all(api: Api, fake: FakeLLMServer,
                                                              settings: Settings) -> None:
    await ready_vectors(api)
    await configure_model(api, fake)
    fake.push(TextReply(text="Understood."))
    assert_terminal_rules(await run(api, run_input("t-disk", "My passport number is stored in the blue folder.")))
    fact = (await memories(api, "associative"))[0]
    marker = "zebra-umbrella-7431 keeps the spare office key"
    await api.ok("PATCH", f"/v1/memory/{fact['id']}", {"text": marker})
    assert (await api.ok("GET", "/v1/memory?tier=associative"))["items"][0]["text"] == marker
    episode = (await memories(api, "episodic"))[0]["text"]
    await wait_idle(api)
    raw = disk_bytes(settings.data_dir)
    for text in (marker, episode, "zebra-umbrella"):
        assert text.encode() not in raw, f"{text!r} readable on disk"
    # change log entries exist for memory, without the text
    store = api.app[SEARCH].store
    rows = await store.fetchall("SELECT op, fields FROM change_log WHERE entity = 'memories'")
    assert rows and all("zebra" not in r["fields"] for r in rows)
    assert (await api.ok("DELETE", "/v1/memory"))["deleted"] >= 2
    assert await memories(api) == []
    await wait_idle(api)
    t = api.app[SEARCH].indexer.active.table  # type: ignore[union-attr]
    assert t._t.count_rows("kind = 'memory'") == 0
    status, body = await api.call("DELETE", f"/v1/memory/{fact['id']}")
    assert status == 404 and body["error"]["code"] == "not_found"


async def test_failed_and_empty_runs_store_nothing(api: Api, fake: FakeLLMServer) -> None:
    await ready_vectors(api)
    await configure_model(api, fake, maxRetries=0)
    fake.push(ErrorReply(status=400, message="bad request"))
    final = assert_terminal_rules(await run(api, run_input("t-fail", "I prefer tea over coffee.")))
    assert final["type"] == "RUN_ERROR"
    fake.push(TextReply(text=""))
    assert_terminal_rules(await run(api, run_input("t-empty", "I prefer tea over coffee.")))
    assert await memories(api) == []


async def test_two_hundred_runs_repeating_a_fact_leave_one_memory(api: Api, fake: FakeLLMServer) -> None:
    await ready_vectors(api)
    await configure_model(api, fake)
    fake.add_rule(Rule(match="coffee", reply=TextReply(text="Got it: tea.")))
    variants = ["I prefer tea over coffee.", "i prefer tea over coffee!", "I prefer  tea over coffee"]
    for i in range(200):
        final = assert_terminal_rules(await run(api, run_input(f"t-rep-{i % 7}", variants[i % 3])))
        assert final["type"] == "RUN_FINISHED"
    facts = await memories(api, "associative")
    assert len(facts) == 1 and facts[0]["hits"] == 200
    assert len(await memories(api, "episodic")) == 1


async def test_near_duplicate_by_vector_updates_instead_of_adding(api: Api) -> None:
    await ready_vectors(api)
    memory = api.app[SEARCH].memory
    first, new = await memory.add("associative", "The project deadline is the end of March.")
    assert new
    await wait_idle(api)
    second, new = await memory.add("associative", "The project's deadline is the end of March 2027.")
    assert not new and second.id == first.id and second.hits == 2
    third, new = await memory.add("associative", "Our cat is called Miso.")
    assert new and third.id != first.id


async def test_proactive_patterns_from_the_users_data(api: Api, fake: FakeLLMServer) -> None:
    await ready_vectors(api)
    friday = int(dt.datetime(2026, 12, 4, 12, tzinfo=clock.local_timezone()).timestamp() * 1000)  # a Friday
    for week in range(6):
        await api.ok("POST", "/v1/tasks", {"title": f"Weekly report #{week}", "dueDate": friday + week * 7 * 86_400_000},
                     status=201)
    assert await api.app[SEARCH].memory.derive_patterns() == 2
    patterns = {m["key"]: m for m in await memories(api, "proactive")}
    assert patterns["due-weekday"]["confidence"] == 1.0 and "Friday" in patterns["due-weekday"]["text"]
    recurring = next(m for k, m in patterns.items() if k.startswith("recurring:"))
    assert "Weekly report" in recurring["text"] and recurring["confidence"] == 1.0
    await configure_model(api, fake)
    fake.push(TextReply(text="ok"))
    assert_terminal_rules(await run(api, run_input("t-pat", "what is on this week")))
    assert "usually due on Friday" in system_text(fake)


@pytest.fixture
def no_keyring() -> Iterator[None]:
    previous = keyring.get_keyring()
    keyring.set_keyring(keyring.backends.fail.Keyring())
    yield
    keyring.set_keyring(previous)


async def test_without_a_key_memory_is_off_and_readiness_says_why(settings: Settings, no_keyring: None,
                                                                  fake: FakeLLMServer) -> None:
    app = create_app(settings)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        app[HANDSHAKE_DONE].set()
        api = Api(client)
        await ready_vectors(api)
        ready = await api.ok("GET", "/v1/ready")
        assert ready["components"]["memory"]["state"] == "degraded"
        assert "SIDECAR_SECRET_MEMORY_KEY" in ready["components"]["memory"]["detail"]
        await configure_model(api, fake)
        fake.push(TextReply(text="Noted."))
        assert_terminal_rules(await run(api, run_input("t-nokey", "I prefer tea over coffee.")))
        status, body = await api.call("GET", "/v1/memory")
        assert status == 503 and body["error"]["code"] == "memory_unavailable"
        rows = await app[SEARCH].store.fetchall("SELECT * FROM memories")
        assert rows == []
        await asyncio.sleep(0)


async def test_key_from_the_shells_environment(tmp_path: Path, no_keyring: None) -> None:
    import base64
    import os

    key = base64.urlsafe_b64encode(os.urandom(32)).decode()
    settings = Settings(data_dir=tmp_path / "d", token="t" * 40, env={"SIDECAR_SECRET_MEMORY_KEY": key})
    app = create_app(settings)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        app[HANDSHAKE_DONE].set()
        api_headers = {"Authorization": "Bearer " + "t" * 40}
        for _ in range(200):
            resp = await client.get("/v1/ready", headers=api_headers)
            ready = await resp.json()
            if ready["components"].get("memory", {}).get("state") not in (None, "starting"):
                break
            await asyncio.sleep(0.05)
        assert ready["components"]["memory"]["state"] == "ok"
        assert "environment" in ready["components"]["memory"]["detail"]
        item, _ = await app[SEARCH].memory.add("associative", "I live in Porto.")
        assert (await app[SEARCH].memory.get(item.id)).text == "I live in Porto."
