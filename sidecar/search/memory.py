"""The agent's memory (the seed's four tiers), encrypted at rest.

Tiers: ``core`` (key/value preferences, ``update_core_memory``), ``episodic`` (a short summary
of each finished run), ``associative`` (facts the user stated, embedded, with the thread and run
they came from), ``proactive`` (patterns derived from the user's data, with a confidence).

**Encryption.** Every memory's text is sealed with AES-256-GCM (``cryptography``'s AEAD) under
a key kept as the secret ``memory_key`` (OS keyring, or the shell's ``SIDECAR_SECRET_MEMORY_KEY``;
32 bytes, URL-safe base64). The associated data binds the memory id and tier, so a ciphertext
cannot be moved to another row. Near-duplicate detection uses a keyed HMAC-SHA256 digest of the
normalised text, never the text. The LanceDB index holds only the vector of a memory, never its
text. With no key obtainable, memory is not stored at all (``/v1/ready`` ``memory: degraded``
says why) — never plaintext.

**Gates.** Nothing is written from an empty or failed run; a new memory whose normalised text,
or whose vector (cosine ≥ :data:`NEAR_DUPLICATE_COSINE`), matches one of the same tier updates
that one (``hits`` + 1, newest text) instead of adding another.

Every change is a change-log entry (entity ``memories``; fields carry the tier and times, never
the text), like other data.
"""

from __future__ import annotations

import base64
import collections
import datetime as dt
import hashlib
import hmac
import os
import re
import secrets as pysecrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import uuid6
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import Field

from sidecar import clock
from sidecar.errors import NotFound, Unavailable
from sidecar.search.documents import SourceDoc
from sidecar.secrets import SecretStore
from sidecar.store.db import Store, Writer
from sidecar.store.models import ApiModel

Tier = Literal["core", "episodic", "associative", "proactive"]
TIERS: tuple[Tier, ...] = ("core", "episodic", "associative", "proactive")
KEY_SECRET = "memory_key"
NEAR_DUPLICATE_COSINE = 0.92
#: tokens of memory added to a run's context at most (≈ 4 characters per token)
CONTEXT_BUDGET_TOKENS = 600
PROACTIVE_THRESHOLD = 0.6
MAX_TEXT = 4000

#: sentences where the user states something about themselves worth remembering
_FACT = re.compile(
    r"\b(i|we)\s*(?:'m|am|are|prefer|like|love|hate|dislike|want|need|always|never|usually|use|work|live|"
    r"decided|agreed|chose|plan)\b|\bmy\s+[\w-]+(?:\s+[\w-]+)?\s+(?:is|are|was)\b|\bremember\b|\bcall me\b",
    re.IGNORECASE)
_SENTENCE = re.compile(r"(?<=[.!?\n])\s+")


class MemoryItem(ApiModel):
    """A memory as ``GET /v1/memory`` shows it (decrypted, for the shell only)."""

    id: str
    tier: Tier
    key: str | None = None
    text: str
    thread_id: str | None = None
    run_id: str | None = None
    confidence: float | None = None
    hits: int
    created_at: int
    updated_at: int


class MemoryPatch(ApiModel):
    """``PATCH /v1/memory/{id}`` body."""

    text: str | None = Field(default=None, min_length=1, max_length=MAX_TEXT)
    confidence: float | None = Field(default=None, ge=0, le=1)


class MemoryQuery(ApiModel):
    tier: Tier | None = None


