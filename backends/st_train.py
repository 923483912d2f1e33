"""Fine-tuning sentence-transformers models with their own trainer, losses and batch samplers.

tunebench adds the recipe around it: pairs from goldsets or files, the loss named in the config with
InfoNCE's temperature given directly, batches without duplicate texts (a duplicate is a false in-batch
negative), evaluation on the goldset's dev split after each epoch with tunebench's own metrics (so the
best epoch is chosen on the same numbers the leaderboard shows), the best checkpoint kept, resumable
checkpoints, and a model card written from the resolved configuration.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable
from pathlib import Path

from harness import progress
from harness.protocols import EncodeFn, ModelShape, Pair, TrainResult
from harness.training.schema import MODEL_CARD, TrainConfig

log = logging.getLogger(__name__)

GUARD_EVALUATIONS = 4
"""Dev evaluations an epoch of a round that must beat its start model. On demo a mining round that
hurts is caught after a quarter of its epoch (4 of 14 GradCache steps, 16 s each) instead of a half:
its evaluation encodes the 312 documents in about 13 s, less than a step (benchmarks/RESULTS.md)."""


def build_loss(model, config: TrainConfig):
    from sentence_transformers.sentence_transformer import losses

    spec = config.loss
    scale = 1.0 / spec.temperature
    if spec.kind == "infonce":
        return losses.MultipleNegativesRankingLoss(model, scale=scale)
    if spec.kind == "infonce-symmetric":
        return losses.MultipleNegativesSymmetricRankingLoss(model, scale=scale)
    if spec.kind == "cached-infonce":
        return losses.CachedMultipleNegativesRankingLoss(model, scale=scale, mini_batch_size=spec.mini_batch_size)
    if spec.kind == "triplet":
        return losses.TripletLoss(model, distance_metric=losses.TripletDistanceMetric.COSINE, triplet_margin=spec.margin)
    return losses.CosineSimilarityLoss(model)


def to_dataset(pairs: list[Pair], config: TrainConfig):
    """A ``datasets.Dataset`` with prompts applied: (anchor, positive[, negative_1..k]) for the ranking
    losses, negatives cut to the fewest any pair of the source has; (sentence1, sentence2, score) for
    ``cosine``, each positive scored 1 and each negative 0."""
    from datasets import Dataset

    from harness.errors import ConfigError

    q, d = config.query_prompt, config.document_prompt
    k = min((len(p.negatives) for p in pairs), default=0)
    if config.loss.kind in ("triplet", "cosine") and k == 0:
        raise ConfigError(f"the {config.loss.kind} loss needs a negative for every pair: give negatives in the pair files (round 0 of a goldset has none)")
    if config.loss.kind == "cosine":
        rows = [(q + p.query, d + p.positive, 1.0) for p in pairs] + [(q + p.query, d + n, 0.0) for p in pairs for n in p.negatives]
        return Dataset.from_dict({"sentence1": [r[0] for r in rows], "sentence2": [r[1] for r in rows], "score": [r[2] for r in rows]})
    columns = {"anchor": [q + p.query for p in pairs], "positive": [d + p.positive for p in pairs]}
    for i in range(k):
        columns[f"negative_{i + 1}"] = [d + p.negatives[i] for p in pairs]
    return Dataset.from_dict(columns)


def _evaluator_class():
    from sentence_transformers.sentence_transformer.evaluation import SentenceEvaluator

    class GoldsetEvaluator(SentenceEvaluator):
        """A sentence-transformers evaluator that scores a goldset split with tunebench's metrics."""

        def __init__(self, evaluate_model: Callable[[EncodeFn], dict[str, float]], name: str, config: TrainConfig):
            super().__init__()
            self.evaluate_model = evaluate_model
            self.name = name
            self.prompts = {"query": config.query_prompt, "document": config.document_prompt}
            self.primary_metric = f"{name}_{config.primary_metric}"
            self.greater_is_better = True

        def __call__(self, model, output_path=None, epoch: float = -1, steps: int = -1) -> dict[str, float]:
            def encode(texts, *, input_type):  # as backends.sentence_transformers encodes: the prompt through sentence-transformers
                prompt = self.prompts[input_type] or None
                return model.encode(list(texts), prompt=prompt, batch_size=32, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)

            scores = self.evaluate_model(encode)
            log.info("epoch %s: %s", epoch, {k: round(v, 4) for k, v in scores.items()})
            return {f"{self.name}_{k}": v for k, v in scores.items()}

    return GoldsetEvaluator


