"""Modules the frozen sidecar leaves out, each with the reason it is safe (used by ``sidecar.spec``).

The rule: a package is excluded only when (1) no module of ``sidecar/`` imports it (checked by
``python bundling/build.py --verify``: an AST scan of the sources), (2) the sidecar's real
workload does not load it (``python bundling/trace_runtime.py`` records every module the smoke
workload imports from source; ``--verify`` checks none of them is excluded) and (3) the smoke test
and ``bundle-selftest`` pass on the frozen build without it.

"pulled in by" names what would otherwise drag the package in (from PyInstaller's
``warn-sidecar.txt``): always an optional, lazily imported code path of a library.
"""

from __future__ import annotations

EXCLUDES: dict[str, str] = {
    # --- LiteLLM / AgentScope optional providers and integrations (installed, pulled in lazily) ---
    "boto3": "AWS SDK (22 MB with botocore). Pulled in by LiteLLM's Bedrock/SageMaker providers, S3 "
             "cache/logging and AWS secret managers. The sidecar's model settings are one model string, "
             "an API base and one key — no AWS credentials — so Bedrock is not offered; use an "
             "OpenAI-compatible gateway for it",
    "botocore": "see boto3",
    "s3transfer": "see boto3",
    "grpc": "gRPC (19 MB). Pulled in only by AgentScope's xAI model class; the sidecar's model is "
            "LiteLLM's (xAI works through LiteLLM over HTTP)",
    "google.protobuf": "only LiteLLM's legacy Vertex (non-Gemini) SDK path; Gemini/Vertex chat go over HTTP",
    "google.cloud": "GCP SDKs (Vertex SDK path, GCS logging, Google secret manager): not used",
    "google.auth": "Vertex service-account auth: the sidecar has no setting for service accounts",
    "google.genai": "Gemini SDK (AgentScope's Gemini model, LiteLLM's google_genai types); "
                    "LiteLLM's gemini/ provider uses plain HTTP",
    "huggingface_hub": "Hub downloads (tokenizer and model downloads; LanceDB's MLX embedder). Offline app: "
                       "the embedder's tokenizer and weights ship inside the wordllama wheel",
    "hf_xet": "Hub transfer backend (11 MB), see huggingface_hub",
    "fastapi": "web framework of the LiteLLM proxy and some LiteLLM integrations; the sidecar serves aiohttp",
    "dashscope": "Alibaba DashScope SDK (12 MB): AgentScope's DashScope model/TTS/embedding classes; "
                 "the sidecar's model is LiteLLM (Qwen via DashScope's OpenAI-compatible endpoint works)",
    "anthropic": "Anthropic SDK (16 MB): AgentScope's Anthropic model class and LiteLLM's Helicone "
                 "integration; LiteLLM's anthropic/ provider calls the API over its own HTTP client",
    "websocket": "websocket-client: AgentScope's DashScope realtime TTS only",
    "fsspec": "fsspec filesystems behind pyarrow.fs.FSSpecHandler; the vector store is a local directory",
    "lancedb.conftest": "LanceDB's pytest fixtures",
    # --- not installed today; excluded defensively so an optional extra in the build venv never
    #     lands in the bundle (each is an optional import of LiteLLM, AgentScope, LanceDB or openai) ---
    "ollama": "Ollama SDK (AgentScope/LanceDB classes); LiteLLM talks to Ollama over HTTP",
    "redis": "LiteLLM cache/rate-limit backend; the sidecar uses none",
    "prisma": "LiteLLM proxy database",
    "pandas": "optional LanceDB/openai/AgentScope interop; the sidecar passes lists and Arrow tables",
    "polars": "optional LanceDB interop and LiteLLM cost exports",
    "torch": "LanceDB torch streaming/embedders: never used",
    "transformers": "local HF models: never used",
    "sentence_transformers": "local embedders: never used",
    "matplotlib": "plotting (tqdm.gui)",
    "IPython": "REPL",
    "gi": "PyGObject (keyring's optional libsecret backend); the SecretService backend (jeepney) covers Linux",
    "PyQt5": "GUI toolkit", "PyQt6": "GUI toolkit", "PySide2": "GUI toolkit", "PySide6": "GUI toolkit",
    "wx": "GUI toolkit",
    # --- the standard library's GUI, dev and test parts ---
    "tkinter": "GUI toolkit; the sidecar is headless",
    "_tkinter": "GUI toolkit",
    "turtle": "GUI toolkit",
    "turtledemo": "GUI demo",
    "idlelib": "IDE",
    "test": "CPython's own test suite",
    "lib2to3": "code converter (dev tool)",
    "ensurepip": "installer (dev tool)",
    "venv": "dev tool",
    "pydoc_data": "help() topics (dev tool)",
    "distutils": "packaging (cffi's optional shim)",
    "numpy.f2py": "numpy's Fortran wrapper generator",
    "numpy.testing": "numpy's test helpers",
    "numpy.distutils": "numpy's build helpers",
    # --- the build venv's dev tooling (the `test` extra) ---
    "pytest": "test runner", "_pytest": "test runner", "hypothesis": "property tests",
    "mypy": "type checker", "mypyc": "type checker", "ruff": "linter",
    "PyInstaller": "the build tool itself", "_pyinstaller_hooks_contrib": "the build tool",
    "pip": "installer", "setuptools": "packaging (cffi's optional shim)",
    "pkg_resources": "packaging: LiteLLM's fallback when importlib.resources is missing (never on 3.11)",
    "_distutils_hack": "setuptools' import shim",
}

#: Left out only by ``python bundling/build.py --without-vectors`` (``SIDECAR_BUNDLE_VECTORS=0``):
#: the vector store of DESIGN §6 is planned, and today only ``sidecar doctor``'s vectors probe
#: imports LanceDB (it reports "LanceDB not importable" as a warning without it).
VECTOR_EXCLUDES: dict[str, str] = {
    "lancedb": "vector store (185 MB): no served code path uses it yet",
    "lance_namespace": "LanceDB namespaces",
    "lance_namespace_urllib3_client": "LanceDB namespaces (REST client)",
    "pyarrow": "LanceDB's Arrow interface (81 MB); nothing else in the sidecar imports pyarrow",
}
