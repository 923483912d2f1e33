"""Paired significance tests, bootstrap intervals, Holm's correction and the minimum detectable difference.

Everything works on per-query scores as records store them (``record.per_query[qid][metric]``),
paired on the query ids both runs scored. Results are deterministic for a given seed, so views built
from them regenerate byte-identically.

Why scipy and not ranx's own tests: ranx's ``fisher_randomization_test`` is a numba ``prange`` loop
whose ``random_seed`` seeds only the calling thread, so the same input gives a different p-value on
every call (0.060 to 0.068 on one 300-query pair, with one thread or two). scipy's
``permutation_test`` runs the same test (Smucker, Allan & Carterette, "A Comparison of Statistical
Significance Tests for Information Retrieval Evaluation", CIKM 2007: randomly swap the two systems'
scores per query) reproducibly, exactly when 2^n is within the permutation budget. ranx's
``paired_student_t_test`` is ``scipy.stats.ttest_rel``, called here directly.
``tests/test_significance.py`` checks both against ranx.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, TypeVar

from harness.choices import PairedTest, values
from harness.errors import BenchError

if TYPE_CHECKING:
    import numpy as np

    from harness.records import RunRecord

K = TypeVar("K")


def paired_arrays(a: Mapping[str, float], b: Mapping[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """The scores of ``a`` and ``b`` on the query ids both have, in sorted id order."""
    import numpy as np

    common = sorted(set(a) & set(b))
    if not common:
        raise BenchError("the two runs share no query id; they cannot be compared query by query")
    return np.array([a[q] for q in common], dtype=float), np.array([b[q] for q in common], dtype=float)


def differences(a: Mapping[str, float], b: Mapping[str, float]) -> np.ndarray:
    """Per-query ``a - b`` on the common query ids."""
    x, y = paired_arrays(a, b)
    return x - y


def paired_test(a: Mapping[str, float], b: Mapping[str, float], *, method: PairedTest = "fisher", n_permutations: int = 10000, seed: int = 42) -> float:
    """Two-sided p-value of "``a`` and ``b`` have the same mean", paired by query.

    ``fisher``: the randomisation test (mean difference, per-query swaps), exact for up to
    log2(``n_permutations``) queries; ``t-test``: the paired Student's t-test. Identical scores give 1.
    """
    import numpy as np
    from scipy import stats

    x, y = paired_arrays(a, b)
    if np.all(x == y):
        return 1.0  # no difference at all (the t statistic would be 0/0)
    if method == "t-test":
        return float(stats.ttest_rel(x, y, alternative="two-sided").pvalue)
    if method != "fisher":
        raise BenchError(f"unknown significance test '{method}' (choose from: {', '.join(values(PairedTest))})")
    result = stats.permutation_test(
        (x, y), _mean_difference, permutation_type="samples", vectorized=True, n_resamples=n_permutations, rng=np.random.default_rng(seed)
    )
    return float(result.pvalue)


def _mean_difference(x, y, axis):
    return (x - y).mean(axis=axis)


def bootstrap_ci(values: Sequence[float] | np.ndarray, *, confidence: float = 0.95, n_resamples: int = 10000, seed: int = 42) -> tuple[float, float]:
    """Bootstrap confidence interval of the mean of ``values`` (pass :func:`differences` for a paired delta).

    scipy's BCa interval (Efron, "Better Bootstrap Confidence Intervals", JASA 1987), which corrects
    the skew of per-query metrics; constant values (BCa's degenerate case) give ``(v, v)``.
    """
    import numpy as np
    from scipy import stats

    data = np.asarray(values, dtype=float)
    if data.size == 0:
        raise BenchError("no per-query values to bootstrap")
    if np.all(data == data[0]):
        return float(data[0]), float(data[0])
    result = stats.bootstrap((data,), np.mean, confidence_level=confidence, n_resamples=n_resamples, batch=1000, rng=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def holm(pvalues: Mapping[K, float]) -> dict[K, float]:
    """Holm-Bonferroni adjusted p-values (Holm, "A Simple Sequentially Rejective Multiple Test
    Procedure", Scand. J. Statistics 1979), in the input's order.

    Written out because scipy only ships Benjamini-Hochberg/Yekutieli (``false_discovery_control``)
    and statsmodels' ``multipletests`` would be a dependency for five lines: the i-th smallest of m
    p-values is multiplied by (m - i + 1), capped at 1, and made monotone with a running maximum.
    """
    ordered = sorted(pvalues, key=lambda k: pvalues[k])
    m = len(ordered)
    adjusted, running = {}, 0.0
    for i, key in enumerate(ordered):
        running = max(running, min(1.0, (m - i) * pvalues[key]))
        adjusted[key] = running
    return {key: adjusted[key] for key in pvalues}


def minimum_detectable_difference(diffs: Sequence[float] | np.ndarray, n_queries: int | None = None, *, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest true mean difference a two-sided paired test at ``alpha`` detects with probability ``power``
    on ``n_queries`` queries (default: as many as ``diffs``), given the standard deviation of the
    observed per-query differences ``diffs``.

    Normal approximation, ``(z[1 - alpha/2] + z[power]) * sd / sqrt(n)`` (Cohen, "Statistical Power
    Analysis for the Behavioral Sciences", 1988; for IR: Webber, Moffat & Zobel, "Statistical Power
    in Retrieval Experimentation", CIKM 2008). ``inf`` when fewer than two differences give no spread.
    """
    import numpy as np
    from scipy import stats

    data = np.asarray(diffs, dtype=float)
    n = len(data) if n_queries is None else n_queries
    if len(data) < 2 or n < 1:
        return math.inf
    z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)
    return float(z * data.std(ddof=1) / math.sqrt(n))


@dataclass(frozen=True)
class Comparison:
    """A candidate against a reference on one metric, paired by query. ``delta`` is candidate - reference."""

    metric: str
    n: int
    reference: float
    candidate: float
    delta: float
    ci_low: float
    ci_high: float
    p_value: float
    method: str
    alpha: float
    significant: bool
    mdd: float

    def as_dict(self) -> dict:
        """Plain JSON-safe data (an infinite MDD becomes None)."""
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}


