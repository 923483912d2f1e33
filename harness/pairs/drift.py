"""How far apart two sets of queries are: synthetic against real, last month against this month.

A fine-tuned model that improves on synthetic queries helps only if real users ask the same kind of
questions. :func:`compare_queries` puts numbers on the difference: word-length distributions (with
the two-sample Kolmogorov-Smirnov statistic), vocabulary overlap, the mix of question words, and how
well a logistic regression on the queries' embeddings tells the two sets apart (cross-validated ROC
AUC: 0.5 means indistinguishable, 1.0 means every query gives its set away). The classifier test is
the "adversarial validation" check common in applied ML for train/production shift.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from harness.errors import ConfigError
from harness.training.leakage import normalise

WARN_AUC = 0.8
WARN_KS = 0.3  # with p < WARN_P: SciFact claims against SmolLM2's paraphrases (median 12 vs 17 words) give 0.38
WARN_P = 0.01
WARN_MIX = 0.5  # total variation distance between question-word mixes: half the queries open differently
WH_WORDS = ("what", "how", "why", "which", "who", "when", "where")
YES_NO = ("is", "are", "does", "do", "can", "could", "should", "will", "would", "was", "were", "did", "has", "have")


def read_queries(source: str) -> list[str]:
    """Queries from a ``queries.jsonl`` (``{"_id", "text"}``), a pair file (its distinct queries), a
    text file (one per line), or a goldset (``GOLDSET:SPLIT`` for one split's scored queries)."""
    from harness.data.resolve import resolve_with_split

    path = Path(source)
    if path.is_file():
        return _file_queries(path)
    goldset, split = resolve_with_split(source)
    return list((goldset.split_queries(split) if split else goldset.queries).values())


def _file_queries(path: Path) -> list[str]:
    from harness.data.pair_files import read_pair_file

    suffix = path.suffix.lower()
    if suffix == ".csv":
        return list(dict.fromkeys(p.query for p in read_pair_file(path)))
    if suffix not in (".jsonl", ".json"):
        return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    try:
        first = json.loads(lines[0]) if lines else {}
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}:1: not JSON ({exc.msg}); give a queries.jsonl, a pair file or a .txt file with one query per line") from exc
    if isinstance(first, dict) and "_id" in first and "text" in first:  # a BEIR queries.jsonl
        from harness.data.beir import Diagnostics, read_jsonl_records

        diag = Diagnostics()
        records = read_jsonl_records(path, ("text",), diag, "query")
        if diag.errors:
            raise ConfigError(str(diag.errors[0]))
        return [r["text"] for r in records.values()]
    return list(dict.fromkeys(p.query for p in read_pair_file(path)))


def length_stats(queries: list[str]) -> dict[str, float]:
    words = np.array([len(q.split()) for q in queries])
    return {"mean": round(float(words.mean()), 2), "median": float(np.median(words)), "p90": float(np.percentile(words, 90))}


def vocabulary(a: list[str], b: list[str]) -> dict[str, float]:
    """Jaccard of the two vocabularies, and the share of B's word occurrences whose word A uses."""
    tokens_a = {t for q in a for t in normalise(q).split()}
    tokens_b = [t for q in b for t in normalise(q).split()]
    union = tokens_a | set(tokens_b)
    return {
        "jaccard": round(len(tokens_a & set(tokens_b)) / len(union), 4) if union else 0.0,
        "b_tokens_seen_in_a": round(sum(t in tokens_a for t in tokens_b) / len(tokens_b), 4) if tokens_b else 0.0,
    }


def question_mix(queries: list[str]) -> dict[str, float]:
    """Share of queries opening with each wh-word, with a yes/no verb, or neither; and ending in "?"."""
    first = [(normalise(q).split() or [""])[0] for q in queries]
    kinds = [w if w in WH_WORDS else "yes/no" if w in YES_NO else "other" for w in first]
    mix = {k: round(kinds.count(k) / len(kinds), 4) for k in (*WH_WORDS, "yes/no", "other")}
    return mix | {"ends_with_?": round(sum(q.rstrip().endswith("?") for q in queries) / len(queries), 4)}


