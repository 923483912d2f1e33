"""Query-side adapters over frozen embeddings: fine-tuning for embedders that cannot be fine-tuned.

API embedders often offer no fine-tuning (Cohere deprecated its fine-tuning API in September 2025;
Voyage never had one), but their vectors can still be adapted: a small map learns to move a query's
vector towards its relevant documents' vectors, trained on a goldset's training split. Documents are
never re-embedded (the corpus index, often the expensive part, stays as the vendor made it); only
the query side learns, so the adapter costs one matrix product per query at search time.

:func:`fit_adapter` embeds the training data through the cache (an API base is paid once, and
documents the base rung embedded already cost nothing), trains with :func:`train_adapter` and writes
a folder; :class:`AdapterEncoder` (encoder backend ``adapter``) serves that folder as an
:class:`~harness.protocols.Encoder`: documents get the base vectors unchanged, queries the adapted ones.

The loss is InfoNCE (van den Oord et al. 2018, "Representation Learning with Contrastive
Predictive Coding") over (adapted query, positive document) with in-batch negatives, plus optional
hard negatives mined once with the frozen base vectors and filtered with NV-Retriever's TopK-PercPos
rule (Moreira et al. 2024, "NV-Retriever: Improving text embedding models with effective
hard-negative mining").
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from harness.cache import Cache, CachedEncoder
from harness.config import validate
from harness.errors import ConfigError
from harness.protocols import InputType

if TYPE_CHECKING:
    from torch.nn import Module

    from harness.goldset import Goldset
    from harness.rungs import EncoderConfig

log = logging.getLogger(__name__)

WEIGHTS_FILE = "adapter.safetensors"
CARD_FILE = "adapter.json"
SCHEMA_VERSION = 1
FORMULAS = {
    "linear": "normalize(x + delta.weight @ x + delta.bias)",
    "residual": "normalize(x + down.weight @ gelu_tanh(up.weight @ x + up.bias) + down.bias)",
}
"""What each kind computes from a base query vector ``x``, written into adapter.json so the map can be
applied outside tunebench (a search service, with numpy) from the safetensors file alone."""


class AdapterOptions(BaseModel):
    """Training options, with the defaults and why. Unknown keys are rejected."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["linear", "residual"] = "linear"
    hidden: int = Field(256, ge=1, description="residual kind's bottleneck width")
    # 256: a bottleneck keeps the residual adapter small (2*d*256 weights), as in the adapters of
    # Houlsby et al. 2019, so it fits the hundreds of training queries a goldset usually has.
    epochs: int = Field(10, ge=1)
    # 10 epochs of a few dozen steps each: enough for a d x d map to move from identity on a few hundred
    # pairs, few enough not to memorise them (no early stop: check a dev split with a dense rung).
    lr: float = Field(1e-3, gt=0)
    # AdamW at 1e-3: the usual rate for small heads trained from scratch (a transformer's 2e-5 would
    # barely move a freshly initialised map).
    weight_decay: float = Field(0.01, ge=0)
    # torch's AdamW default. The parameters are deviations from the identity (see QueryAdapter), so
    # decay shrinks the adapter towards the base model, never towards the zero map.
    batch_size: int = Field(32, ge=1)
    # In-batch negatives grow with the batch; 32 keeps several steps per epoch on small training splits.
    temperature: float = Field(0.05, gt=0)
    # 0.05 as in SimCSE (Gao et al. 2021) and most InfoNCE retrievers: logits of unit vectors span +-20.
    hard_negatives: int = Field(4, ge=0)
    # A few mined negatives per query, as NV-Retriever does; they are free here (vectors are precomputed).
    max_negative_ratio: float = Field(0.95, gt=0)
    # TopK-PercPos (Moreira et al. 2024): a mined negative scoring above 95% of the positive's score is
    # likely an unjudged relevant document (a false negative), so it is skipped.
    seed: int = 0


class TrainingData(BaseModel):
    """What the adapter was trained on: the goldset split, its content hash, and what embedding it cost."""

    model_config = ConfigDict(extra="forbid")

    goldset: str
    split: str
    fingerprint: str = Field(description="the split's content hash (Goldset.split_fingerprint): texts, queries and judgements")
    queries: int
    pairs: int
    documents: int
    embedding: dict[str, int | float] = Field(description="texts encoded and served from the cache while fitting, billed units")