def compare(
    candidate: RunRecord, reference: RunRecord, metric: str, *, method: PairedTest = "fisher", alpha: float = 0.05, n_permutations: int = 10000, seed: int = 42,
    queries: Collection[str] | None = None,
) -> Comparison:
    """Compare two records of the same goldset split on ``metric``: delta, its bootstrap 95% CI,
    the paired test's p-value, and the minimum detectable difference at ``alpha`` with 80% power.
    With ``queries`` (a subset, such as a fine-tuned model's unseen-document queries), on those only."""
    check_same_split(candidate, reference)
    a, b = _metric_scores(candidate, metric), _metric_scores(reference, metric)
    if queries is not None:
        keep = set(queries)
        a, b = {q: v for q, v in a.items() if q in keep}, {q: v for q, v in b.items() if q in keep}
    x, y = paired_arrays(a, b)
    diffs = x - y
    low, high = bootstrap_ci(diffs, seed=seed)
    p = paired_test(a, b, method=method, n_permutations=n_permutations, seed=seed)
    return Comparison(
        metric=metric, n=len(diffs), reference=float(y.mean()), candidate=float(x.mean()), delta=float(diffs.mean()),
        ci_low=low, ci_high=high, p_value=p, method=method, alpha=alpha, significant=p < alpha,
        mdd=minimum_detectable_difference(diffs, alpha=alpha),
    )


def check_same_split(candidate: RunRecord, reference: RunRecord, role: str = "reference") -> None:
    """Records scored on different goldset contents cannot be compared: an error naming both fingerprints
    (``role`` names the reference in the message, e.g. "baseline")."""
    c, r = candidate.goldset, reference.goldset
    if c.split_fingerprint != r.split_fingerprint:
        raise BenchError(
            f"goldset '{c.name}' split '{c.split}' is not the one the {role} was scored on ('{r.name}' split '{r.split}'): "
            f"fingerprint {c.split_fingerprint[:16]} (rung '{candidate.rung.name}') vs {r.split_fingerprint[:16]} ({role} rung '{reference.rung.name}'); "
            f"re-run the {role} on this goldset before comparing"
        )


def _metric_scores(record: RunRecord, metric: str) -> dict[str, float]:
    if record.status != "ok":
        raise BenchError(f"rung '{record.rung.name}' on '{record.goldset.name}' was skipped ({record.reason}); it has no scores to compare")
    try:
        return {qid: scores[metric] for qid, scores in record.per_query.items()}
    except KeyError:
        raise BenchError(f"rung '{record.rung.name}' has no per-query '{metric}' (it has: {', '.join(record.metrics)})") from None
