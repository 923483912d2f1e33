"""Running a fine-tuning job: pairs, the leakage check, round 0, then hard-negative mining rounds.

Each round's model is a folder ``<models>/<name>-<fingerprint>/r<i>/model`` that
``SentenceTransformer(path)`` loads, with a model card. The fingerprint covers the configuration and
the training data, so an unchanged job is never trained twice, and a killed job resumes from its last
checkpoint. Mining uses the round's model through the embedding cache, so the corpus vectors it
computes are the ones its evaluation reuses.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness import progress, registry
from harness.allocator import release_freed_memory
from harness.cache import Cache, CachedEncoder, text_hash
from harness.data.goldset import Goldset
from harness.data.pair_files import data_fingerprint, goldset_pairs, read_pair_file
from harness.data.resolve import resolve_goldset
from harness.protocols import EncodeFn, Pair, Trainer, TrainResult
from harness.records import safe_name
from harness.registry import EncoderConfig, IndexConfig, build_encoder, build_index
from harness.retrieval.topk import top_k_dense
from harness.training.dev_eval import SplitScorer
from harness.training.leakage import Leakage, guard
from harness.training.recipe import DEFAULT_NEGATIVES, negatives_for, resolve_recipe
from harness.training.schema import MODEL_CARD, TrainConfig
from harness.training.seen import TRAINED_FILE, write_trained

log = logging.getLogger(__name__)


@dataclass
class Job:
    """A resolved training job: its data, where it writes, and what the leakage check found."""

    config: TrainConfig
    goldset: Goldset | None
    datasets: dict[str, list[Pair]]
    leakage: Leakage
    folder: Path
    fingerprint: str
    rounds: list[Path] = field(default_factory=list)

    def model_dir(self, round_index: int) -> Path:
        return self.folder / f"r{round_index}" / "model"

    @property
    def pairs(self) -> list[Pair]:
        return [p for ps in self.datasets.values() for p in ps]


def plan_job(config: TrainConfig, *, models_root: Path, base: Path | None = None) -> Job:
    """Load the data, check it for leakage (raising unless allowed) and fix the output folder.

    ``base`` is the folder of the file the config came from: its goldset, pair files and output_dir
    are relative to it (None: the working directory)."""
    goldset = resolve_goldset(config.goldset, base) if config.goldset else None
    datasets: dict[str, list[Pair]] = {}
    if goldset and config.train_split:
        datasets[f"{goldset.name}/{config.train_split}"] = goldset_pairs(goldset, config.train_split)
    for pair_file in config.pair_files:
        datasets[pair_file.path] = read_pair_file(_from(base, pair_file.path))
    eval_splits = [s for s in {config.eval_split, *(goldset.manifest.eval_splits if goldset else [])} if s]
    found = Leakage()
    if goldset:
        datasets, found = guard(datasets, goldset, eval_splits, config.on_leakage, config.on_overlap)
    pairs = [p for ps in datasets.values() for p in ps]
    fingerprint = config.fingerprint(data_fingerprint(pairs))
    folder = _from(base, config.output_dir) if config.output_dir else models_root / f"{safe_name(config.name)}-{fingerprint}"
    return Job(config, goldset, datasets, found, folder, fingerprint)


def _from(base: Path | None, path: str) -> Path:
    """A path written in the training file, relative to its folder ``base`` (None: the working directory)."""
    path = Path(path).expanduser()
    return path if path.is_absolute() or base is None else base / path


def run_job(job: Job, cache: Cache, up_to_round: int | None = None) -> list[Path]:
    """Train every round not trained yet (up to ``up_to_round``); return each round's model folder."""
    trainer: Trainer = registry.load("trainer", "sentence-transformers")
    config = job.config
    last = config.mining.rounds if up_to_round is None else min(up_to_round, config.mining.rounds)
    base = trainer.resolve_model(config.base_model)
    todo = [r for r in range(last + 1) if not (job.model_dir(r) / MODEL_CARD).is_file()]
    recipe = resolve_recipe(config, job.datasets, trainer, base, last) if todo else None  # refuses before any training
    if is_main_process():  # before training: a folder with a card always says which documents it trained on
        for r in range(last + 1):
            if not (job.model_dir(r) / TRAINED_FILE).is_file():
                write_trained(job.model_dir(r), job.pairs, job.goldset)
    for r in todo:
        done = job.model_dir(r)
        start = base if r == 0 or config.mining.start_from == "base" else job.model_dir(r - 1)
        data, negatives = (job.datasets, None) if r == 0 else mine(job, job.model_dir(r - 1), cache)
        log.info("training %s round %d on %d pairs", config.name, r, sum(len(p) for p in data.values()))
        round_config = recipe.round_config(config, r)
        evaluation = _dev_evaluation(job)
        bar = _start_score(job, r) if evaluation else None
        result = trainer.train(round_config, data, start_model=start, out_dir=done.parent, evaluate_model=evaluation, must_beat=bar)
        if result.kept_start:
            log.warning("%s round %d: no evaluation beat round %d on dev (best %.3f against %.3f): the round keeps round %d's weights",
                        config.name, r, r - 1, result.trained_metric or float("nan"), bar, r - 1)
        if is_main_process():
            trainer.write_card(result.model_dir, _card(job, r, result, data) | {"recipe": recipe.card(r, negatives), "resources": result.resources})
            if evaluation:
                evaluation.keep_best(job, result, cache)
        _barrier()
        release_freed_memory()  # this round's kept activation blocks would add to the next round's peak
    return [job.model_dir(r) for r in range(last + 1)]


