"""Turning a rung's configuration into a :class:`~harness.protocols.Retriever`.

Backends come from the registry by name; the dense retriever itself is core (exact search in
:mod:`harness.search` over vectors from any encoder, through the embedding cache).
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from harness import progress, registry
from harness.cache import Cache, CachedEncoder
from harness.protocols import Run
from harness.rungs import BM25Rung, DenseRung, EncoderConfig
from harness.search import to_run, top_k_dense


def build_encoder(config: EncoderConfig):
    """Instantiate the encoder backend named in ``config`` (resolves the model; does not load it)."""
    options = config.model_dump(exclude={"backend", "model"})
    return registry.load("encoder", config.backend)(config.model, **options)


class DenseRetriever:
    """Exact dense retrieval over cached embeddings. Records query-encoding time separately."""

    def __init__(self, encoder, cache: Cache):
        self.encoder = CachedEncoder(encoder, cache)
        self.encode_queries_s = 0.0
        self._doc_ids: list[str] = []
        self._doc_vectors = None

    def index(self, corpus: Mapping[str, str]) -> None:
        self._doc_ids = list(corpus)
        with progress.bar("encoding documents") as update:
            self.encoder.on_progress = update
            self._doc_vectors = self.encoder.encode(list(corpus.values()), input_type="document")

    def search(self, queries: Mapping[str, str], top_k: int) -> Run:
        start = time.perf_counter()
        with progress.bar("encoding queries") as update:
            self.encoder.on_progress = update
            query_vectors = self.encoder.encode(list(queries.values()), input_type="query")
        self.encode_queries_s += time.perf_counter() - start
        indices, scores = top_k_dense(query_vectors, self._doc_vectors, top_k)
        return to_run(list(queries), self._doc_ids, indices, scores)


def build_retriever(rung: DenseRung | BM25Rung, cache: Cache):
    """A ready-to-index retriever for ``rung``, and the encoder fingerprint (None for lexical rungs)."""
    if isinstance(rung, DenseRung):
        encoder = build_encoder(rung.encoder)
        return DenseRetriever(encoder, cache), encoder.fingerprint
    options = rung.model_dump(exclude={"kind", "name", "top_k"})
    return registry.load("retriever", "bm25s")(**options), None
