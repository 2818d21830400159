"""The setup journey (the seed's "Chatbot Journey"): a short conversation with the configured
model that writes a watch's ``promptTemplate`` for the ``llm`` extractor (:mod:`sidecar.ingest.llm`).

* :meth:`JourneyService.start` opens a session and returns the model's first question. With a
  ``watchId`` the model sees that watch's current template (and data types, file types) and
  refines it.
* :meth:`JourneyService.answer` takes the user's answer and returns the next question or, when
  the model knows enough, ``done`` with the template. With a ``watchId`` the template is
  written to that watch (through :meth:`IngestService.update_watch`, the watches' write path).
* **At most** :data:`MAX_QUESTIONS` **questions, enforced here**, not only in the prompt: after
  the fifth answer the model must finish; a model that asks again (or answers badly) is told
  once, and if it still does not give a template, one is composed from the user's answers.
* The model answers one JSON object, ``{"question": …}`` or ``{"done": true, "message": …,
  "promptTemplate": …}``; a reply in plain text counts as a question. The number of questions
  asked goes in the system prompt, so the transcript alternates and ends with the user's words.
* Sessions are rows of ``ingest_journeys`` (migration ``009_journey``): a session survives a
  restart. A failed model call changes nothing: the user can send the same answer again.

Errors: :class:`~sidecar.errors.NotFound` (unknown session or watch), :class:`JourneyDone`
(409, the session already ended), :class:`JourneyBusy` (409, a message of the same session is
being answered), :class:`~sidecar.errors.Unavailable` (503 ``model_not_configured`` /
``model_unavailable``).
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import uuid6
from pydantic import ConfigDict, Field, StringConstraints, ValidationError

from sidecar import clock
from sidecar.basemodel import Model
from sidecar.errors import Conflict, NotFound, Unavailable
from sidecar.ingest.llm import LlmUnavailable, ModelLoader, complete_text, strip_fence
from sidecar.ingest.watches import PROMPT_MAX, Watch, WatchStore
from sidecar.store.db import Store
from sidecar.store.models import ApiModel, Id

log = logging.getLogger(__name__)

#: The most questions a journey asks (the seed's five topics), enforced in code.
MAX_QUESTIONS = 5
#: Longest answer a user may send (characters).
MESSAGE_MAX = 4_000
#: Asked when the model's first reply is unusable twice.
FIRST_QUESTION = ("What kinds of files will this folder hold (meeting notes, emails, calendars, PDFs…), "
                  "and what should be taken from them: tasks, notes, milestones?")
TOPICS = (
    "the kinds of files the folder will hold (meeting notes, emails, calendar files, PDFs…)",
    "what to extract from them: tasks, notes, milestones (dated timeline items)",
    "how to name the items (title style, prefixes, language)",
    "priority rules: what makes a task high, medium or low",
    "special mappings: people, projects, words or tags that mean something particular",
)


class JourneyStart(ApiModel):
    """Body of ``POST /v1/watches/journey``: ``{}`` for a new watch, or the watch to refine."""

    watch_id: Id | None = None


class JourneyMessage(ApiModel):
    """Body of ``POST /v1/watches/journey/{sessionId}/messages``: the user's answer."""

    message: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MESSAGE_MAX)]


class JourneyTurn(ApiModel):
    """One answer of the journey. ``promptTemplate`` comes with ``done: true`` only (and was
    written to ``watchId`` when the journey refined a watch)."""

    session_id: str
    message: str = Field(description="the model's question, or its closing summary when done")
    done: bool
    prompt_template: str | None = Field(default=None, description="with done: the extraction instructions")
    watch_id: str | None = Field(description="the watch refined (its promptTemplate is updated when done)")
    questions_asked: int = Field(ge=0, le=MAX_QUESTIONS)


class JourneyDone(Conflict):
    """409: the session has ended; start a new one to change the template again."""

    code = "journey_done"


class JourneyBusy(Conflict):
    """409: the session's previous message is still being answered."""

    code = "journey_busy"


