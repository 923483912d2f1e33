"""Paired tests, bootstrap intervals, Holm and the minimum detectable difference on score vectors whose answer is known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.decide.significance import bootstrap_ci, compare, differences, holm, minimum_detectable_difference, paired_test
from harness.errors import BenchError
from record_factory import scored_record


def scores(values) -> dict[str, float]:
    return {f"q{i}": float(v) for i, v in enumerate(values)}


@pytest.fixture
def base():
    return np.random.default_rng(0).random(60)


@pytest.mark.parametrize("method", ["fisher", "t-test"])
def test_identical_runs_have_p_one(base, method):
    assert paired_test(scores(base), scores(base), method=method) == 1.0


@pytest.mark.parametrize("method", ["fisher", "t-test"])
def test_a_large_consistent_gain_is_significant(base, method):
    gain = base + 0.1 + np.random.default_rng(1).normal(0, 0.02, len(base))
    assert paired_test(scores(gain), scores(base), method=method) < 0.01


def test_gains_that_cancel_out_are_not_significant(base):
    swing = base + np.where(np.arange(len(base)) % 2 == 0, 0.1, -0.1)  # mean difference exactly 0
    assert paired_test(scores(swing), scores(base)) == pytest.approx(1.0)


def test_fisher_is_exact_on_few_queries():
    # 3 queries, each +1: of the 2^3 sign swaps only all-plus and all-minus reach |mean| >= 1, so p = 2/8
    assert paired_test(scores([1, 1, 1]), scores([0, 0, 0])) == pytest.approx(0.25)


def test_fisher_is_reproducible_and_the_seed_matters():
    rng = np.random.default_rng(3)
    a, b = rng.random(300), rng.random(300)
    b = a + rng.normal(0.01, 0.1, 300)
    first = paired_test(scores(a), scores(b), seed=7)
    assert paired_test(scores(a), scores(b), seed=7) == first
    assert paired_test(scores(a), scores(b), seed=8) != first


def test_agrees_with_ranx():
    from ranx.statistical_tests import fisher_randomization_test, paired_student_t_test

    rng = np.random.default_rng(3)
    a = rng.random(300)
    b = a + rng.normal(0.01, 0.1, 300)
    ranx_t, _ = paired_student_t_test(a, b)
    assert paired_test(scores(a), scores(b), method="t-test") == pytest.approx(ranx_t)
    ranx_fisher, _ = fisher_randomization_test(a, b, 10000, 0.05, 42)  # p ~ 0.06; ranx's own value varies by ~0.005 per call
    assert paired_test(scores(a), scores(b)) == pytest.approx(ranx_fisher, abs=0.015)


def test_pairs_on_common_query_ids_only():
    a = {"q1": 1.0, "q2": 0.5, "extra": 9.0}
    b = {"q2": 0.0, "q1": 0.0, "other": -9.0}
    assert list(differences(a, b)) == [1.0, 0.5]
    with pytest.raises(BenchError, match="share no query id"):
        paired_test({"x": 1.0}, {"y": 1.0})


def test_unknown_method_is_an_error(base):
    with pytest.raises(BenchError, match="fisher, t-test"):
        paired_test(scores(base), scores(base + 1), method="wilcoxon")


def test_holm_against_a_hand_computed_example():
    # sorted: d .005*4=.02, a .01*3=.03, c .03*2=.06, b .04*1=.04 -> running max .06
    adjusted = holm({"a": 0.01, "b": 0.04, "c": 0.03, "d": 0.005})
    assert list(adjusted) == ["a", "b", "c", "d"]
    assert adjusted == pytest.approx({"a": 0.03, "b": 0.06, "c": 0.06, "d": 0.02})
    assert holm({"only": 0.7}) == {"only": 0.7} and holm({"x": 0.6, "y": 0.9}) == {"x": 1.0, "y": 1.0}


def test_bootstrap_ci_covers_the_mean_with_the_normal_width():
    values = np.random.default_rng(5).normal(0.3, 0.2, 2000)
    low, high = bootstrap_ci(values)
    assert low < values.mean() < high
    half_width = 1.96 * values.std(ddof=1) / math.sqrt(len(values))
    assert (high - low) / 2 == pytest.approx(half_width, rel=0.1)
    assert bootstrap_ci(values) == (low, high)  # seeded
    narrow = bootstrap_ci(values, confidence=0.5)
    assert low < narrow[0] < narrow[1] < high


def test_bootstrap_ci_of_constant_values_is_a_point():
    assert bootstrap_ci([0.0] * 30) == (0.0, 0.0)
    with pytest.raises(BenchError):
        bootstrap_ci([])


def test_minimum_detectable_difference_formula_and_shrinks_with_n():
    diffs = np.random.default_rng(6).normal(0, 0.1, 50)
    sd = diffs.std(ddof=1)
    assert minimum_detectable_difference(diffs) == pytest.approx((1.959964 + 0.841621) * sd / math.sqrt(50), rel=1e-5)
    assert minimum_detectable_difference(diffs, 200) == pytest.approx(minimum_detectable_difference(diffs, 50) / 2)
    assert minimum_detectable_difference(diffs, alpha=0.01) > minimum_detectable_difference(diffs)
    assert minimum_detectable_difference([0.1]) == math.inf


def test_compare_records(base):
    worse = base - 0.05
    comparison = compare(scored_record(scores(worse)), scored_record(scores(base), rung="reference"), "ndcg@10")
    assert comparison.n == 60 and comparison.delta == pytest.approx(-0.05)
    assert comparison.ci_low == pytest.approx(-0.05) and comparison.ci_high == pytest.approx(-0.05)
    assert comparison.significant and comparison.p_value < 0.001
    assert comparison.reference == pytest.approx(base.mean()) and comparison.mdd == pytest.approx(0.0, abs=1e-12)
    same = compare(scored_record(scores(base)), scored_record(scores(base)), "ndcg@10")
    assert (same.delta, same.p_value, same.significant) == (0.0, 1.0, False)
    assert same.as_dict()["metric"] == "ndcg@10"


def test_compare_refuses_different_goldsets_and_missing_metrics(base):
    candidate = scored_record(scores(base), split_fingerprint="a" * 64)
    reference = scored_record(scores(base), split_fingerprint="b" * 64, rung="reference")
    with pytest.raises(BenchError, match="fingerprint aaaaaaaaaaaaaaaa .* vs bbbbbbbbbbbbbbbb"):
        compare(candidate, reference, "ndcg@10")
    with pytest.raises(BenchError, match=r"no per-query 'recall@10' \(it has: ndcg@10\)"):
        compare(candidate, candidate, "recall@10")
    skipped = candidate.model_copy(update={"status": "skipped", "reason": "offline"})
    with pytest.raises(BenchError, match="skipped \\(offline\\)"):
        compare(skipped, candidate, "ndcg@10")
