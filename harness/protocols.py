"""The protocols that backends implement. ``harness`` depends on these, never on a backend module."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal, Protocol, runtime_checkable

import numpy as np

InputType = Literal["query", "document"]
Run = dict[str, dict[str, float]]
"""ranx's run shape: ``{query_id: {doc_id: score}}``."""


@runtime_checkable
class Encoder(Protocol):
    """Turns texts into vectors; queries and documents may be encoded differently (prompts, API input types)."""

    @property
    def fingerprint(self) -> str:
        """Stable identity of everything that changes the vectors (weights, prompts, max length,
        normalisation). Computable without loading the model, so a warm cache needs no model."""
        ...

    def encode(self, texts: Sequence[str], *, input_type: InputType) -> np.ndarray:
        """Return a float32 array of shape ``(len(texts), dim)``."""
        ...


@runtime_checkable
class Retriever(Protocol):
    """Anything that ranks a corpus for queries: dense search, BM25, fusion."""

    def index(self, corpus: Mapping[str, str]) -> None:
        """Prepare to search ``{doc_id: text}``."""
        ...

    def search(self, queries: Mapping[str, str], top_k: int) -> Run:
        """Return the top ``top_k`` documents per query."""
        ...