def separability(a_vectors: np.ndarray, b_vectors: np.ndarray, *, folds: int = 5, seed: int = 0) -> float:
    """Cross-validated ROC AUC of a logistic regression telling A's embeddings from B's."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    folds = min(folds, len(a_vectors), len(b_vectors))
    if folds < 2:
        raise ConfigError("each query set needs at least 2 queries to train and test a classifier")
    x = np.vstack([a_vectors, b_vectors])
    y = np.r_[np.zeros(len(a_vectors)), np.ones(len(b_vectors))]
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return float(cross_val_score(LogisticRegression(max_iter=1000), x, y, cv=splitter, scoring="roc_auc").mean())


def compare_queries(a: list[str], b: list[str], encoder, *, max_queries: int = 2000, seed: int = 0, warn_auc: float = WARN_AUC) -> dict:
    """Every measure of how B's queries differ from A's, with plain-language warnings.

    ``encoder`` is any :class:`~harness.protocols.Encoder`; each set is sampled down to
    ``max_queries`` (with ``seed``) before it is embedded."""
    from scipy.stats import ks_2samp

    if not a or not b:
        raise ConfigError(f"both query sets need queries (A has {len(a)}, B has {len(b)})")
    rng = np.random.default_rng(seed)
    sample_a, sample_b = (_sample(qs, max_queries, rng) for qs in (a, b))
    auc = separability(encoder.encode(sample_a, input_type="query"), encoder.encode(sample_b, input_type="query"), seed=seed)
    ks = ks_2samp([len(q.split()) for q in a], [len(q.split()) for q in b])
    report = {
        "sizes": {"a": len(a), "b": len(b)},
        "length_words": {"a": length_stats(a), "b": length_stats(b), "ks_statistic": round(float(ks.statistic), 4), "ks_pvalue": float(ks.pvalue)},
        "vocabulary": vocabulary(a, b),
        "question_words": {"a": question_mix(a), "b": question_mix(b)},
        "classifier_auc": round(auc, 4),
        "classifier_queries": {"a": len(sample_a), "b": len(sample_b)},
    }
    return report | {"warnings": drift_warnings(report, warn_auc)}


def _sample(queries: list[str], limit: int, rng: np.random.Generator) -> list[str]:
    if len(queries) <= limit:
        return list(queries)
    return [queries[i] for i in sorted(rng.choice(len(queries), limit, replace=False))]


def drift_warnings(report: dict, warn_auc: float = WARN_AUC) -> list[str]:
    """Plain-language warnings for a report from :func:`compare_queries`."""
    out = []
    if report["classifier_auc"] > warn_auc:
        out.append(
            f"the two query sets are easy to tell apart (classifier AUC {report['classifier_auc']:.2f} > {warn_auc:.2f}): if B is synthetic "
            "and A is real, a model that improves on a synthetic eval may fail in production; evaluate on real queries before deciding"
        )
    lengths = report["length_words"]
    if lengths["ks_statistic"] > WARN_KS and lengths["ks_pvalue"] < WARN_P:
        a, b = lengths["a"], lengths["b"]
        out.append(
            f"query lengths differ (median {a['median']:g} words in A, {b['median']:g} in B; p90 {a['p90']:g} and {b['p90']:g}; "
            f"KS {lengths['ks_statistic']:.2f}, p = {lengths['ks_pvalue']:.2g}): a model tuned on one length may not serve the other"
        )
    mix_a, mix_b = (report["question_words"][side] for side in ("a", "b"))
    kinds = [k for k in mix_a if k != "ends_with_?"]
    distance = sum(abs(mix_a[k] - mix_b[k]) for k in kinds) / 2
    if distance > WARN_MIX:
        top = {side: max(kinds, key=mix.get) for side, mix in (("a", mix_a), ("b", mix_b))}
        out.append(
            f"the queries open differently: {mix_a[top['a']]:.0%} of A's start '{top['a']}', {mix_b[top['b']]:.0%} of B's start '{top['b']}' "
            f"('other' is neither a question word nor a yes/no verb: a keyword query or a statement); {distance:.0%} of B would have to change to match A"
        )
    return out
