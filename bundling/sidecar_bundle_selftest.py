"""In-process checks of a frozen sidecar: ``dist/sidecar/sidecar bundle-selftest``.

The API smoke test (``bundling/smoke.py``) proves the served paths; this proves, inside the frozen
interpreter, the parts the API cannot reach yet or only reaches lazily:

* the agent stack imports (``import_agent_stack``: LiteLLM offline, AgentScope) and LiteLLM uses
  its bundled price map and tokenizer files (a token count for an OpenAI model, no network);
* ``sidecar.agent.model`` (imported by name from the LLM extractor) imports;
* the readers turn a PDF, an iCalendar file, an e-mail, HTML and Markdown into documents, and the
  rules extractor finds their tasks;
* LanceDB + pyarrow (the planned vector store): create a table, vector search, full-text index
  and search, on a temp dir;
* certifi's CA bundle exists and loads into an SSL context; time zones resolve; dateparser and
  croniter work; the keyring backend is reported.

Every outbound connection except to loopback is refused while the checks run (offline means
offline). Prints one JSON object ``{"ok": bool, "checks": {name: {"ok", "detail"|"error"}}}`` on
stdout; exit code 0 when every check passed, 1 otherwise. Runs from source too:
``python bundling/sidecar_bundle_selftest.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import socket
import sys
import tempfile
import time
import traceback
import warnings
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

# --- sample files (shared with bundling/smoke.py) ----------------------------------------------


def make_pdf(lines: Sequence[str]) -> bytes:
    """A one-page PDF (Helvetica, a Flate-compressed content stream) showing ``lines``."""

    def esc(s: str) -> str:
        return s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    ops = ["BT", "/F1 12 Tf", "72 720 Td", "16 TL"]
    ops += [f"({esc(line)}) Tj T*" for line in lines]
    ops.append("ET")
    content = zlib.compress("\n".join(ops).encode("latin-1"))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for n, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def sample_files() -> dict[str, tuple[bytes, str | None]]:
    """File name → (content, the task title the rules extractor must find in it; ``None``: a
    document in another language, which must load the language model and yield no task)."""
    ics = "\r\n".join([
        "BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//sidecar//smoke//EN",
        "BEGIN:VTODO", "UID:smoke-todo-1@sidecar", "DTSTAMP:20260301T090000Z",
        "SUMMARY:Smoke calendar task", "DUE;VALUE=DATE:20261203", "PRIORITY:1", "END:VTODO",
        "BEGIN:VEVENT", "UID:smoke-event-1@sidecar", "DTSTAMP:20260301T090000Z",
        "DTSTART;TZID=Europe/Berlin:20261204T150000", "DTEND;TZID=Europe/Berlin:20261204T160000",
        "SUMMARY:Smoke review meeting", "END:VEVENT", "END:VCALENDAR", "",
    ]).encode()
    eml = (
        b"From: Ana <ana@example.com>\r\nTo: me@example.com\r\nSubject: Smoke follow-up\r\n"
        b"Date: Tue, 03 Mar 2026 09:00:00 +0000\r\nMessage-ID: <smoke-1@example.com>\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        b"Hi,\r\n\r\nAction item: Smoke email task\r\n\r\nThanks\r\n"
    )
    md = b"# Smoke notes\n\n- [ ] Smoke markdown task\n"
    pdf = make_pdf(["Smoke meeting minutes", "", "TODO: Smoke PDF task", "Nothing else to report."])
    return {
        "minutes.pdf": (pdf, "Smoke PDF task"),
        "calendar.ics": (ics, "Smoke calendar task"),
        "followup.eml": (eml, "Smoke email task"),
        "notes.md": (md, "Smoke markdown task"),
        "protokoll.md": ("# Protokoll der Sitzung\n\nWir haben über die Übergabe gesprochen. Müller "
                         "prüft die Gebühren für nächste Woche und schickt die Unterlagen.\n".encode(), None),
    }


# --- offline guard -------------------------------------------------------------------------------


@contextlib.contextmanager
def loopback_only() -> Iterator[list[str]]:
    """Refuse every outbound connection except to loopback; yields the refused addresses."""
    refused: list[str] = []
    original_connect = socket.socket.connect
    original_connect_ex = socket.socket.connect_ex
    original_getaddrinfo = socket.getaddrinfo

    def allowed(address: Any) -> bool:
        if isinstance(address, tuple) and address:
            host = str(address[0])
            if host in ("localhost",):
                return True
            try:
                return ipaddress.ip_address(host.split("%")[0]).is_loopback
            except ValueError:
                return False
        return True  # AF_UNIX and the like

    def connect(self: socket.socket, address: Any) -> Any:
        if not allowed(address):
            refused.append(repr(address))
            raise OSError(f"bundle-selftest: network access refused ({address!r})")
        return original_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> Any:
        if not allowed(address):
            refused.append(repr(address))
            return 111
        return original_connect_ex(self, address)

    def getaddrinfo(host: Any, *args: Any, **kw: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name not in (None, "localhost") and not _is_loopback_literal(name):
            refused.append(f"dns:{name}")
            raise socket.gaierror(f"bundle-selftest: name resolution refused ({name})")
        return original_getaddrinfo(host, *args, **kw)

    socket.socket.connect = connect  # type: ignore[method-assign,assignment]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign,assignment]
    socket.getaddrinfo = getaddrinfo
    try:
        yield refused
    finally:
        socket.socket.connect = original_connect  # type: ignore[method-assign]
        socket.socket.connect_ex = original_connect_ex  # type: ignore[method-assign]
        socket.getaddrinfo = original_getaddrinfo


def _is_loopback_literal(name: str) -> bool:
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


# --- checks --------------------------------------------------------------------------------------


def check_agent_stack() -> str:
    from sidecar.agent.runs import import_agent_stack

    started = time.monotonic()
    import_agent_stack()
    took = time.monotonic() - started
    from sidecar.agent.litellm_env import _local_cost_map_in_use, import_litellm

    litellm = import_litellm()
    if not _local_cost_map_in_use():
        raise AssertionError("LiteLLM is not using its bundled price map")
    if len(litellm.model_cost) < 1000:
        raise AssertionError(f"LiteLLM's price map has only {len(litellm.model_cost)} entries")
    info = litellm.get_model_info("gpt-4o-mini")
    n = litellm.token_counter(model="gpt-4o-mini", text="The quick brown fox jumps over the lazy dog.")
    n35 = litellm.token_counter(model="gpt-3.5-turbo", text="The quick brown fox jumps over the lazy dog.")
    if not (5 <= n <= 20 and 5 <= n35 <= 20):
        raise AssertionError(f"implausible token counts {n}, {n35}")
    import agentscope

    return (f"import {took:.2f}s; agentscope {getattr(agentscope, '__version__', '?')}; "
            f"price map {len(litellm.model_cost)} models (gpt-4o-mini context {info.get('max_input_tokens')}); "
            f"tiktoken counts {n}/{n35}")


def check_model_module() -> str:
    import importlib

    mod = importlib.import_module("sidecar.agent.model")
    from sidecar.agent.settings import ModelSettings

    model = mod.LiteLLMChatModel(ModelSettings(model="openai/fake-model", api_base="http://127.0.0.1:9/v1",
                                               context_size=8192), None)
    return f"{type(model).__name__} built"


def check_readers() -> str:
    from sidecar.ingest.readers import read_document
    from sidecar.ingest.rules import extract

    found = []
    with tempfile.TemporaryDirectory(prefix="sidecar-selftest-") as tmp:
        files = dict(sample_files())
        files["page.html"] = (b"<html><head><title>Smoke page</title></head><body><h1>Plan</h1>"
                              b"<ul><li>TODO: Smoke HTML task</li></ul></body></html>", "Smoke HTML task")
        for name, (content, title) in files.items():
            path = Path(tmp) / name
            path.write_bytes(content)
            doc = read_document(path, max_bytes=10 << 20)
            items = extract(doc)
            titles = [i.title for i in items if i.type == "task"]
            if title is None:
                from sidecar.ingest.rules.language import detect

                if detect(doc.text) != "de" or titles:
                    raise AssertionError(f"{name}: language {detect(doc.text)!r}, tasks {titles} (want de, none)")
                found.append(f"{path.suffix}(de):{len(items)}")
                continue
            if title not in titles:
                raise AssertionError(f"{name}: expected task {title!r}, extracted {titles}; text {doc.text[:300]!r}")
            found.append(f"{path.suffix}:{len(titles)}")
    return "items " + ", ".join(found)


def bundle_info() -> dict[str, Any]:
    """``sidecar-bundle.json`` of a frozen build (how it was built); ``{}`` from source."""
    base = getattr(sys, "_MEIPASS", None)
    if base is None:
        return {}
    try:
        info: dict[str, Any] = json.loads((Path(base) / "sidecar-bundle.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return info


def check_lancedb() -> str:
    if bundle_info().get("vectors") is False:
        return "skipped: this bundle was built without LanceDB/pyarrow (build.py --without-vectors)"
    import lancedb
    import pyarrow as pa

    with tempfile.TemporaryDirectory(prefix="sidecar-selftest-lancedb-") as tmp:
        db = lancedb.connect(tmp)
        rows = [{"id": str(i), "text": f"note number {i} about apples" if i % 2 else f"note {i} on pears",
                 "vector": [float(i), 1.0, 0.5, 0.25]} for i in range(64)]
        table = db.create_table("notes", data=rows)
        hit = table.search([3.0, 1.0, 0.5, 0.25]).limit(1).to_list()[0]["id"]
        if hit != "3":
            raise AssertionError(f"vector search returned {hit!r}")
        with warnings.catch_warnings():  # create_fts_index: deprecated alias, same index
            warnings.simplefilter("ignore")
            table.create_fts_index("text")
        fts = table.search("apples", query_type="fts").limit(5).to_list()
        if not fts or "apples" not in fts[0]["text"]:
            raise AssertionError(f"full-text search returned {fts!r}")
        table.add([{"id": "x", "text": "extra", "vector": [0.0, 0.0, 0.0, 0.0]}])
        table.delete("id = 'x'")
        count = table.count_rows()
        arrow = table.to_arrow()
        if count != 64 or arrow.num_rows != 64:
            raise AssertionError(f"row count {count}/{arrow.num_rows}")
    return f"lancedb {lancedb.__version__}, pyarrow {pa.__version__}: vector + full-text search ok"


def check_tls_and_time() -> str:
    import ssl
    from zoneinfo import ZoneInfo

    import certifi
    import croniter
    import dateparser

    ca = Path(certifi.where())
    if not ca.is_file():
        raise AssertionError(f"certifi CA bundle missing at {ca}")
    ctx = ssl.create_default_context(cafile=str(ca))
    n_ca = len(ctx.get_ca_certs())
    zone = ZoneInfo("Europe/Berlin")
    parsed = dateparser.parse("3 December 2026 15:00", settings={"TIMEZONE": "Europe/Berlin",
                                                                  "RETURN_AS_TIMEZONE_AWARE": True})
    if parsed is None or parsed.year != 2026:
        raise AssertionError(f"dateparser: {parsed!r}")
    nxt = croniter.croniter("*/15 * * * *").get_next(float)
    return f"CA bundle {ca.name} ({n_ca} certs); zone {zone.key}; dateparser ok; croniter next {nxt:.0f}"


def check_keyring() -> str:
    import keyring.backend

    from sidecar.secrets import SecretStore

    usable, detail = SecretStore({}).status()
    # The backends keyring discovered through its entry points (needs keyring's dist-info).
    found = sorted(c.__module__.removeprefix("keyring.backends.") for c in keyring.backend.KeyringBackend._classes)
    if "SecretService" not in found:
        raise AssertionError(f"keyring found no SecretService backend (entry points not bundled?): {found}")
    return f"{'usable' if usable else 'not usable'}: {detail}; backends known: {', '.join(found)}"


def check_agui() -> str:
    from ag_ui.core import EventType, RunStartedEvent
    from ag_ui.encoder import EventEncoder

    line = EventEncoder().encode(RunStartedEvent(type=EventType.RUN_STARTED, thread_id="t", run_id="r"))
    if "threadId" not in line:
        raise AssertionError(line)
    return "encoder ok"


def check_embedder() -> str:
    """The offline embedder (search's default) loads from the bundle's own files and embeds."""
    if bundle_info().get("vectors") is False:
        return "skipped: this bundle was built without LanceDB/pyarrow (build.py --without-vectors)"
    import numpy as np

    from sidecar.search.embedders import WordLlamaEmbedder, wordllama_package_dir

    embedder = WordLlamaEmbedder.load_sync()
    sentences = ["book the venue for the offsite", "reserve a room for the team trip", "quarterly tax return"]
    vectors = np.asarray(asyncio.run(embedder.embed(sentences)))
    if vectors.shape != (3, 256):
        raise AssertionError(f"embedding shape {vectors.shape}")
    near, far = float(vectors[0] @ vectors[1]), float(vectors[0] @ vectors[2])
    if not near > far:
        raise AssertionError(f"similar sentences scored {near:.3f} <= unrelated {far:.3f}")
    return f"wordllama from {wordllama_package_dir().name}/: 256-d, similar {near:.2f} > unrelated {far:.2f}"


def check_recovery_words() -> str:
    """Sync's recovery key as BIP39 words round-trips (mnemonic's word list is bundled)."""
    from mnemonic import Mnemonic

    words = Mnemonic("english")
    key = bytes(range(32))
    phrase = words.to_mnemonic(key)
    if words.to_entropy(phrase) != key or not words.check(phrase):
        raise AssertionError("recovery words do not round-trip")
    return f"BIP39 english: {len(phrase.split())} words, checksum ok"


CHECKS: dict[str, Callable[[], str]] = {
    "agent_stack": check_agent_stack,
    "model_module": check_model_module,
    "readers": check_readers,
    "lancedb": check_lancedb,
    "embedder": check_embedder,
    "recovery_words": check_recovery_words,
    "tls_time": check_tls_and_time,
    "keyring": check_keyring,
    "ag_ui": check_agui,
}


def main(argv: Sequence[str] = ()) -> int:
    only = set(argv)
    results: dict[str, dict[str, Any]] = {}
    out, sys.stdout = sys.stdout, sys.stderr  # libraries' prints must not reach the JSON report
    with loopback_only() as refused:
        for name, check in CHECKS.items():
            if only and name not in only:
                continue
            started = time.monotonic()
            try:
                results[name] = {"ok": True, "detail": check()}
            except Exception as exc:
                results[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}",
                                 "traceback": traceback.format_exc(limit=8)}
            results[name]["seconds"] = round(time.monotonic() - started, 3)
    ok = all(r["ok"] for r in results.values()) and not refused
    report = {"ok": ok, "frozen": bool(getattr(sys, "frozen", False)), "bundle": bundle_info(), "checks": results,
              "network_refused": refused}
    sys.stdout = out
    out.write(json.dumps(report) + "\n")
    out.flush()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