class AdapterCard(BaseModel):
    """``adapter.json``: everything needed to rebuild the encoder and to know what it was trained on."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1]
    kind: Literal["linear", "residual"]
    dim: int
    formula: str
    options: AdapterOptions
    base: dict[str, Any] = Field(description="the base EncoderConfig (backend, model, prompts, normalize, ...)")
    base_fingerprint: str
    training: TrainingData
    history: list[dict[str, int | float]]
    versions: dict[str, str]


# -- the adapter module --------------------------------------------------------------------------------
# torch is imported on first use, not with this module: `bench validate` imports every backend it
# checks, and a warm cache serves an adapter rung with no torch at all. ``QueryAdapter`` is resolved
# through the module's ``__getattr__`` (PEP 562), so ``from backends.adapter import QueryAdapter`` works.


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
        2016) in its tanh form, so :func:`apply_adapter` computes the same map in numpy without erf.
        """

        def __init__(self, dim: int, kind: str = "linear", hidden: int = 256):
            super().__init__()
            if kind not in FORMULAS:
                raise ConfigError(f"unknown adapter kind '{kind}' (choices: {', '.join(FORMULAS)})")
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
    from harness.search import top_k_dense

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


def train_adapter(pairs: Sequence[tuple[int, int]], doc_vectors: np.ndarray, query_vectors: np.ndarray, **options) -> tuple[Module, list[dict[str, int | float]]]:
    """Train a :class:`QueryAdapter` on ``(query row, document row)`` pairs of the given vectors.

    ``options`` are :class:`AdapterOptions` fields (``kind``, ``epochs``, ``lr``, ``batch_size``,
    ``temperature``, ``hard_negatives``, ``seed``, ...). The document vectors stay frozen; the same
    inputs and seed give the same weights on CPU. Returns the adapter (in eval mode) and one
    ``{"epoch", "loss", "steps"}`` entry per epoch.
    """
    import torch

    opts = validate(AdapterOptions, options, "adapter options")
    data = _TrainingSet.build(pairs, doc_vectors, query_vectors, opts)
    adapter = new_adapter(data.docs.shape[1], opts)
    optimizer = torch.optim.AdamW(adapter.parameters(), lr=opts.lr, weight_decay=opts.weight_decay)
    rng = np.random.default_rng(opts.seed)
    history: list[dict[str, int | float]] = []
    adapter.train()
    with _one_torch_thread():
        for epoch in range(1, opts.epochs + 1):
            losses = [_step(adapter, optimizer, data, batch, opts.temperature) for batch in batches_without_duplicates(data.pairs[:, 1], opts.batch_size, rng)]
            history.append({"epoch": epoch, "loss": round(float(np.mean(losses)), 6), "steps": len(losses)})
            log.info("adapter epoch %d/%d: loss %.4f", epoch, opts.epochs, history[-1]["loss"])
    return adapter.eval(), history


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
        negatives = mine_hard_negatives(pairs_arr, query_vectors, doc_vectors, opts.hard_negatives, opts.max_negative_ratio)
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


def fit_adapter(goldset: Goldset, split: str, base: EncoderConfig | Mapping, cache: Cache, out_dir: Path | str, **options) -> Path:
    """Train an adapter for the ``base`` encoder on ``split`` of ``goldset``; return the folder written.

    Documents and the split's queries are embedded through ``cache`` (nothing embedded before is
    embedded or paid for again); every (query, document) judged with grade > 0 is a training pair.
    ``options`` are :class:`AdapterOptions` fields. The folder holds ``adapter.safetensors`` and
    ``adapter.json`` (:class:`AdapterCard`); give it as the ``model`` of an ``adapter`` encoder.
    """
    from harness.retrieval import build_encoder
    from harness.rungs import EncoderConfig

    opts = validate(AdapterOptions, options, "adapter options")
    if split == "test":
        raise ConfigError("an adapter must never be trained on the test split it is evaluated on; fit it on 'train' (or 'dev')")
    config = _portable(validate(EncoderConfig, base if isinstance(base, Mapping) else base.model_dump(), "adapter base encoder"))
    encoder = CachedEncoder(build_encoder(config), cache)
    queries = goldset.split_queries(split)
    doc_ids = list(goldset.corpus)
    doc_vectors = encoder.encode([goldset.document_text(d) for d in goldset.corpus.values()], input_type="document")
    docs_stats = encoder.take_stats()
    query_vectors = encoder.encode(list(queries.values()), input_type="query")
    pairs = judged_pairs(goldset.split_qrels(split), list(queries), doc_ids)
    adapter, history = train_adapter(pairs, doc_vectors, query_vectors, **opts.model_dump())
    training = TrainingData(
        goldset=goldset.name, split=split, fingerprint=goldset.split_fingerprint(split), queries=len(queries), pairs=len(pairs),
        documents=len(doc_ids), embedding=_embedding_counts(docs_stats, encoder.take_stats()),
    )
    card = AdapterCard(
        schema_version=SCHEMA_VERSION, kind=opts.kind, dim=doc_vectors.shape[1], formula=FORMULAS[opts.kind], options=opts,
        base=config.model_dump(mode="json"), base_fingerprint=encoder.fingerprint, training=training, history=history, versions=_versions(),
    )
    return save_adapter(adapter, card, Path(out_dir))


