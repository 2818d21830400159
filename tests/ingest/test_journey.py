"""The setup journey (``/v1/watches/journey``) against the scripted OpenAI-compatible server on
real HTTP: at most five questions (the cap is the code's), a template the ``llm`` extractor then
uses, refining a watch's template, sessions that survive a restart, and its errors."""

from __future__ import annotations

import asyncio
import itertools
import json
from pathlib import Path
from typing import Any

from sidecar.settings import Settings
from tests.fakes.llm_server import ErrorReply, FakeLLMServer, Rule, TextReply, message_text
from tests.fakes.memory_keyring import MemoryKeyring
from tests.ingest.harness import Harness, configure_model, running

TEMPLATE = ("Extract action items for the Falcon team only. Prefix every task title with 'FALCON:'. "
            "A task that mentions the customer is high priority. 'RK' means Rosa Kim.")
QUESTIONS = ["What kinds of files will land in this folder?", "What should be extracted: tasks, notes, milestones?",
             "How should items be named?", "Which tasks are high priority?", "Any names or abbreviations to map?"]
ANSWERS = ["Meeting minutes in Markdown.", "Tasks and milestones, no notes.", "Prefix tasks with FALCON:.",
           "Anything about the customer is high.", "RK is Rosa Kim."]


def reply(obj: dict[str, Any] | str) -> TextReply:
    return TextReply(text=obj if isinstance(obj, str) else json.dumps(obj))


def question(text: str) -> TextReply:
    return reply({"question": text})


def done(template: str, message: str = "Your folder agent is ready.") -> TextReply:
    return reply({"done": True, "message": message, "promptTemplate": template})





def roles(messages: list[dict[str, Any]]) -> list[str]:
    return [m["role"] for m in messages]


def assert_alternates(messages: list[dict[str, Any]]) -> None:
    """system, then user/assistant turns alternating, the last one the user's."""
    r = roles(messages)
    assert r[0] == "system" and r[-1] == "user", r
    assert all(a != b for a, b in itertools.pairwise(r[1:])), r


async def test_five_questions_then_a_template_the_extractor_uses(ing: Harness, fake: FakeLLMServer,
                                                                 tmp_path: Path) -> None:
    await configure_model(ing, fake.base_url)
    # the third question in plain text, as small models answer: it still counts as a question
    fake.push(question(QUESTIONS[0]), question(QUESTIONS[1]), reply(QUESTIONS[2]), question(QUESTIONS[3]),
              question(QUESTIONS[4]), done(TEMPLATE))
    turn = await ing.ok("POST", "/v1/watches/journey", {}, status=201)
    assert turn == {"sessionId": turn["sessionId"], "message": QUESTIONS[0], "done": False, "watchId": None,
                    "questionsAsked": 1}
    sid = turn["sessionId"]
    for i, answer in enumerate(ANSWERS):
        turn = await ing.ok("POST", f"/v1/watches/journey/{sid}/messages", {"message": answer})
        sent = fake.chat_requests[-1].messages
        assert_alternates(sent)
        assert message_text(sent[-1]) == answer, "the user's own words are the last turn"
        if i < 4:
            assert turn == {"sessionId": sid, "message": QUESTIONS[i + 1], "done": False, "watchId": None,
                            "questionsAsked": i + 2}
            assert f"you have asked {i + 1}" in message_text(sent[0])
    assert "You have asked all 5 questions" in message_text(sent[0])
    assert turn == {"sessionId": sid, "message": "Your folder agent is ready.", "done": True,
                    "promptTemplate": TEMPLATE, "watchId": None, "questionsAsked": 5}
    assert len(fake.chat_requests) == 6
    status, body = await ing.call("POST", f"/v1/watches/journey/{sid}/messages", {"message": "one more"})
    assert status == 409 and body["error"]["code"] == "journey_done"
    assert body["error"]["detail"]["promptTemplate"] == TEMPLATE

    # the template drives an extraction: the scripted model sees it in the extraction prompt
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    fake.reset()
    fake.push(TextReply(text=json.dumps({"items": [{"type": "task", "title": "FALCON: send the rota to RK",
                                                    "priority": "high"}]})))
    (inbox / "minutes.md").write_text("Minutes\n\nRK asked for the rota; the customer is waiting.\n")
    await ing.create_watch(inbox, useLlm=True, promptTemplate=turn["promptTemplate"])
    f = await ing.wait_file(inbox / "minutes.md")
    assert f["status"] == "done" and f["extractor"] == "llm", f
    extraction = fake.chat_requests[0].messages
    assert TEMPLATE in message_text(extraction[-1])
    assert "RK asked for the rota" in message_text(extraction[-1])
    [task] = await ing.entities("tasks")
    assert task["title"] == "FALCON: send the rota to RK" and task["priority"] == "high"