def train(
    config: TrainConfig,
    datasets: dict[str, list[Pair]],
    *,
    start_model: Path,
    out_dir: Path,
    evaluate_model: Callable[[object], dict[str, float]] | None = None,
    callbacks: list | None = None,
    must_beat: float | None = None,
) -> TrainResult:
    """Train ``start_model`` on ``datasets`` (one per source: several make multi-task training) and
    save the best model to ``out_dir / "model"``. Re-running with the same ``out_dir`` resumes from
    its last checkpoint.

    With ``must_beat`` (the start model's dev score) and a dev evaluation, the start model competes
    too: the round is evaluated :data:`GUARD_EVALUATIONS` times an epoch, stops at the first evaluation
    that improves on nothing before it (transformers' ``EarlyStoppingCallback``, patience 1), and saves
    the start model when no evaluation beat it. A mining round that only hurts so costs a quarter of an
    epoch, not a worse model."""
    from sentence_transformers import SentenceTransformerTrainer
    from transformers.trainer_callback import PrinterCallback
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    model = load_model(start_model, config)
    if config.attention_dropout is not None:
        _set_attention_dropout(model, config.attention_dropout)
    if config.lora:
        _add_lora(model, config)
    if config.max_length:
        model.max_seq_length = config.max_length
    model.model_card_data.generate_widget_examples = False  # its progress bar would break --json output
    train_sets = {name: to_dataset(pairs, config) for name, pairs in datasets.items()}
    train_data = train_sets if len(train_sets) > 1 else next(iter(train_sets.values()))
    n_pairs = sum(len(d) for d in train_sets.values())
    world = int(os.environ.get("WORLD_SIZE", "1"))  # torchrun: each process takes its share of every batch
    steps = math.ceil(n_pairs / (config.batch_size * world)) * config.epochs
    evaluator = _evaluator_class()(evaluate_model, "dev", config) if evaluate_model else None
    guarded = must_beat is not None and evaluator is not None
    args = _training_arguments(config, out_dir, steps, evaluator, world, evaluate_every=math.ceil(steps / config.epochs / GUARD_EVALUATIONS) if guarded else None)
    with progress.bar(f"training {config.name} {out_dir.name}") as update, PeakMemory() as peak:
        callbacks = [*(callbacks or []), _progress_callback(update), *(_start_competes(must_beat) if guarded else ())]
        trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=train_data, loss=build_loss(model, config), evaluator=evaluator, callbacks=callbacks)
        trainer.remove_callback(PrinterCallback)  # logs go to the logger (and the model card), never to stdout
        log.info("training on %d process(es), %d pairs, %d steps planned", args.world_size, n_pairs, steps)
        trainer.train(resume_from_checkpoint=_last_checkpoint(out_dir / "checkpoints"))
    history = [row for row in trainer.state.log_history if "loss" in row or any(k.startswith("eval_") for k in row)]
    scores = [row[args.metric_for_best_model] for row in history if args.metric_for_best_model in row] if evaluator else []
    kept_start = guarded and not trainer.state.best_metric > must_beat
    if trainer.is_world_process_zero():  # under torchrun, one process writes the model
        if kept_start:
            _copy_model(start_model, out_dir / "model")
        else:
            if config.lora:
                _merge_lora(model, out_dir, config)
            model.save(str(out_dir / "model"))
    trainer.accelerator.wait_for_everyone()
    return TrainResult(out_dir / "model", trainer.state.global_step, history, trainer.state.best_metric, peak.resources(), kept_start, max(scores, default=None))


