"""Backends by name, as lazy ``"module:Class"`` strings plus third-party entry points.

Nothing is imported until a backend is asked for, so listing choices (for errors and help) is free
and a missing optional SDK only matters to the rung that needs it.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from harness.errors import ConfigError, did_you_mean

BUILTIN: dict[str, dict[str, str]] = {
    "encoder": {
        "sentence-transformers": "backends.sentence_transformers:SentenceTransformerEncoder",
        "cohere": "backends.cohere:CohereEncoder",
        "voyage": "backends.voyage:VoyageEncoder",
        "adapter": "backends.adapter:AdapterEncoder",
    },
    "reranker": {
        "cross-encoder": "backends.sentence_transformers:CrossEncoderReranker",
        "bi-encoder": "harness.retrieval:EncoderReranker",
        "cohere": "backends.cohere:CohereReranker",
        "voyage": "backends.voyage:VoyageReranker",
    },
    "trainer": {
        "sentence-transformers": "backends.st_train:Trainer",
        "adapter": "backends.adapter_train:Trainer",
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
