"""Watched files in the index: a real file in a real watched folder (real watchdog, real
SQLite, real LanceDB) is found by a phrase from its body with its path and offsets."""

from __future__ import annotations

import shutil
from pathlib import Path

from sidecar.settings import Settings
from tests.fakes.memory_keyring import MemoryKeyring
from tests.ingest.harness import running
from tests.search.helpers import ready_vectors, wait_found, wait_gone

CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus"


async def test_watched_file_found_by_phrase_with_path_and_offsets(settings: Settings, tmp_path: Path,
                                                                  memory_keyring: MemoryKeyring) -> None:
    folder = tmp_path / "notes"
    folder.mkdir()
    src = CORPUS / "txt" / "openssh-TODO.txt"
    async with running(settings) as h:
        await ready_vectors(h)
        watch = await h.create_watch(folder)
        dest = folder / "openssh-TODO.txt"
        shutil.copyfile(src, dest)
        await h.wait_file(dest, ("done",))
        _, hit = await wait_found(h, "General FAQ on S/Key", _file_id(h, dest), kind="file")
        assert hit["kind"] == "file" and hit["source"]["path"] == str(dest)
        text = src.read_text()
        start, end = hit["source"]["start"], hit["source"]["end"]
        assert text[start:end] == hit["snippet"]  # offsets point back into the file's text
        assert "S/Key" in hit["snippet"]
        # the file changes: its new text replaces the old
        dest.write_text("Completely different: the lighthouse keeper's log.\n")
        await wait_found(h, "lighthouse keeper", _file_id(h, dest), kind="file")
        await wait_gone(h, "S/Key", _file_id(h, dest), kind="file", mode="keyword")
        # the file is deleted: gone from the index
        dest.unlink()
        await wait_gone(h, "lighthouse", _file_id(h, dest), kind="file", mode="keyword", timeout=15)
        await h.settle(watch["id"])


def _file_id(h: object, path: Path) -> str:
    from sidecar.search.files import file_id

    return file_id(str(path))