class PeakMemory:
    """Peak resident memory of this process while the block runs (sampled every 50 ms), peak GPU
    memory on CUDA, the device and the seconds taken."""

    def __init__(self, every: float = 0.05):
        self.every = every

    def __enter__(self) -> PeakMemory:
        import threading
        import time

        import psutil

        self._process = psutil.Process()
        self.peak = self._process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._start = time.perf_counter()
        if _cuda():
            import torch

            torch.cuda.reset_peak_memory_stats()
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.every):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def __exit__(self, *exc) -> None:
        import time

        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)
        self.seconds = time.perf_counter() - self._start

    def resources(self) -> dict:
        import torch

        gpu = _cuda()
        return {
            "device": f"cuda ({torch.cuda.get_device_name()})" if gpu else "cpu",
            "precision": "bf16 autocast" if gpu and torch.cuda.is_bf16_supported() else "fp32",
            "peak_rss_mb": round(self.peak / 2**20),
            "peak_gpu_mb": round(torch.cuda.max_memory_allocated() / 2**20) if gpu else None,
            "seconds": round(self.seconds, 1),
        }


def _start_competes(score: float) -> list:
    """Callbacks that make the start model's dev ``score`` the best so far (an evaluation counts, and
    is kept, only when it beats it), evaluate the last step too, and stop at the first evaluation that
    beats no earlier one."""
    from transformers import EarlyStoppingCallback, TrainerCallback

    class StartCompetes(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            if state.best_metric is None:  # a resumed round keeps the best it had
                state.best_metric = score

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step >= state.max_steps:  # evaluation every n steps can miss the last one
                control.should_evaluate = control.should_save = True

    return [StartCompetes(), EarlyStoppingCallback(early_stopping_patience=1)]


def _copy_model(start: Path, dest: Path) -> None:
    """The start model's files as the round's model (its description files left behind: the round writes its own)."""
    import shutil

    from harness.training.schema import DESCRIPTION_FILES

    shutil.copytree(start, dest, dirs_exist_ok=True, ignore=shutil.ignore_patterns("README.md", *DESCRIPTION_FILES))


def _progress_callback(update: progress.Update):
    """A trainer callback that reports each step, with the last logged loss, to ``update``."""
    from transformers import TrainerCallback

    class ProgressCallback(TrainerCallback):
        loss = ""

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                self.loss = f"loss {logs['loss']:.3f}"

        def on_step_end(self, args, state, control, **kwargs):
            update(state.global_step, state.max_steps, self.loss)

    return ProgressCallback()


def _training_arguments(config: TrainConfig, out_dir: Path, steps: int, evaluator, world: int, evaluate_every: int | None = None):
    """The trainer's arguments from the resolved config: NO_DUPLICATES batches, an epoch's checkpoint
    and dev evaluation (or one every ``evaluate_every`` steps), the best kept, logs to the logger only."""
    from sentence_transformers import SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer.training_args import BatchSamplers, MultiDatasetBatchSamplers

    return SentenceTransformerTrainingArguments(
        output_dir=str(out_dir / "checkpoints"),
        per_device_train_batch_size=config.batch_size,
        num_train_epochs=config.epochs,
        learning_rate=config.learning_rate,
        warmup_steps=math.ceil(config.warmup_ratio * steps),
        weight_decay=config.weight_decay,
        seed=config.seed,
        data_seed=config.seed,
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        multi_dataset_batch_sampler=MultiDatasetBatchSamplers.PROPORTIONAL if config.sampling == "proportional" else MultiDatasetBatchSamplers.ROUND_ROBIN,
        eval_strategy=("steps" if evaluate_every else "epoch") if evaluator else "no",
        save_strategy="steps" if evaluate_every else "epoch",
        **({"eval_steps": evaluate_every, "save_steps": evaluate_every} if evaluate_every else {}),
        save_total_limit=2,
        load_best_model_at_end=evaluator is not None,
        metric_for_best_model=f"eval_{evaluator.primary_metric}" if evaluator else None,
        greater_is_better=True,
        logging_steps=max(1, steps // 20),
        report_to="none",
        disable_tqdm=True,
        dataloader_pin_memory=_cuda(),
        bf16=_cuda() and _bf16(),  # autocast on GPUs that support it; CPU training stays fp32
        ddp_backend="gloo" if world > 1 and not _cuda() else None,  # torchrun on CPU: data-parallel over gloo
    )


def load_model(path: Path, config: TrainConfig):
    """The model to train: a sentence-transformers folder as it is, or (``pooling`` set) a plain
    transformers model with that pooling and normalisation on top (decoders: ``lasttoken``)."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer import modules

    device = None if _cuda() else "cpu"
    if config.pooling == "model":
        return SentenceTransformer(str(path), device=device)
    transformer = modules.Transformer(str(path), max_seq_length=config.max_length)
    tokenizer = transformer.tokenizer
    if tokenizer.pad_token is None:  # decoders often ship without one
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    pooling = modules.Pooling(transformer.get_embedding_dimension(), pooling_mode=config.pooling)
    return SentenceTransformer(modules=[transformer, pooling, modules.Normalize()], device=device)


def _set_attention_dropout(model, p: float) -> None:
    """Dropout on attention probabilities, in every attention module (BERT's ``dropout``, decoders'
    ``attention_dropout``); hidden-state dropout is left as the model has it."""
    import torch

    for module in model.modules():
        if "Attention" not in type(module).__name__:
            continue
        if isinstance(getattr(module, "dropout", None), torch.nn.Dropout):
            module.dropout.p = p
        if isinstance(getattr(module, "attention_dropout", None), float):
            module.attention_dropout = p


def _add_lora(model, config: TrainConfig) -> None:
    """Wrap the transformer inside the sentence-transformers model with peft (sentence-transformers'
    own ``add_adapter`` needs a newer peft than the registries serve)."""
    from peft import LoraConfig, get_peft_model

    from harness.errors import require

    require("peft")
    spec = config.lora
    module = model[0]
    module.model = get_peft_model(module.model, LoraConfig(r=spec.r, lora_alpha=spec.alpha, lora_dropout=spec.dropout, target_modules=spec.target_modules))
    trainable, total = module.model.get_nb_trainable_parameters()
    log.info("LoRA: %d of %d parameters trainable (%.2f%%)", trainable, total, 100 * trainable / total)


def _merge_lora(model, out_dir: Path, config: TrainConfig) -> None:
    module = model[0]
    if config.lora.save_adapter:
        module.model.save_pretrained(str(out_dir / "adapter"))
    module.model = module.model.merge_and_unload()


WEIGHTS = ("model.safetensors", "pytorch_model.bin", "adapter_model.safetensors", "adapter_model.bin")


def _last_checkpoint(folder: Path) -> str | None:
    """The newest complete checkpoint under ``folder``, or None to start afresh.

    transformers writes a checkpoint in place: weights, then optimizer, scheduler and RNG state, and
    ``trainer_state.json`` last (``Trainer._save_checkpoint``), so a kill mid-write leaves a folder that
    its own ``get_last_checkpoint`` still picks and every resume then fails on. A checkpoint counts only
    with weights, ``optimizer.pt`` and a ``trainer_state.json`` that parses; others are skipped, and said so.
    """
    steps = {}
    for path in folder.glob("checkpoint-*") if folder.is_dir() else []:
        if path.is_dir() and path.name.removeprefix("checkpoint-").isdigit():
            steps[path] = int(path.name.removeprefix("checkpoint-"))
    for path in sorted(steps, key=steps.get, reverse=True):
        missing = _checkpoint_gaps(path)
        if not missing:
            return str(path)
        log.warning("skipping the incomplete checkpoint %s (no %s: the run was stopped while writing it)", path, missing)
    return None


def _checkpoint_gaps(path: Path) -> str:
    """What a checkpoint folder lacks to resume from ("" when complete)."""
    gaps = [] if any((path / name).is_file() for name in WEIGHTS) else ["weights"]
    gaps += [] if (path / "optimizer.pt").is_file() else ["optimizer.pt"]
    try:
        json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        gaps.append("readable trainer_state.json")
    return ", ".join(gaps)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _bf16() -> bool:
    import torch

    return torch.cuda.is_bf16_supported()


def model_shape(model: Path) -> ModelShape:
    """Read from the folder's config.json (transformers) and sentence_bert_config.json, and the
    parameter count from the safetensors header; no weights are loaded."""
    config = _json(model / "config.json")
    hidden = config.get("hidden_size") or config.get("d_model") or config.get("dim") or 768
    layers = config.get("num_hidden_layers") or config.get("num_layers") or config.get("n_layers") or 12
    heads = config.get("num_attention_heads") or config.get("num_heads") or config.get("n_heads") or 12
    limit = _json(model / "sentence_bert_config.json").get("max_seq_length") or config.get("max_position_embeddings") or 512
    return ModelShape(params=_parameter_count(model, config, hidden, layers), hidden=hidden, layers=layers, heads=heads, max_length=int(limit))


def _leakage_line(counts: dict) -> str:
    return (f"- leakage check: {counts['query_leaks']} evaluation queries repeated or nearly repeated (on_leakage = {counts['on_leakage']}), "
            f"{counts['overlap']} evaluation-judged documents trained on (on_overlap = {counts['on_overlap']})")


def _json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _parameter_count(model: Path, config: dict, hidden: int, layers: int) -> int:
    files = sorted(model.glob("*.safetensors"))
    if files:
        from safetensors import safe_open

        total = 0
        for file in files:
            with safe_open(str(file), framework="numpy") as f:
                total += sum(math.prod(f.get_slice(name).get_shape()) for name in f.keys())
        return total
    # no safetensors: a transformer's weights, roughly (12 h^2 per layer, plus the embeddings)
    return 12 * layers * hidden**2 + (config.get("vocab_size", 30522) + config.get("max_position_embeddings", 512)) * hidden


def token_lengths(model: Path, texts) -> list[int]:
    """Tokens of each text under the folder's tokenizer, without truncation."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model))
    return [len(ids) for ids in tokenizer(list(texts), add_special_tokens=True, truncation=False, verbose=False)["input_ids"]]


def write_card(model_dir: Path, card: dict) -> None:
    """``tunebench.json`` (machine-readable) and a README.md section, beside the model's own files."""
    (model_dir / MODEL_CARD).write_text(json.dumps(card, indent=1, sort_keys=True))
    lines = [f"# {card['name']}", "", f"Fine-tuned by tunebench from `{card['base_model']}`.", "", "## Training", ""]
    lines += [f"- {k}: `{json.dumps(v)}`" for k, v in sorted(card["config"].items())]
    lines += ["", f"- pairs: {card['pairs']} (data fingerprint `{card['data_fingerprint']}`)", f"- steps: {card['steps']}", _leakage_line(card["leakage"])]
    readme = model_dir / "README.md"
    previous = readme.read_text() if readme.exists() else ""
    readme.write_text("\n".join(lines) + "\n\n" + previous)


class Trainer:
    """This module as a :class:`harness.protocols.Trainer` (the registry's ``sentence-transformers`` trainer)."""

    @staticmethod
    def resolve_model(model: str) -> Path:
        from backends.sentence_transformers import resolve_model

        return resolve_model(model)

    train = staticmethod(train)
    write_card = staticmethod(write_card)
    model_shape = staticmethod(model_shape)
    token_lengths = staticmethod(token_lengths)
