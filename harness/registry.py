"""Backends by name, as lazy ``"module:Class"`` strings plus third-party entry points, and the
configuration tables (:class:`EncoderConfig`, :class:`RerankerConfig`) that build one.

Nothing is imported until a backend is asked for, so listing choices (for errors and help) is free
and a missing optional SDK only matters to the rung that needs it. The core builds encoders and
rerankers here (:func:`build_encoder`, :func:`build_reranker`) and calls them only through
:mod:`harness.protocols`.
"""

from __future__ import annotations

import importlib
import inspect
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_serializer, model_validator

from harness.config import StrictModel
from harness.errors import ConfigError, did_you_mean
from harness.protocols import ChecksConfig, ChecksOnline

if TYPE_CHECKING:
    from harness.cache import Cache

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_RERANKER = "cross-encoder/ms-marco-MiniLM-L6-v2"

BUILTIN: dict[str, dict[str, str]] = {
    "encoder": {
        "sentence-transformers": "backends.sentence_transformers:SentenceTransformerEncoder",
        "cohere": "backends.cohere:CohereEncoder",
        "voyage": "backends.voyage:VoyageEncoder",
        "openai": "backends.openai_embed:OpenAIEncoder",
        "adapter": "backends.adapter:AdapterEncoder",
    },
    "reranker": {
        "cross-encoder": "backends.sentence_transformers:CrossEncoderReranker",
        "bi-encoder": "harness.retrieval.retrievers:EncoderReranker",
        "cohere": "backends.cohere:CohereReranker",
        "voyage": "backends.voyage:VoyageReranker",
        "http-rerank": "backends.http_rerank:HttpReranker",
    },
    "trainer": {
        "sentence-transformers": "backends.st_train:Trainer",
    },
    "merger": {
        "sentence-transformers": "backends.merge:WeightMerger",
    },
    "engine": {
        "ray": "backends.ray_engine:RayEngine",
    },
    "index": {
        "faiss": "backends.faiss_index:FaissIndex",
    },
    "retriever": {
        "bm25s": "backends.bm25:BM25Retriever",
    },
    "generator": {
        "openai": "backends.llm_openai:OpenAIChatGenerator",
        "cohere": "backends.llm_cohere:CohereGenerator",
        "local": "backends.llm_local:LlamaCppGenerator",
    },
}
ENTRY_POINT_GROUP = "tunebench.{kind}s"  # e.g. [project.entry-points."tunebench.encoders"]


def available(kind: str) -> dict[str, str]:
    """Every registered backend of ``kind``: built-ins first, then entry points of installed packages."""
    found = dict(BUILTIN.get(kind, {}))
    for ep in entry_points(group=ENTRY_POINT_GROUP.format(kind=kind)):
        found.setdefault(ep.name, ep.value)
    return found


def load(kind: str, name: str) -> type:
    """Import and return the class registered as ``name``."""
    choices = available(kind)
    if name not in choices:
        raise ConfigError(
            f"unknown {kind} backend '{name}' (choices: {', '.join(sorted(choices))}).{did_you_mean(name, choices)}"
        )
    module_name, _, attr = choices[name].partition(":")
    return getattr(importlib.import_module(module_name), attr)


def config_problems(kind: str, config: EncoderConfig | RerankerConfig) -> dict[str, str]:
    """What the backend of ``config`` says can never work in it (empty when it has no check)."""
    cls = load(kind, config.backend)
    return cls.config_problems(config.model, config.options()) if isinstance(cls, ChecksConfig) else {}


def online_problems(kind: str, config: EncoderConfig | RerankerConfig) -> dict[str, str] | None:
    """What the backend's service says of ``config``'s model (empty when it has no such check; None
    when the service cannot be reached)."""
    cls = load(kind, config.backend)
    return cls.online_problems(config.model, config.options()) if isinstance(cls, ChecksOnline) else {}


class EncoderConfig(BaseModel):
    """Which encoder backend and model a dense or chunked rung uses, with its options."""

    model_config = ConfigDict(extra="allow")  # backend-specific options, checked against the backend

    backend: str = "sentence-transformers"
    model: str = DEFAULT_MODEL
    query_prompt: str = ""
    document_prompt: str = ""
    batch_size: int | None = Field(None, ge=1, description="default: the backend's (16 on CPU, 64 on GPU locally; the API's cap)")
    max_length: int | None = Field(None, ge=1)
    normalize: bool = True

    def options(self) -> dict:
        return self.model_dump(exclude={"backend", "model"})