class _ModelReply(Model):
    """What the model may answer (extra keys ignored)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    question: str | None = None
    done: bool = False
    message: str | None = None
    prompt_template: str | None = Field(default=None, alias="promptTemplate")


@dataclass
class Outcome:
    """A parsed model reply: a question, a template, or why it was unusable."""

    kind: Literal["question", "done", "invalid"]
    text: str = ""
    template: str = ""


def parse_reply(text: str) -> Outcome:
    """Read the model's reply (see the module docstring); JSON in a code fence is accepted."""
    body = strip_fence(text)
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        plain = " ".join(text.split())
        if plain and not body.lstrip().startswith(("{", "[")):
            return Outcome("question", plain[:MESSAGE_MAX])
        return Outcome("invalid", "the reply is neither a JSON object nor a question")
    try:
        reply = _ModelReply.model_validate(data)
    except ValidationError:
        return Outcome("invalid", "the JSON object has fields of the wrong type")
    template = (reply.prompt_template or "").strip()
    if reply.done or template:
        if not template:
            return Outcome("invalid", "done without a promptTemplate")
        if len(template) > PROMPT_MAX:
            return Outcome("invalid", f"the promptTemplate is longer than {PROMPT_MAX} characters")
        message = " ".join((reply.message or "").split()) or "Here are the extraction instructions."
        return Outcome("done", message[:MESSAGE_MAX], template)
    question = " ".join((reply.question or reply.message or "").split())
    if not question:
        return Outcome("invalid", "no question and no promptTemplate")
    return Outcome("question", question[:MESSAGE_MAX])


def system_prompt(questions: int, watch: Watch | None) -> str:
    """The journey's instructions, with the count of questions asked so far (runtime state
    belongs here, so the transcript ends with the user's own message)."""
    topics = "\n".join(f"{i}. {t}" for i, t in enumerate(TOPICS, 1))
    if questions >= MAX_QUESTIONS:
        budget = (f"You have asked all {MAX_QUESTIONS} questions you may ask. Do not ask another: "
                  "answer with the finished instructions now.")
    else:
        budget = (f"You may ask at most {MAX_QUESTIONS} questions in all; you have asked {questions}. "
                  "Skip topics the user already covered.")
    text = (
        "You help the user set up a folder-extraction agent of their personal task manager. The app reads "
        "every file that lands in a folder and proposes tasks, notes and milestones from it, following "
        "extraction instructions given to another model together with each document. You write those "
        "instructions.\n"
        f"Ask short questions, one at a time, about:\n{topics}\n{budget}\n"
        "Answer with exactly one JSON object and nothing else, either\n"
        '{"question": "your next question"}\n'
        "or, when you know enough,\n"
        '{"done": true, "message": "one sentence for the user", "promptTemplate": "the instructions"}.\n'
        "Write the promptTemplate as plain-text instructions to the extraction model: what to extract, how "
        "to name items, priority rules, special mappings. Do not describe the output format (it is fixed)."
    )
    if watch is not None:
        current = watch.prompt_template.strip() or "(none yet)"
        text += (
            f"\n\nThe user is refining the watch \"{watch.name}\" (extracts {', '.join(watch.data_types)} from "
            f"{', '.join(watch.file_extensions)} files). Its current instructions follow; keep what the user "
            f"does not change.\n<current-instructions>\n{current}\n</current-instructions>"
        )
    return text


def composed_template(transcript: list[dict[str, str]], watch: Watch | None) -> str:
    """A template built from the user's answers, for a model that would not write one."""
    lines = ["Extraction instructions from the setup conversation (the user's answers):"]
    question = ""
    for turn in transcript[1:]:  # the first user turn is the opening, not an answer
        if turn["role"] == "assistant":
            question = parse_reply(turn["content"]).text
        else:
            lines.append(f"- {question} {turn['content']}" if question else f"- {turn['content']}")
    if watch is not None and watch.prompt_template.strip():
        lines += ["", "Earlier instructions (the answers above take precedence):", watch.prompt_template.strip()]
    return "\n".join(lines)[:PROMPT_MAX]


