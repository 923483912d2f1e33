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
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

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
