"""Rank fusion and its tuning, through ranx (the one place that calls ``ranx.fuse``/``optimize_fusion``).

ranx asserts that every run has the same query ids, so runs are aligned first (a query with no hit
in one run gets an empty ranking there); tied fused scores are broken by document id
(:func:`harness.retrieval.topk.break_ties`); its progress bars are switched off (they would break
``--json`` output) and its numba type warnings silenced, as in :mod:`harness.metrics`.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager

from harness.protocols import Run
from harness.retrieval.topk import break_ties


@contextmanager
def _quiet():
    from numba.core.errors import NumbaTypeSafetyWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NumbaTypeSafetyWarning)
        yield


def _ranx_runs(runs: list[Run], query_ids: list[str]):
    from ranx import Run as RanxRun

    return [RanxRun({q: dict(run.get(q, {})) for q in query_ids}) for run in runs]


def params_for(method: str, weights: list[float] | None, rrf_k: int, n_runs: int) -> dict:
    """ranx's ``params`` for a method: RRF's ``k``; equal weights unless given for weighted methods."""
    if method == "rrf":
        return {"k": rrf_k}
    if method in ("wsum", "wmnz"):
        return {"weights": list(weights) if weights else [1.0 / n_runs] * n_runs}
    return {}


def fuse(runs: list[Run], *, method: str, norm: str | None, params: dict, top_k: int) -> Run:
    """Fuse ``runs`` into one, cut to ``top_k`` per query."""
    from ranx import fuse as ranx_fuse

    query_ids = sorted(set().union(*runs))
    with _quiet():
        fused = ranx_fuse(_ranx_runs(runs, query_ids), norm=norm, method=method, params=params).to_dict()
    return {q: dict(list(break_ties(fused.get(q, {})).items())[:top_k]) for q in query_ids}


def optimize(qrels: dict[str, dict[str, int]], runs: list[Run], *, method: str, norm: str | None, metric: str) -> tuple[dict, float]:
    """The ``params`` that maximise ``metric`` on ``qrels`` (a grid: weights in steps of 0.1 summing
    to 1, or RRF k from 10 to 100 in steps of 10), and the metric's value there."""
    from ranx import Qrels as RanxQrels
    from ranx import optimize_fusion

    query_ids = list(qrels)
    with _quiet():
        best, report = optimize_fusion(
            RanxQrels({q: dict(d) for q, d in qrels.items()}),
            _ranx_runs(runs, query_ids),
            norm=norm,
            method=method,
            metric=metric,
            show_progress=False,
            return_optimization_report=True,
        )
    params = {k: ([float(w) for w in v] if isinstance(v, (list, tuple)) else int(v)) for k, v in best.items()}
    return params, float(max(report.results))
