"""The index loads lazily (a spawned ``sidecar serve``, a fresh data dir): with nothing to index
and no search asked for, LanceDB, pyarrow and the embedder are not loaded; the first note loads
them and is found; a restart with the index caught up is idle again and still finds it.

"Loaded" is read from the process's own memory map (``/proc/<pid>/maps``): LanceDB and pyarrow
are native libraries, mapped once imported, never unmapped.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.e2e.conftest import Sidecar, SpawnFn
from tests.search.helpers import IDLE

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/<pid>/maps")

HEAVY = ("lancedb", "libarrow", "wordllama")


def mapped(sc: Sidecar) -> set[str]:
    """Which of :data:`HEAVY` the process has mapped (its shared libraries and open data files)."""
    text = Path(f"/proc/{sc.pid}/maps").read_text()
    return {name for name in HEAVY if name in text}


def found(sc: Sidecar, q: str, entity_id: str, timeout: float = 60.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while True:
        res = sc.ok("GET", f"/v1/search?q={quote(q)}")
        if any(h["entityId"] == entity_id for h in res["items"]):
            return res  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, res
        time.sleep(0.1)


def idle_after_start(sc: Sidecar) -> None:
    ready = sc.wait_ready(60.0, components=("vectors", "memory"))
    vectors = ready["components"]["vectors"]
    assert vectors["state"] == "ok" and vectors["detail"].startswith(IDLE), ready
    time.sleep(1.0)  # start-up work after the handshake has had time to run (and import)
    assert sc.ok("GET", "/v1/ready")["components"]["vectors"]["detail"].startswith(IDLE)
    assert mapped(sc) == set(), mapped(sc)


def test_idle_sidecar_loads_no_index_until_there_is_work(spawn_sidecar: SpawnFn, tmp_path: Path) -> None:
    data = tmp_path / "data"
    sc = spawn_sidecar(data_dir=data)
    idle_after_start(sc)
    note = sc.ok("POST", "/v1/notes", {"title": "Harbour hall", "content": "The venue is the harbour hall."},
                 status=201)
    res = found(sc, "harbour", note["id"])
    assert res["mode"] == "hybrid", res
    assert {"lancedb", "libarrow"} <= mapped(sc), mapped(sc)
    assert "wordllama" in sc.ok("GET", "/v1/ready")["components"]["vectors"]["detail"]
    assert sc.stop() == 0
    # restart: the cursor is caught up, so nothing loads until a search, which still finds the note
    sc = spawn_sidecar(data_dir=data)
    idle_after_start(sc)
    found(sc, "harbour", note["id"])
    assert "lancedb" in mapped(sc)
