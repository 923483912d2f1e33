"""The table of benchmarks/RESULTS.md's synthetic-against-real comparison, from the records run.sh wrote.

    python benchmarks/synthetic/compare.py benchmarks/_work/synthetic/leaderboard

Every fine-tuned round (a ``*-r0`` rung) on SciFact test against the base model, and the pairs named
below against each other: nDCG@10 and recall@10, the paired difference in nDCG@10 with its 95%
bootstrap interval and Fisher randomisation p-value (harness.decide.significance, as ``bench report`` uses it).
"""

from __future__ import annotations

import sys

from harness.decide.report import model_card
from harness.decide.significance import compare
from harness.records import Leaderboard

METRIC = "ndcg@10"
HEAD_TO_HEAD = [("syn-roundtrip-r0", "syn-no-roundtrip-r0"), ("syn-roundtrip-r0", "real-same-size-r0"), ("real-all-r0", "syn-roundtrip-r0"), ("real-leaky-same-size-r0", "real-all-r0")]


def _row(name: str, candidate, reference) -> str:
    c = compare(candidate, reference, METRIC)
    return f"| {name} | {c.delta:+.3f} | {c.ci_low:+.3f} to {c.ci_high:+.3f} | {c.p_value:.3g} |"


def _overlaps(counts) -> str:
    """Repeated queries plus test-judged documents in training (cards before the two were counted apart held their sum)."""
    return "?" if counts is None else str(counts["query_leaks"] + counts["overlap"]) if isinstance(counts, dict) else str(counts)


def main(folder: str) -> None:
    records = {r.rung.name: r for r in Leaderboard(folder).latest() if r.goldset.name == "scifact" and r.goldset.split == "test" and r.status == "ok"}
    base = records["baseline"]
    print(f"| training data | pairs | leaks | {METRIC} | recall@10 |\n|---|---:|---:|---:|---:|")
    print(f"| none (all-MiniLM-L6-v2) | 0 | | {base.metrics[METRIC]:.3f} | {base.metrics['recall@10']:.3f} |")
    rounds = sorted((name for name in records if name.endswith("-r0")), key=lambda n: -records[n].metrics[METRIC])
    for name in rounds:
        card = model_card(records[name])
        print(f"| {name} | {card.get('pairs', '?')} | {_overlaps(card.get('leakage'))} | {records[name].metrics[METRIC]:.3f} | {records[name].metrics['recall@10']:.3f} |")
    print(f"\n| comparison | delta {METRIC} | 95% CI | p (Fisher) |\n|---|---:|---|---:|")
    for name in rounds:
        print(_row(f"{name} - baseline", records[name], base))
    for a, b in HEAD_TO_HEAD:
        if a in records and b in records:
            print(_row(f"{a} - {b}", records[a], records[b]))


if __name__ == "__main__":
    main(sys.argv[1])
