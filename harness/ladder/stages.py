"""What each kind of rung does on one goldset: a :class:`Stage` turns each split into a :class:`SplitResult`.

:class:`RetrieverStage` (dense, bm25, chunked) indexes the corpus once and searches each split;
:class:`HybridStage` fuses earlier rungs' runs; :class:`RerankStage` re-scores an earlier rung's
candidates; :class:`FinetuneStage` and :class:`AdapterStage` train once, then search like a dense rung.
Composite stages read their inputs through the :class:`Context` (the runner), so an input that was
already recorded is reused, not recomputed. Per-query latency is measured here; see
:class:`harness.records.Latency` for what it covers.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from harness import progress, registry
from harness.cache import Cache, CachedReranker, CacheStats, timed
from harness.data.goldset import Goldset
from harness.errors import ConfigError, RungUnavailable
from harness.ladder.rungs import AdapterRung, AnyRung, BM25Rung, ChunkedRung, DenseRung, FinetuneRung, HybridRung, MergeRung, RerankRung
from harness.protocols import Run
from harness.records import Counts, RunRecord, safe_name
from harness.registry import build_encoder, build_reranker
from harness.retrieval import fusion
from harness.retrieval.chunking import Chunking
from harness.retrieval.compression import CompressedRetriever, Form
from harness.retrieval.retrievers import ChunkedRetriever, DenseRetriever
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


def _digest(parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]


def build_retriever(rung: AnyRung, cache: Cache, form: Form | None = None):
    """A ready-to-index retriever for a dense, chunked or BM25 rung (a dense rung's vectors searched in
    ``form`` when given), and its encoder fingerprint (None for BM25)."""
    if isinstance(rung, BM25Rung):
        options = rung.model_dump(exclude={"kind", "name", "top_k"})
        return registry.load("retriever", "bm25s")(**options), None
    encoder = build_encoder(rung.encoder, cache)
    if isinstance(rung, ChunkedRung):
        return ChunkedRetriever(encoder, cache, _chunking(rung)), encoder.fingerprint
    return (CompressedRetriever(encoder, cache, form) if form else DenseRetriever(encoder, cache)), encoder.fingerprint


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
        start = time.perf_counter()
        if isinstance(self.retriever, ChunkedRetriever):
            self.retriever.index_goldset(goldset)
        else:
            self.retriever.index({doc_id: goldset.document_text(doc) for doc_id, doc in goldset.corpus.items()})
        index_s = time.perf_counter() - start
        docs = self._take_counts()
        if isinstance(self.retriever, DenseRetriever):
            self.index_details = self._index_details(goldset, index_s, docs["computed"])
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
        result.details = {**result.details, **self.index_details}
        return result

    def _index_details(self, goldset: Goldset, index_s: float, encoded: int) -> dict:
        """The index's size per document and the encoder's documents per second: this run's when it
        encoded documents, else that of the run that encoded them (kept in the cache); None when unknown.
        A run that found some vectors cached and encoded the rest counts the whole indexing time."""
        if encoded:
            self.cache.put_encode_rate(self.fingerprint, goldset.fingerprint, index_s, encoded)
        rate = self.cache.encode_rate(self.fingerprint, goldset.fingerprint)
        n_docs = max(len(goldset.corpus), 1)
        size = self.retriever.index_bytes()
        out = {"index_bytes_per_doc": size // n_docs if size % n_docs == 0 else round(size / n_docs, 1), "index_mb": round(size / 1e6, 3)}
        if isinstance(self.retriever, CompressedRetriever):
            out |= self.retriever.form.details(len(goldset.corpus))
        elif not isinstance(self.retriever, ChunkedRetriever):
            out["dim"] = self.retriever.dim
        return out | {"encode_docs_per_s": round(rate[1] / rate[0], 2) if rate and rate[0] > 0 else None,
                      "encode_measured": "this run" if encoded else "an earlier run (vectors cached)" if rate else None}

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
        return "hybrid-" + _digest(keys)

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
        return "rerank-" + _digest([ctx.input_record(target, split, self.rung.first_stage).key, self.reranker.fingerprint])

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


class FinetuneStage:
    """One round of a fine-tuning job, trained on the in-domain goldset's train split (once, then
    found on disk by its fingerprint) and evaluated like a dense rung."""

    def __init__(self, rung: FinetuneRung, cache: Cache):
        from harness.training.schema import TrainConfig

        self.rung = rung
        self.cache = cache
        self.config = TrainConfig.model_validate({**rung.train, "name": rung.name.rsplit("-r", 1)[0]})
        self.fingerprint = None
        self._jobs: dict[int, object] = {}

    def _job(self, ctx: Context, target: int):
        from harness.training.job import plan_job

        tuner = ctx.tuning_target(target)
        if tuner not in self._jobs:
            goldset = ctx.goldset(tuner)
            config = self.config.model_copy(update={"goldset": goldset.source})
            self._jobs[tuner] = plan_job(config, models_root=ctx.models_root, base=ctx.files_base)
        return self._jobs[tuner]

    def dependency(self, ctx: Context, target: int, split: str) -> str:
        return f"finetune-{self._job(ctx, target).fingerprint}-r{self.rung.round}"

    def run(self, ctx: Context, target: int, splits: list[str]) -> Iterator[tuple[str, SplitResult | SkipSplit]]:
        from harness.ladder.rungs import DenseRung
        from harness.registry import EncoderConfig
        from harness.training.job import run_job, training_resources

        job = self._job(ctx, target)
        model_dir = run_job(job, self.cache, up_to_round=self.rung.round)[-1]
        encoder = EncoderConfig(model=str(model_dir), query_prompt=self.config.query_prompt, document_prompt=self.config.document_prompt, max_length=self.config.max_length)
        inner = RetrieverStage(DenseRung(name=self.rung.name, encoder=encoder, top_k=self.rung.top_k), self.cache)
        self.fingerprint = inner.fingerprint
        details = {"round": self.rung.round, "model": str(model_dir), "trained_on": ", ".join(job.datasets), "pairs": len(job.pairs)}
        details |= self._leakage(job) | training_resources(model_dir)
        for split, result in inner.run(ctx, target, splits):
            result.details = {**result.details, **details}  # the index's size and throughput, then how the model was made
            yield split, result

    def _leakage(self, job) -> dict:
        counts = job.leakage.counts(self.config.on_leakage, self.config.on_overlap)
        return {"leakage": counts["query_leaks"], "overlap": counts["overlap"], "on_leakage": counts["on_leakage"], "on_overlap": counts["on_overlap"]}


class AdapterStage:
    """A query adapter over a frozen encoder, fitted on the in-domain goldset's train split (once, then
    found on disk by its fingerprint) and evaluated like a dense rung of the ``adapter`` backend."""

    def __init__(self, rung: AdapterRung, cache: Cache):
        from harness.config import validate
        from harness.ladder.rungs import DenseRung
        from harness.training.adapter import AdapterOptions

        self.rung = rung
        self.cache = cache
        self.options = validate(AdapterOptions, rung.adapter, f"rung '{rung.name}' adapter")
        self.base_fingerprint = RetrieverStage(DenseRung(name=rung.name, encoder=rung.encoder), cache).fingerprint  # unavailable base: skipped
        self.fingerprint = None

    def _plan(self, ctx: Context, target: int) -> tuple[Goldset, str | None, Path]:
        goldset = ctx.goldset(ctx.tuning_target(target))
        eval_split = self.rung.eval_split if self.rung.eval_split in goldset.qrels else None
        key = _digest([
            self.base_fingerprint, goldset.split_fingerprint(self.rung.train_split), eval_split and goldset.split_fingerprint(eval_split),
            self.options.model_dump(mode="json"), self.rung.on_leakage, self.rung.on_overlap,
        ])
        return goldset, eval_split, ctx.models_root / f"{safe_name(self.rung.name)}-{key}"

    def dependency(self, ctx: Context, target: int, split: str) -> str:
        return f"adapter-{self._plan(ctx, target)[2].name}"

    def run(self, ctx: Context, target: int, splits: list[str]) -> Iterator[tuple[str, SplitResult | SkipSplit]]:
        from harness.ladder.rungs import DenseRung
        from harness.registry import EncoderConfig

        goldset, eval_split, folder = self._plan(ctx, target)
        from harness.training.adapter import adapter_format, fit_adapter

        if not (folder / "adapter.json").is_file():
            options = self.options.model_dump()
            fit_adapter(
                goldset, self.rung.train_split, self.rung.encoder, self.cache, folder,
                on_leakage=self.rung.on_leakage, on_overlap=self.rung.on_overlap, eval_split=eval_split, **options,
            )
        card = adapter_format().read_card(folder)
        inner = RetrieverStage(DenseRung(name=self.rung.name, encoder=EncoderConfig(backend="adapter", model=str(folder)), top_k=self.rung.top_k), self.cache)
        self.fingerprint = inner.fingerprint
        details = {
            "adapter": str(folder), "trained_on": f"{goldset.name}/{self.rung.train_split}", "pairs": card.training.pairs,
            "eval_split": eval_split, "best_epoch": card.training.best_epoch, "fit_embedding": card.training.embedding,
            "leakage": card.training.leakage.get("query_leaks"), "overlap": card.training.leakage.get("overlap"),
            "on_leakage": self.rung.on_leakage, "on_overlap": self.rung.on_overlap,
        }
        seen = {self.rung.train_split, eval_split} if ctx.tuning_target(target) == target else set()
        for split in [s for s in splits if s in seen]:
            yield split, SkipSplit(f"the adapter was fitted or selected on '{split}'; scoring that split would be optimistic")
        for split, result in inner.run(ctx, target, [s for s in splits if s not in seen]):
            result.details = {**result.details, **details}  # the index's size and throughput, then how the model was made
            yield split, result


class MergeRefused(RungUnavailable, ConfigError):
    """Models that cannot be merged (their weights differ in names or shapes): the rung is skipped with
    this reason, and the run fails as bad input once the other rungs have run."""


@dataclass
class _MergePlan:
    source: object  # harness.training.merge.Source
    root: Path  # the rung's models: one folder per merged alpha, one per choice
    in_domain: object  # harness.training.merge.Scored: where alpha is chosen
    ood: list  # harness.training.merge.Scored of each out-of-domain companion split
    metric: str
    tolerance: float
    note: str | None  # why alpha was not chosen on select_on
    key: str  # everything the choice depends on


class MergeStage:
    """A fine-tuned model interpolated with its base (:mod:`harness.training.merge`). Per in-domain
    goldset, the alpha curve is scored once (each alpha's model merged once, then found on disk; alpha 0
    and 1 are the base and fine-tuned folders, whose cached vectors are reused), alpha is chosen on the
    selection split, and the chosen model, saved with its curve, is evaluated like a dense rung."""

    def __init__(self, rung: MergeRung, cache: Cache):
        self.rung, self.cache = rung, cache
        self.fingerprint = None
        self._plans: dict[int, _MergePlan] = {}
        self._chosen: dict[int, tuple[Path, dict]] = {}

    def dependency(self, ctx: Context, target: int, split: str) -> str:
        plan = self._plan(ctx, target, split)
        return f"merge-{plan.root.name}-{plan.key}"

    def _plan(self, ctx: Context, target: int, split: str) -> _MergePlan:
        tuner = ctx.tuning_target(target)
        if tuner not in self._plans:
            try:
                self._plans[tuner] = self._make_plan(ctx, tuner, self._finetuned(ctx, target, split))
            except (ConfigError, RungUnavailable) as exc:  # no card, no base model here: this rung cannot run
                raise SkipSplit(str(exc)) from exc
        return self._plans[tuner]

    def _finetuned(self, ctx: Context, target: int, split: str) -> Path:
        if self.rung.of:
            return Path(ctx.input_record(target, split, self.rung.of).details["model"])
        path = Path(self.rung.model).expanduser()
        return path if path.is_absolute() or ctx.files_base is None else ctx.files_base / path

    def _make_plan(self, ctx: Context, tuner: int, folder: Path) -> _MergePlan:
        from harness.training.merge import Scored, digest, read_source

        rung, goldset = self.rung, ctx.goldset(tuner)
        source = read_source(folder, rung.base, ctx.files_base)
        split, note = self._selection_split(goldset)
        ood = [Scored(f"{ctx.goldset(i).name}/{s}", ctx.goldset(i), s) for i, splits in ctx.companions(tuner) for s in splits]
        models = [build_encoder(source.encoder_config(m)).fingerprint for m in (source.finetuned, source.base)]
        root = ctx.models_root / f"{safe_name(rung.name)}-{digest(models)}"
        metric, tolerance = ctx.metric(rung.select_metric), ctx.ood_tolerance if rung.ood_tolerance is None else rung.ood_tolerance
        splits = [(p.label, p.goldset.split_fingerprint(p.split)) for p in ood]
        key = digest([rung.alphas, metric, tolerance, goldset.split_fingerprint(split), splits])
        return _MergePlan(source, root, Scored(f"{goldset.name}/{split}", goldset, split), ood, metric, tolerance, note, key)

    def _selection_split(self, goldset: Goldset) -> tuple[str, str | None]:
        """The split alpha is chosen on: ``select_on``, else ``train``, never ``test``."""
        wanted = self.rung.select_on
        if wanted in goldset.qrels:
            return wanted, None
        if "train" in goldset.qrels:  # never test: the split the round trained on is the one left that is not evaluated
            return "train", (
                f"goldset '{goldset.name}' has no '{wanted}' split, so alpha was chosen on 'train': the fine-tuned model has seen those "
                "queries, which favours large alpha, and the out-of-domain tolerance is what holds alpha back; the evaluated splits stay unseen"
            )
        raise SkipSplit(f"goldset '{goldset.name}' has neither a '{wanted}' nor a 'train' split to choose alpha on (never the evaluated 'test')")

    def _choose(self, ctx: Context, tuner: int) -> tuple[Path, dict]:
        """The chosen model's folder (written with its curve, or found) and the record's details."""
        if tuner in self._chosen:
            return self._chosen[tuner]
        import json

        from harness.training.merge import Interpolation, choose_alpha, copy_vectors, score


        plan = self._plans[tuner]
        interpolation = Interpolation(plan.source, plan.root, self.rung.name)
        folder = plan.root / f"chosen-{plan.key}"
        if not (folder / MODEL_CARD).is_file():
            curve = []
            with progress.bar(f"{self.rung.name}: the alpha curve") as update:
                for k, alpha in enumerate(self.rung.alphas):
                    update(k, len(self.rung.alphas), f"alpha {alpha:g}: merging and scoring")
                    model = interpolation.model(alpha)
                    scores = score(plan.source.encoder_config(model), self.cache, [plan.in_domain, *plan.ood], plan.metric)
                    curve.append({"alpha": alpha, "model": str(model), "in_domain": scores.pop(plan.in_domain.label), "ood": scores})
                update(len(curve), len(self.rung.alphas), f"{plan.metric} on {plan.in_domain.label}: {max(p['in_domain'] for p in curve):.3f} at best")
            point, why = choose_alpha(curve, plan.tolerance)
            selection = {"alpha": point["alpha"], "why": why, "selected_on": plan.in_domain.label, "select_metric": plan.metric,
                         "ood_tolerance": plan.tolerance, "note": plan.note, "curve": curve}
            interpolation.write(point["alpha"], folder, {"selection": selection})
            texts = {"document": [d for p in [plan.in_domain, *plan.ood] for d in p.scorer(plan.metric).documents],
                     "query": [q for p in [plan.in_domain, *plan.ood] for q in p.goldset.split_queries(p.split).values()]}
            fingerprints = [build_encoder(plan.source.encoder_config(m)).fingerprint for m in (point["model"], folder)]
            copy_vectors(self.cache, *fingerprints, texts)
        selection = json.loads((folder / MODEL_CARD).read_text(encoding="utf-8"))["selection"]
        self._chosen[tuner] = folder, self._details(plan, folder, selection)
        return self._chosen[tuner]

    def _details(self, plan: _MergePlan, folder: Path, selection: dict) -> dict:
        card = plan.source.card
        leakage = card.get("leakage") if isinstance(card.get("leakage"), dict) else {}
        trained = {"round": card.get("round"), "pairs": card.get("pairs"), "leakage": leakage.get("query_leaks"), "overlap": leakage.get("overlap"),
                   "on_leakage": leakage.get("on_leakage"), "on_overlap": leakage.get("on_overlap")}
        return {"model": str(folder), "finetuned": str(plan.source.finetuned), "base": plan.source.base} | selection | trained

    def run(self, ctx: Context, target: int, splits: list[str]) -> Iterator[tuple[str, SplitResult | SkipSplit]]:
        plan = self._plan(ctx, target, splits[0])
        try:
            folder, details = self._choose(ctx, ctx.tuning_target(target))
        except ConfigError as exc:
            if isinstance(exc, RungUnavailable):
                raise
            raise MergeRefused(str(exc)) from exc
        inner = RetrieverStage(DenseRung(name=self.rung.name, encoder=plan.source.encoder_config(folder), top_k=self.rung.top_k), self.cache)
        self.fingerprint = inner.fingerprint
        selected = {plan.in_domain.split} if ctx.tuning_target(target) == target else set()
        for split in [s for s in splits if s in selected]:
            yield split, SkipSplit(f"alpha was chosen on '{split}'; scoring that split would be optimistic")
        rest = [s for s in splits if s not in selected]
        for split, result in inner.run(ctx, target, rest) if rest else ():
            result.details = {**result.details, **details}  # the index's size and throughput, then how the model was made
            yield split, result