def _start_score(job: Job, round_index: int) -> float | None:
    """The dev score a mining round must beat to replace the model it starts from (its card's best), or
    None: round 0, a round started from the base model, or ``mining.stop_early`` off."""
    import json

    config = job.config
    if round_index == 0 or config.mining.start_from != "previous" or not config.mining.stop_early:
        return None
    card = json.loads((job.model_dir(round_index - 1) / MODEL_CARD).read_text(encoding="utf-8"))
    return card.get("best_dev_metric")


def is_main_process() -> bool:
    """False in the other processes of a ``torchrun`` data-parallel job (they train, rank 0 writes)."""
    return int(os.environ.get("RANK", "0")) == 0


def _barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


class DevEvaluation:
    """Scores the model in training on the dev split after each epoch, keeping each epoch's document
    vectors: the best epoch's become the saved model's cached vectors, so the round's own evaluation
    (and the next round's mining) does not encode the corpus again with the same weights."""

    def __init__(self, goldset: Goldset, split: str, primary: str):
        self.scorer = SplitScorer(goldset, split)
        self.primary = primary
        self.best: tuple[float, np.ndarray] | None = None  # only the best epoch's vectors are held

    def __call__(self, encode: EncodeFn) -> dict[str, float]:
        documents = encode(self.scorer.documents, input_type="document")
        scores = self.scorer.score(encode(list(self.scorer.queries.values()), input_type="query"), documents)
        if self.best is None or scores[self.primary] > self.best[0]:  # the trainer keeps the first of equal scores too
            self.best = (scores[self.primary], documents)
        return scores

    def keep_best(self, job: Job, result: TrainResult, cache: Cache) -> None:
        """Cache the best epoch's document vectors under the saved model's encoder fingerprint."""
        config = job.config
        if self.best is None or self.best[0] != result.best_metric or config.lora:  # a merged LoRA model is not bit-for-bit the one evaluated
            return
        encoder = build_encoder(EncoderConfig(model=str(result.model_dir), query_prompt=config.query_prompt, document_prompt=config.document_prompt, max_length=config.max_length))
        unique = dict(zip((text_hash(t) for t in self.scorer.documents), self.best[1]))
        cache.put(encoder.fingerprint, "document", list(unique), np.stack(list(unique.values())))


def _dev_evaluation(job: Job) -> DevEvaluation | None:
    goldset, split = job.goldset, job.config.eval_split
    return DevEvaluation(goldset, split, job.config.primary_metric) if goldset and split and split in goldset.qrels else None