class RerankerConfig(BaseModel):
    """Which reranker scores the first stage's candidates: a local cross-encoder, a bi-encoder, or an API."""

    model_config = ConfigDict(extra="allow")

    backend: str = "cross-encoder"
    model: str = DEFAULT_RERANKER
    batch_size: int | None = Field(None, ge=1)
    max_length: int | None = Field(None, ge=1)

    def options(self) -> dict:
        return self.model_dump(exclude={"backend", "model"})


IndexKind = Literal["flat", "hnsw", "ivf"]
INDEX_OPTIONS = {"flat": ("shard_size",), "hnsw": ("M", "ef_construction", "ef_search"), "ivf": ("nlist", "nprobe", "seed")}
"""The options of each vector index kind: a table naming another kind's option is an error, not ignored."""


class IndexConfig(StrictModel):
    """Which vector index searches a dense rung's vectors (its ``ann`` table) or mines negatives: ``flat``,
    exact inner product in shards of at most ``shard_size`` vectors; ``hnsw``, a graph (Malkov & Yashunin
    2018); ``ivf``, k-means lists of which ``nprobe`` are scanned (Jegou et al. 2011). Defaults: faiss's
    ``efConstruction`` (40); ``ef_search`` 128, above faiss's 16, since rungs ask for 100 hits; ``nlist``
    4 x sqrt(n) (faiss's guideline starts there), at most n / 39 so k-means has faiss's minimum of 39
    training vectors a list."""

    backend: str = "faiss"
    kind: IndexKind
    shard_size: int = Field(262_144, ge=1, description="flat: vectors per shard (a shard is searched, then merged, one at a time)")
    M: int = Field(32, ge=2, description="hnsw: neighbours per node")
    ef_construction: int = Field(40, ge=1, description="hnsw: candidates kept while building")
    ef_search: int = Field(128, ge=1, description="hnsw: candidates kept while searching (below top_k, recall drops: faiss does not raise it)")
    nlist: int | None = Field(None, ge=1, description="ivf: lists (default: 4 x sqrt(n), at most n / 39)")
    nprobe: int = Field(32, ge=1, description="ivf: lists scanned per query")
    seed: int = Field(0, description="ivf: the k-means training sample and initialisation")

    @field_validator("backend")
    @classmethod
    def _registered(cls, name: str) -> str:
        if name not in (choices := available("index")):
            raise ValueError(f"unknown index backend '{name}' (choices: {', '.join(sorted(choices))}).{did_you_mean(name, choices)}")
        return name

    @model_validator(mode="after")
    def _options_of_kind(self) -> IndexConfig:
        stray = sorted(self.model_fields_set - {"backend", "kind", *INDEX_OPTIONS[self.kind]})
        if stray:
            owner = next(kind for kind, keys in INDEX_OPTIONS.items() if stray[0] in keys)
            raise ValueError(f"'{stray[0]}' is an option of kind '{owner}', not '{self.kind}' (its options: {', '.join(INDEX_OPTIONS[self.kind])})")
        return self

    @model_serializer(mode="wrap")
    def _own_options(self, handler):
        """Only this kind's options: a record key (a hash of the rung's dump) then changes with them alone."""
        return {key: value for key, value in handler(self).items() if key in ("backend", "kind", *INDEX_OPTIONS[self.kind])}

    def params(self) -> dict:
        """This kind's options, as given or defaulted."""
        return {key: getattr(self, key) for key in INDEX_OPTIONS[self.kind]}


def build_index(config: IndexConfig):
    """A :class:`~harness.protocols.VectorIndex` for ``config``, not yet built (its package imported:
    a missing one raises :class:`~harness.errors.MissingDependency` here)."""
    return load("index", config.backend)(config)


def _build(kind: str, config: EncoderConfig | RerankerConfig, cache: Cache | None):
    """Instantiate a backend (resolving, not loading, its model); one whose constructor takes a
    ``cache`` gets the run's cache (an adapter or a bi-encoder reranker reuses its base's vectors)."""
    cls = load(kind, config.backend)
    options = config.options()
    if cache is not None and "cache" in inspect.signature(cls).parameters:
        options["cache"] = cache
    return cls(config.model, **options)


def build_encoder(config: EncoderConfig, cache: Cache | None = None):
    """An :class:`~harness.protocols.Encoder` for ``config`` (its model resolved, not loaded)."""
    return _build("encoder", config, cache)


def build_reranker(config: RerankerConfig, cache: Cache):
    """A :class:`~harness.protocols.Reranker` for ``config`` (its model resolved, not loaded)."""
    return _build("reranker", config, cache)
