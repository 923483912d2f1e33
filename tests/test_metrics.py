"""Our metrics (through ranx) on hand-checked cases and against pytrec_eval."""

from __future__ import annotations

import math

import numpy as np
import pytest

from conftest import pytrec_eval_reference
from harness.metrics import DEFAULT_METRICS, evaluate

QRELS = {"q1": {"d1": 2, "d2": 1, "d9": 0}, "q2": {"d3": 1}}
RUN = {"q1": {"d2": 0.9, "d5": 0.8, "d1": 0.7}, "q2": {"d4": 0.9, "d3": 0.5}}


def test_hand_checked_values():
    scores = evaluate(QRELS, RUN)
    q1 = scores.per_query["q1"]
    assert q1["recall@1"] == 0.5 and q1["recall@3"] == 1.0
    assert q1["mrr@10"] == 1.0 and scores.per_query["q2"]["mrr@10"] == 0.5
    dcg = 1 / math.log2(2) + 2 / math.log2(4)  # linear gain, trec_eval style
    idcg = 2 / math.log2(2) + 1 / math.log2(3)
    assert q1["ndcg@10"] == pytest.approx(dcg / idcg)
    assert scores.mean["recall@10"] == 1.0
    assert list(scores.mean) == list(DEFAULT_METRICS)


def test_missing_query_scores_zero_and_input_untouched():
    run = {"q1": dict(RUN["q1"])}
    before = {q: dict(d) for q, d in run.items()}
    scores = evaluate(QRELS, run)
    assert scores.per_query["q2"]["recall@100"] == 0.0
    assert scores.mean["recall@100"] == pytest.approx(0.5)
    assert run == before


def test_equals_pytrec_eval_on_random_graded_runs():
    rng = np.random.default_rng(7)
    docs = [f"d{i}" for i in range(300)]
    qrels = {f"q{i}": {d: int(rng.integers(0, 3)) for d in rng.choice(docs, size=8, replace=False)} for i in range(40)}
    qrels = {q: j for q, j in qrels.items() if any(g > 0 for g in j.values())}
    run = {q: {d: float(s) for d, s in zip(rng.choice(docs, size=150, replace=False), rng.random(150))} for q in qrels}
    ours = evaluate(qrels, run).per_query
    ref = pytrec_eval_reference(qrels, run)
    for q in qrels:
        for name, value in ref[q].items():
            assert ours[q][name] == pytest.approx(value, abs=1e-6), (q, name)


def test_a_run_with_no_hit_at_all_scores_zero():
    from harness.metrics import evaluate

    scores = evaluate({"q1": {"d1": 1}, "q2": {"d2": 1}}, {"q1": {}, "q2": {}}, ("ndcg@10", "recall@10"))
    assert scores.mean == {"ndcg@10": 0.0, "recall@10": 0.0} and scores.per_query["q2"]["recall@10"] == 0.0


def test_metric_names_are_the_ones_ranx_computes():
    """harness.metrics checks names without importing ranx; this keeps its list in step with ranx's."""
    import inspect
    import re

    from ranx.meta.evaluate import metric_switch

    from harness.metrics import METRICS, WHOLE_RANKING

    ranx_names = set(re.findall(r'metric == "([^"]+)"', inspect.getsource(metric_switch))) - {"rbp"}
    assert set(METRICS) | set(WHOLE_RANKING) == ranx_names


@pytest.mark.parametrize(("name", "ok"), [("ndcg@10", True), ("map", True), ("bpref", True), ("recal@10", False), ("recall@0", False), ("recall@x", False), ("", False)])
def test_metric_problem(name, ok):
    from harness.metrics import metric_problem

    assert (metric_problem(name) is None) == ok
