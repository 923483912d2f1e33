"""What each kind of rung does on one goldset: a :class:`Stage` turns each split into a :class:`SplitResult`.

:class:`RetrieverStage` (dense, bm25, chunked) indexes the corpus once and searches each split;
:class:`HybridStage` fuses earlier rungs' runs; :class:`RerankStage` re-scores an earlier rung's
candidates; the stages that train a model first are in :mod:`harness.ladder.tuned`.
Composite stages read their inputs through the :class:`Context` (the runner), so an input that was
already recorded is reused, not recomputed. Per-query latency is measured here; see
:class:`harness.records.Latency` for what it covers.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from harness import progress, registry
from harness.cache import Cache, CachedReranker, CacheStats, Offload, timed
from harness.data.goldset import Goldset
from harness.ladder.rungs import AnyRung, BM25Rung, ChunkedRung, DenseRung, HybridRung, RerankRung
from harness.protocols import EncodeEngine, Run, ServesOnRuntimes
from harness.records import Counts, RunRecord
from harness.registry import EncoderConfig, build_encoder, build_reranker
from harness.retrieval import fusion
from harness.retrieval.chunking import Chunking
from harness.retrieval.compression import CompressedRetriever, Form
from harness.retrieval.retrievers import ChunkedRetriever, DenseRetriever, IndexedRetriever
from harness.retrieval.topk import break_ties
from harness.training.schema import MODEL_CARD


@dataclass
class SplitResult:
    run: Run
    latency: dict[str, float]  # seconds per sampled query, whole query path
    index_s: float = 0.0
    encode_queries_s: float = 0.0
    search_s: float = 0.0
    counts: Counts = field(default_factory=lambda: Counts(documents_encoded=0, documents_cached=0, queries_encoded=0, queries_cached=0))
    api_calls: int = 0
    usage: dict[str, float] = field(default_factory=dict)  # price_key -> billed units
    inherited: list[RunRecord] = field(default_factory=list)  # input records whose cost this result includes
    details: dict = field(default_factory=dict)
    subsets: dict[str, list[str]] = field(default_factory=dict)  # a trained model's "seen" and "unseen" query ids


class Context(Protocol):
    """What a stage may ask of the runner."""

    latency_queries: int
    models_root: Path
    files_base: Path | None  # where paths inside rungs resolve from: the ladder file's folder
    ood_tolerance: float  # the ladder's [decision] ood_tolerance
    engine: EncodeEngine | None  # the ladder's [execution] engine (None: documents are encoded in this process)
    runtime: str  # the ladder's [execution] runtime for local models (torch, onnx, openvino)

    def input_record(self, target: int, split: str, rung: str) -> RunRecord: ...
    def input_run(self, target: int, split: str, rung: str) -> Run: ...
    def goldset(self, target: int) -> Goldset: ...
    def tuning_target(self, target: int) -> int: ...
    def metric(self, name: str | None) -> str: ...
    def companions(self, target: int) -> list[tuple[int, tuple[str, ...]]]: ...


class Stage(Protocol):
    """What the runner asks of a rung's stage (one per rung and run, across goldsets)."""

    fingerprint: str | None  # the encoder's, for the record key (None: the stage has no encoder of its own)

    def dependency(self, ctx: Context, target: int, split: str) -> str | None:
        """What the stage's result depends on besides its configuration (input records, the trained model), for the record key."""
        ...

    def run(self, ctx: Context, target: int, splits: list[str]) -> Iterator[tuple[str, SplitResult | SkipSplit]]:
        """Each split's result, or why it is skipped."""
        ...


@contextmanager
def one_blas_thread():
    """Time single queries with numpy's BLAS on one thread.

    A one-query product gains nothing from BLAS threads, and OpenBLAS's idle threads spin after each
    call, fighting torch's threads for the cores: on this 2-core machine that doubled MiniLM's median
    query time and made its p95 ten times its median. A query service would not run both pools.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, user_api="blas"):
        yield


def latency_sample(query_ids, n: int) -> list[str]:
    """The same ``n`` queries for every rung of a split (ordered by a hash of their id, not by file order)."""
    return sorted(query_ids, key=lambda q: hashlib.sha256(q.encode()).digest())[:n]


def stage_key(parts) -> str:
    """A short stable hash of JSON-able ``parts``: the key of a stage's inputs and settings."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]