def normalise(text: str) -> str:
    """Lower case, punctuation dropped, whitespace collapsed (the near-duplicate text form)."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def stated_facts(message: str) -> list[str]:
    """Sentences of a user message that state a fact or preference (not questions)."""
    out = []
    for s in _SENTENCE.split(message.strip()):
        s = s.strip()
        if 8 <= len(s) <= 500 and not s.endswith("?") and _FACT.search(s):
            out.append(s)
    return out[:5]


@dataclass
class Cipher:
    """AES-256-GCM with a 96-bit random nonce per message; HMAC-SHA256 digests."""

    key: bytes

    def seal(self, memory_id: str, tier: str, text: str) -> tuple[bytes, bytes]:
        nonce = os.urandom(12)
        return nonce, AESGCM(self.key).encrypt(nonce, text.encode(), f"sidecar-memory/1|{memory_id}|{tier}".encode())

    def open(self, memory_id: str, tier: str, nonce: bytes, ciphertext: bytes) -> str:
        """Raises cryptography.exceptions.InvalidTag for a wrong key or a moved/altered row."""
        aad = f"sidecar-memory/1|{memory_id}|{tier}".encode()
        return AESGCM(self.key).decrypt(nonce, ciphertext, aad).decode()

    def digest(self, text: str) -> str:
        return hmac.new(self.key, normalise(text).encode(), hashlib.sha256).hexdigest()


#: ``nearest(text, tier, limit)`` → ``[(memory id, cosine)]`` from the vector index (or [])
Nearest = Callable[[str, str, int], Awaitable[list[tuple[str, float]]]]


class Memory:
    """The memory store. ``unlock()`` after the handshake; until it succeeds every write is
    refused (``Unavailable``) and :attr:`reason` says why."""

    def __init__(self, store: Store, secrets: SecretStore) -> None:
        self.store = store
        self.secrets = secrets
        self.cipher: Cipher | None = None
        self.reason = "memory starts after the handshake"
        self.nearest: Nearest | None = None

    async def unlock(self) -> bool:
        """Get the key (creating and storing one on first use). Returns whether memory is usable."""
        raw = await self.secrets.get(KEY_SECRET)
        if raw is None:
            fresh = base64.urlsafe_b64encode(pysecrets.token_bytes(32)).decode()
            try:
                await self.secrets.set(KEY_SECRET, fresh)
            except Unavailable as exc:
                self.reason = f"memory is off: no key store ({exc.message}); set SIDECAR_SECRET_MEMORY_KEY"
                return False
            raw = await self.secrets.get(KEY_SECRET)
            if raw is None:
                self.reason = "memory is off: the keyring did not keep the memory key"
                return False
        try:
            key = base64.urlsafe_b64decode(raw.encode() + b"=" * (-len(raw) % 4))
        except ValueError:
            key = b""
        if len(key) != 32:
            self.reason = "memory is off: memory_key is not 32 bytes of URL-safe base64"
            return False
        self.cipher = Cipher(key)
        self.reason = "AES-256-GCM, key from " + ("the environment" if self.secrets.is_set_in_env(KEY_SECRET)
                                                   else "the OS keyring")
        await self._adopt_plain_core_memory()
        return True

    def _need(self) -> Cipher:
        if self.cipher is None:
            raise Unavailable(self.reason, code="memory_unavailable")
        return self.cipher

    async def _adopt_plain_core_memory(self) -> None:
        """Core memory written before this part existed (plaintext ``core_memory``) moves in,
        encrypted, and the plaintext rows are deleted."""
        rows = await self.store.fetchall("SELECT key, value FROM core_memory")
        for r in rows:
            await self.set_core(r[0], r[1])
        if rows:
            async with self.store.write() as w:
                await w.execute("DELETE FROM core_memory")

    # -- reading ------------------------------------------------------------------------------

    def _item(self, r: Any) -> MemoryItem:
        text = self._need().open(r["id"], r["tier"], r["nonce"], r["ciphertext"])
        return MemoryItem(id=r["id"], tier=r["tier"], key=r["key"], text=text, thread_id=r["thread_id"],
                          run_id=r["run_id"], confidence=r["confidence"], hits=r["hits"],
                          created_at=r["created_at"], updated_at=r["updated_at"])

    async def entries(self, tier: str | None = None, limit: int = 1000) -> list[MemoryItem]:
        """Memories newest first (decrypted). Raises Unavailable without the key."""
        self._need()
        where, params = ("WHERE tier = ?", [tier]) if tier else ("", [])
        rows = await self.store.fetchall(f"SELECT * FROM memories {where} ORDER BY updated_at DESC, id LIMIT ?",
                                         [*params, limit])
        out = []
        for r in rows:
            try:
                out.append(self._item(r))
            except InvalidTag:  # written under another key: unreadable, never shown garbled
                continue
        return out

    async def get(self, memory_id: str) -> MemoryItem:
        self._need()
        row = await self.store.fetchone("SELECT * FROM memories WHERE id = ?", (memory_id,))
        if row is None:
            raise NotFound(f"no memory with id {memory_id}", detail={"entity": "memories", "id": memory_id})
        return self._item(row)

    async def core(self) -> dict[str, str]:
        """Core memory as ``{key: value}`` ({} without the key)."""
        if self.cipher is None:
            return {}
        return {m.key or m.id: m.text for m in sorted(await self.entries("core"), key=lambda m: m.key or "")}

    async def load_docs(self, ids: list[str]) -> dict[str, SourceDoc]:
        """Index documents of these memories: vectors of their text, no text (see index)."""
        if self.cipher is None or not ids:
            return {}
        out = {}
        for i in range(0, len(ids), 500):
            part = ids[i:i + 500]
            rows = await self.store.fetchall(f"SELECT * FROM memories WHERE id IN ({', '.join('?' * len(part))})",
                                             part)
            for r in rows:
                try:
                    m = self._item(r)
                except InvalidTag:
                    continue
                out[m.id] = SourceDoc("memory", m.id, m.tier, "", None, m.updated_at, updated_at=m.updated_at,
                                      embed_text=m.text)
        return out

    # -- writing ------------------------------------------------------------------------------

    async def _record(self, w: Writer, memory_id: str, op: Any, tier: str, now: int) -> None:
        await w.record("memories", memory_id, op, {} if op == "delete" else {"tier": tier, "updatedAt": now})

    async def _write_text(self, w: Writer, memory_id: str, tier: str, text: str, now: int, *,
                          bump: bool) -> None:
        cipher = self._need()
        nonce, ct = cipher.seal(memory_id, tier, text)
        await w.execute(
            f"UPDATE memories SET nonce = ?, ciphertext = ?, digest = ?, updated_at = ?"
            f"{', hits = hits + 1' if bump else ''} WHERE id = ?", (nonce, ct, cipher.digest(text), now, memory_id))
        await self._record(w, memory_id, "update", tier, now)

    async def add(self, tier: Tier, text: str, *, key: str | None = None, thread_id: str | None = None,
                  run_id: str | None = None, confidence: float | None = None) -> tuple[MemoryItem, bool]:
        """Store a memory, or update its near-duplicate. Returns the memory and whether it is new.

        Raises:
            Unavailable: no memory key.
        """
        cipher = self._need()
        text = text.strip()[:MAX_TEXT]
        now = clock.now_ms()
        dup = await self._duplicate_of(tier, text, key)
        async with self.store.write() as w:
            if dup is not None:
                await self._write_text(w, dup, tier, text, now, bump=True)
                if confidence is not None:
                    await w.execute("UPDATE memories SET confidence = ? WHERE id = ?", (confidence, dup))
                memory_id, new = dup, False
            else:
                memory_id, new = str(uuid6.uuid7()), True
                nonce, ct = cipher.seal(memory_id, tier, text)
                await w.execute(
                    "INSERT INTO memories (id, tier, key, nonce, ciphertext, digest, thread_id, run_id, confidence,"
                    " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (memory_id, tier, key, nonce, ct, cipher.digest(text), thread_id, run_id, confidence, now, now))
                await self._record(w, memory_id, "insert", tier, now)
        return await self.get(memory_id), new

    async def _duplicate_of(self, tier: str, text: str, key: str | None) -> str | None:
        if key is not None:
            row = await self.store.fetchone("SELECT id FROM memories WHERE tier = ? AND key = ?", (tier, key))
            return str(row[0]) if row else None
        row = await self.store.fetchone("SELECT id FROM memories WHERE tier = ? AND digest = ?",
                                        (tier, self._need().digest(text)))
        if row is not None:
            return str(row[0])
        if self.nearest is not None:
            for memory_id, cosine in await self.nearest(text, tier, 3):
                if cosine >= NEAR_DUPLICATE_COSINE:
                    return memory_id
        return None

    async def set_core(self, key: str, value: str) -> None:
        """Set (or, with an empty value, remove) a core-memory entry."""
        if value:
            await self.add("core", value, key=key)
            return
        row = await self.store.fetchone("SELECT id FROM memories WHERE tier = 'core' AND key = ?", (key,))
        if row is not None:
            await self.delete(row[0])

    async def patch(self, memory_id: str, patch: MemoryPatch) -> MemoryItem:
        current = await self.get(memory_id)
        now = clock.now_ms()
        async with self.store.write() as w:
            if patch.text is not None:
                await self._write_text(w, memory_id, current.tier, patch.text, now, bump=False)
            if patch.confidence is not None:
                await w.execute("UPDATE memories SET confidence = ?, updated_at = ? WHERE id = ?",
                                (patch.confidence, now, memory_id))
                if patch.text is None:
                    await self._record(w, memory_id, "update", current.tier, now)
        return await self.get(memory_id)

    async def delete(self, memory_id: str) -> None:
        row = await self.store.fetchone("SELECT tier FROM memories WHERE id = ?", (memory_id,))
        if row is None:
            raise NotFound(f"no memory with id {memory_id}", detail={"entity": "memories", "id": memory_id})
        async with self.store.write() as w:
            await w.execute("DELETE FROM memories WHERE id = ?", (memory_id,))
            await self._record(w, memory_id, "delete", row[0], clock.now_ms())

    async def forget_all(self) -> int:
        """Delete every memory (each deletion logged). Returns how many."""
        async with self.store.write() as w:
            rows = await w.fetchall("SELECT id, tier FROM memories")
            await w.execute("DELETE FROM memories")
            await w.execute("DELETE FROM core_memory")
            now = clock.now_ms()
            for r in rows:
                await self._record(w, r[0], "delete", r[1], now)
        return len(rows)

    # -- runs ---------------------------------------------------------------------------------

    async def context(self, message: str, budget_tokens: int = CONTEXT_BUDGET_TOKENS) -> str:
        """What a run should know, within ``budget_tokens`` (≈ chars / 4): associative memories
        relevant to ``message``, proactive patterns above the threshold, the last episodes.
        (Core memory goes into the system prompt's own list.) Empty without the key."""
        if self.cipher is None:
            return ""
        relevant: list[MemoryItem] = []
        if self.nearest is not None and message.strip():
            for memory_id, cosine in await self.nearest(message, "associative", 5):
                if cosine >= 0.25:
                    try:
                        relevant.append(await self.get(memory_id))
                    except NotFound:
                        pass
        if not relevant and message.strip():  # no vectors: word overlap over the (few) facts
            words = set(normalise(message).split())
            scored = [(len(words & set(normalise(m.text).split())), m) for m in await self.entries("associative", 200)]
            relevant = [m for s, m in sorted(scored, key=lambda x: -x[0]) if s > 0][:5]
        patterns = [m for m in await self.entries("proactive", 50) if (m.confidence or 0) >= PROACTIVE_THRESHOLD]
        episodes = await self.entries("episodic", 3)
        sections = [("Things the user told you before", [m.text for m in relevant]),
                    ("Patterns in the user's data", [f"{m.text} (confidence {m.confidence:.0%})" for m in patterns]),
                    ("Recent conversations", [m.text for m in episodes])]
        budget = budget_tokens * 4
        out: list[str] = []
        for title, lines in sections:
            if not lines:
                continue
            block = [title + ":"]
            for line in lines:
                entry = f"- {line}"
                if sum(map(len, out)) + sum(map(len, block)) + len(entry) > budget:
                    break
                block.append(entry)
            if len(block) > 1:
                out.append("\n".join(block))
        return "\n\n".join(out)

    async def after_run(self, thread_id: str, run_id: str, status: str, user_text: str,
                        assistant_text: str, changed: int) -> None:
        """Store the run's episode and the facts the user stated. Nothing from an empty or
        failed run (status other than ``finished``, or no user text and no answer)."""
        if self.cipher is None or status != "finished" or not user_text.strip() or not assistant_text.strip():
            return
        for fact in stated_facts(user_text):
            await self.add("associative", fact, thread_id=thread_id, run_id=run_id)
        summary = f"Asked: {' '.join(user_text.split())[:200]} — answered: {' '.join(assistant_text.split())[:300]}"
        if changed:
            summary += f" ({changed} change{'s' if changed != 1 else ''} made)"
        await self.add("episodic", summary, thread_id=thread_id, run_id=run_id)

    async def derive_patterns(self) -> int:
        """Proactive memories from the user's data: recurring task titles (≥ 3 times) and the
        usual due weekday of tasks (≥ 5 dated tasks, one weekday ≥ 40 %). Returns how many."""
        if self.cipher is None:
            return 0
        n = 0
        titles: collections.Counter[str] = collections.Counter()
        shown: dict[str, str] = {}
        for (title,) in await self.store.fetchall("SELECT title FROM tasks"):
            norm = normalise(re.sub(r"\d+", " ", title))
            if norm:
                titles[norm] += 1
                shown.setdefault(norm, title)
        for norm, count in titles.most_common(10):
            if count < 3:
                break
            await self.add("proactive", f'The user often has a task "{shown[norm]}" ({count} times).',
                           key=f"recurring:{hashlib.sha256(norm.encode()).hexdigest()[:16]}",
                           confidence=min(1.0, count / 5))
            n += 1
        tz = clock.local_timezone()
        days = collections.Counter(
            dt.datetime.fromtimestamp(r[0] / 1000, tz).strftime("%A")
            for r in await self.store.fetchall("SELECT due_date FROM tasks WHERE due_date IS NOT NULL"))
        total = sum(days.values())
        if total >= 5:
            day, count = days.most_common(1)[0]
            share = count / total
            if share >= 0.4:
                await self.add("proactive", f"The user's tasks are usually due on {day} ({count} of {total}).",
                               key="due-weekday", confidence=round(share, 2))
                n += 1
        return n
