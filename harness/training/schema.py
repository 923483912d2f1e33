"""Fine-tuning as configuration: what to train on, how, and the checks that come before any training.

A training job is one TOML file (``bench train FILE``) or a ``finetune`` rung's table in a ladder,
parsed into :class:`TrainConfig`. Pairs come from a goldset's train split (each judged-relevant
document of a query is a positive) or from pair files. Before training, :func:`harness.training.leakage.guard` looks for
training queries that repeat evaluation queries (it stops the run unless ``on_leakage`` says otherwise)
and for pairs about documents evaluation queries are judged on (kept unless ``on_overlap = "drop"``).

Defaults follow current practice for contrastive fine-tuning of small encoders (sentence-transformers'
training guide; Wang et al. 2022, "Text Embeddings by Weakly-Supervised Contrastive Pre-training"):
InfoNCE with in-batch negatives at temperature 0.05, batch 32, learning rate 5e-5, 10% warmup,
3 epochs, no text twice in a batch. The resolved values are written into the model card and record.
"""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from pydantic import Field, field_validator, model_serializer, model_validator

from harness.choices import LeakagePolicy, OverlapPolicy
from harness.config import StrictModel
from harness.errors import did_you_mean
from harness.metrics import DEFAULT_METRICS
from harness.registry import DEFAULT_MODEL, IndexKind

MODEL_CARD = "tunebench.json"
"""The card beside every model tunebench writes (a training round, a merged model): how it was made."""
TRAINED_FILE = "trained_documents.json"
"""Beside a round's model: which goldset documents it trained on (:mod:`harness.training.seen`)."""
DESCRIPTION_FILES = (MODEL_CARD, TRAINED_FILE)
"""Files tunebench writes into a model folder that describe the model and change none of its vectors
(an encoder's fingerprint leaves them out, so a round that kept its start's weights shares its vectors)."""


class LossConfig(StrictModel):
    """``infonce``: MultipleNegativesRankingLoss (in-batch negatives, plus mined ones); ``infonce-symmetric``
    adds the document-to-query direction; ``cached-infonce`` is GradCache (Gao et al. 2021): the same
    loss for large batches in the memory of ``mini_batch_size``; ``triplet`` and ``cosine`` need
    negatives or scores in the pair files."""

    kind: Literal["infonce", "infonce-symmetric", "cached-infonce", "triplet", "cosine"] = "infonce"
    temperature: float = Field(0.05, gt=0, description="InfoNCE's tau; the loss's scale is 1 / tau")
    mini_batch_size: int = Field(32, ge=1, description="cached-infonce only")
    margin: float = Field(0.25, ge=0, description="triplet only (cosine distance)")


class MiningConfig(StrictModel):
    """Hard-negative mining rounds (round 0 uses in-batch negatives only; each later round mines with
    the previous round's model). False negatives are filtered as NV-Retriever's TopK-PercPos (Moreira
    et al. 2024): a candidate scoring above ``max_relative`` x its positive's score is dropped."""

    rounds: int = Field(1, ge=0, description="mining rounds after round 0 (0: in-batch negatives only)")
    negatives: int | None = Field(None, ge=1, description="mined negatives per pair (default: 1; each adds a document to every pair of a step)")
    depth: int = Field(100, ge=1, description="documents retrieved per training query")
    rank_from: int = Field(0, ge=0, description="skip this many top candidates (after positives are dropped)")
    max_relative: float = Field(0.95, gt=0, le=1)
    start_from: Literal["previous", "base"] = "previous"
    epochs: int | None = Field(1, ge=1, description="epochs of each mining round; it starts from the previous round's model, so one is usually enough (none: the job's epochs)")
    stop_early: bool = Field(
        True, description="with a dev split: evaluate four times an epoch, stop when an evaluation beats neither the previous round nor an earlier one, "
        "and keep the previous round's weights when none beat it"
    )
    index: Literal["exact", IndexKind] = Field(
        "exact", description="how the corpus is searched: exact (numpy), or a faiss index of that kind at its defaults (flat: exact in shards; hnsw, ivf: approximate)"
    )

    @model_serializer(mode="wrap")
    def _exact_as_before(self, handler):
        """Exact mining dumps as it did before ``index`` existed: the job's fingerprint (a hash of the
        dump) names its model folders, so models trained then are still found, not trained again."""
        dumped = handler(self)
        if self.index == "exact":
            dumped.pop("index", None)
        return dumped


class LoraSettings(StrictModel):
    """LoRA through peft (Hu et al. 2021): low-rank updates on ``target_modules`` ("all-linear", or names
    such as ["query", "value"] for BERT, ["q_proj", "v_proj"] for decoders). The saved model is merged
    (loads as a plain sentence-transformers folder); ``save_adapter`` also keeps the adapter alone."""

    r: int = Field(16, ge=1)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] | str = "all-linear"
    save_adapter: bool = True


class PairFile(StrictModel):
    path: str
    weight: float = Field(1.0, gt=0, description="share of training batches under proportional sampling")


