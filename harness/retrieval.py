"""Turning a rung's configuration into a :class:`~harness.protocols.Retriever` or a reranker.

Backends come from the registry by name; the dense retriever itself is core (exact search in
:mod:`harness.search` over vectors from any encoder, through the cache).
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Mapping

import numpy as np

from harness import progress, registry
from harness.cache import Cache, CachedEncoder, text_hash, timed
from harness.chunking import chunk_corpus
from harness.protocols import Run
from harness.rungs import AnyRung, BM25Rung, ChunkedRung, EncoderConfig, RerankerConfig
from harness.search import to_run, top_k_chunked, top_k_dense


def _build(kind: str, config: EncoderConfig | RerankerConfig, cache: Cache | None):
    """Instantiate a backend (resolving, not loading, its model); one whose constructor takes a
    ``cache`` gets the run's cache (an adapter or a bi-encoder reranker reuses its base's vectors)."""
    cls = registry.load(kind, config.backend)
    options = config.options()
    if cache is not None and "cache" in inspect.signature(cls).parameters:
        options["cache"] = cache
    return cls(config.model, **options)


def build_encoder(config: EncoderConfig, cache: Cache | None = None):
    return _build("encoder", config, cache)


def build_reranker(config: RerankerConfig, cache: Cache):
    return _build("reranker", config, cache)


class EncoderReranker:
    """Any encoder backend as a second stage: candidates re-scored by the inner product of the
    query's and each document's vectors (the classic "BM25 candidates, dense re-score" pipeline).
    Document vectors go through the cache, as a deployed index would hold them precomputed (and a
    rung that embedded them already pays for them once); the query is encoded on every call, as it
    would be on the query path, so its time is part of the rerank latency."""

    def __init__(self, model: str, *, cache: Cache, encoder_backend: str = "sentence-transformers", batch_size: int | None = None, max_length: int | None = None, **options):
        config = EncoderConfig(backend=encoder_backend, model=model, batch_size=batch_size, max_length=max_length, **options)
        self.encoder = CachedEncoder(build_encoder(config, cache), cache)

    @property
    def fingerprint(self) -> str:
        return "bi-" + self.encoder.fingerprint

    def rerank(self, query: str, documents: list[str]) -> list[float]:
        if not documents:
            return []
        vectors = self.encoder.encode(documents, input_type="document")
        return (vectors @ self.encoder.inner.encode([query], input_type="query")[0]).tolist()


class DenseRetriever:
    """Exact dense retrieval over cached embeddings. Records query-encoding time separately."""

    def __init__(self, encoder, cache: Cache):
        self.encoder = CachedEncoder(encoder, cache)
        self.encode_queries_s = 0.0
        self._doc_ids: list[str] = []
        self._doc_vectors: np.ndarray | None = None

    def _encode_documents(self, texts: list[str]) -> np.ndarray:
        with progress.bar("encoding documents") as update:
            self.encoder.on_progress = update
            return self.encoder.encode(texts, input_type="document")

    def index(self, corpus: Mapping[str, str]) -> None:
        self._doc_ids = list(corpus)
        self._doc_vectors = self._encode_documents(list(corpus.values()))

    def _top_k(self, query_vectors: np.ndarray, top_k: int) -> tuple[np.ndarray, np.ndarray]:
        return top_k_dense(query_vectors, self._doc_vectors, top_k)

    def search(self, queries: Mapping[str, str], top_k: int) -> Run:
        start = time.perf_counter()
        with progress.bar("encoding queries") as update:
            self.encoder.on_progress = update
            query_vectors = self.encoder.encode(list(queries.values()), input_type="query")
        self.encode_queries_s += time.perf_counter() - start
        indices, scores = self._top_k(query_vectors, top_k)
        return to_run(list(queries), self._doc_ids, indices, scores)

    def latency(self, queries: Mapping[str, str], top_k: int) -> dict[str, float]:
        """Seconds per query to encode it alone and search the index.

        A local model runs the whole path afresh, timed end to end; a paid API's encoding time is the
        time of the call that bought the vector (see :meth:`CachedEncoder.probe`), plus the search.
        """
        texts = list(queries.values())
        if not self.encoder.paid:
            return dict(zip(queries, timed(lambda text: self._top_k(self.encoder.inner.encode([text], input_type="query"), top_k), texts)))
        encode_s = self.encoder.probe(texts, input_type="query")
        vectors = self.encoder.cache.get(self.encoder.fingerprint, "query", [text_hash(t) for t in texts])
        out = {}
        for (qid, text), seconds in zip(queries.items(), encode_s):
            if seconds is None:
                continue  # a query vector bought without a timing: not bought again just to time it
            start = time.perf_counter()
            self._top_k(vectors[text_hash(text)][None, :], top_k)
            out[qid] = seconds + time.perf_counter() - start
        return out


class ChunkedRetriever(DenseRetriever):
    """Dense retrieval over document chunks; a document scores the ``aggregate`` of its chunks."""

    def __init__(self, encoder, cache: Cache, rung: ChunkedRung):
        super().__init__(encoder, cache)
        self.rung = rung
        self._starts = np.zeros(0, dtype=np.int64)
        self._unit = "tokens"

    def index_goldset(self, goldset) -> None:
        rung = self.rung
        chunks = chunk_corpus(
            list(goldset.corpus.values()),
            size=rung.chunk_size,
            overlap=rung.overlap,
            prefix_title=rung.prefix_title,
            prefix_metadata=rung.prefix_metadata,
            title_separator=goldset.manifest.title_separator,
            token_spans=getattr(self.encoder.encoder, "token_spans", None),
        )
        self._doc_ids = list(goldset.corpus)
        self._starts, self._unit = chunks.starts, chunks.unit
        self._doc_vectors = self._encode_documents(chunks.texts)

    def index(self, corpus: Mapping[str, str]) -> None:
        raise TypeError("ChunkedRetriever indexes a goldset (title, text, metadata): call index_goldset()")

    def _top_k(self, query_vectors: np.ndarray, top_k: int) -> tuple[np.ndarray, np.ndarray]:
        return top_k_chunked(query_vectors, self._doc_vectors, self._starts, top_k, aggregate=self.rung.aggregate)

    def chunk_details(self) -> dict:
        n_docs, n_chunks = len(self._starts), len(self._doc_vectors)
        sizes = np.diff(np.append(self._starts, n_chunks)) if n_docs else np.zeros(1)
        return {"chunks": int(n_chunks), "chunks_per_document_mean": round(float(sizes.mean()), 2), "chunks_per_document_max": int(sizes.max()), "unit": self._unit, "aggregate": self.rung.aggregate}


def build_retriever(rung: AnyRung, cache: Cache):
    """A ready-to-index retriever for a dense, chunked or BM25 rung, and its encoder fingerprint (None for BM25)."""
    if isinstance(rung, BM25Rung):
        options = rung.model_dump(exclude={"kind", "name", "top_k"})
        return registry.load("retriever", "bm25s")(**options), None
    encoder = build_encoder(rung.encoder, cache)
    retriever = ChunkedRetriever(encoder, cache, rung) if isinstance(rung, ChunkedRung) else DenseRetriever(encoder, cache)
    return retriever, encoder.fingerprint