def _portable(config: EncoderConfig) -> EncoderConfig:
    """A base model given as a relative local folder is recorded absolute, so the adapter folder
    works from any working directory."""
    path = Path(config.model).expanduser()
    return config.model_copy(update={"model": str(path.resolve())}) if path.is_dir() else config


def judged_pairs(qrels: Mapping[str, Mapping[str, int]], query_ids: Sequence[str], doc_ids: Sequence[str]) -> list[tuple[int, int]]:
    """``(query row, document row)`` for every judgement with grade > 0."""
    doc_row = {d: i for i, d in enumerate(doc_ids)}
    return [(qi, doc_row[d]) for qi, qid in enumerate(query_ids) for d, grade in qrels[qid].items() if grade > 0 and d in doc_row]


def _embedding_counts(docs, queries) -> dict[str, int | float]:
    return {
        "documents_encoded": docs.computed, "documents_cached": docs.hits, "queries_encoded": queries.computed,
        "queries_cached": queries.hits, "api_calls": docs.api_calls + queries.api_calls, "units": round(docs.units + queries.units, 3),
    }


def _versions() -> dict[str, str]:
    from harness.environment import package_versions

    return {k: v for k, v in package_versions().items() if k in ("torch", "numpy", "sentence-transformers")}


def save_adapter(adapter: Module, card: AdapterCard, folder: Path) -> Path:
    """Write the weights, then ``adapter.json`` (last, so a folder with a card is complete)."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous() for k, v in adapter.state_dict().items()}, str(folder / WEIGHTS_FILE))
    (folder / CARD_FILE).write_text(card.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return folder


# -- loading and serving -------------------------------------------------------------------------------


def read_card(folder: Path) -> AdapterCard:
    """The folder's :class:`AdapterCard`, or a one-line :class:`ConfigError` naming the path and the fix."""
    fix = "give a folder written by backends.adapter.fit_adapter (it holds adapter.json and adapter.safetensors)"
    if not folder.is_dir():
        raise ConfigError(f"adapter folder '{folder}' does not exist; {fix}")
    for name in (CARD_FILE, WEIGHTS_FILE):
        if not (folder / name).is_file():
            raise ConfigError(f"adapter folder '{folder}' has no {name}; {fix}")
    try:
        data = json.loads((folder / CARD_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"{folder / CARD_FILE}: not valid JSON ({exc}); fit the adapter again") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{folder / CARD_FILE}: not a JSON object; fit the adapter again")
    return validate(AdapterCard, data, str(folder / CARD_FILE))


def _shapes(card: AdapterCard) -> dict[str, tuple[int, ...]]:
    d, h = card.dim, card.options.hidden
    if card.kind == "linear":
        return {"delta.bias": (d,), "delta.weight": (d, d)}
    return {"down.bias": (d,), "down.weight": (d, h), "up.bias": (h,), "up.weight": (h, d)}


def read_weights(folder: Path, card: AdapterCard) -> dict[str, np.ndarray]:
    """The adapter's tensors as float32 numpy arrays, checked against the card's kind and sizes."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    path = folder / WEIGHTS_FILE
    try:
        weights = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise ConfigError(f"{path}: not a readable safetensors file ({exc}); fit the adapter again") from exc
    shapes = {k: tuple(v.shape) for k, v in sorted(weights.items())}
    if shapes != _shapes(card):
        raise ConfigError(f"{path}: tensors {shapes} do not fit a {card.kind} adapter of {card.dim} dimensions ({CARD_FILE}); fit the adapter again")
    return {k: v.astype(np.float32, copy=False) for k, v in weights.items()}


def apply_adapter(weights: Mapping[str, np.ndarray], kind: str, x: np.ndarray) -> np.ndarray:
    """:class:`QueryAdapter`'s forward pass in numpy (see :data:`FORMULAS`): serving an adapter needs
    no torch, and numpy's BLAS is the pool a latency measurement already pins to one thread."""
    if kind == "linear":
        y = x + x @ weights["delta.weight"].T + weights["delta.bias"]
    else:
        h = x @ weights["up.weight"].T + weights["up.bias"]
        gelu = 0.5 * h * (1.0 + np.tanh(np.float32(np.sqrt(2.0 / np.pi)) * (h + np.float32(0.044715) * h**3)))
        y = x + gelu @ weights["down.weight"].T + weights["down.bias"]
    # torch.nn.functional.normalize's eps, so both paths agree on a zero vector too
    return (y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)).astype(np.float32, copy=False)


