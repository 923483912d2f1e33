"""Rank fusion and its tuning, through ranx (the one place that calls ``ranx.fuse``/``optimize_fusion``).

ranx asserts that every run has the same query ids, so runs are aligned first (a query with no hit
in one run gets an empty ranking there); tied fused scores are broken by document id
(:func:`harness.retrieval.topk.break_ties`); its progress bars are switched off (they would break
``--json`` output) and its numba type warnings silenced, as in :mod:`harness.metrics`.

Document ids reach ranx as fixed-width surrogates (:class:`_Ids`). ranx stores a run's ids as a numpy
``<U{n}`` array, ``n`` the longest id in that run, and numba compiles every function the run passes
through once per ``n``: a first user's ids (file paths, ``guide.md#install``) vary in length, so timing
one query at a time compiled ranx afresh whenever a query's longest hit was a new length (single RRF
queries from 19 ms to 17 s, p95 25.6 s, on such a goldset). One width keeps one compiled signature.
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


class _Ids:
    """Document ids as fixed-width surrogates (``00000000``, ``00000001``, ... in first-seen order) and back.

    Order-preserving where it matters: each ranking keeps its own order, and ranx sorts by score alone,
    so the fused run is the one the real ids would give.
    """

    WIDTH = 8  # hex digits: 4 billion documents

    def __init__(self):
        self.codes: dict[str, str] = {}
        self.ids: list[str] = []

    def code(self, doc_id: str) -> str:
        if doc_id not in self.codes:
            self.codes[doc_id] = f"{len(self.ids):0{self.WIDTH}x}"
            self.ids.append(doc_id)
        return self.codes[doc_id]

    def encode(self, ranking: dict[str, float]) -> dict[str, float]:
        return {self.code(d): s for d, s in ranking.items()}

    def decode(self, ranking: dict[str, float]) -> dict[str, float]:
        return {self.ids[int(c, 16)]: s for c, s in ranking.items()}


def _ranx_runs(runs: list[Run], query_ids: list[str], ids: _Ids):
    from ranx import Run as RanxRun

    return [RanxRun({q: ids.encode(run.get(q, {})) for q in query_ids}) for run in runs]


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

    query_ids, ids = sorted(set().union(*runs)), _Ids()
    with _quiet():
        fused = ranx_fuse(_ranx_runs(runs, query_ids, ids), norm=norm, method=method, params=params).to_dict()
    return {q: dict(list(break_ties(ids.decode(fused.get(q, {}))).items())[:top_k]) for q in query_ids}


def optimize(qrels: dict[str, dict[str, int]], runs: list[Run], *, method: str, norm: str | None, metric: str) -> tuple[dict, float]:
    """The ``params`` that maximise ``metric`` on ``qrels`` (a grid: weights in steps of 0.1 summing
    to 1, or RRF k from 10 to 100 in steps of 10), and the metric's value there."""
    from ranx import Qrels as RanxQrels
    from ranx import optimize_fusion

    query_ids, ids = list(qrels), _Ids()
    with _quiet():
        best, report = optimize_fusion(
            RanxQrels({q: ids.encode(d) for q, d in qrels.items()}),
            _ranx_runs(runs, query_ids, ids),
            norm=norm,
            method=method,
            metric=metric,
            show_progress=False,
            return_optimization_report=True,
        )
    params = {k: ([float(w) for w in v] if isinstance(v, (list, tuple)) else int(v)) for k, v in best.items()}
    return params, float(max(report.results))
