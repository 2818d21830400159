"""Embedders: turning text into vectors, off the event loop.

- :class:`WordLlamaEmbedder` — the offline default: WordLlama's 256-d static embeddings, whose
  weights and tokenizer ship inside the ``wordllama`` wheel (16 MB). Loaded with
  ``cache_dir=<the package folder>`` and ``disable_download=True``: its default ``load()`` looks
  for the tokenizer config in a user cache folder and tries to download it. No network, ever.
- :class:`LiteLLMEmbedder` — what the user configures with ``PUT /v1/settings/embedder``:
  any LiteLLM embedding model (``ollama/nomic-embed-text``, ``openai/<name>`` with an
  ``apiBase`` for an OpenAI-compatible server, a hosted model with its key from secrets).

Every embedder has an ``id`` recorded with each row it embeds (a table holds one embedder's
vectors), a dimension ``dim``, and ``embed(texts)`` returning L2-normalised float32 vectors
(cosine similarity = dot product), computed in a worker thread or over HTTP.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import ConfigDict, Field
from pydantic.alias_generators import to_camel

from sidecar.basemodel import Model

if TYPE_CHECKING:  # numpy loads with the index, after the handshake
    import numpy as np

log = logging.getLogger(__name__)

#: ``EmbedderSettings.model`` value of the bundled default.
DEFAULT_MODEL = "wordllama"
#: Setting key in the ``settings`` table.
EMBEDDER_SETTING_KEY = "embedder"


class EmbedderSettings(Model):
    """``PUT /v1/settings/embedder`` body (camelCase on the API).

    Attributes:
        model: ``"wordllama"`` (bundled, offline), ``"none"`` (keyword search only), or a LiteLLM
            embedding model string (``ollama/nomic-embed-text``, ``openai/text-embedding-3-small``).
        api_base: the model server's base URL (``http://127.0.0.1:11434``); None = provider default.
        api_key_secret: *name* of the secret holding the API key; None = no key.
        batch_size: texts per request (1–512).
        min_similarity: cosine similarity under which a match found only by vectors is dropped
            (model-specific; the bundled model uses 0.15).
        request_timeout_s: seconds per request.
    """

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    model: str = Field(default=DEFAULT_MODEL, min_length=1, max_length=200)
    api_base: str | None = Field(default=None, max_length=2000)
    api_key_secret: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
                                       description="name of a secret (PUT /v1/secrets/{name})")
    batch_size: int = Field(default=64, ge=1, le=512)
    min_similarity: float = Field(default=0.0, ge=-1, le=1,
                                  description="cosine similarity under which a vector-only match is dropped")
    request_timeout_s: float = Field(default=60.0, gt=0, le=600)


class Embedder(Protocol):
    """What the index needs from an embedder."""

    id: str
    dim: int
    #: texts embedded since the process started (the tests count re-embedding with it)
    embedded: int
    #: cosine similarity below which a vector-only match is noise for this model
    min_similarity: float
    #: weight of the vector leg's ranks in hybrid fusion (1.0: plain reciprocal-rank fusion)
    vector_weight: float
    #: hybrid queries put the vector leg's best document at worst this rank (0: no such place)
    vector_slot: int

    async def embed(self, texts: list[str], *, count: bool = True) -> np.ndarray:
        """Vectors for ``texts`` (shape ``(len(texts), dim)``, float32, unit length); ``count``
        adds them to :attr:`embedded` (queries do not count)."""
        ...


def _normalise(vectors: np.ndarray) -> np.ndarray:
    import numpy as np

    v = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return v / norms


WORDLLAMA_ID = "wordllama/l2_supercat_256"


def embedder_id(settings: EmbedderSettings) -> str | None:
    """The ``id`` the embedder ``settings`` name will have once loaded (None: no embedder),
    known without loading it."""
    if settings.model == "none":
        return None
    if settings.model == DEFAULT_MODEL:
        return WORDLLAMA_ID
    return f"{settings.model}@{settings.api_base}" if settings.api_base else settings.model


def table_slug(embedder_id: str | None) -> str:
    """A LanceDB table name for an embedder's chunk table (``chunks_keyword`` without one)."""
    if embedder_id is None:
        return "chunks_keyword"
    return "chunks_" + re.sub(r"[^A-Za-z0-9]+", "_", embedder_id).strip("_").lower()[:80]


def wordllama_package_dir() -> Path:
    """The installed ``wordllama`` package folder (holds ``weights/`` and ``tokenizers/``).

    Raises:
        ModuleNotFoundError: wordllama is not installed (a build without vectors).
    """
    spec = importlib.util.find_spec("wordllama")
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError("wordllama is not installed")
    return Path(spec.origin).parent