@dataclass
class Session:
    """One stored journey (a row of ``ingest_journeys``). ``transcript`` holds the
    model-facing turns ``{"role": "user"|"assistant", "content"}``, starting with a user turn."""

    id: str
    watch_id: str | None
    transcript: list[dict[str, str]] = field(default_factory=list)
    questions: int = 0
    done: bool = False
    prompt_template: str | None = None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Session:
        return cls(id=row["id"], watch_id=row["watch_id"], transcript=json.loads(row["transcript"]),
                   questions=row["questions"], done=bool(row["done"]), prompt_template=row["prompt_template"])

    def turn(self, message: str) -> JourneyTurn:
        return JourneyTurn(session_id=self.id, message=message, done=self.done,
                           prompt_template=self.prompt_template if self.done else None,
                           watch_id=self.watch_id, questions_asked=self.questions)


TemplateWriter = Callable[[str, str], Awaitable[Any]]


class JourneyService:
    """Runs journeys for one app.

    Args:
        store: the database (table ``ingest_journeys``).
        watches: reads the watch a journey refines.
        load_model: ``await load_model()`` → ``(model, None)`` or ``(None, reason)``
            (:func:`sidecar.ingest.llm.load_model`).
        write_template: ``await write_template(watch_id, template)`` stores a finished template
            on its watch (raises NotFound when the watch is gone).
    """

    def __init__(self, store: Store, watches: WatchStore, load_model: ModelLoader,
                 write_template: TemplateWriter) -> None:
        self.store = store
        self.watches = watches
        self.load_model = load_model
        self.write_template = write_template
        self._busy: set[str] = set()

    async def get(self, session_id: str) -> Session:
        """A stored session. Raises NotFound."""
        row = await self.store.fetchone("SELECT * FROM ingest_journeys WHERE id = ?", (session_id,))
        if row is None:
            raise NotFound(f"no journey session with id {session_id}",
                           detail={"entity": "journeys", "id": session_id})
        return Session.from_row(row)

    async def start(self, body: JourneyStart) -> JourneyTurn:
        """Open a session and ask the first question. Raises NotFound (``watchId``), Unavailable."""
        watch = await self.watches.get(body.watch_id) if body.watch_id else None
        opening = (f"I want to refine the extraction instructions of my watch \"{watch.name}\"." if watch
                   else "I want to set up a folder for extraction.")
        session = Session(id=str(uuid6.uuid7()), watch_id=watch.id if watch else None,
                          transcript=[{"role": "user", "content": opening}])
        model = await self._model()
        outcome = await self._ask(model, session, watch, allow_done=False)
        if outcome.kind != "question":
            outcome = Outcome("question", FIRST_QUESTION)
        self._record_question(session, outcome.text)
        now = clock.now_ms()
        async with self.store.write() as w:
            await w.execute(
                "INSERT INTO ingest_journeys (id, watch_id, transcript, questions, done, prompt_template, "
                "created_at, updated_at) VALUES (?, ?, ?, ?, 0, NULL, ?, ?)",
                (session.id, session.watch_id, json.dumps(session.transcript, ensure_ascii=False),
                 session.questions, now, now),
            )
        return session.turn(outcome.text)

    async def answer(self, session_id: str, body: JourneyMessage) -> JourneyTurn:
        """The user's answer → the next question, or ``done`` with the template.

        Raises:
            NotFound: no such session.
            JourneyDone: the session already ended.
            JourneyBusy: the previous message of this session is still being answered.
            Unavailable: no model, or the model failed (the session is unchanged).
        """
        if session_id in self._busy:
            raise JourneyBusy("the previous message of this journey is still being answered")
        self._busy.add(session_id)
        try:  # read under the mark: a message answered meanwhile is seen, never overwritten
            session = await self.get(session_id)
            if session.done:
                raise JourneyDone("this journey is finished; start a new one to refine the template again",
                                  detail={"promptTemplate": session.prompt_template})
            return await self._answer(session, body.message)
        finally:
            self._busy.discard(session_id)

    async def _answer(self, session: Session, message: str) -> JourneyTurn:
        watch = await self._watch(session.watch_id)
        model = await self._model()
        session.transcript.append({"role": "user", "content": message})
        outcome = await self._ask(model, session, watch, allow_done=True)
        if outcome.kind == "question" and session.questions < MAX_QUESTIONS:
            self._record_question(session, outcome.text)
            reply = outcome.text
        else:
            if outcome.kind != "done":  # the cap is the code's, whatever the model does
                log.warning("journey: the model gave no template; composing one from the answers",
                            extra={"session": session.id, "reason": outcome.text})
                outcome = Outcome("done", "Here are the extraction instructions, made from your answers.",
                                  composed_template(session.transcript, watch))
            session.transcript.append({"role": "assistant", "content": json.dumps(
                {"done": True, "message": outcome.text, "promptTemplate": outcome.template}, ensure_ascii=False)})
            session.done, session.prompt_template, reply = True, outcome.template, outcome.text
            if watch is not None:
                await self.write_template(watch.id, outcome.template)
        async with self.store.write() as w:
            await w.execute(
                "UPDATE ingest_journeys SET transcript = ?, questions = ?, done = ?, prompt_template = ?, "
                "updated_at = ? WHERE id = ?",
                (json.dumps(session.transcript, ensure_ascii=False), session.questions, int(session.done),
                 session.prompt_template, clock.now_ms(), session.id),
            )
        return session.turn(reply)

    async def _watch(self, watch_id: str | None) -> Watch | None:
        if watch_id is None:
            return None
        try:
            return await self.watches.get(watch_id)
        except NotFound:
            return None  # deleted meanwhile: the journey still yields its template

    async def _model(self) -> Any:
        model, reason = await self.load_model()
        if model is None:
            raise Unavailable(f"{reason}: set one with PUT /v1/settings/model, e.g. "
                              '{"model": "ollama/llama3.2", "apiBase": "http://127.0.0.1:11434"}',
                              code="model_not_configured")
        return model

    @staticmethod
    def _record_question(session: Session, question: str) -> None:
        session.transcript.append({"role": "assistant", "content": json.dumps({"question": question},
                                                                              ensure_ascii=False)})
        session.questions += 1

    async def _ask(self, model: Any, session: Session, watch: Watch | None, *, allow_done: bool) -> Outcome:
        """One model reply, told once what was wrong when it is unusable here."""
        from agentscope.message import AssistantMsg, SystemMsg, UserMsg

        must_finish = session.questions >= MAX_QUESTIONS
        msgs: list[Any] = [SystemMsg("system", system_prompt(session.questions, watch))]
        for turn in session.transcript:
            cls = UserMsg if turn["role"] == "user" else AssistantMsg
            msgs.append(cls(turn["role"], turn["content"]))
        outcome = Outcome("invalid")
        for attempt in range(2):
            try:
                text = await complete_text(model, msgs)
            except LlmUnavailable as exc:
                raise Unavailable(f"the model could not answer ({exc.reason}); send the message again",
                                  code="model_unavailable") from None
            except Exception as exc:  # a provider library failing in a way the model layer did not map
                log.warning("journey: the model call failed", exc_info=True)
                raise Unavailable(f"the model could not answer ({type(exc).__name__}); send the message again",
                                  code="model_unavailable") from None
            outcome = parse_reply(text)
            if outcome.kind == "done" and not allow_done:
                why = "Ask your first question before writing the instructions."
            elif outcome.kind == "question" and must_finish:
                why = f"You have asked {MAX_QUESTIONS} questions; do not ask another."
            elif outcome.kind == "invalid":
                why = f"That reply was not usable ({outcome.text})."
            else:
                return outcome
            if attempt == 0:
                want = ('{"done": true, "message": …, "promptTemplate": …}' if must_finish
                        else '{"question": …}' if not allow_done else "one JSON object as instructed")
                msgs += [AssistantMsg("assistant", text), UserMsg("user", f"{why} Answer with {want}.")]
        return outcome

