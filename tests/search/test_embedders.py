"""The bundled embedder loads offline (network refused in a fresh interpreter), and chunking
keeps offsets back to the source text."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from sidecar.search.chunking import chunk_text
from sidecar.search.memory import normalise, stated_facts

ROOT = Path(__file__).resolve().parents[2]


def test_wordllama_loads_with_the_network_refused() -> None:
    proc = subprocess.run([sys.executable, "-m", "tests.search._offline_embedder_probe"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["attempts"] == []  # nothing even tried the network
    assert out["dim"] == 256 and out["id"].startswith("wordllama/")
    assert out["related"] > out["unrelated"] + 0.1, out


@given(st.text(alphabet=st.sampled_from("ab .\n!?é"), max_size=5000), st.integers(20, 400))
def test_chunks_index_back_into_the_text(text: str, max_chars: int) -> None:
    chunks = chunk_text(text, max_chars)
    last = 0
    for c in chunks:
        assert text[c.start:c.end] == c.text
        assert 0 < len(c.text) <= max_chars
        assert c.start >= last
        last = c.end
    # nothing but whitespace is left out
    covered = set()
    for c in chunks:
        covered.update(range(c.start, c.end))
    assert all(text[i].isspace() for i in range(len(text)) if i not in covered)


def test_stated_facts_and_normalise() -> None:
    assert stated_facts("Can you help? I prefer tea over coffee. The sky is blue. My manager is Ana.") == [
        "I prefer tea over coffee.", "My manager is Ana."]
    assert stated_facts("Do I prefer tea?") == []
    assert normalise("I  prefer, TEA!") == normalise("i prefer tea")
