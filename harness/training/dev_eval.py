"""Scoring a model while it trains, on a goldset split it never trains on (``dev``): exact top-k of
query vectors against document vectors, evaluated with the harness's own metrics, so the epoch kept
is chosen on the same numbers the leaderboard shows. Fine-tuning rounds and adapters both use it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from harness.data.goldset import Goldset
from harness.metrics import DEFAULT_METRICS, evaluate
from harness.retrieval.topk import to_run, top_k_dense


class SplitScorer:
    """One split's queries, its judgements and the goldset's documents, ready to score vectors."""

    def __init__(self, goldset: Goldset, split: str, *, metrics: Sequence[str] = DEFAULT_METRICS, depth: int = 100):
        self.queries = goldset.split_queries(split)
        self.qrels = goldset.scored_qrels(split)
        self.doc_ids = list(goldset.corpus)
        self.documents = [goldset.document_text(goldset.corpus[d]) for d in self.doc_ids]
        self.metrics = tuple(metrics)
        self.depth = depth

    def score(self, query_vectors: np.ndarray, doc_vectors: np.ndarray) -> dict[str, float]:
        """Mean of each metric over the split's queries (rows of ``query_vectors``, in ``self.queries`` order)."""
        run = to_run(list(self.queries), self.doc_ids, *top_k_dense(query_vectors, doc_vectors, self.depth))
        return evaluate(self.qrels, run, self.metrics).mean
