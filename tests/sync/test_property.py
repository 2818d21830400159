"""Property: whatever devices do to shared entities, and however sync is interleaved — pushes
and pulls in any order, partitions (a device that does not sync for a while), duplicated
listings, lost responses and retries, resets — once everyone syncs, every device holds the same
data (a hash over every domain table)."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from aiohttp.test_utils import TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sidecar.errors import SidecarError
from sidecar.sync.client import CloudError
from sidecar.sync.keys import Keychain, SyncKey
from tests.fakes.cloud_server import STATE, Fault, make_app
from tests.sync.conftest import CLOUD_TOKEN
from tests.sync.harness import Device, domain_hash, open_device

N_DEVICES = 3
_update = st.tuples(st.just("update"), st.integers(0, N_DEVICES - 1), st.integers(0, 3),
                    st.sampled_from(["title", "status", "priority", "projectId", "content", "name"]), st.integers(0, 5))
# Updates and full syncs weigh more, so concurrent edits of one field are common.
op = st.one_of(
    _update, _update, _update,
    st.tuples(st.just("sync_all")), st.tuples(st.just("sync_all")),
    st.tuples(st.just("create_project"), st.integers(0, N_DEVICES - 1), st.text("abc", min_size=1, max_size=3)),
    st.tuples(st.just("create_task"), st.integers(0, N_DEVICES - 1), st.integers(0, 20)),
    st.tuples(st.just("create_note"), st.integers(0, N_DEVICES - 1), st.integers(0, 20)),
    st.tuples(st.just("update"), st.integers(0, N_DEVICES - 1), st.integers(0, 3),
              st.sampled_from(["title", "status", "priority", "projectId", "content", "name"]), st.integers(0, 5)),
    st.tuples(st.just("delete"), st.integers(0, N_DEVICES - 1), st.integers(0, 6)),
    st.tuples(st.just("push"), st.integers(0, N_DEVICES - 1)),
    st.tuples(st.just("pull"), st.integers(0, N_DEVICES - 1)),
    st.tuples(st.just("fault"), st.sampled_from(["duplicates", "lost_response", "reset", "5xx"])),
)

FIELDS = {"projects": ["name"], "tasks": ["title", "status", "priority", "projectId"],
          "notes": ["title", "content", "projectId"]}
VALUES = {"status": ["todo", "in_progress", "done"], "priority": ["high", "medium", "low"]}


async def _present(device: Device, ids: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The entities of ``ids`` this device has now (so most edits land)."""
    out = []
    for entity, eid in ids:
        table = "task_comments" if entity == "taskComments" else entity
        if await device.store.fetchone(f"SELECT 1 FROM {table} WHERE id = ?", (eid,)) is not None:
            out.append((entity, eid))
    return out


async def _scenario(ops: list[tuple[object, ...]], tmp: Path) -> None:
    app = make_app(tmp / "cloud", token=CLOUD_TOKEN)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    chain = Keychain.of(SyncKey.generate())
    devices: list[Device] = [await open_device(tmp / f"d{i}", str(server.make_url("")).rstrip("/"),
                                               Keychain.parse(chain.dump()), CLOUD_TOKEN) for i in range(N_DEVICES)]
    ids: list[tuple[str, str]] = []  # (entity, id) ever created anywhere
    try:
        for o in ops:
            kind = o[0]
            try:
                if kind == "create_project":
                    row = await devices[o[1]].repo.create("projects", {"name": str(o[2])})  # type: ignore[index]
                    ids.append(("projects", row.id))
                elif kind in ("create_task", "create_note"):
                    projects = [i for e, i in ids if e == "projects"]
                    parent = projects[o[2] % len(projects)] if projects and o[2] % 2 else None  # type: ignore[index, operator]
                    entity = "tasks" if kind == "create_task" else "notes"
                    row = await devices[o[1]].repo.create(entity, {"title": f"t{o[2]}", "projectId": parent})  # type: ignore[index]
                    ids.append((entity, row.id))
                elif kind == "update" and (here := await _present(devices[o[1]], ids)):  # type: ignore[index]
                    entity, eid = here[o[2] % len(here)]  # type: ignore[operator]
                    valid = FIELDS[entity]
                    field, n = valid[["title", "status", "priority", "projectId", "content", "name"].index(str(o[3]))
                                     % len(valid)], int(o[4])  # type: ignore[call-overload]
                    projects = [i for e, i in ids if e == "projects"]
                    value: object = (VALUES[field][n % 3] if field in VALUES
                                     else (projects[n % len(projects)] if projects else None) if field == "projectId"
                                     else f"v{n}")
                    await devices[o[1]].repo.update(entity, eid, {field: value})  # type: ignore[index]
                elif kind == "delete" and (here := await _present(devices[o[1]], ids)):  # type: ignore[index]
                    entity, eid = here[o[2] % len(here)]  # type: ignore[operator]
                    await devices[o[1]].repo.delete(entity, eid)  # type: ignore[index]
                elif kind == "sync_all":
                    for d in devices:
                        await d.sync()
                elif kind == "push":
                    await devices[o[1]].push()  # type: ignore[index]
                elif kind == "pull":
                    await devices[o[1]].pull()  # type: ignore[index]
                elif kind == "fault":
                    app[STATE].faults.append(Fault(str(o[1]), 1, 0.0))
            except SidecarError:
                pass  # the device does not have that row (yet), or the reference is not there
            except CloudError:
                pass  # the fault outlasted the retries: sync picks up next time
        app[STATE].faults.clear()
        for _ in range(3):
            for d in devices:
                await d.sync()
        hashes = [await domain_hash(d.store) for d in devices]
        assert len(set(hashes)) == 1, "devices diverged"
        for d in devices:
            q = await d.store.fetchone("SELECT count(*) FROM sync_records WHERE status IN ('quarantined', 'held')")
            assert q is not None and q[0] == 0
    finally:
        for d in devices:
            await d.close()
        await server.close()


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(op, min_size=20, max_size=60))
def test_random_operations_and_delivery_converge(ops: list[tuple[object, ...]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(_scenario(ops, Path(tmp)))
