"""Records with chosen per-query scores, built from the golden v3 record (for statistics and gate tests)."""

from __future__ import annotations

from pathlib import Path

from harness.records import RunRecord, read_record

GOLDEN = Path(__file__).resolve().parent / "data" / "record_v3.json"


def scored_record(scores: dict[str, float], *, metric: str = "ndcg@10", rung: str = "candidate", split_fingerprint: str | None = None) -> RunRecord:
    """A record whose only metric is ``metric``, scored ``scores[qid]`` per query (no query subsets)."""
    golden = read_record(GOLDEN)
    goldset = golden.goldset.model_copy(update={"n_queries": len(scores), "split_fingerprint": split_fingerprint or golden.goldset.split_fingerprint})
    return golden.model_copy(
        update={
            "goldset": goldset,
            "rung": golden.rung.model_copy(update={"name": rung}),
            "metrics": {metric: sum(scores.values()) / len(scores)},
            "per_query": {q: {metric: s} for q, s in scores.items()},
            "subsets": {},
        }
    )
