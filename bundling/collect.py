"""What the spec collects beyond PyInstaller's import analysis, declared once.

``sidecar.spec`` builds its hidden imports and data files from these tables, and
``build.trace_problems`` checks a runtime trace (``trace_runtime.py``: every module and data file
the source sidecar loads under the smoke workload) against the same tables — the fast guard that
names a module, data file or dist-info a changed dependency now needs and the spec would not ship.
"""

from __future__ import annotations

#: Packages collected whole (``collect_submodules``), each with the module prefixes left out:
#: names built at run time (LiteLLM's provider tables, AgentScope's lazy imports) are invisible
#: to analysis, so these are listed rather than found.
SUBMODULES: dict[str, tuple[str, ...]] = {
    "sidecar": (),
    # The proxy server and its web UI, the setup wizard and agent harnesses (deepagents,
    # langgraph…) are server-only; what the core imports of them analysis finds.
    "litellm": ("litellm.proxy", "litellm.setup_wizard", "litellm.harness"),
    # The server app (FastAPI + SQL storage), TUI and console.
    "agentscope": ("agentscope.app", "agentscope.tui", "agentscope.console"),
    "ag_ui": (),
}
#: Only with the vector store (``--without-vectors`` leaves these out).
VECTOR_SUBMODULES: dict[str, tuple[str, ...]] = {"lancedb": ("lancedb.conftest",)}

#: Single modules nothing imports by name: tiktoken finds encodings through a namespace package;
#: zoneinfo falls back to ``tzdata`` where the OS has no zone database (Windows).
HIDDEN_MODULES: tuple[str, ...] = ("tiktoken_ext", "tiktoken_ext.openai_public", "sidecar_bundle_selftest",
                                   "tzdata")

#: Packages whose data files are collected (``collect_data_files``), each with the globs left out.
#: LiteLLM's: the local price map, its tokenizers, providers.json, endpoints.json…; its Rust
#: bridge folder is left out of *data* because its extension is collected as a module.
DATA: dict[str, tuple[str, ...]] = {
    "litellm": ("proxy/**", "**/*.md", "**/*.pyi", "**/README*", "rust_bridge/**", "**/__pycache__/**"),
    "agentscope": ("app/**", "**/*.md", "**/__pycache__/**"),
    # The offline embedder (search): its configs, tokenizer and 256-d weights (16 MB). Its
    # compiled helpers are extension modules (analysis collects them); their C sources are not
    # needed.
    "wordllama": ("**/*.c", "**/*.pyx", "**/*.so", "**/*.md", "**/__pycache__/**"),
    # Language detection (ingest): its model, read when a document is not plain ASCII.
    "py3langid": ("**/__pycache__/**",),
    # Sync's recovery key as BIP39 words: the word lists, read when sync is enabled (not in the
    # traced workload, so declared here and exercised by bundle-selftest).
    "mnemonic": ("**/__pycache__/**",),
}

#: Distributions whose METADATA is read at run time (``importlib.metadata.version(...)`` at
#: import): shipped as headers only. aiohttp: openai's vendored aiohttp transport; httpx2: its
#: own ``__version__``; tqdm: its own version (imported by the embedder's tokenizer stack).
METADATA: tuple[str, ...] = ("litellm", "mcp", "uuid6", "agentscope", "aiohttp", "httpx2", "tqdm")
VECTOR_METADATA: tuple[str, ...] = ("lancedb",)


#: pyarrow parts the bundle leaves out (``hooks/hook-pyarrow.py`` explains why: ~100 MB LanceDB
#: never uses). ``pyarrow.fs`` and ``pyarrow.dataset`` import the filesystems and encryption
#: modules inside ``try/except ImportError``, so a source run loads them and the frozen app does
#: without; the post-build check does not count them as missing.
PYARROW_SKIP: tuple[str, ...] = (
    "pyarrow.tests", "pyarrow.flight", "pyarrow._flight", "pyarrow._s3fs", "pyarrow._gcsfs",
    "pyarrow._azurefs", "pyarrow._hdfs", "pyarrow.orc", "pyarrow._orc", "pyarrow._dataset_orc",
    "pyarrow.cuda", "pyarrow._cuda", "pyarrow.gandiva", "pyarrow.interchange", "pyarrow.pandas_compat",
    "pyarrow.benchmark", "pyarrow.conftest", "pyarrow.jvm", "pyarrow.parquet.encryption",
    "pyarrow._parquet_encryption", "pyarrow._dataset_parquet_encryption",
    # Shared libraries that pkgutil mistakes for modules (``libarrow_python.so`` → ``pyarrow.libarrow_python``):
    # the versioned libraries extensions really link come in through binary analysis.
    "pyarrow.libarrow", "pyarrow._pyarrow_cpp_tests",
)


def submodules(vectors: bool) -> dict[str, tuple[str, ...]]:
    """:data:`SUBMODULES`, plus :data:`VECTOR_SUBMODULES` when the vector store is bundled."""
    return {**SUBMODULES, **(VECTOR_SUBMODULES if vectors else {})}


def metadata(vectors: bool) -> tuple[str, ...]:
    """:data:`METADATA`, plus :data:`VECTOR_METADATA` when the vector store is bundled."""
    return METADATA + (VECTOR_METADATA if vectors else ())


def keep_submodule(package: str, name: str) -> bool:
    """Whether ``collect_submodules(package)`` keeps module ``name`` (tests are never shipped)."""
    skip = submodules(True).get(package, ())
    if skip and name.startswith(skip):
        return False
    return ".tests" not in name and not name.endswith(".conftest")