def build_retriever(rung: AnyRung, cache: Cache, form: Form | None = None):
    """A ready-to-index retriever for a dense, chunked or BM25 rung (a dense rung's vectors searched in
    ``form`` when given, else through its ``ann`` index when it has one), and its encoder fingerprint (None for BM25)."""
    if isinstance(rung, BM25Rung):
        options = rung.model_dump(exclude={"kind", "name", "top_k"})
        return registry.load("retriever", "bm25s")(**options), None
    encoder = build_encoder(rung.encoder, cache)
    if isinstance(rung, ChunkedRung):
        return ChunkedRetriever(encoder, cache, _chunking(rung)), encoder.fingerprint
    if form:
        return CompressedRetriever(encoder, cache, form), encoder.fingerprint
    return (IndexedRetriever(encoder, cache, rung.ann) if rung.ann else DenseRetriever(encoder, cache)), encoder.fingerprint


def offload(engine: EncodeEngine | None, encoder: EncoderConfig, runtime: str | None = None) -> Offload | None:
    """``engine`` bound to the encoder it is to rebuild on its workers, on the ``runtime`` it serves on here
    (the ladder's, which its table does not name); None for a backend that takes the run's cache (an
    adapter, whose documents are its base's vectors, cached by the base's own rung)."""
    if engine is None or "cache" in inspect.signature(registry.load("encoder", encoder.backend)).parameters:
        return None
    return Offload(engine, encoder.model_dump() | ({"runtime": runtime} if runtime else {}))


def _chunking(rung: ChunkedRung) -> Chunking:
    return Chunking(rung.chunk_size, rung.overlap, rung.prefix_title, tuple(rung.prefix_metadata), rung.aggregate)


