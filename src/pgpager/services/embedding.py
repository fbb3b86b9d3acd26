"""Embedding models (DESIGN 9): the models pgpager supports, loaded once per process on first use
and shared, and text turned into vectors off the event loop.

A model's weights come from, in this order: ``PGPAGER_EMBEDDING_MODEL_DIR/<model name>``
(fastembed's ``specific_model_path``, for hosts without the model hub), the model cache
(``PGPAGER_MODEL_CACHE_DIR``), then, unless a model directory is configured, one attempt at the
model hub into the cache. A model that cannot be had this way is one ``ModelUnavailable`` line
naming both fixes; nothing retries or sleeps (fastembed alone would retry the hub for ~40 s).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pgpager.errors import InvalidRequest, ModelUnavailable, NoEmbeddingModel, UnknownModel
from pgpager.services import validation
from pgpager.settings import Settings

if TYPE_CHECKING:
    from fastembed import TextEmbedding

    from pgpager.store.collections import Collection

log = logging.getLogger(__name__)

CHUNK = 32
"""Texts per call into the model: a batch is embedded a chunk at a time, so a text query queued
behind a big upsert waits for one chunk, not for the whole batch."""

Vectors = np.ndarray[Any, np.dtype[np.float32]]


@dataclass(frozen=True)
class Model:
    """A model pgpager supports. ``hub_repo``/``model_file`` are fastembed's (where the ONNX
    export lives on the model hub, and which file of it is the model)."""

    name: str
    dimension: int
    upstash_name: str
    """The name Upstash Vector gives the model (``info``'s ``denseIndex.embeddingModel``)."""
    max_tokens: int
    size_mb: int
    description: str
    hub_repo: str
    model_file: str
    metric: str = "cosine"

    @property
    def files(self) -> tuple[str, ...]:
        """What a model directory must hold for fastembed to load it (config.json and
        special_tokens_map.json too, where the model has them)."""
        return (self.model_file, "tokenizer.json", "tokenizer_config.json")


MODELS: tuple[Model, ...] = (
    Model(
        name="sentence-transformers/all-MiniLM-L6-v2",
        dimension=384,
        upstash_name="ALL_MINILM_L6_V2",
        max_tokens=256,
        size_mb=90,
        description="English sentences and short paragraphs; small and fast.",
        hub_repo="Qdrant/all-MiniLM-L6-v2-onnx",
        model_file="model.onnx",
    ),
    Model(
        name="BAAI/bge-small-en-v1.5",
        dimension=384,
        upstash_name="BGE_SMALL_EN_V1_5",
        max_tokens=512,
        size_mb=67,
        description="English retrieval; small, quantized.",
        hub_repo="Qdrant/bge-small-en-v1.5-onnx-Q",
        model_file="model_optimized.onnx",
    ),
    Model(
        name="BAAI/bge-base-en-v1.5",
        dimension=768,
        upstash_name="BGE_BASE_EN_V1_5",
        max_tokens=512,
        size_mb=210,
        description="English retrieval; better than small, slower.",
        hub_repo="Qdrant/bge-base-en-v1.5-onnx-Q",
        model_file="model_optimized.onnx",
    ),
    Model(
        name="BAAI/bge-large-en-v1.5",
        dimension=1024,
        upstash_name="BGE_LARGE_EN_V1_5",
        max_tokens=512,
        size_mb=1200,
        description="English retrieval; the most accurate here, and the slowest.",
        hub_repo="Qdrant/bge-large-en-v1.5-onnx",
        model_file="model.onnx",
    ),
    Model(
        name="sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2",
        dimension=384,
        upstash_name="PARAPHRASE_MULTILINGUAL_MINILM_L12_V2",
        max_tokens=128,
        size_mb=220,
        description="50+ languages; paraphrases and short texts.",
        hub_repo="Qdrant/paraphrase-multilingual-MiniLM-L12-v2-onnx-Q",
        model_file="model_optimized.onnx",
    ),
)

_BY_NAME = {m.name.lower(): m for m in MODELS} | {m.upstash_name.lower(): m for m in MODELS}


def find_model(name: str) -> Model:
    """The supported model ``name`` (its fastembed or its Upstash name, any case)."""
    model = _BY_NAME.get(name.strip().lower()) if isinstance(name, str) else None
    if model is None:
        raise UnknownModel(
            f"unknown embedding model {name!r}: pgpager supports "
            f"{', '.join(m.name for m in MODELS)} (GET /v1/models)",
            field="embedding_model",
            supported=[m.name for m in MODELS],
        )
    return model


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _quiet_fastembed() -> None:
    """fastembed logs its retries and fallbacks (loguru, to stderr); pgpager says what failed
    once, in its own error."""
    from loguru import logger

    logger.disable("fastembed")


class Embedder:
    """The embedding models of one process: each loaded once, on first use, and shared by every
    request; embedding runs on worker threads (ONNX Runtime releases the GIL)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._loaded: dict[str, TextEmbedding] = {}
        self._load_locks = {m.name: threading.Lock() for m in MODELS}
        self._executor = ThreadPoolExecutor(
            max_workers=max(1, settings.embedding_concurrency), thread_name_prefix="pgpager-embed"
        )

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    # --- the models -------------------------------------------------------------------------
    @staticmethod
    def models() -> tuple[Model, ...]:
        return MODELS

    def model_dir(self, model: Model) -> Path | None:
        """The model's directory under ``PGPAGER_EMBEDDING_MODEL_DIR``, if it has one."""
        root = self.settings.embedding_model_dir
        if root is None:
            return None
        path = root / model.name
        return path if path.is_dir() else None

    def source(self, model: Model) -> str:
        """Where the model would load from now: loaded, model_dir, cache, or hub (first use
        downloads it). Looks at files only."""
        if model.name in self._loaded:
            return "loaded"
        if self.model_dir(model) is not None:
            return "model_dir"
        snapshots = (
            self.settings.model_cache_dir
            / f"models--{model.hub_repo.replace('/', '--')}"
            / "snapshots"
        )
        if any(snapshots.glob(f"*/{model.model_file}")):
            return "cache"
        return "hub"

    def missing(self, model: Model, collections: Sequence[str]) -> str | None:
        """A line for the start-up log when the model of ``collections`` is not on this host
        (looks at files only); None when it is."""
        if self.source(model) != "hub":
            return None
        names = ", ".join(collections)
        if self.settings.embedding_model_dir is not None:
            return (
                f"embedding model {model.name} of collection(s) {names} is neither in "
                f"PGPAGER_EMBEDDING_MODEL_DIR nor in the model cache: text sent to them fails "
                f"until it is; {self._fixes(model)}"
            )
        return (
            f"embedding model {model.name} of collection(s) {names} is not on this host yet: "
            "the first text sent to them downloads it from the model hub "
            f"('pgpager models fetch {model.name}' does it now)"
        )

    def _fixes(self, model: Model) -> str:
        root = self.settings.embedding_model_dir
        where = f"{root / model.name}" if root is not None else f"<dir>/{model.name}"
        return (
            f"to fix: put the model's files ({', '.join(model.files)}) in {where} and set "
            f"PGPAGER_EMBEDDING_MODEL_DIR={root if root is not None else '<dir>'}, or run "
            f"'pgpager models fetch {model.name}' on a host that reaches the model hub "
            f"(it fills PGPAGER_MODEL_CACHE_DIR={self.settings.model_cache_dir})"
        )

    def load(self, model: Model) -> TextEmbedding:
        """The loaded model; loads it the first time (once per process, whichever thread asks
        first; the others wait for it). Blocking: call it from a worker thread."""
        loaded = self._loaded.get(model.name)
        if loaded is not None:
            return loaded
        with self._load_locks[model.name]:
            loaded = self._loaded.get(model.name)
            if loaded is None:
                loaded = self._load(model)
                self._loaded[model.name] = loaded
                log.info("embedding model %s loaded", model.name)
        return loaded

    def _load(self, model: Model) -> TextEmbedding:
        from fastembed import TextEmbedding

        _quiet_fastembed()
        options: dict[str, Any] = {
            "cache_dir": str(self.settings.model_cache_dir),
            "threads": self.settings.embedding_threads,
            # Never the hub from here: the only hub attempt is fetch(), once, without retries.
            "local_files_only": True,
        }
        local = self.model_dir(model)
        if local is not None:
            try:
                return TextEmbedding(model.name, specific_model_path=str(local), **options)
            except Exception as exc:
                raise ModelUnavailable(
                    f"embedding model {model.name} cannot be loaded from {local}: "
                    f"{_one_line(exc)}; {self._fixes(model)}",
                    model=model.name,
                ) from exc
        try:
            return TextEmbedding(model.name, **options)
        except Exception as exc:
            if self.settings.embedding_model_dir is not None:
                # A model directory means: no hub on this host.
                raise ModelUnavailable(
                    f"embedding model {model.name} is neither in "
                    f"PGPAGER_EMBEDDING_MODEL_DIR nor in the model cache; {self._fixes(model)}",
                    model=model.name,
                ) from exc
        self.download(model)
        try:
            return TextEmbedding(model.name, **options)
        except Exception as exc:
            raise ModelUnavailable(
                f"embedding model {model.name} was downloaded but cannot be loaded: "
                f"{_one_line(exc)}; {self._fixes(model)}",
                model=model.name,
            ) from exc

    def download(self, model: Model) -> Path:
        """One attempt to download the model from the hub into the cache (no retries, no
        sleeps). Blocking."""
        from fastembed import TextEmbedding

        _quiet_fastembed()
        try:
            path = TextEmbedding.download_files_from_huggingface(
                model.hub_repo,
                cache_dir=str(self.settings.model_cache_dir),
                extra_patterns=[model.model_file],
            )
        except Exception as exc:
            raise ModelUnavailable(
                f"embedding model {model.name} is not in the model cache and the model hub "
                f"cannot be reached ({_one_line(exc)}); {self._fixes(model)}",
                model=model.name,
            ) from exc
        return Path(path)

    def fetch(self, model: Model) -> str:
        """Make the model available on this host (download it unless it is in the model
        directory or the cache) and check that it loads. Blocking. Says where it is."""
        local = self.model_dir(model)
        if local is None and self.source(model) == "hub":
            self.download(model)
        self.load(model)
        return str(local) if local is not None else str(self.settings.model_cache_dir)

    # --- embedding --------------------------------------------------------------------------
    async def ensure_loaded(self, model: Model) -> None:
        """Load the model now (collection creation: a model that cannot load fails there)."""
        if model.name not in self._loaded:
            await asyncio.to_thread(self.load, model)

    async def embed(self, model: Model, texts: Sequence[str], *, query: bool = False) -> Vectors:
        """One row per text, in order: documents (``query=False``) or queries, which some
        models embed differently."""
        await self.ensure_loaded(model)
        loop = asyncio.get_running_loop()
        chunks = []
        for start in range(0, len(texts), CHUNK):
            part = list(texts[start : start + CHUNK])
            chunks.append(await loop.run_in_executor(self._executor, self._run, model, part, query))
        if not chunks:
            return np.zeros((0, model.dimension), dtype=np.float32)
        return np.concatenate(chunks)

    def _run(self, model: Model, texts: list[str], query: bool) -> Vectors:
        m = self.load(model)
        out = m.query_embed(texts) if query else m.embed(texts, batch_size=len(texts))
        return np.asarray(list(out), dtype=np.float32)

    # --- text for a collection --------------------------------------------------------------
    def model_of(self, c: Collection) -> Model:
        """The model that embeds text for collection ``c``."""
        if c.embedding_model is None:
            raise NoEmbeddingModel(
                f"collection {c.name!r} has no embedding model, so it cannot embed text: send "
                "vectors, or create a collection with a model, e.g. POST /v1/collections "
                f'{{"name": "{c.name}-text", "embedding_model": "{MODELS[0].name}"}} '
                "(GET /v1/models lists the models)",
                collection=c.name,
            )
        try:
            model = find_model(c.embedding_model)
        except UnknownModel as exc:
            raise InvalidRequest(
                f"collection {c.name!r} names the embedding model {c.embedding_model!r}, which "
                "pgpager does not support (GET /v1/models): send vectors",
                collection=c.name,
            ) from exc
        if model.dimension != c.dimension:
            raise InvalidRequest(
                f"collection {c.name!r} has {c.dimension} dimensions but its embedding model "
                f"{model.name} makes {model.dimension}: send vectors",
                collection=c.name,
            )
        return model

    async def query_vector(
        self, c: Collection, *, vector: Any, data: Any, field: str = "vector"
    ) -> Vectors:
        """The query's vector: ``vector`` checked against the collection, or the text ``data``
        embedded with the collection's model. Exactly one of them."""
        if data is None:
            if vector is None:
                raise InvalidRequest(
                    f"give {field}, or data: text to embed with the collection's embedding model",
                    field=field,
                )
            return validation.vector(vector, c.dimension, field, c.metric)
        if vector is not None:
            raise InvalidRequest(
                f"give either {field} or data (text to embed), not both", field=field
            )
        where = field.rpartition(".")[0] + ".data" if "." in field else "data"
        text = text_to_embed(data, where)
        vectors = await self.embed(self.model_of(c), [text], query=True)
        first: Vectors = vectors[0]
        return first


def text_to_embed(value: Any, where: str) -> str:
    """Text the model can embed: a non-blank string without NUL."""
    text = validation.data(value, where)
    if text is None or not text.strip():
        raise InvalidRequest(f"{where}: the text to embed must not be empty", item=where)
    return text
