"""Fitting query adapters over frozen embeddings: the options, the torch module, hard-negative
mining, the loss, the training loop, and :func:`fit_adapter`, which trains on a goldset split and
writes the folder that the ``adapter`` encoder backend serves.

:func:`fit_adapter` embeds the training data through the cache (an API base is paid once, and
documents the base rung embedded already cost nothing), trains with :func:`train_adapter` and writes
the folder through the backend's :class:`~harness.protocols.AdapterFormat`.

The loss is InfoNCE (van den Oord et al. 2018, "Representation Learning with Contrastive
Predictive Coding") over (adapted query, positive document) with in-batch negatives, plus optional
hard negatives mined once with the frozen base vectors and filtered with NV-Retriever's TopK-PercPos
rule (Moreira et al. 2024, "NV-Retriever: Improving text embedding models with effective
hard-negative mining").
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import Field

from harness import registry
from harness.cache import Cache, CachedEncoder
from harness.choices import AdapterKind, values
from harness.config import StrictModel, validate
from harness.errors import ConfigError
from harness.protocols import AdapterFormat
from harness.registry import EncoderConfig, build_encoder
from harness.training.seen import write_trained

if TYPE_CHECKING:
    from torch.nn import Module

    from harness.data.goldset import Goldset

log = logging.getLogger(__name__)


class AdapterOptions(StrictModel):
    """Training options, with the defaults and why. Unknown keys are rejected; every adapter card
    records them, resolved."""

    kind: AdapterKind = "linear"
    hidden: int = Field(256, ge=1, description="residual kind's bottleneck width")
    # 256: a bottleneck keeps the residual adapter small (2*d*256 weights), as in the adapters of
    # Houlsby et al. 2019, so it fits the hundreds of training queries a goldset usually has.
    epochs: int = Field(3, ge=1)
    # 3, as bench train: longer training memorises the training queries. MiniLM on SciFact (624 pairs
    # without query leaks or test-judged documents; base 0.645 nDCG@10 on test): 3 epochs 0.643, 10 epochs 0.628, 30 epochs 0.606.
    # With an evaluation split (fit_adapter's eval_split) the best epoch on it is kept, and epoch 0,
    # the identity, competes: an adapter that does not help on dev is the base model unchanged.
    lr: float = Field(1e-3, gt=0)
    # AdamW at 1e-3: the usual rate for small heads trained from scratch (a transformer's 2e-5 would
    # barely move a freshly initialised map).
    weight_decay: float = Field(0.01, ge=0)
    # torch's AdamW default. The parameters are deviations from the identity (see
    # QueryAdapter below), so decay shrinks the adapter towards the base model, never towards
    # the zero map.
    batch_size: int = Field(32, ge=1)
    # In-batch negatives grow with the batch; 32 keeps several steps per epoch on small training splits.
    temperature: float = Field(0.05, gt=0)
    # 0.05 as in SimCSE (Gao et al. 2021) and most InfoNCE retrievers: logits of unit vectors span +-20.
    hard_negatives: int = Field(4, ge=0)
    # A few mined negatives per query, as NV-Retriever does; they are free here (vectors are precomputed).
    max_relative: float = Field(0.95, gt=0, le=1)
    # TopK-PercPos (Moreira et al. 2024): a mined negative scoring above 95% of the positive's score is
    # likely an unjudged relevant document (a false negative), so it is skipped. Named and bounded as
    # bench train's mining.max_relative.
    seed: int = 0


# -- the adapter module --------------------------------------------------------------------------------
# torch is imported on first use, not with this module, so importing it for its options or to check a
# config stays light (serving applies the weights with numpy, see backends.adapter.apply_adapter).
# ``QueryAdapter`` is resolved through the module's ``__getattr__`` (PEP 562), so
# ``from harness.training.adapter import QueryAdapter`` works.


def __getattr__(name: str):
    if name == "QueryAdapter":
        return _query_adapter_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@functools.cache
def _query_adapter_class() -> type:
    import torch

    class QueryAdapter(torch.nn.Module):
        """Maps a base query vector (dim ``d``) into the document space; the output is L2-normalised.

        ``linear``: ``x -> (I + delta) x + b``, a d x d map with bias that starts as the identity
        (``delta`` and ``b`` zero), stored as its deviation from the identity so weight decay pulls it
        back towards the base model. ``residual``: ``x -> x + W2 gelu(W1 x)`` with a ``hidden``-wide
        bottleneck; ``W2`` starts at zero, so it too starts as the identity. GELU (Hendrycks & Gimpel
        2016) in its tanh form, so :func:`~backends.adapter.apply_adapter` computes the same map in numpy without erf.
        """

        def __init__(self, dim: int, kind: str = "linear", hidden: int = 256):
            super().__init__()
            if kind not in values(AdapterKind):
                raise ConfigError(f"unknown adapter kind '{kind}' (choices: {', '.join(values(AdapterKind))})")
            self.kind = kind
            if kind == "linear":
                self.delta = torch.nn.Linear(dim, dim)
                torch.nn.init.zeros_(self.delta.weight)
                torch.nn.init.zeros_(self.delta.bias)
            else:
                self.up = torch.nn.Linear(dim, hidden)
                self.down = torch.nn.Linear(hidden, dim)
                torch.nn.init.zeros_(self.down.weight)
                torch.nn.init.zeros_(self.down.bias)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            shift = self.delta(x) if self.kind == "linear" else self.down(torch.nn.functional.gelu(self.up(x), approximate="tanh"))
            return torch.nn.functional.normalize(x + shift, dim=-1)

    return QueryAdapter


def new_adapter(dim: int, options: AdapterOptions) -> Module:
    """A freshly initialised :class:`QueryAdapter` (the residual kind's ``W1`` drawn from ``options.seed``)."""
    import torch

    with torch.random.fork_rng(devices=[]):  # seed the init without disturbing the caller's RNG
        torch.manual_seed(options.seed)
        return _query_adapter_class()(dim, options.kind, options.hidden)


# -- training ------------------------------------------------------------------------------------------


def _positives(pairs: np.ndarray) -> dict[int, set[int]]:
    out: dict[int, set[int]] = {}
    for q, d in pairs.tolist():
        out.setdefault(q, set()).add(d)
    return out


def mine_hard_negatives(pairs: np.ndarray, query_vectors: np.ndarray, doc_vectors: np.ndarray, k: int, max_ratio: float) -> np.ndarray:
    """``(n_pairs, k)`` document indices, ``-1`` where fewer than ``k`` qualify: the top-ranked
    documents by the frozen base vectors that are not the query's positives and score at most
    ``max_ratio`` x the pair's positive score (TopK-PercPos, Moreira et al. 2024)."""
    from harness.retrieval.topk import top_k_dense

    out = np.full((len(pairs), k), -1, dtype=np.int64)
    positives = _positives(pairs)
    if k == 0:
        return out
    rows = {q: i for i, q in enumerate(positives)}
    # Searching 4k deep (past the positives) leaves room for candidates the ratio filter removes.
    depth = min(len(doc_vectors), 4 * k + max(len(p) for p in positives.values()))
    indices, scores = top_k_dense(query_vectors[list(positives)], doc_vectors, depth)
    for n, (q, d) in enumerate(pairs.tolist()):
        ceiling = max_ratio * float(query_vectors[q] @ doc_vectors[d])
        found = [j for j, s in zip(indices[rows[q]].tolist(), scores[rows[q]].tolist()) if j not in positives[q] and s <= ceiling][:k]
        out[n, : len(found)] = found
    return out


def batches_without_duplicates(doc_ids: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[list[int]]:
    """Shuffled batches of pair indices in which no document is the positive twice: a duplicate would
    be its own in-batch negative (sentence-transformers' NoDuplicatesBatchSampler does the same)."""
    order = rng.permutation(len(doc_ids)).tolist()
    out = []
    while order:
        batch, seen, rest = [], set(), []
        for i in order:
            if len(batch) < batch_size and doc_ids[i] not in seen:
                batch.append(i)
                seen.add(doc_ids[i])
            else:
                rest.append(i)
        out.append(batch)
        order = rest
    return out


def info_nce(queries, positives, negatives, negative_mask, false_negatives, temperature: float):
    """InfoNCE (van den Oord et al. 2018) of ``B`` adapted queries against their positives ``(B, d)``,
    the other rows' positives (in-batch negatives, minus ``false_negatives[i, j]``: row j's document
    is also relevant to query i) and mined negatives ``(B, K, d)`` where ``negative_mask`` is set."""
    import torch

    in_batch = (queries @ positives.T).masked_fill(false_negatives, float("-inf"))
    mined = torch.einsum("bd,bkd->bk", queries, negatives).masked_fill(~negative_mask, float("-inf"))
    logits = torch.cat([in_batch, mined], dim=1) / temperature
    return torch.nn.functional.cross_entropy(logits, torch.arange(len(queries)))


def train_adapter(
    pairs: Sequence[tuple[int, int]], doc_vectors: np.ndarray, query_vectors: np.ndarray, *, select: Callable[[Module], float] | None = None, **options
) -> tuple[Module, list[dict[str, int | float]]]:
    """Train a :class:`QueryAdapter` on ``(query row, document row)`` pairs of the given vectors.

    ``options`` are :class:`AdapterOptions` fields (``kind``, ``epochs``, ``lr``, ``batch_size``,
    ``temperature``, ``hard_negatives``, ``seed``, ...). The document vectors stay frozen; the same
    inputs and seed give the same weights on CPU. ``select(adapter)`` scores the adapter on held-out
    queries (higher is better) before training and after every epoch, and the best state is kept:
    epoch 0, the identity, included. Returns the adapter (in eval mode) and one ``{"epoch", "loss",
    "steps"}`` entry per epoch (with ``"select"``, and an epoch-0 entry, when ``select`` is given).
    """
    import torch

    opts = validate(AdapterOptions, options, "adapter options")
    data = _TrainingSet.build(pairs, doc_vectors, query_vectors, opts)
    adapter = new_adapter(data.docs.shape[1], opts)
    optimizer = torch.optim.AdamW(adapter.parameters(), lr=opts.lr, weight_decay=opts.weight_decay)
    rng = np.random.default_rng(opts.seed)
    history: list[dict[str, int | float]] = []
    best = _Best(select)
    history += [{"epoch": 0, **best.offer(0, adapter)}] if select else []
    with _one_torch_thread():
        for epoch in range(1, opts.epochs + 1):
            adapter.train()
            losses = [_step(adapter, optimizer, data, batch, opts.temperature) for batch in batches_without_duplicates(data.pairs[:, 1], opts.batch_size, rng)]
            history.append({"epoch": epoch, "loss": round(float(np.mean(losses)), 6), "steps": len(losses), **best.offer(epoch, adapter)})
            log.info("adapter epoch %d/%d: %s", epoch, opts.epochs, history[-1])
    return best.restore(adapter), history


class _Best:
    """The best adapter state so far by ``select`` (no-op without it); epoch 0 is the untrained identity."""

    def __init__(self, select: Callable[[Module], float] | None):
        self.select = select
        self.score, self.state = -np.inf, None

    def offer(self, epoch: int, adapter: Module) -> dict[str, float]:
        if self.select is None:
            return {}
        score = float(self.select(adapter.eval()))
        if score > self.score:
            self.score = score
            self.state = {k: v.detach().clone() for k, v in adapter.state_dict().items()}
        return {"select": round(score, 6)}

    def restore(self, adapter: Module) -> Module:
        if self.state is not None:
            adapter.load_state_dict(self.state)
        return adapter.eval()


@dataclass
class _TrainingSet:
    pairs: np.ndarray  # (n, 2) query row, document row
    positives: dict[int, set[int]]  # query row -> every relevant document row
    negatives: Any  # (n, K) mined document rows, -1 where none
    docs: Any  # torch tensors of the frozen vectors
    queries: Any

    @classmethod
    def build(cls, pairs, doc_vectors: np.ndarray, query_vectors: np.ndarray, opts: AdapterOptions) -> _TrainingSet:
        import torch

        pairs_arr = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        if not len(pairs_arr):
            raise ConfigError("no (query, relevant document) pairs to train an adapter on; the split needs judgements with grade > 0")
        if doc_vectors.shape[1] != query_vectors.shape[1]:
            raise ConfigError(f"query vectors have {query_vectors.shape[1]} dimensions and documents {doc_vectors.shape[1]}; an adapter maps one space")
        negatives = mine_hard_negatives(pairs_arr, query_vectors, doc_vectors, opts.hard_negatives, opts.max_relative)
        return cls(pairs_arr, _positives(pairs_arr), torch.from_numpy(negatives), _tensor(doc_vectors), _tensor(query_vectors))


def _step(adapter, optimizer, data: _TrainingSet, batch: list[int], temperature: float) -> float:
    import torch

    rows = data.pairs[batch]
    queries, docs = rows[:, 0].tolist(), rows[:, 1].tolist()
    false_negatives = torch.tensor([[j != i and d in data.positives[q] for j, d in enumerate(docs)] for i, q in enumerate(queries)])
    mined = data.negatives[batch]
    loss = info_nce(adapter(data.queries[queries]), data.docs[docs], data.docs[mined.clamp(min=0)], mined >= 0, false_negatives, temperature)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


@contextmanager
def _one_torch_thread() -> Iterator[None]:
    """Train on one CPU thread: each step is a few small matrix products, where OpenMP's fork and join
    cost more than they save (on a 2-core machine a 1024-d step took 186 ms on 2 threads, 6 ms on 1),
    and the weights then do not depend on the machine's core count."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _tensor(vectors: np.ndarray):
    import torch

    return torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32))


# -- fitting on a goldset and saving -------------------------------------------------------------------


def fit_adapter(
    goldset: Goldset,
    split: str,
    base: EncoderConfig | Mapping,
    cache: Cache,
    out_dir: Path | str,
    *,
    on_leakage: str = "stop",
    on_overlap: str = "keep",
    eval_split: str | None = None,
    **options,
) -> Path:
    """Train an adapter for the ``base`` encoder on ``split`` of ``goldset``; return the folder written.

    Every (query, document) of ``split`` judged with grade > 0 is a training pair. The leakage guard
    runs as in ``bench train`` against the goldset's evaluation splits: query leaks (a repeated or
    nearly repeated evaluation query) by ``on_leakage`` ("stop", "drop" or "allow"), pairs about
    documents judged for evaluation queries by ``on_overlap`` ("keep" or "drop"); both counts go in
    the card, and the folder records which documents it trained on (:mod:`harness.training.seen`). Documents
    and queries are embedded through ``cache``: nothing embedded before is embedded or paid for again.
    With ``eval_split`` (such as "dev"; never "test"), the epoch with the best nDCG@10 on it is kept,
    the untrained identity included. ``options`` are :class:`AdapterOptions` fields. The folder holds
    ``adapter.safetensors`` and ``adapter.json`` (:class:`AdapterCard`); give it as the ``model`` of
    an ``adapter`` encoder.
    """
    opts = validate(AdapterOptions, options, "adapter options")
    if "test" in (split, eval_split):
        raise ConfigError("an adapter must never be trained or selected on the test split it is evaluated on; fit it on 'train', select on 'dev'")
    if eval_split is not None and eval_split not in goldset.qrels:
        raise ConfigError(f"goldset '{goldset.name}' has no '{eval_split}' split to choose the adapter's epoch on (splits: {', '.join(goldset.qrels)})")
    pairs, leakage = _training_pairs(goldset, split, on_leakage, on_overlap)
    config = _portable(validate(EncoderConfig, base if isinstance(base, Mapping) else base.model_dump(), "adapter base encoder"))
    encoder = CachedEncoder(build_encoder(config), cache)
    doc_row = {d: i for i, d in enumerate(goldset.corpus)}
    doc_vectors = encoder.encode([goldset.document_text(d) for d in goldset.corpus.values()], input_type="document")
    docs_stats = encoder.take_stats()
    query_row = {q: i for i, q in enumerate(dict.fromkeys(p.query_id for p in pairs))}
    query_vectors = encoder.encode([goldset.queries[q] for q in query_row], input_type="query")
    rows = [(query_row[p.query_id], doc_row[p.positive_id]) for p in pairs]
    select = _selector(goldset, eval_split, encoder, doc_vectors) if eval_split else None
    adapter, history = train_adapter(rows, doc_vectors, query_vectors, select=select, **opts.model_dump())
    training = {
        "goldset": goldset.name, "split": split, "fingerprint": goldset.split_fingerprint(split), "queries": len(query_row), "pairs": len(rows),
        "documents": len(doc_row), "embedding": _embedding_counts(docs_stats, encoder.take_stats()), "leakage": leakage,
        "eval_split": eval_split, "best_epoch": max(history, key=lambda h: h["select"])["epoch"] if select else None,
    }
    card = {
        "kind": opts.kind, "dim": doc_vectors.shape[1], "options": opts.model_dump(mode="json"), "base": config.model_dump(mode="json"),
        "base_fingerprint": encoder.fingerprint, "training": training, "history": history, "versions": _versions(),
    }
    weights = {k: v.detach().numpy() for k, v in adapter.state_dict().items()}
    write_trained(Path(out_dir), pairs, goldset)  # before the card: a folder with a card says what it trained on
    return adapter_format().save(weights, card, Path(out_dir))


def adapter_format() -> AdapterFormat:
    """The adapter folder format, from the encoder backend that serves adapters."""
    return registry.load("encoder", "adapter")


def _selector(goldset: Goldset, split: str, encoder: CachedEncoder, doc_vectors: np.ndarray) -> Callable[[Module], float]:
    """nDCG@10 of an adapter's queries of ``split`` against the frozen document vectors."""
    import torch

    from harness.training.dev_eval import SplitScorer

    scorer = SplitScorer(goldset, split, metrics=("ndcg@10",), depth=10)
    base_vectors = _tensor(encoder.encode(list(scorer.queries.values()), input_type="query"))

    def select(adapter: Module) -> float:
        with torch.no_grad():
            adapted = adapter(base_vectors).numpy()
        return scorer.score(adapted, doc_vectors)["ndcg@10"]

    return select


def _training_pairs(goldset: Goldset, split: str, on_leakage: str, on_overlap: str) -> tuple[list, dict[str, int | str]]:
    """The split's judged pairs after the leakage guard against the goldset's other evaluation
    splits (:func:`harness.training.leakage.guard`: the same check, and policies, as fine-tuning)."""
    from harness.data.pair_files import goldset_pairs
    from harness.training.leakage import guard

    eval_splits = [s for s in goldset.manifest.eval_splits if s != split]
    datasets, found = guard({split: goldset_pairs(goldset, split)}, goldset, eval_splits, on_leakage, on_overlap)
    return datasets[split], found.counts(on_leakage, on_overlap)


def _portable(config: EncoderConfig) -> EncoderConfig:
    """A base model given as a relative local folder is recorded absolute, so the adapter folder
    works from any working directory."""
    path = Path(config.model).expanduser()
    return config.model_copy(update={"model": str(path.resolve())}) if path.is_dir() else config


def _embedding_counts(docs, queries) -> dict[str, int | float]:
    return {
        "documents_encoded": docs.computed, "documents_cached": docs.hits, "queries_encoded": queries.computed,
        "queries_cached": queries.hits, "api_calls": docs.api_calls + queries.api_calls, "units": round(docs.units + queries.units, 3),
    }


def _versions() -> dict[str, str]:
    from harness.environment import package_versions

    return {k: v for k, v in package_versions().items() if k in ("torch", "numpy", "sentence-transformers")}