class RetrieverStage:
    """Dense, BM25 and chunked rungs: one index per goldset, one search per split."""

    def __init__(self, rung: AnyRung, cache: Cache, form: Form | None = None):
        self.rung = rung
        self.cache = cache
        self.retriever, self.fingerprint = build_retriever(rung, cache, form)
        self.index_details: dict = {}

    def dependency(self, ctx: Context, target: int, split: str) -> str | None:
        return self.fingerprint

    def run(self, ctx: Context, target: int, splits: list[str]) -> Iterator[tuple[str, SplitResult | SkipSplit]]:
        goldset = ctx.goldset(target)
        backend = self._backend()
        runtime = isinstance(backend, ServesOnRuntimes)
        if runtime and ctx.runtime != "torch":
            backend.use_runtime(ctx.runtime)
        if isinstance(self.retriever, DenseRetriever):
            self.retriever.encoder.offload = offload(ctx.engine, self.rung.encoder, backend.runtime_details().get("runtime") if runtime else None)
        setup_before = backend.setup_s if runtime else 0.0
        start = time.perf_counter()
        if isinstance(self.retriever, ChunkedRetriever):
            self.retriever.index_goldset(goldset)
        else:
            self.retriever.index({doc_id: goldset.document_text(doc) for doc_id, doc in goldset.corpus.items()})
        index_s = time.perf_counter() - start - ((backend.setup_s - setup_before) if runtime else 0.0)  # a one-off export is not encoding
        docs = self._take_counts()
        if isinstance(self.retriever, DenseRetriever):
            self.index_details = self._index_details(goldset, index_s, docs["computed"], docs["engine"])
        for n, split in enumerate(splits):
            yield split, self._search(ctx, goldset, split, index_s if n == 0 else 0.0, docs, first=n == 0)

    def _search(self, ctx, goldset, split, index_s, docs, first) -> SplitResult:
        queries = goldset.split_queries(split)
        top_k = self.rung.top_k + 1 if goldset.manifest.ignore_identical_ids else self.rung.top_k
        sample = latency_sample(queries, ctx.latency_queries)
        with one_blas_thread():  # before the batch: a paid probe's vector is reused
            latency = self._latency({q: queries[q] for q in sample}, top_k)
        dense = isinstance(self.retriever, DenseRetriever)
        before_q = self.retriever.encode_queries_s if dense else 0.0
        start = time.perf_counter()
        run = self.retriever.search(queries, top_k)
        search_s = time.perf_counter() - start
        encode_q_s = self.retriever.encode_queries_s - before_q if dense else 0.0
        q = self._take_counts()
        result = SplitResult(run, latency, index_s=index_s, encode_queries_s=encode_q_s, search_s=search_s - encode_q_s)
        result.counts = Counts(documents_encoded=docs["computed"], documents_cached=docs["hits"], queries_encoded=q["computed"], queries_cached=q["hits"])
        result.api_calls = q["api_calls"] + (docs["api_calls"] if first else 0)
        price_key = self.retriever.encoder.price_key if isinstance(self.retriever, DenseRetriever) else None
        if price_key:
            result.usage = {price_key: docs["units"] + q["units"]}
        if isinstance(self.retriever, ChunkedRetriever):
            result.details = self.retriever.chunk_details()
        elif isinstance(self.rung, DenseRung) and (Path(self.rung.encoder.model) / MODEL_CARD).is_file():
            from harness.training.job import training_resources  # a fine-tuned folder (bench train): how it was trained

            result.details = training_resources(Path(self.rung.encoder.model))
        if isinstance(self.retriever, DenseRetriever | ChunkedRetriever):  # a model trained on this corpus: seen and unseen queries
            from harness.training.seen import seen_subsets

            result.subsets = seen_subsets(goldset, split, self.rung.encoder.model)
        result.details = {**result.details, **self.index_details, **self._runtime()}  # after the queries: an export they made is described too
        if isinstance(self.retriever, IndexedRetriever):  # after the timed search: the exact reference is not part of it
            result.details["ann"] = self.retriever.ann_details()
        return result

    def _backend(self):
        """The encoder backend behind the cache (None for BM25)."""
        encoder = getattr(self.retriever, "encoder", None)
        return getattr(encoder, "encoder", encoder)

    def _runtime(self) -> dict:
        backend = self._backend()
        return backend.runtime_details() if isinstance(backend, ServesOnRuntimes) else {}

    def _index_details(self, goldset: Goldset, index_s: float, encoded: int, engine: str | None) -> dict:
        """The index's size per document and the encoder's documents per second: this run's when it
        encoded documents, else that of the run that encoded them (kept in the cache); None when unknown.
        A run that found some vectors cached and encoded the rest counts the whole indexing time. Documents
        encoded on an ``engine`` are said to be (``encoded_on``), and that rate (its workers, their start-up)
        is this run's alone: it is not kept as the encoder's, which later runs with the vectors cached report."""
        runtime = self._runtime()
        rate_key = f"{self.fingerprint}@{runtime['runtime']}" if runtime else self.fingerprint  # a runtime's rate is its own, its vectors the model's
        if encoded and not engine:
            self.cache.put_encode_rate(rate_key, goldset.fingerprint, index_s, encoded)
        rate = (index_s, encoded) if encoded and engine else self.cache.encode_rate(rate_key, goldset.fingerprint)
        n_docs = max(len(goldset.corpus), 1)
        size = self.retriever.index_bytes()
        out = {"index_bytes_per_doc": size // n_docs if size % n_docs == 0 else round(size / n_docs, 1), "index_mb": round(size / 1e6, 3)}
        if isinstance(self.retriever, CompressedRetriever):
            out |= self.retriever.form.details(len(goldset.corpus))
        elif not isinstance(self.retriever, ChunkedRetriever):
            out["dim"] = self.retriever.dim
        return out | {"encode_docs_per_s": round(rate[1] / rate[0], 2) if rate and rate[0] > 0 else None,
                      "encode_measured": "this run" if encoded else "an earlier run (vectors cached)" if rate else None} | ({"encoded_on": engine} if engine else {})

    def _latency(self, queries: dict[str, str], top_k: int) -> dict[str, float]:
        if isinstance(self.retriever, DenseRetriever):
            return self.retriever.latency(queries, top_k)
        items = list(queries.items())  # any retriever: a one-query search, after an untimed warm-up
        return dict(zip(queries, timed(lambda item: self.retriever.search(dict([item]), top_k), items)))

    def _take_counts(self) -> dict:
        stats = self.retriever.encoder.take_stats() if isinstance(self.retriever, DenseRetriever) else CacheStats()
        return vars(stats)


_NOTHING = "\x00nothing"  # a document id no corpus has (JSONL ids are text; NUL is not in any we read)


class HybridStage:
    """Fusion of earlier rungs' runs; parameters fixed, or tuned on the in-domain goldset's ``tune_on`` split."""

    fingerprint = None

    def __init__(self, rung: HybridRung):
        self.rung = rung
        self._tuned: dict[int, tuple[dict, float]] = {}

    def dependency(self, ctx: Context, target: int, split: str) -> str:
        keys = [ctx.input_record(target, split, name).key for name in self.rung.inputs]
        if self.rung.tune_on:
            tuner = ctx.tuning_target(target)
            splits = ctx.goldset(tuner).qrels
            if self.rung.tune_on not in splits:
                raise SkipSplit(f"tune_on = '{self.rung.tune_on}', but goldset '{ctx.goldset(tuner).name}' has no such split (it has: {', '.join(splits)})")
            keys += [ctx.input_record(tuner, self.rung.tune_on, name).key for name in self.rung.inputs]
        return "hybrid-" + stage_key(keys)

    def _params(self, ctx: Context, target: int) -> tuple[dict, dict]:
        rung = self.rung
        if not rung.tune_on:
            return fusion.params_for(rung.method, rung.weights, rung.rrf_k, len(rung.inputs)), {}
        tuner = ctx.tuning_target(target)
        if tuner not in self._tuned:
            goldset = ctx.goldset(tuner)
            runs = [ctx.input_run(tuner, rung.tune_on, name) for name in rung.inputs]
            qrels = goldset.scored_qrels(rung.tune_on)
            self._tuned[tuner] = fusion.optimize(qrels, runs, method=rung.method, norm=rung.norm, metric=ctx.metric(rung.tune_metric))
        params, score = self._tuned[tuner]
        tuning = {"goldset": ctx.goldset(tuner).name, "split": rung.tune_on, "metric": ctx.metric(rung.tune_metric), "score": round(score, 6)}
        return params, tuning

    def run(self, ctx: Context, target: int, splits: list[str]) -> Iterator[tuple[str, SplitResult | SkipSplit]]:
        rung = self.rung
        params, tuning = self._params(ctx, target)
        for split in splits:
            if tuning and split == rung.tune_on and ctx.tuning_target(target) == target:
                yield split, SkipSplit(f"fusion is tuned on '{split}'; scoring that split would be optimistic")
                continue
            runs = [ctx.input_run(target, split, name) for name in rung.inputs]
            inputs = [ctx.input_record(target, split, name) for name in rung.inputs]
            start = time.perf_counter()
            run = self._fuse(runs, params)
            fuse_s = time.perf_counter() - start
            latency = _add_latencies(inputs, self._fuse_latency(runs, params, latency_sample(run, ctx.latency_queries)))
            details = {"method": rung.method, "norm": rung.norm, "params": params, "tuned_on": tuning or None}
            yield split, SplitResult(run, latency, search_s=fuse_s, inherited=inputs, details=details)

    def _fuse(self, runs: list[Run], params: dict) -> Run:
        """``fusion.fuse``, where an input that retrieved nothing for any of these queries (BM25 on a query
        of stopwords, timed on its own) ranks a placeholder: ranx cannot build an empty run. Fusion scores
        each document from its own ranks or normalised scores, so the placeholder changes no real
        document's score; it is dropped from the result."""
        query_ids = sorted(set().union(*runs))
        padded = [run if any(run.get(q) for q in query_ids) else {q: {_NOTHING: 1.0} for q in query_ids} for run in runs]
        fused = fusion.fuse(padded, method=self.rung.method, norm=self.rung.norm, params=params, top_k=self.rung.top_k + 1)
        return {q: dict([(d, v) for d, v in hits.items() if d != _NOTHING][: self.rung.top_k]) for q, hits in fused.items()}

    def _fuse_latency(self, runs: list[Run], params: dict, sample: list[str]) -> dict[str, float]:
        """Seconds to fuse each sampled query's rankings on its own, after one untimed warm-up call
        (:func:`~harness.cache.timed`). ranx compiles with numba on first use; :mod:`harness.retrieval.fusion`
        keeps that to one compilation whatever the document ids, so the warm-up takes all of it."""
        one = {qid: [{qid: run.get(qid, {})} for run in runs] for qid in sample}
        return dict(zip(sample, timed(lambda qid: self._fuse(one[qid], params), sample)))


class RerankStage:
    """An earlier rung's top ``depth`` candidates re-scored by a reranker, one scoring call per query."""

    fingerprint = None  # the reranker's is in each record's details

    def __init__(self, rung: RerankRung, cache: Cache):
        self.rung = rung
        self.reranker = CachedReranker(build_reranker(rung.reranker, cache), cache)

    def dependency(self, ctx: Context, target: int, split: str) -> str:
        return "rerank-" + stage_key([ctx.input_record(target, split, self.rung.first_stage).key, self.reranker.fingerprint])

    def run(self, ctx: Context, target: int, splits: list[str]) -> Iterator[tuple[str, SplitResult | SkipSplit]]:
        goldset = ctx.goldset(target)
        for split in splits:
            first = ctx.input_run(target, split, self.rung.first_stage)
            queries = goldset.split_queries(split)
            candidates = {q: list(first.get(q, {}))[: self.rung.depth] for q in queries}
            items = {q: (queries[q], [goldset.document_text(goldset.corpus[d]) for d in docs]) for q, docs in candidates.items()}
            start = time.perf_counter()
            with progress.bar("reranking") as update:
                self.reranker.on_progress = update
                scores = self.reranker.rerank(items)
            rerank_s = time.perf_counter() - start
            with one_blas_thread():
                seconds = self.reranker.probe({q: items[q] for q in latency_sample(queries, ctx.latency_queries)})
            run = {q: dict(list(break_ties(dict(zip(candidates[q], scores[q]))).items())[: self.rung.top_k]) for q in queries}
            yield split, self._result(ctx, target, split, run, seconds, rerank_s)

    def _result(self, ctx, target, split, run, seconds, rerank_s) -> SplitResult:
        inputs = [ctx.input_record(target, split, self.rung.first_stage)]
        stats = self.reranker.take_stats()
        latency = _add_latencies(inputs, seconds)
        details = {"depth": self.rung.depth, "reranker_fingerprint": self.reranker.fingerprint, "pairs_scored": stats.computed, "pairs_cached": stats.hits}
        result = SplitResult(run, latency, search_s=rerank_s, api_calls=stats.api_calls, inherited=inputs, details=details)
        price_key = self.reranker.price_key
        if price_key:
            result.usage = {price_key: stats.units}
        return result


class SkipSplit(Exception):
    """This split cannot be scored by this rung (the reason is recorded)."""


def _add_latencies(inputs: list[RunRecord], own: dict[str, float]) -> dict[str, float]:
    """Per-query seconds of a pipeline: its inputs' times (run one after another) plus this stage's."""
    per_input = [{q: ms / 1000 for q, ms in (r.latency.per_query_ms if r.latency else {}).items()} for r in inputs]
    common = set(own).intersection(*(set(p) for p in per_input))
    return {q: sum(p[q] for p in per_input) + own[q] for q in sorted(common)}
