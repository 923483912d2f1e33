"""Exact dense top-k search in bounded memory.

Scores are computed one (query block x document block) tile at a time and merged into a running
top-k, so memory is ``query_block * doc_block`` floats however large the corpus is: a 1M-document
corpus never needs a 1M x N score matrix. Exact (no ANN), so results equal a full matrix product.
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
    n_queries, n_docs = len(query_vectors), len(doc_vectors)
    k = min(top_k, n_docs)
    indices = np.empty((n_queries, k), dtype=np.int64)
    scores = np.empty((n_queries, k), dtype=np.float32)
    for q0 in range(0, n_queries, query_block):
        queries = query_vectors[q0 : q0 + query_block]
        best_idx = np.empty((len(queries), 0), dtype=np.int64)
        best_scores = np.empty((len(queries), 0), dtype=np.float32)
        for d0 in range(0, n_docs, doc_block):
            tile = queries @ doc_vectors[d0 : d0 + doc_block].T
            take = min(k, tile.shape[1])
            part = np.argpartition(-tile, take - 1, axis=1)[:, :take]
            cand_idx = np.concatenate([best_idx, part + d0], axis=1)
            cand_scores = np.concatenate([best_scores, np.take_along_axis(tile, part, axis=1)], axis=1)
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
    """Turn search results into a ranx-shaped run ``{query_id: {doc_id: score}}``."""
    return {qid: {doc_ids[i]: float(s) for i, s in zip(indices[row], scores[row])} for row, qid in enumerate(query_ids)}