class TrainConfig(StrictModel):
    """One fine-tuning job. ``goldset``'s ``train_split`` gives pairs; ``eval_split`` picks the best epoch."""

    name: str = "finetune"
    base_model: str = DEFAULT_MODEL
    goldset: str | None = "demo"
    train_split: str | None = Field("train", description='split whose judgements become pairs; "" for none (pair files only: the goldset evaluates)')
    eval_split: str | None = Field("dev", description='split that picks the best epoch; "" for none (keep the last)')
    ood: list[str] = Field(default_factory=list, description="out-of-domain goldsets to evaluate besides the goldset's own companions")
    pair_files: list[PairFile] = Field(default_factory=list)
    sampling: Literal["proportional", "round-robin"] = "proportional"
    loss: LossConfig = LossConfig()
    mining: MiningConfig = MiningConfig()
    batch_size: int = Field(32, ge=2)
    learning_rate: float | None = Field(None, gt=0, description="default: 5e-5, or 2e-4 with LoRA")
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    weight_decay: float = Field(0.01, ge=0)
    epochs: int = Field(3, ge=1)
    max_length: int | None = Field(None, ge=8, description="tokens per text in training (default: the 95th percentile of the training documents' token lengths, capped by the model's limit)")
    attention_dropout: float | None = Field(
        0.0, ge=0, lt=1, description="dropout on attention probabilities while training (none: the model's own, 0.1 for BERT models)"
    )
    # 0: PyTorch's fused attention (SDPA) has no dropout on the CPU and falls back to its slow path with
    # it: all-MiniLM-L6-v2, 32 pairs of 256 tokens, 2 cores: 5.5 s a step without, 10.3 s with.
    max_memory: float | None = Field(None, gt=0, description="GB a training step may use (default: the smaller of 4 GB and half the memory available); over it, InfoNCE trains with GradCache")
    query_prompt: str = Field("", description="e.g. an instruction for decoder embedders")
    document_prompt: str = ""
    pooling: Literal["model", "mean", "cls", "lasttoken"] = Field("model", description="'model': the base model's own; 'lasttoken' for decoder (LLM) embedders")
    lora: LoraSettings | None = None
    seed: int = 42
    primary_metric: str = "ndcg@10"
    on_leakage: LeakagePolicy = Field("stop", description="training queries that repeat evaluation queries: stop the run; drop those pairs; or train anyway (counted)")
    on_overlap: OverlapPolicy = Field(
        "keep", description="training pairs about documents evaluation queries are judged on: keep them (records score seen and unseen documents apart) or drop them"
    )
    output_dir: str | None = Field(None, description="default: models/<name>-<fingerprint> beside the leaderboard")

    @field_validator("primary_metric")
    @classmethod
    def _scored_in_training(cls, metric: str) -> str:
        """The best epoch is picked by a metric the dev split is scored with; a typo would end training with an error."""
        if metric not in DEFAULT_METRICS:
            raise ValueError(f"'{metric}' is not a metric the dev split is scored with ({', '.join(DEFAULT_METRICS)}).{did_you_mean(metric, DEFAULT_METRICS)}")
        return metric

    def split_problem(self, goldset: str, splits: list[str]) -> str | None:
        """Why ``train_split`` or ``eval_split`` cannot be read from a goldset with ``splits`` (None: they can)."""
        have = ", ".join(splits) or "none"
        if self.train_split and self.train_split not in splits:
            return (f"train_split = '{self.train_split}', but goldset '{goldset}' has no such split (it has: {have}); "
                    'set train_split to one of those, or train_split = "" and give pair_files')
        if self.eval_split and self.eval_split not in splits:
            usable = ", ".join(s for s in splits if s not in ("test", self.train_split))
            return (f"eval_split = '{self.eval_split}', but goldset '{goldset}' has no such split (it has: {have}); "
                    f'set eval_split to a held-out split other than test{f" ({usable})" if usable else ""}, or eval_split = "" to keep the last epoch')
        return None

    @model_validator(mode="after")
    def _has_data(self) -> TrainConfig:
        if self.eval_split == "":
            self.eval_split = None
        if self.train_split == "":
            self.train_split = None
        if self.learning_rate is None:
            self.learning_rate = 2e-4 if self.lora else 5e-5  # LoRA's updates start at zero and need a larger step
        if not (self.goldset and self.train_split) and not self.pair_files:
            raise ValueError("give a goldset with a train_split (its judgements become pairs) or pair_files")
        if self.eval_split and self.eval_split == "test":
            raise ValueError("the best epoch must not be chosen on the test split; use eval_split = 'dev' (or none)")
        return self

    def fingerprint(self, data_fingerprint: str) -> str:
        """Everything that changes the trained weights (not where they are written)."""
        # max_memory only decides how a step is computed (GradCache gives the same loss and gradients);
        # on_overlap only decides which pairs train, which the data fingerprint already covers
        blob = json.dumps([self.model_dump(mode="json", exclude={"output_dir", "name", "ood", "max_memory", "on_overlap"}), data_fingerprint], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]
