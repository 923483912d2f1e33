"""Sizing training before it starts: the memory estimate, GradCache when a step would not fit, a
refusal naming what to lower, and the recipe's data-sized defaults."""

from __future__ import annotations

from collections import namedtuple

import pytest

from harness.errors import ConfigError
from harness.protocols import ModelShape
from harness.training import budget
from harness.training.budget import GB, MB, length_percentile, plan_memory, step_bytes
from harness.training.recipe import negatives_for

MINILM = ModelShape(params=22_713_216, hidden=384, layers=6, heads=12, max_length=256)
# Peaks measured on this machine (all-MiniLM-L6-v2, fp32, CPU, AdamW): 32 pairs at 256 document tokens
# peaked at 2,764 MB, 16 pairs at 1,778 MB, 32 pairs at 128 tokens at 1,647 MB (benchmarks/RESULTS.md).
MEASURED = [(32, 256, 2764), (16, 256, 1778), (32, 128, 1647)]


@pytest.mark.parametrize(("pairs", "tokens", "peak_mb"), MEASURED)
def test_the_estimate_covers_the_measured_peak_without_doubling_it(pairs, tokens, peak_mb):
    estimate = step_bytes(MINILM, queries=pairs, documents=pairs, query_tokens=24, document_tokens=tokens) / MB
    assert peak_mb <= estimate <= 1.5 * peak_mb


def plan(**kw):
    args = dict(loss="infonce", batch_size=32, negatives=0, query_tokens=24, document_tokens=256, budget_gb=4.0, mini_batch_size=32) | kw
    return plan_memory(MINILM, **args)


def test_round_zero_fits_the_default_budget_as_configured():
    p = plan()
    assert (p.loss, p.switched, p.mini_batch_size) == ("infonce", False, None) and p.planned_mb <= 4 * 1024


def test_mined_negatives_switch_to_gradcache_with_the_largest_mini_batch_that_fits():
    p = plan(negatives=3)
    assert p.estimate_mb > 4 * 1024  # 32 queries and 128 documents of 256 tokens at once
    assert (p.loss, p.switched) == ("cached-infonce", True) and p.planned_mb <= 4 * 1024
    assert p.mini_batch_size == 32 and "GradCache" in p.describe()
    tighter = plan(negatives=3, budget_gb=2.0)
    assert tighter.loss == "cached-infonce" and tighter.mini_batch_size < 32 and tighter.planned_mb <= 2 * 1024


def test_a_step_that_cannot_fit_is_refused_naming_what_to_lower():
    with pytest.raises(ConfigError, match=r"over the 0\.5 GB memory budget; lower max_length \(now 256\) or batch_size \(now 32\), or raise max_memory"):
        plan(negatives=3, budget_gb=0.5)
    with pytest.raises(ConfigError, match="GradCache applies to infonce only"):
        plan(loss="triplet", negatives=3)


def test_the_default_budget_is_the_smaller_of_4_gb_and_half_of_what_is_available(monkeypatch):
    import psutil

    memory = namedtuple("memory", "available")
    monkeypatch.setattr(psutil, "virtual_memory", lambda: memory(20 * GB))
    assert budget.default_budget_gb() == 4.0
    monkeypatch.setattr(psutil, "virtual_memory", lambda: memory(6 * GB))
    assert budget.default_budget_gb() == 3.0


def test_length_percentile_and_auto_negatives():
    assert length_percentile(list(range(1, 101))) == 95 and length_percentile([]) == 8 and length_percentile([3]) == 8
    assert negatives_for([5] * 95 + [0] * 5, None) == 1  # the default
    assert negatives_for([0] * 10, 4) == 4  # configured counts are kept
