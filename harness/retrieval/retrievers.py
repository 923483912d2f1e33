"""Dense retrievers over any encoder, through the embedding cache: whole documents
(:class:`DenseRetriever`), chunks (:class:`ChunkedRetriever`), and an encoder as a reranker
(:class:`EncoderReranker`). Search is exact (:mod:`harness.retrieval.topk`), or through a vector index
measured against exact search (:class:`IndexedRetriever`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import numpy as np

from harness import progress
from harness.cache import Cache, CachedEncoder, text_hash, timed
from harness.data.goldset import Document, Goldset
from harness.protocols import Run, Tokenizing
from harness.registry import EncoderConfig, IndexConfig, build_encoder, build_index
from harness.retrieval.chunking import Chunking, chunk_corpus
from harness.retrieval.topk import recall_at, to_run, top_k_chunked, top_k_dense


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

    @property
    def dim(self) -> int:
        """The width of the indexed vectors (0 before :meth:`index`)."""
        return 0 if self._doc_vectors is None else int(self._doc_vectors.shape[1])

    def index_bytes(self) -> int:
        """Bytes the index holds: float32 vectors (4 bytes a dimension) of every document, or chunk."""
        return 0 if self._doc_vectors is None else int(self._doc_vectors.nbytes)

    def _top_k(self, query_vectors: np.ndarray, top_k: int) -> tuple[np.ndarray, np.ndarray]:
        return top_k_dense(query_vectors, self._doc_vectors, top_k)

    def _encode_queries(self, queries: Mapping[str, str]) -> np.ndarray:
        start = time.perf_counter()
        with progress.bar("encoding queries") as update:
            self.encoder.on_progress = update
            query_vectors = self.encoder.encode(list(queries.values()), input_type="query")
        self.encode_queries_s += time.perf_counter() - start
        return query_vectors

    def search(self, queries: Mapping[str, str], top_k: int) -> Run:
        indices, scores = self._top_k(self._encode_queries(queries), top_k)
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


class IndexedRetriever(DenseRetriever):
    """A :class:`DenseRetriever` that searches through a vector index (a dense rung's ``ann`` table: faiss
    flat shards, HNSW or IVF), latency included. Exact search stays the reference: :meth:`ann_details`
    runs it over the same query vectors after the timed search and reports the index's recall against
    it, so an approximate index is never trusted unmeasured. The float vectors are kept beside the index
    for that reference, so this retriever holds both; its :meth:`index_bytes` is the index's alone, what
    a deployment would hold."""

    def __init__(self, encoder, cache: Cache, ann: IndexConfig):
        super().__init__(encoder, cache)
        self.vector_index = build_index(ann)  # a missing package is known before any encoding
        self.build_s = 0.0
        self._searched: tuple[np.ndarray, np.ndarray] | None = None

    def index(self, corpus: Mapping[str, str]) -> None:
        super().index(corpus)
        start = time.perf_counter()
        self.vector_index.build(self._doc_vectors)
        self.build_s = time.perf_counter() - start

    def index_bytes(self) -> int:
        return self.vector_index.index_bytes()

    def _top_k(self, query_vectors: np.ndarray, top_k: int) -> tuple[np.ndarray, np.ndarray]:
        return self.vector_index.search(query_vectors, top_k)

    def search(self, queries: Mapping[str, str], top_k: int) -> Run:
        query_vectors = self._encode_queries(queries)
        indices, scores = self._top_k(query_vectors, top_k)
        self._searched = query_vectors, indices
        return to_run(list(queries), self._doc_ids, indices, scores)

    def ann_details(self) -> dict:
        """What the index was (backend, kind, parameters, bytes, build seconds) and its recall@10 and
        recall@k against exact search of the last :meth:`search`'s queries, scored by true inner
        products (not the scores the index reports)."""
        query_vectors, indices = self._searched
        k = indices.shape[1]
        _, exact = top_k_dense(query_vectors, self._doc_vectors, k)
        scores = np.concatenate([  # 256 queries at a time: all hits' vectors at once are queries x k x dim floats
            np.einsum("qd,qkd->qk", query_vectors[q0 : q0 + 256], self._doc_vectors[np.maximum(indices[q0 : q0 + 256], 0)])
            for q0 in range(0, len(indices), 256)
        ])
        recall = [{"k": at, "recall": round(recall_at(at, indices, scores, exact), 6)} for at in sorted({min(10, k), k})]
        return self.vector_index.describe() | {"index_bytes": self.index_bytes(), "build_s": round(self.build_s, 3), "recall": recall}


class ChunkedRetriever(DenseRetriever):
    """Dense retrieval over document chunks; a document scores the ``aggregate`` of its chunks."""

    def __init__(self, encoder, cache: Cache, chunking: Chunking):
        super().__init__(encoder, cache)
        self.chunking = chunking
        self._starts = np.zeros(0, dtype=np.int64)
        self._unit = "tokens"

    def index_goldset(self, goldset: Goldset) -> None:
        """Index a goldset's documents (titles and metadata can prefix each chunk)."""
        self._index(list(goldset.corpus), list(goldset.corpus.values()), goldset.manifest.title_separator)

    def index(self, corpus: Mapping[str, str]) -> None:
        """Index plain texts (no title or metadata to prefix)."""
        self._index(list(corpus), [Document("", text) for text in corpus.values()], " ")

    def _index(self, doc_ids: list[str], docs: list[Document], title_separator: str) -> None:
        spec = self.chunking
        chunks = chunk_corpus(
            docs,
            size=spec.size,
            overlap=spec.overlap,
            prefix_title=spec.prefix_title,
            prefix_metadata=spec.prefix_metadata,
            title_separator=title_separator,
            token_spans=self.encoder.encoder.token_spans if isinstance(self.encoder.encoder, Tokenizing) else None,
        )
        self._doc_ids = doc_ids
        self._starts, self._unit = chunks.starts, chunks.unit
        self._doc_vectors = self._encode_documents(chunks.texts)

    def _top_k(self, query_vectors: np.ndarray, top_k: int) -> tuple[np.ndarray, np.ndarray]:
        return top_k_chunked(query_vectors, self._doc_vectors, self._starts, top_k, aggregate=self.chunking.aggregate)

    def chunk_details(self) -> dict:
        n_docs, n_chunks = len(self._starts), len(self._doc_vectors)
        sizes = np.diff(np.append(self._starts, n_chunks)) if n_docs else np.zeros(1)
        return {"chunks": int(n_chunks), "chunks_per_document_mean": round(float(sizes.mean()), 2), "chunks_per_document_max": int(sizes.max()), "unit": self._unit, "aggregate": self.chunking.aggregate}