def mine(job: Job, model_dir: Path, cache: Cache) -> tuple[dict[str, list[Pair]], int | None]:
    """Pairs with ``negatives`` hard negatives each, mined with the model in ``model_dir`` over the
    goldset's corpus: the top ``depth`` documents for each query, positives dropped, candidates scoring
    above ``max_relative`` x the positive's score dropped as likely false negatives, then
    ``negatives`` taken after skipping ``rank_from``."""
    goldset, spec = job.goldset, job.config.mining
    if goldset is None:
        return job.datasets, None
    encoder = CachedEncoder(build_encoder(EncoderConfig(model=str(model_dir), query_prompt=job.config.query_prompt, document_prompt=job.config.document_prompt)), cache)
    doc_ids = list(goldset.corpus)
    with progress.bar("mining: encoding the corpus") as update:
        encoder.on_progress = update
        doc_vectors = encoder.encode([goldset.document_text(goldset.corpus[d]) for d in doc_ids], input_type="document")
    search = _mining_search(doc_vectors, spec.index)
    positives_of: dict[str, set[str]] = {}
    for pairs in job.datasets.values():
        for p in pairs:
            positives_of.setdefault(p.query, set()).add(p.positive)
    candidates: dict[str, list[list[str]]] = {}
    for source, pairs in job.datasets.items():
        query_vectors = encoder.encode([p.query for p in pairs], input_type="query")
        positive_vectors = encoder.encode([p.positive for p in pairs], input_type="document")
        indices, scores = search(query_vectors, spec.depth)
        candidates[source] = []
        for i, p in enumerate(pairs):
            ceiling = spec.max_relative * float(query_vectors[i] @ positive_vectors[i])
            texts = [goldset.document_text(goldset.corpus[doc_ids[j]]) for j, s in zip(indices[i], scores[i]) if j >= 0 and s < ceiling]
            candidates[source].append([t for t in texts if t not in positives_of[p.query]][spec.rank_from : spec.rank_from + (spec.negatives or DEFAULT_NEGATIVES)])
    k = negatives_for([len(c) for cs in candidates.values() for c in cs], spec.negatives)
    mined = {
        source: [Pair(p.query, p.positive, texts[:k], p.source, p.query_id, p.positive_id) for p, texts in zip(pairs, candidates[source]) if len(texts) >= k]
        for source, pairs in job.datasets.items()
    }
    return mined, k


def _mining_search(doc_vectors: np.ndarray, kind: str):
    """``search(queries, k) -> (indices, scores)`` over the corpus: exact, or through a vector index of
    ``kind`` built once for every source's queries (faiss flat for exact search at scale; HNSW or IVF
    when approximate negatives will do, as they are only hard examples, not judgements)."""
    if kind == "exact":
        return lambda queries, k: top_k_dense(queries, doc_vectors, k)
    index = build_index(IndexConfig(kind=kind))
    index.build(doc_vectors)
    return index.search


def training_resources(model_dir: Path) -> dict:
    """What a round's card says it used and how it was sized, for its records: device, peak memory,
    seconds, the loss it ran (GradCache or not), max_length, mined negatives and the memory budget.
    Empty for a card written before tunebench recorded them."""
    import json

    path = model_dir / MODEL_CARD
    card = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    resources, recipe = card.get("resources") or {}, card.get("recipe") or {}
    memory = recipe.get("memory") or {}
    found = {
        "device": resources.get("device"), "peak_rss_mb": resources.get("peak_rss_mb"), "peak_gpu_mb": resources.get("peak_gpu_mb"),
        "train_seconds": resources.get("seconds"), "loss": memory.get("loss"), "mini_batch_size": memory.get("mini_batch_size"),
        "gradcache_for_memory": memory.get("switched"), "memory_budget_mb": memory.get("budget_mb"), "max_length": recipe.get("max_length"),
        "negatives": recipe.get("negatives"), "kept_start": card.get("kept_start"),
    }
    return found if resources else {}


def _card(job: Job, round_index: int, result, data) -> dict:
    config = job.config
    return {
        "name": f"{config.name}-r{round_index}",
        "base_model": config.base_model,
        "round": round_index,
        "config": config.model_dump(mode="json", exclude={"output_dir"}),
        "fingerprint": job.fingerprint,
        "data_fingerprint": data_fingerprint([p for ps in job.datasets.values() for p in ps]),
        "pairs": sum(len(p) for p in data.values()),
        "steps": result.steps,
        "best_dev_metric": result.best_metric,
        "trained_dev_metric": result.trained_metric,  # below best_dev_metric when the round kept its start
        "kept_start": result.kept_start,
        "leakage": job.leakage.counts(config.on_leakage, config.on_overlap),
        "history": result.history,
    }
