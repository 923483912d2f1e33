"""Running rungs over goldsets and splits, and keeping each result as a :class:`RunRecord`.

``run_rungs`` is what ``bench run`` calls. Work per goldset is: for each rung, check which splits
already have a record with the same key (skipped unless ``overwrite``), index the corpus once, then
search, score and record each remaining split. A record is written as soon as its split is done, so
an interrupted run keeps everything it finished.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Literal

from harness.cache import Cache
from harness.environment import environment
from harness.goldset import Goldset
from harness.metrics import DEFAULT_METRICS, evaluate
from harness.protocols import Run
from harness.records import Counts, GoldsetRef, Leaderboard, RungRef, RunRecord, Timings, now_iso, record_key
from harness.retrieval import DenseRetriever, build_retriever
from harness.rungs import BM25Rung, DenseRung

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Target:
    """One goldset and the splits to evaluate on it; ``ood_of`` names the goldset it is out-of-domain for."""

    goldset: Goldset
    splits: tuple[str, ...]
    ood_of: str | None = None


@dataclass(frozen=True)
class Outcome:
    record: RunRecord
    action: Literal["ran", "unchanged"]


def drop_identical_ids(run: Run, top_k: int) -> Run:
    """Remove a document whose id equals its query's id (BEIR's ``ignore_identical_ids``)."""
    return {q: dict([(d, s) for d, s in hits.items() if d != q][:top_k]) for q, hits in run.items()}


def run_rungs(
    targets: list[Target],
    rungs: list[DenseRung | BM25Rung],
    *,
    leaderboard: Leaderboard,
    cache: Cache,
    overwrite: bool = False,
    metrics: tuple[str, ...] = DEFAULT_METRICS,
) -> list[Outcome]:
    """Evaluate every rung on every target split; return one outcome per (target, split, rung),
    grouped by target. A rung's retriever (and model) is built once and indexes each goldset in turn."""
    for target in targets:  # fail on a missing split before any work is done
        for split in target.splits:
            target.goldset.split_qrels(split)
    by_target: list[list[Outcome]] = [[] for _ in targets]
    for rung in rungs:
        retriever, encoder_fp = build_retriever(rung, cache)  # one model load per rung, not per goldset
        for i, target in enumerate(targets):
            by_target[i] += _run_one(target, rung, retriever, encoder_fp, leaderboard, overwrite, metrics)
    return [o for outcomes in by_target for o in outcomes]  # goldset by goldset, rungs in ladder order


def _run_one(target, rung, retriever, encoder_fp, leaderboard, overwrite, metrics) -> list[Outcome]:
    goldset = target.goldset
    config = rung.model_dump(mode="json")
    keys = {s: record_key(goldset.split_fingerprint(s), config, encoder_fp) for s in target.splits}
    outcomes, todo = [], []
    for split, key in keys.items():
        existing = None if overwrite else leaderboard.find(goldset.name, split, rung.name, key)
        if existing:
            log.info("%s / %s / %s unchanged, skipped (use --overwrite to re-run)", goldset.name, split, rung.name)
            outcomes.append(Outcome(existing, "unchanged"))
        else:
            todo.append(split)
    if not todo:
        return outcomes
    start = time.perf_counter()
    retriever.index({doc_id: goldset.document_text(doc) for doc_id, doc in goldset.corpus.items()})
    index_s = time.perf_counter() - start
    docs_encoded, docs_cached = _cache_counts(retriever)
    for split in todo:
        record, run = _evaluate_split(target, split, rung, retriever, (index_s, docs_encoded, docs_cached), keys[split], encoder_fp, metrics)
        outcomes.append(Outcome(leaderboard.write(record, run), "ran"))
    return outcomes


def _cache_counts(retriever) -> tuple[int, int]:
    if isinstance(retriever, DenseRetriever):
        stats = retriever.encoder.stats
        counts = stats.computed, stats.hits
        stats.computed = stats.hits = 0
        return counts
    return 0, 0


def _evaluate_split(target, split, rung, retriever, indexing, key, encoder_fp, metrics) -> tuple[RunRecord, Run]:
    goldset = target.goldset
    index_s, docs_encoded, docs_cached = indexing
    queries = goldset.split_queries(split)
    ignore_ids = goldset.manifest.ignore_identical_ids
    before_q = getattr(retriever, "encode_queries_s", 0.0)
    start = time.perf_counter()
    run = retriever.search(queries, rung.top_k + 1 if ignore_ids else rung.top_k)
    search_s = time.perf_counter() - start
    if ignore_ids:
        run = drop_identical_ids(run, rung.top_k)
    encode_q_s = getattr(retriever, "encode_queries_s", 0.0) - before_q
    queries_encoded, queries_cached = _cache_counts(retriever)
    start = time.perf_counter()
    scores = evaluate({q: goldset.qrels[split][q] for q in queries}, run, metrics)
    evaluate_s = time.perf_counter() - start
    record = RunRecord(
        schema_version=1,
        key=key,
        created_at=now_iso(),
        status="ok",
        reason=None,
        goldset=GoldsetRef(
            name=goldset.name,
            source=goldset.source,
            split=split,
            fingerprint=goldset.fingerprint,
            split_fingerprint=goldset.split_fingerprint(split),
            n_queries=len(queries),
            n_documents=len(goldset.corpus),
            ood_of=target.ood_of,
            ignore_identical_ids=ignore_ids,
        ),
        rung=RungRef(name=rung.name, kind=rung.kind, config=rung.model_dump(mode="json"), encoder_fingerprint=encoder_fp),
        primary_metric=metrics[0],
        metrics=scores.mean,
        per_query=scores.per_query,
        run_file=None,
        timings=Timings(
            index_s=round(index_s, 4),
            encode_queries_s=round(encode_q_s, 4),
            search_s=round(search_s - encode_q_s, 4),
            evaluate_s=round(evaluate_s, 4),
            total_s=round(index_s + search_s + evaluate_s, 4),
        ),
        counts=Counts(documents_encoded=docs_encoded, documents_cached=docs_cached, queries_encoded=queries_encoded, queries_cached=queries_cached),
        environment=environment(),
    )
    return record, run
