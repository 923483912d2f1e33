"""Sizing a training round before it starts: a memory budget, the peak a step will need, and the
recipe's data-sized defaults (training length, mined negatives).

The peak of one training step is the process's resting memory (interpreter, torch, the model's
weights), the training state (gradients and AdamW's two moments: 12 bytes per trainable parameter)
and the activations kept for the backward pass, which grow with the texts in one forward pass and
their padded length. Activations per text and layer follow Korthikanti et al. 2022 ("Reducing
Activation Recomputation in Large Transformer Models"): ``s * h * (a + b * heads * s / h)`` values for
``s`` tokens of width ``h``, the second term the attention scores. The constants are fitted on
all-MiniLM-L6-v2 trained on this machine's CPU in fp32 (benchmarks/RESULTS.md, "Memory budget"):
32 texts of 256 tokens took 2.22 GB above rest, 16 took 1.24 GB, 32 of 128 tokens 1.11 GB.

When the plain step does not fit and the loss is InfoNCE, the round switches to GradCache
(Gao et al. 2021, "Scaling Deep Contrastive Learning Batch Size under Memory Limited Setup";
``cached-infonce``: the same loss and gradients, the batch embedded ``mini_batch_size`` texts at a
time) with the largest mini-batch that fits. A round that cannot fit even one text at a time is
refused before any work, naming what to lower.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from harness.errors import ConfigError
from harness.protocols import ModelShape

GB = 1024**3
MB = 1024**2
DEFAULT_BUDGET_GB = 4.0
"""The default budget is the smaller of this and half the memory available: a laptop keeps working."""
REST_BYTES = 420 * MB
"""A process with torch and sentence-transformers imported, before any weights (measured: 540 MB with
all-MiniLM-L6-v2's 90 MB of weights loaded)."""
_ACT_BASE = 19.1  # values per token and hidden unit kept per layer, fp32 (fitted, see module docstring)
_ACT_ATTENTION = 0.88  # values per attention score
_BYTES = 4  # fp32 on CPU; bf16 autocast on a GPU keeps fewer, so this errs on the safe side
SAFETY = 1.15  # the allocator's fragmentation and the loss's own buffers, on top of the estimate
RANKING_LOSSES = ("infonce", "cached-infonce")  # the losses GradCache computes exactly


def default_budget_gb() -> float:
    """The smaller of 4 GB and half the memory available now."""
    import psutil

    return round(min(DEFAULT_BUDGET_GB, psutil.virtual_memory().available / 2 / GB), 2)


def activation_bytes(shape: ModelShape, tokens: int) -> float:
    """Activations one text of ``tokens`` tokens keeps for the backward pass, over all layers."""
    per_layer = tokens * shape.hidden * (_ACT_BASE + _ACT_ATTENTION * shape.heads * tokens / shape.hidden)
    return shape.layers * per_layer * _BYTES


def step_bytes(shape: ModelShape, *, queries: int, documents: int, query_tokens: int, document_tokens: int, trainable: int | None = None) -> float:
    """The estimated peak of one training step with ``queries`` and ``documents`` texts in one forward pass."""
    trainable = shape.params if trainable is None else trainable
    fixed = REST_BYTES + 4 * shape.params + 12 * trainable
    return SAFETY * (fixed + queries * activation_bytes(shape, query_tokens) + documents * activation_bytes(shape, document_tokens))


@dataclass(frozen=True)
class MemoryPlan:
    """How a round fits its budget: the loss it trains with, its mini-batch, and the numbers behind it."""

    budget_mb: int
    estimate_mb: int  # the step as configured
    loss: str
    mini_batch_size: int | None  # GradCache's, when the loss is cached-infonce
    planned_mb: int  # the step as it will run
    switched: bool  # GradCache chosen to fit the budget

    def describe(self) -> str:
        if self.switched:
            return (f"a step as configured needs about {self.estimate_mb / 1024:.1f} GB, over the {self.budget_mb / 1024:.1f} GB memory budget: "
                    f"training with GradCache (cached-infonce, the same loss and gradients), {self.mini_batch_size} texts at a time, about {self.planned_mb / 1024:.1f} GB")
        return f"a step needs about {self.planned_mb / 1024:.1f} GB of the {self.budget_mb / 1024:.1f} GB memory budget"

    def as_dict(self) -> dict:
        return asdict(self)


def plan_memory(
    shape: ModelShape, *, loss: str, batch_size: int, negatives: int, query_tokens: int, document_tokens: int, budget_gb: float, mini_batch_size: int, trainable: int | None = None, what: str = "training"
) -> MemoryPlan:
    """The loss and mini-batch that keep one step of ``batch_size`` pairs (query, positive and
    ``negatives`` mined documents each) within ``budget_gb``; a :class:`ConfigError` when none does."""
    budget = budget_gb * GB
    documents = batch_size * (1 + negatives)

    def need(texts_at_once: int) -> float:  # GradCache: embeddings of the whole batch, activations of a mini-batch
        q, d = min(texts_at_once, batch_size), min(texts_at_once, documents)
        return step_bytes(shape, queries=q, documents=d, query_tokens=query_tokens, document_tokens=document_tokens, trainable=trainable)

    configured = need(mini_batch_size) if loss == "cached-infonce" else need(batch_size + documents)
    plan = dict(budget_mb=round(budget / MB), estimate_mb=round(configured / MB))
    if configured <= budget:
        return MemoryPlan(**plan, loss=loss, mini_batch_size=mini_batch_size if loss == "cached-infonce" else None, planned_mb=plan["estimate_mb"], switched=False)
    if loss not in RANKING_LOSSES or need(1) > budget:
        raise ConfigError(_refusal(what, loss, configured, need(1), budget, batch_size, document_tokens))
    fits = max(m for m in _powers_of_two(min(mini_batch_size, batch_size + documents)) if need(m) <= budget)
    return MemoryPlan(**plan, loss="cached-infonce", mini_batch_size=fits, planned_mb=round(need(fits) / MB), switched=loss != "cached-infonce" or fits != mini_batch_size)


def _powers_of_two(limit: int) -> list[int]:
    return sorted({1, limit, *(2**i for i in range(int(math.log2(max(limit, 1))) + 1))})


def _refusal(what: str, loss: str, configured: float, smallest: float, budget: float, batch_size: int, tokens: int) -> str:
    need = smallest if loss in RANKING_LOSSES else configured
    how = "even one text at a time (GradCache)" if loss in RANKING_LOSSES else f"with the {loss} loss (GradCache applies to infonce only)"
    return (f"{what} needs about {need / GB:.1f} GB per step {how}, over the {budget / GB:.1f} GB memory budget; "
            f"lower max_length (now {tokens}) or batch_size (now {batch_size}), or raise max_memory (bench train --max-memory GB)")


def length_percentile(lengths: Sequence[int], q: float = 95.0) -> int:
    """The ``q``-th percentile of token lengths (nearest rank), at least 8."""
    ordered = sorted(lengths)
    if not ordered:
        return 8
    return max(8, ordered[min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1)])
