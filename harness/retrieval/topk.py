"""Exact dense top-k search in bounded memory.

Scores are computed one (query block x document block) tile at a time and merged into a running
top-k, so memory is ``query_block * doc_block`` floats however large the corpus is: a 1M-document
corpus never needs a 1M x N score matrix. Exact (no ANN), so results equal a full matrix product, and
an approximate search is measured against it (:func:`recall_at`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from harness.protocols import Run


def top_k_dense(
    query_vectors: np.ndarray,
    doc_vectors: np.ndarray,
    top_k: int,
    *,
    query_block: int = 256,
    doc_block: int = 65_536,
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(indices, scores)``, each ``(n_queries, k)``, best first, by inner product.

    ``k = min(top_k, n_docs)``. Use normalised vectors for cosine similarity.
    """

    def tile(queries: np.ndarray, d0: int, d1: int) -> np.ndarray:
        return queries @ doc_vectors[d0:d1].T

    return _top_k(query_vectors, len(doc_vectors), top_k, tile, query_block, doc_block)


AGGREGATES = {"max": np.maximum.reduceat, "sum": np.add.reduceat}


def top_k_chunked(
    query_vectors: np.ndarray,
    chunk_vectors: np.ndarray,
    starts: np.ndarray,
    top_k: int,
    *,
    aggregate: str = "max",
    query_block: int = 256,
    chunk_block: int = 65_536,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k documents when each document is a run of consecutive chunks (``starts[i]`` is document
    i's first chunk) and a document scores the ``max``, ``sum`` or ``first`` of its chunks' scores.

    Exact, in the same bounded tiles as :func:`top_k_dense` (blocks of whole documents).
    """
    bounds = np.append(np.asarray(starts, dtype=np.int64), len(chunk_vectors))

    def tile(queries: np.ndarray, d0: int, d1: int) -> np.ndarray:
        c0, c1 = bounds[d0], bounds[d1]
        scores = queries @ chunk_vectors[c0:c1].T
        local = bounds[d0:d1] - c0
        return scores[:, local] if aggregate == "first" else AGGREGATES[aggregate](scores, local, axis=1)

    n_docs = len(bounds) - 1
    doc_block = max(1, chunk_block * n_docs // max(len(chunk_vectors), 1))
    return _top_k(query_vectors, n_docs, top_k, tile, query_block, doc_block)


def top_k_codes(query_vectors: np.ndarray, doc_codes: np.ndarray, top_k: int, *, query_block: int = 256, doc_block: int = 16_384) -> tuple[np.ndarray, np.ndarray]:
    """Top-k by the inner product of float queries with int8 codes, each block of codes widened to
    float32 for BLAS (numpy has no integer BLAS: an int32 product of 100 x 5,000 384-d codes took 7x as
    long as float32 here), so the index stays int8 and memory stays ``doc_block`` rows of floats."""

    def tile(queries: np.ndarray, d0: int, d1: int) -> np.ndarray:
        return queries @ doc_codes[d0:d1].astype(np.float32).T

    return _top_k(np.asarray(query_vectors, dtype=np.float32), len(doc_codes), top_k, tile, query_block, doc_block)


def top_k_hamming(query_bits: np.ndarray, doc_bits: np.ndarray, n_bits: int, top_k: int, *, query_block: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Top-k packed binary codes (``np.packbits`` rows, as sentence-transformers' ``ubinary``) by the
    number of bits that agree, ``n_bits - hamming distance``: the hamming search of faiss's
    ``IndexBinaryFlat``, which sentence-transformers' ``semantic_search_faiss`` uses. Written here (XOR
    and ``np.bitwise_count``) so binary search needs neither faiss nor usearch; scores are whole numbers,
    so ties are common (callers break them by document id)."""
    doc_block = max(1, (1 << 23) // max(query_block * doc_bits.shape[1], 1))  # an 8 MB XOR tile

    def tile(queries: np.ndarray, d0: int, d1: int) -> np.ndarray:
        differ = np.bitwise_count(queries[:, None, :] ^ doc_bits[None, d0:d1, :]).sum(axis=2, dtype=np.int32)
        return (n_bits - differ).astype(np.float32)

    return _top_k(query_bits, len(doc_bits), top_k, tile, query_block, doc_block)


def _top_k(query_vectors, n_docs, top_k, tile, query_block, doc_block) -> tuple[np.ndarray, np.ndarray]:
    n_queries = len(query_vectors)
    k = min(top_k, n_docs)
    indices = np.empty((n_queries, k), dtype=np.int64)
    scores = np.empty((n_queries, k), dtype=np.float32)
    for q0 in range(0, n_queries, query_block):
        queries = query_vectors[q0 : q0 + query_block]
        best_idx = np.empty((len(queries), 0), dtype=np.int64)
        best_scores = np.empty((len(queries), 0), dtype=np.float32)
        for d0 in range(0, n_docs, doc_block):
            block = tile(queries, d0, min(d0 + doc_block, n_docs))
            take = min(k, block.shape[1])
            part = np.argpartition(-block, take - 1, axis=1)[:, :take]
            cand_idx = np.concatenate([best_idx, part + d0], axis=1)
            cand_scores = np.concatenate([best_scores, np.take_along_axis(block, part, axis=1)], axis=1)
            if cand_scores.shape[1] > k:
                keep = np.argpartition(-cand_scores, k - 1, axis=1)[:, :k]
                cand_idx = np.take_along_axis(cand_idx, keep, axis=1)
                cand_scores = np.take_along_axis(cand_scores, keep, axis=1)
            best_idx, best_scores = cand_idx, cand_scores
        order = np.argsort(-best_scores, axis=1, kind="stable")
        indices[q0 : q0 + len(queries)] = np.take_along_axis(best_idx, order, axis=1)
        scores[q0 : q0 + len(queries)] = np.take_along_axis(best_scores, order, axis=1)
    return indices, scores


def to_run(query_ids: Sequence[str], doc_ids: Sequence[str], indices: np.ndarray, scores: np.ndarray) -> Run:
    """Turn search results into a ranx-shaped run ``{query_id: {doc_id: score}}`` (index -1, a slot an
    approximate index could not fill, is left out)."""
    return {qid: {doc_ids[i]: float(s) for i, s in zip(indices[row], scores[row]) if i >= 0} for row, qid in enumerate(query_ids)}


TIE = 1e-5
"""Scores this close count as tied: inner products of unit float32 vectors summed in another order
(faiss's kernels against numpy's BLAS) differ by about 1e-7."""


def recall_at(k: int, indices: np.ndarray, scores: np.ndarray, exact_scores: np.ndarray) -> float:
    """The share of the exact top ``k`` an approximate search found, counted as ann-benchmarks counts it
    (Aumüller et al. 2020): a hit whose true score reaches the exact k-th score (less :data:`TIE`) is
    one of the k best, so a document tied with the k-th counts wherever ties fell. ``indices`` and
    ``scores`` are the search's (-1: no hit), scores being true inner products; ``exact_scores`` the
    exact search's, best first."""
    found = (indices[:, :k] >= 0) & (scores[:, :k] >= exact_scores[:, k - 1 : k] - TIE)
    return float(found.sum(axis=1).mean() / k)


def break_ties(hits: dict[str, float]) -> dict[str, float]:
    """The same ranking with no tied scores: tied documents ordered by id, scores nudged apart.

    Evaluators order tied documents differently (trec_eval by document id, descending; ranx by its
    sort), so a run with ties can score differently in each. Fused scores tie often (RRF gives a
    document ranked first by one input the same score as one ranked first by the other), so fusion
    and reranking break ties here, within the gap to the next lower score, and every evaluator then
    sees one ranking.
    """
    ranked = sorted(hits.items(), key=lambda x: (-x[1], x[0]))
    out: dict[str, float] = {}
    i = 0
    while i < len(ranked):
        j = i
        while j + 1 < len(ranked) and ranked[j + 1][1] == ranked[i][1]:
            j += 1
        score = ranked[i][1]
        below = ranked[j + 1][1] if j + 1 < len(ranked) else score - 1.0
        step = (score - below) / (j - i + 2)
        for n, (doc_id, _) in enumerate(ranked[i : j + 1]):
            out[doc_id] = score - n * step
        i = j + 1
    return out
