"""The stages of rungs that make a model from the goldset's training data before they search like a dense
rung: :class:`FinetuneStage` (a round of a fine-tuning job), :class:`AdapterStage` (a query adapter over
a frozen encoder) and :class:`MergeStage` (interpolations between a fine-tuned model and its base, one
chosen on a tuning split). Each trains or merges once per tuning goldset, finds its models on disk by
fingerprint afterwards, and hands the search to :class:`harness.ladder.stages.RetrieverStage`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from harness import progress
from harness.cache import Cache
from harness.data.goldset import Goldset
from harness.errors import ConfigError, RungUnavailable
from harness.ladder.rungs import AdapterRung, DenseRung, FinetuneRung, MergeRung
from harness.ladder.stages import Context, RetrieverStage, SkipSplit, SplitResult, stage_key
from harness.records import safe_name
from harness.registry import EncoderConfig, build_encoder
from harness.training.schema import MODEL_CARD


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
        from harness.training.adapter import AdapterOptions

        self.rung = rung
        self.cache = cache
        self.options = validate(AdapterOptions, rung.adapter, f"rung '{rung.name}' adapter")
        self.base_fingerprint = RetrieverStage(DenseRung(name=rung.name, encoder=rung.encoder), cache).fingerprint  # unavailable base: skipped
        self.fingerprint = None

    def _plan(self, ctx: Context, target: int) -> tuple[Goldset, str | None, Path]:
        goldset = ctx.goldset(ctx.tuning_target(target))
        eval_split = self.rung.eval_split if self.rung.eval_split in goldset.qrels else None
        key = stage_key([
            self.base_fingerprint, goldset.split_fingerprint(self.rung.train_split), eval_split and goldset.split_fingerprint(eval_split),
            self.options.model_dump(mode="json"), self.rung.on_leakage, self.rung.on_overlap,
        ])
        return goldset, eval_split, ctx.models_root / f"{safe_name(self.rung.name)}-{key}"

    def dependency(self, ctx: Context, target: int, split: str) -> str:
        return f"adapter-{self._plan(ctx, target)[2].name}"

    def run(self, ctx: Context, target: int, splits: list[str]) -> Iterator[tuple[str, SplitResult | SkipSplit]]:

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