async def test_the_five_question_cap_is_enforced_in_code(ing: Harness, fake: FakeLLMServer) -> None:
    await configure_model(ing, fake.base_url)
    fake.add_rule(Rule(reply=question("And another thing?")))  # a model that never stops asking
    turn = await ing.ok("POST", "/v1/watches/journey", {}, status=201)
    sid = turn["sessionId"]
    for answer in ANSWERS[:4]:
        turn = await ing.ok("POST", f"/v1/watches/journey/{sid}/messages", {"message": answer})
        assert not turn["done"]
    calls = len(fake.chat_requests)
    turn = await ing.ok("POST", f"/v1/watches/journey/{sid}/messages", {"message": ANSWERS[4]})
    assert turn["done"] is True and turn["questionsAsked"] == 5
    # told once, then the code closes the journey with the user's answers
    assert len(fake.chat_requests) == calls + 2
    retry = fake.chat_requests[-1].messages
    assert "do not ask another" in message_text(retry[-1])
    template = turn["promptTemplate"]
    assert all(a in template for a in ANSWERS), template
    assert "And another thing?" in template  # the questions give the answers their sense


async def test_refining_a_watch_survives_a_restart_and_writes_its_template(
        settings: Settings, memory_keyring: MemoryKeyring, fake: FakeLLMServer, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    async with running(settings) as h:
        await configure_model(h, fake.base_url)
        watch = await h.create_watch(inbox, useLlm=True, promptTemplate="Old rules: extract every TODO line.")
        fake.push(question("Should the TODO lines stay the only source?"))
        turn = await h.ok("POST", "/v1/watches/journey", {"watchId": watch["id"]}, status=201)
        assert turn["watchId"] == watch["id"] and not turn["done"]
        first = fake.chat_requests[0].messages
        assert "Old rules: extract every TODO line." in message_text(first[0])
        assert watch["name"] in message_text(first[1])
    async with running(settings) as h:  # a new process on the same data dir
        fake.push(done(TEMPLATE, "Updated."))
        after = await h.ok("POST", f"/v1/watches/journey/{turn['sessionId']}/messages",
                           {"message": "No: also action items, and map RK."})
        assert after["done"] and after["promptTemplate"] == TEMPLATE and after["watchId"] == watch["id"]
        sent = fake.chat_requests[-1].messages
        assert [message_text(m) for m in sent[2:]] == [
            json.dumps({"question": "Should the TODO lines stay the only source?"}),
            "No: also action items, and map RK."]
        assert (await h.ok("GET", f"/v1/watches/{watch['id']}"))["promptTemplate"] == TEMPLATE


async def test_errors(ing: Harness, fake: FakeLLMServer) -> None:
    status, body = await ing.call("POST", "/v1/watches/journey", {})
    assert status == 503 and body["error"]["code"] == "model_not_configured"
    status, body = await ing.call("POST", "/v1/watches/journey/0190a000-0000-7000-8000-000000000000/messages",
                                  {"message": "hi"})
    assert status == 404 and body["error"]["code"] == "not_found"
    await configure_model(ing, fake.base_url)
    status, body = await ing.call("POST", "/v1/watches/journey", {"watchId": "no-such-watch"})
    assert status == 404
    for bad in ({"watchId": 3}, {"watch_id": "x"}, {"other": 1}):
        status, body = await ing.call("POST", "/v1/watches/journey", bad)
        assert status == 422, bad
    fake.push(question("What files?"))
    sid = (await ing.ok("POST", "/v1/watches/journey", {}, status=201))["sessionId"]
    for bad in ({}, {"message": "   "}, {"message": "x" * 4001}, {"message": 1}):
        status, body = await ing.call("POST", f"/v1/watches/journey/{sid}/messages", bad)
        assert status == 422, bad
    # the model fails: 503, nothing lost — the same answer sent again carries on
    fake.push(ErrorReply(status=500))
    status, body = await ing.call("POST", f"/v1/watches/journey/{sid}/messages", {"message": "Emails."})
    assert status == 503 and body["error"]["code"] == "model_unavailable", body
    fake.push(question("What should be extracted?"))
    turn = await ing.ok("POST", f"/v1/watches/journey/{sid}/messages", {"message": "Emails."})
    assert turn["message"] == "What should be extracted?" and turn["questionsAsked"] == 2
    assert [m["role"] for m in fake.chat_requests[-1].messages] == ["system", "user", "assistant", "user"]


async def test_a_second_message_while_one_is_answered_is_refused(ing: Harness, fake: FakeLLMServer) -> None:
    await configure_model(ing, fake.base_url)
    fake.push(question("What files?"))
    sid = (await ing.ok("POST", "/v1/watches/journey", {}, status=201))["sessionId"]
    fake.push(TextReply(text=json.dumps({"question": "Which items?"}), delay_s=0.5),
              question("Which items, again?"))
    path = f"/v1/watches/journey/{sid}/messages"
    first = asyncio.ensure_future(ing.call("POST", path, {"message": "Emails."}))
    await fake.wait_for_chat_requests(2)  # the first answer is with the model
    second = await ing.call("POST", path, {"message": "Minutes."})
    assert second[0] == 409 and second[1]["error"]["code"] == "journey_busy", second
    status, turn = await first
    assert status == 200 and turn["message"] == "Which items?" and turn["questionsAsked"] == 2
    # nothing was overwritten: the next answer continues from "Emails."
    fake.push(question("Naming?"))
    await ing.ok("POST", path, {"message": "Tasks."})
    sent = [message_text(m) for m in fake.chat_requests[-1].messages]
    assert "Emails." in sent and "Minutes." not in sent
