"""Batched apply equals one-event-at-a-time apply: the in-memory decisions and ``executemany``
writes of :class:`~sidecar.sync.apply.Applier` give the same data and the same change log as
applying every event alone, including cascading deletes, references to rows created earlier
in the same batch and a client whose parent is created after it is referenced."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from sidecar.errors import SidecarError
from sidecar.store.db import Store
from sidecar.store.repository import Repository
from sidecar.sync.apply import Applier, event_of
from tests.sync.harness import domain_hash


async def _random_history(repo: Repository, rng: random.Random, n: int) -> None:
    made: dict[str, list[str]] = {e: [] for e in ("clients", "projects", "tasks", "timelines", "notes", "taskComments")}

    def pick(entity: str) -> str | None:
        alive = made[entity]
        return rng.choice(alive) if alive else None

    done = 0
    while done < n:
        async with repo.transaction() as tx:
            for _ in range(rng.randint(1, 25)):
                done += 1
                r = rng.random()
                try:
                    if r < 0.1:
                        row: Any = await tx.create("clients", {"name": f"c{done}", "parentId": pick("clients")})
                        made["clients"].append(row.id)
                    elif r < 0.2:
                        row = await tx.create("projects", {"name": f"p{done}", "clientId": pick("clients")})
                        made["projects"].append(row.id)
                    elif r < 0.35:
                        row = await tx.create("tasks", {"title": f"t{done}", "projectId": pick("projects"),
                                                        "assignee": ["ann"] if r < 0.3 else []})
                        made["tasks"].append(row.id)
                    elif r < 0.42 and (project := pick("projects")):
                        row = await tx.create("timelines", {"projectId": project, "title": f"m{done}", "date": done})
                        made["timelines"].append(row.id)
                    elif r < 0.5:
                        row = await tx.create("notes", {"title": f"n{done}", "projectId": pick("projects")})
                        made["notes"].append(row.id)
                    elif r < 0.56 and (task := pick("tasks")):
                        row = await tx.create("taskComments", {"taskId": task, "author": "a", "content": f"x{done}"})
                        made["taskComments"].append(row.id)
                    elif r < 0.85:
                        entity = rng.choice(["tasks", "notes", "projects", "clients"])
                        if (eid := pick(entity)) is None:
                            continue
                        patch = {"tasks": {"status": rng.choice(["todo", "done"]), "projectId": pick("projects")},
                                 "notes": {"content": f"u{done}", "projectId": pick("projects")},
                                 "projects": {"name": f"r{done}", "clientId": pick("clients")},
                                 "clients": {"industry": f"i{done}", "parentId": pick("clients")}}[entity]
                        await tx.update(entity, eid, patch)
                    else:
                        entity = rng.choice(["tasks", "projects", "clients", "notes"])
                        if (eid := pick(entity)) is None:
                            continue
                        await tx.delete(entity, eid)
                        made[entity].remove(eid)
                except SidecarError:  # a row a cascade removed, or a parent cycle: refused before writing
                    pass


async def _log(store: Store) -> list[tuple[Any, ...]]:
    rows = await store.fetchall("SELECT entity, entity_id, op, fields, hlc FROM change_log ORDER BY seq")
    return [tuple(r) for r in rows]


async def test_batched_apply_equals_applying_each_event_alone(tmp_path: Path) -> None:
    source = await Store.open(tmp_path / "a" / "sidecar.db")
    await _random_history(Repository(source), random.Random(7), 400)
    events = [event_of(e) for e in await source.changes_after(0, limit=100_000)]
    assert {e["op"] for e in events} == {"insert", "update", "delete"}
    batched = await Store.open(tmp_path / "b" / "sidecar.db")
    for i in range(0, len(events), 150):
        async with batched.write() as w:
            await Applier(w).apply(events[i:i + 150])
    alone = await Store.open(tmp_path / "c" / "sidecar.db")
    async with alone.write() as w:
        for ev in events:  # each event decided and written alone
            await Applier(w).apply([ev])
    want = await domain_hash(source)
    assert await domain_hash(alone) == want
    assert await domain_hash(batched) == want
    assert await _log(batched) == await _log(alone)
    origins = {r[0] for r in await batched.fetchall("SELECT DISTINCT origin FROM change_log")}
    assert origins == {"remote"}
    # delivered again: idempotent by event id
    async with batched.write() as w:
        assert await Applier(w).apply(events[:150]) == 0
    for s in (source, batched, alone):
        await s.close()


async def test_a_row_pointing_at_a_later_row_of_its_own_table_in_one_batch(tmp_path: Path) -> None:
    """Client A is created, then B, then A's parent is set to B: inserted in one batch, A's
    final row names B, which comes after it (the reference within a table is set afterwards)."""
    source = await Store.open(tmp_path / "a" / "sidecar.db")
    repo = Repository(source)
    a = await repo.create("clients", {"name": "A"})
    b = await repo.create("clients", {"name": "B"})
    await repo.update("clients", a.id, {"parentId": b.id})
    events = [event_of(e) for e in await source.changes_after(0)]
    target = await Store.open(tmp_path / "b" / "sidecar.db")
    async with target.write() as w:
        assert await Applier(w).apply(events) == 3
    assert await domain_hash(target) == await domain_hash(source)
    for s in (source, target):
        await s.close()
