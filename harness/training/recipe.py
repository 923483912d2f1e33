"""The recipe a training job actually runs with: what the configuration leaves open, sized from the
data and the machine before the first step, and written into every model card and record.

- ``max_length``: the 95th percentile of the training documents' token lengths, capped by the
  model's own limit (a corpus of short passages trains on short inputs, not on padding).
- mined negatives: :data:`DEFAULT_NEGATIVES` (set ``mining.negatives`` for more; fewer where the corpus
  offers fewer qualifying candidates for most queries, decided when mining, see :func:`negatives_for`).
- each round's loss and mini-batch: the memory plan of :mod:`harness.training.budget` (GradCache when
  a plain step would not fit the budget); a round that cannot fit is refused here, before any training.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from pathlib import Path

from harness.protocols import ModelShape, Pair, Trainer
from harness.training.budget import MemoryPlan, default_budget_gb, length_percentile, plan_memory
from harness.training.schema import TrainConfig

log = logging.getLogger(__name__)

DEFAULT_NEGATIVES = 1
"""Mined negatives per pair when the configuration leaves it open: sentence-transformers' (anchor,
positive, negative) triplets. Each one adds a document to every pair of a step: on demo, three made
round 1 as long as round 0's three epochs, for the same test score (benchmarks/RESULTS.md)."""
MIN_PAIRS_KEPT = 0.9  # auto negatives: the largest count that at least this share of pairs can fill
LENGTH_SAMPLE = 2000  # texts whose token lengths size max_length (a seeded sample of larger sets)


@dataclass
class Recipe:
    """The resolved choices, and why each was made (``notes``)."""

    max_length: int
    query_tokens: int
    budget_gb: float
    plans: dict[int, MemoryPlan] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)

    def round_config(self, config: TrainConfig, round_index: int) -> TrainConfig:
        """The configuration round ``round_index`` trains with: the resolved length, epochs and loss."""
        plan = self.plans[round_index]
        loss = config.loss.model_copy(update={"kind": plan.loss, **({"mini_batch_size": plan.mini_batch_size} if plan.mini_batch_size else {})})
        update = {"max_length": self.max_length, "loss": loss}
        if round_index and config.mining.epochs:
            update["epochs"] = config.mining.epochs
        return config.model_copy(update=update)

    def card(self, round_index: int, negatives: int | None) -> dict:
        """What the model card and the record say about how this round was sized."""
        return {"max_length": self.max_length, "negatives": negatives, "memory": self.plans[round_index].as_dict(), "notes": self.notes}


def resolve_recipe(config: TrainConfig, datasets: dict[str, list[Pair]], trainer: Trainer, base: Path, rounds: int) -> Recipe:
    """Size the job's open choices from its data and the machine; raises a one-line ConfigError
    (what to lower) when a round cannot fit the memory budget."""
    shape = trainer.model_shape(base)
    pairs = [p for ps in datasets.values() for p in ps]
    documents = _sample(sorted({t for p in pairs for t in (p.positive, *p.negatives)}))
    queries = _sample(sorted({p.query for p in pairs}))
    doc_lengths = trainer.token_lengths(base, [config.document_prompt + t for t in documents])
    query_lengths = trainer.token_lengths(base, [config.query_prompt + t for t in queries])
    notes = {}
    if config.max_length:
        max_length = config.max_length
        notes["max_length"] = "set in the configuration"
    else:
        p95 = length_percentile(doc_lengths)
        max_length = min(p95, shape.max_length)
        notes["max_length"] = f"95th percentile of {len(doc_lengths)} training documents' token lengths ({p95}), capped by the model's limit ({shape.max_length})"
    recipe = Recipe(max_length, min(max_length, max(query_lengths, default=8)), config.max_memory or default_budget_gb(), notes=notes)
    recipe.notes["memory_budget"] = "set in the configuration" if config.max_memory else "the smaller of 4 GB and half the memory available"
    given_negatives = min((len(p.negatives) for p in pairs), default=0)
    for r in range(rounds + 1):
        negatives = given_negatives if r == 0 else (config.mining.negatives or DEFAULT_NEGATIVES)
        recipe.plans[r] = _plan(config, shape, recipe, negatives, f"fine-tuning '{config.name}' round {r}")
        if recipe.plans[r].switched:
            log.warning("%s round %d: %s", config.name, r, recipe.plans[r].describe())
    return recipe


def _plan(config: TrainConfig, shape: ModelShape, recipe: Recipe, negatives: int, what: str) -> MemoryPlan:
    trainable = max(1, shape.params // 50) if config.lora else None  # LoRA trains ~1-2% of the weights
    return plan_memory(
        shape, loss=config.loss.kind, batch_size=config.batch_size, negatives=negatives, query_tokens=recipe.query_tokens, document_tokens=recipe.max_length,
        budget_gb=recipe.budget_gb, mini_batch_size=config.loss.mini_batch_size, trainable=trainable, what=what,
    )


def negatives_for(candidates: list[int], configured: int | None) -> int:
    """Negatives per pair: the configured count, else the largest count up to :data:`DEFAULT_NEGATIVES`
    that at least 90% of pairs can fill from their qualifying candidates (at least one)."""
    if configured:
        return configured
    for k in range(DEFAULT_NEGATIVES, 0, -1):
        if sum(c >= k for c in candidates) >= MIN_PAIRS_KEPT * len(candidates):
            return k
    return 1


def _sample(texts: list[str]) -> list[str]:
    return texts if len(texts) <= LENGTH_SAMPLE else random.Random(0).sample(texts, LENGTH_SAMPLE)
