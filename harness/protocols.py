"""The protocols that backends implement. ``harness`` depends on these, never on a backend module."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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


# A paid API backend also has:
#   price_key: str                  e.g. "cohere:embed-v4.0", looked up in the ladder's price table
#   concurrency: int                requests in flight at once
#   batches(texts) -> list[list[int]]    how texts are grouped into requests (size and token caps)
#   encode_with_usage(texts, *, input_type) -> (vectors, billed units)
#   rerank_with_usage(query, documents) -> (scores, billed units)
# harness.cache uses them when present: one commit per request, nothing paid for twice.


@runtime_checkable
class Reranker(Protocol):
    """Re-scores a query's candidate documents (a cross-encoder, or a rerank API)."""

    @property
    def fingerprint(self) -> str:
        """Stable identity of everything that changes the scores (model weights or API model, options)."""
        ...

    def rerank(self, query: str, documents: Sequence[str]) -> Sequence[float]:
        """Return one relevance score per document, in the order given (higher is more relevant)."""
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


@dataclass(frozen=True)
class Generation:
    """One LLM answer and the tokens it was billed for (None where the backend does not say)."""

    text: str
    input_tokens: int | None = None
    output_tokens: int | None = None


@runtime_checkable
class Generator(Protocol):
    """Writes text for a prompt: an LLM behind a chat API or in-process (synthetic queries)."""

    @property
    def fingerprint(self) -> str:
        """Stable identity of everything that changes the answers (model, sampling options); never a key or URL."""
        ...

    def generate(self, prompt: str) -> Generation:
        """Answer one user message."""
        ...


# A generator may also have price_key (chat prices per million input and output tokens) and
# concurrency (requests in flight); harness.generation caches every answer as it arrives.
