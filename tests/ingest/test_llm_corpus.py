"""The ``llm`` extractor over the held-out corpus against a scripted model (plumbing only).

The scripted OpenAI-compatible server knows the *dev* labels and nothing else: asked about a
dev file it answers that file's labels (as a model would, in the schema the extractor asks for);
asked about anything else — every test file — it answers no items. So the dev figures check the
plumbing end to end (prompt, chunking, JSON validation, items, spans), and the test figures are
what this scripted "model" can do on files it has never seen: nothing. The quality of a real
local model cannot be measured here and is not claimed. Run with ``-s`` to see the figures.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator

import pytest

from sidecar.agent.model import LiteLLMChatModel
from sidecar.agent.settings import ModelSettings
from sidecar.ingest.llm import LlmExtractor
from sidecar.ingest.readers import read_document
from tests.fakes.llm_server import FakeLLMServer, Rule, TextReply
from tests.ingest.quality import Score, corpus2_dir, labelled_files, score

pytestmark = pytest.mark.skipif(corpus2_dir() is None, reason="corpus2 files not present (see corpus2/SOURCES.md)")


def _answer(labels: list[dict[str, object]]) -> TextReply:
    items = []
    for label in labels:
        item: dict[str, object] = {"type": label["type"], "title": label["title"]}
        if label["type"] == "timeline":
            item["date"] = label["date"]
        if label.get("due"):
            item["dueDate"] = label["due"]
        items.append(item)
    return TextReply(text=json.dumps({"items": items}), stream=False)


@pytest.fixture
async def scripted() -> AsyncIterator[FakeLLMServer]:
    async with FakeLLMServer() as server:
        for path, labels in labelled_files("dev"):
            server.add_rule(Rule(match=rf"--- document {re.escape(path.name)}[ (]", reply=_answer(labels)))
        server.default = TextReply(text=json.dumps({"items": []}), stream=False)
        yield server


async def _run(server: FakeLLMServer, corpus: str) -> tuple[Score, int]:
    model = LiteLLMChatModel(
        ModelSettings(model="openai/fake-model", api_base=f"http://127.0.0.1:{server.port}/v1", max_retries=0),
        "sk-fake",
        stream=False,
    )
    extractor = LlmExtractor(model, chunk_chars=200_000, max_chunks=1)
    total, files = Score(), 0
    for path, labels in labelled_files(corpus):
        doc = read_document(path, max_bytes=5_000_000)
        items = await extractor.extract(doc, prompt_template="", want={"tasks", "timelines", "notes"},
                                        skip_done=False, now_ms=0)
        total += score(items, labels)
        files += 1
    return total, files


async def test_llm_extractor_plumbing_on_the_held_out_corpus(scripted: FakeLLMServer) -> None:
    dev, dev_files = await _run(scripted, "dev")
    test, test_files = await _run(scripted, "test")
    print(f"\nllm (scripted from dev labels) dev  {dev_files} files: {dev.line()}")
    print(f"llm (scripted from dev labels) test {test_files} files: {test.line()}")
    assert dev_files >= 70 and test_files >= 70
    # dev: the labels went through prompt → JSON → items (titles the model "said" come back)
    assert dev.recall >= 0.95 and dev.precision >= 0.95
    # test: every file was asked about and answered; the scripted model knows none of them
    assert test.extracted == 0 and len(scripted.chat_requests) >= dev_files + test_files
