"""Scoring runs against judgements, through ranx.

ranx is the one metric implementation (no metric code of our own); this module and
:mod:`harness.retrieval.fusion` (ranx's fusion) are the only places that touch it, because ranx
asserts on bad input, mutates the Run it is given, takes ~1.3 s to import and JIT-compiles on first use. Validation happens in :mod:`harness.data.goldset` before we get here.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

from harness.errors import did_you_mean
from harness.protocols import Run

DEFAULT_METRICS = (
    "ndcg@10",
    "recall@1",
    "recall@3",
    "recall@5",
    "recall@10",
    "recall@20",
    "recall@100",
    "mrr@10",
    "map@100",
    "precision@10",
)
"""Every metric is computed per query; the first is the primary metric. nDCG uses trec_eval's linear
gain (ranx ``ndcg``), as MTEB and BEIR do through pytrec_eval."""

METRICS = ("hits", "hit_rate", "precision", "recall", "f1", "mrr", "map", "dcg", "dcg_burges", "ndcg", "ndcg_burges")
"""ranx's metric names that take an ``@k`` cut-off (``ranx.meta.evaluate.metric_switch``; a test keeps
this list in step with the installed ranx). ``rbp`` is left out: it takes a persistence, not a cut-off."""
WHOLE_RANKING = ("r-precision", "bpref")
"""ranx's metrics of the whole ranking (no cut-off)."""


def metric_problem(name: str) -> str | None:
    """Why ``name`` is not a metric ranx computes (None if it is), checked without importing ranx."""
    base, at, cutoff = name.partition("@")
    if name in WHOLE_RANKING:
        return None
    if base not in METRICS or (at and not (cutoff.isascii() and cutoff.isdigit())):
        known = [*DEFAULT_METRICS, *(f"{m}@{cutoff if cutoff.isdigit() else 10}" for m in METRICS), *WHOLE_RANKING]
        return (f"unknown metric '{name}' (ranx names such as ndcg@10, recall@100, mrr@10, map@100, precision@10; {', '.join(WHOLE_RANKING)} "
                f"without a cut-off).{did_you_mean(name, dict.fromkeys(known))}").removesuffix(".")
    if at and int(cutoff) < 1:
        return f"metric '{name}': the cut-off after '@' must be at least 1"
    return None


@dataclass(frozen=True)
class Scores:
    """Mean and per-query values of each metric. ``per_query[qid][metric]``."""

    mean: dict[str, float]
    per_query: dict[str, dict[str, float]]


def evaluate(qrels: dict[str, dict[str, int]], run: Run, metrics: tuple[str, ...] = DEFAULT_METRICS) -> Scores:
    """Score ``run`` on every query of ``qrels``; a query missing from the run scores 0.

    Grades <= 0 count as not relevant. Neither argument is modified.
    """
    from numba.core.errors import NumbaTypeSafetyWarning
    from ranx import Qrels as RanxQrels
    from ranx import Run as RanxRun
    from ranx import evaluate as ranx_evaluate

    query_ids = list(qrels)
    if not any(run.get(q) for q in query_ids):  # ranx cannot score a run with no hit at all
        zeros = {m: 0.0 for m in metrics}
        return Scores(mean=dict(zeros), per_query={q: dict(zeros) for q in query_ids})
    ranx_qrels = RanxQrels({q: dict(d) for q, d in qrels.items()})
    ranx_run = RanxRun({q: dict(run.get(q, {})) for q in query_ids})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NumbaTypeSafetyWarning)
        values = ranx_evaluate(ranx_qrels, ranx_run, list(metrics), return_mean=False, make_comparable=True)
    if len(metrics) == 1:  # ranx returns a bare array for a single metric
        values = {metrics[0]: values}
    order = list(ranx_qrels.keys())  # ranx's own query order for the per-query arrays
    per_query = {q: {m: float(values[m][i]) for m in metrics} for i, q in enumerate(order)}
    mean = {m: float(values[m].mean()) if len(order) else 0.0 for m in metrics}
    return Scores(mean=mean, per_query={q: per_query[q] for q in query_ids})