class WordLlamaEmbedder:
    """The bundled offline embedder (256 dimensions)."""

    dim = 256
    #: measured: paraphrases score ≈ 0.2–0.7 against their source, unrelated text ≤ 0.06
    min_similarity = 0.15
    #: Fusion chosen on the dev split of ``tests/search/quality_queries.json`` (63 queries; never
    #: on its test split). This static model is far weaker than BM25 there (dev MRR 0.623 vs
    #: 0.881), and equal-weight RRF drags keyword's good ranks down (MRR 0.743). At weight 0.05
    #: its ranks break near-ties among keyword matches (dev MRR 0.893) but can never lift a
    #: document keyword missed onto the first page (hit@5 0.937, as keyword); so its best
    #: document also gets a place among the first 3 (``vector_slot``): dev hit@5 0.952 / MRR
    #: 0.897 (slot 4 or 5: 0.952 / 0.895, 0.894; weight 0.02 or 0.1: the same within 0.003).
    #: On the test split the slot is neutral (hybrid 0.883 / 0.813 with it, 0.883 / 0.814 without).
    vector_weight = 0.05
    vector_slot = 3

    def __init__(self, model: Any) -> None:
        self._model = model
        self._lock = threading.Lock()  # its tokenizer is not documented as thread-safe
        self.id = WORDLLAMA_ID
        self.embedded = 0

    @classmethod
    def load_sync(cls) -> WordLlamaEmbedder:
        """Load from the wheel's own files; never downloads (blocking: ~0.3 s — call in a thread).

        Raises:
            ModuleNotFoundError, FileNotFoundError: wordllama or its bundled files are missing.
        """
        from sidecar.background import loading_libraries

        with loading_libraries():
            from wordllama import WordLlama

            model = WordLlama.load(cache_dir=wordllama_package_dir(), disable_download=True)
        return cls(model)

    def _embed_sync(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            out = self._model.embed(texts, norm=True, return_np=True)
        return _normalise(out)

    async def embed(self, texts: list[str], *, count: bool = True) -> np.ndarray:
        import numpy as np

        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = await asyncio.to_thread(self._embed_sync, texts)
        self.embedded += len(texts) if count else 0
        return vectors


class EmbedderUnavailable(Exception):
    """The configured embedder cannot be used now (``reason`` says why, for ``/v1/ready``)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class LiteLLMEmbedder:
    """A configured embedding model called through LiteLLM (``litellm.aembedding``)."""

    def __init__(self, settings: EmbedderSettings, api_key: str | None, dim: int) -> None:
        self.settings = settings
        self._api_key = api_key
        self.dim = dim
        self.id = f"{settings.model}@{settings.api_base}" if settings.api_base else settings.model
        self.embedded = 0
        self.min_similarity = settings.min_similarity
        self.vector_weight = 1.0  # a configured model: plain reciprocal-rank fusion
        self.vector_slot = 0

    @classmethod
    async def connect(cls, settings: EmbedderSettings, api_key: str | None) -> LiteLLMEmbedder:
        """Probe the model once (learns its dimension).

        Raises:
            EmbedderUnavailable: the server is unreachable, refuses, or answers nonsense.
        """
        probe = cls(settings, api_key, 0)
        vectors = await probe._call(["dimension probe"])
        probe.dim = int(vectors.shape[1])
        return probe

    async def _call(self, texts: list[str]) -> np.ndarray:
        import numpy as np

        from sidecar.agent.litellm_env import load_litellm

        litellm = await load_litellm()
        kwargs: dict[str, Any] = {"model": self.settings.model, "input": texts,
                                  "timeout": self.settings.request_timeout_s}
        if self.settings.api_base:
            kwargs["api_base"] = self.settings.api_base
        if self._api_key:
            kwargs["api_key"] = self._api_key
        elif self.settings.api_base:
            # Local servers need no key, but the OpenAI client insists on one and would otherwise
            # read OPENAI_API_KEY from the environment and send it to this server.
            kwargs["api_key"] = "sk-no-key"
        try:
            resp = await litellm.aembedding(**kwargs)
            data = sorted(resp.data, key=lambda d: d["index"] if isinstance(d, dict) else d.index)
            rows = [d["embedding"] if isinstance(d, dict) else d.embedding for d in data]
            vectors = np.asarray(rows, dtype=np.float32)
        except Exception as exc:  # LiteLLM wraps every provider error differently
            raise EmbedderUnavailable(f"{self.settings.model}: {type(exc).__name__}: {str(exc)[:200]}") from None
        if vectors.ndim != 2 or vectors.shape[0] != len(texts) or (self.dim and vectors.shape[1] != self.dim):
            raise EmbedderUnavailable(f"{self.settings.model}: unexpected embedding shape {vectors.shape}")
        return _normalise(vectors)

    async def embed(self, texts: list[str], *, count: bool = True) -> np.ndarray:
        import numpy as np

        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        parts = [await self._call(texts[i:i + self.settings.batch_size])
                 for i in range(0, len(texts), self.settings.batch_size)]
        self.embedded += len(texts) if count else 0
        return np.concatenate(parts)


async def load_embedder(settings: EmbedderSettings, api_key: str | None) -> Embedder | None:
    """The embedder ``settings`` name (None for ``model = "none"``).

    Raises:
        EmbedderUnavailable: it cannot be loaded or reached (the caller falls back to keyword search).
    """
    if settings.model == "none":
        return None
    if settings.model == DEFAULT_MODEL:
        try:
            return await asyncio.to_thread(WordLlamaEmbedder.load_sync)
        except (ImportError, OSError) as exc:
            raise EmbedderUnavailable(f"bundled embedder cannot load: {type(exc).__name__}: {exc}") from None
    return await LiteLLMEmbedder.connect(settings, api_key)