class AdapterEncoder:
    """An :class:`~harness.protocols.Encoder` whose ``model`` is an adapter folder (see :func:`fit_adapter`).

    The base encoder is rebuilt from ``adapter.json``: documents get its vectors unchanged, queries
    the adapter applied to its query vectors. With a ``cache``, base vectors go through it, so
    documents the base rung embedded cost nothing (they are not bought again from a paid API).
    ``batch_size`` passes to the base; prompts, ``max_length`` and ``normalize`` belong to the base
    the adapter was trained on, so they may only restate the values in ``adapter.json``.
    """

    def __init__(
        self,
        model: str,
        *,
        cache: Cache | None = None,
        batch_size: int | None = None,
        max_length: int | None = None,
        normalize: bool = True,
        query_prompt: str = "",
        document_prompt: str = "",
    ):
        from harness.retrieval import build_encoder
        from harness.rungs import EncoderConfig

        self.folder = Path(model).expanduser()
        self.card = read_card(self.folder)
        self._check_restated(max_length=max_length, normalize=normalize, query_prompt=query_prompt, document_prompt=document_prompt)
        base = EncoderConfig.model_validate({**self.card.base, **({"batch_size": batch_size} if batch_size else {})})
        self.base_encoder = build_encoder(base)
        self.base = CachedEncoder(self.base_encoder, cache) if cache is not None else self.base_encoder
        if cache is None and hasattr(self.base_encoder, "encode_with_usage"):
            log.warning("adapter '%s': no cache given, so its paid base '%s' embeds every text again", self.folder, base.model)
        self._fingerprint = self._adapter_fingerprint()  # now, so a stale adapter stops a run before any work

    def _check_restated(self, **given) -> None:
        defaults = inspect.signature(AdapterEncoder).parameters
        for key, value in given.items():
            if value != defaults[key].default and value != self.card.base.get(key):
                raise ConfigError(
                    f"adapter '{self.folder}' was trained on base vectors with {key}={self.card.base.get(key)!r}, not {value!r}; "
                    f"leave {key} unset on the adapter (set it on the base encoder and fit again)"
                )

    @property
    def fingerprint(self) -> str:
        """``adapter-`` + hash of the base encoder's fingerprint and the weights file's bytes."""
        return self._fingerprint

    def _adapter_fingerprint(self) -> str:
        base = self.base_encoder.fingerprint
        if base != self.card.base_fingerprint:
            raise ConfigError(
                f"adapter '{self.folder}' was trained on base vectors '{self.card.base_fingerprint}', but its base encoder now gives "
                f"'{base}' (the model or its settings changed); fit the adapter again"
            )
        h = hashlib.sha256(base.encode())
        h.update((self.folder / WEIGHTS_FILE).read_bytes())
        return "adapter-" + h.hexdigest()[:24]

    @cached_property
    def weights(self) -> dict[str, np.ndarray]:
        return read_weights(self.folder, self.card)

    def encode(self, texts: Sequence[str], *, input_type: InputType) -> np.ndarray:
        """Base vectors for documents; adapted, L2-normalised base vectors for queries."""
        if not texts:
            return np.zeros((0, self.card.dim), dtype=np.float32)
        vectors = np.asarray(self.base.encode(list(texts), input_type=input_type), dtype=np.float32)
        return vectors if input_type == "document" else apply_adapter(self.weights, self.card.kind, vectors)
