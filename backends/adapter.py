"""Query-side adapters over frozen embeddings: fine-tuning for embedders that cannot be fine-tuned.

API embedders often offer no fine-tuning (Cohere deprecated its fine-tuning API in September 2025;
Voyage never had one), but their vectors can still be adapted: a small map learns to move a query's
vector towards its relevant documents' vectors, trained on a goldset's training split. Documents are
never re-embedded (the corpus index, often the expensive part, stays as the vendor made it); only
the query side learns, so the adapter costs one matrix product per query at search time.

This module is the adapter folder's format and its serving side: :class:`AdapterCard`
(``adapter.json``), :func:`save_adapter`, :func:`read_card`, :func:`read_weights`, and
:class:`AdapterEncoder` (encoder backend ``adapter``), which serves a folder as an
:class:`~harness.protocols.Encoder`: documents get the base vectors unchanged, queries the adapted ones,
computed by :func:`apply_adapter` with numpy (torch is needed to train, not to serve, and is not
imported here). Training, and :func:`~harness.training.adapter.fit_adapter` which writes the folder,
live in :mod:`harness.training.adapter`.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from harness.cache import Cache, CachedEncoder
from harness.choices import AdapterKind
from harness.config import validate
from harness.errors import ConfigError
from harness.protocols import InputType, PaidEncoder
from harness.registry import EncoderConfig, build_encoder

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
    leakage: dict[str, int | str] = Field(description="query leaks and document overlap found in training (counts, per kind) and the on_leakage / on_overlap policies applied")
    eval_split: str | None = Field(None, description="split whose nDCG@10 chose the epoch kept (None: the last epoch)")
    best_epoch: int | None = Field(None, description="the epoch kept, when an eval_split chose it")


class AdapterCard(BaseModel):
    """``adapter.json``: everything needed to rebuild the encoder and to know what it was trained on."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[SCHEMA_VERSION]
    kind: AdapterKind
    dim: int
    formula: str
    options: dict[str, Any] = Field(description="the training options (harness.training.adapter.AdapterOptions), resolved")
    base: dict[str, Any] = Field(description="the base EncoderConfig (backend, model, prompts, normalize, ...)")
    base_fingerprint: str
    training: TrainingData
    history: list[dict[str, int | float]]
    versions: dict[str, str]


# -- saving, loading and serving -----------------------------------------------------------------------


def save_adapter(weights: Mapping[str, np.ndarray], card: Mapping[str, Any], folder: Path) -> Path:
    """Write the weights (name -> float32 array), then ``adapter.json`` (last, so a folder with a card is
    complete). ``card`` is an :class:`AdapterCard` without ``schema_version`` and ``formula``, which are
    this format's to fill in."""
    from safetensors.numpy import save_file

    checked = validate(AdapterCard, {**card, "schema_version": SCHEMA_VERSION, "formula": FORMULAS.get(card.get("kind"), "")}, f"{folder / CARD_FILE}")
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.items()}, str(folder / WEIGHTS_FILE))
    (folder / CARD_FILE).write_text(checked.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return folder


def read_card(folder: Path) -> AdapterCard:
    """The folder's :class:`AdapterCard`, or a one-line :class:`ConfigError` naming the path and the fix."""
    fix = "give a folder written by harness.training.adapter.fit_adapter (it holds adapter.json and adapter.safetensors)"
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
    d, h = card.dim, card.options.get("hidden", 0)
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
    """:class:`~harness.training.adapter.QueryAdapter`'s forward pass in numpy (see :data:`FORMULAS`):
    serving an adapter needs no torch, and numpy's BLAS is the pool a latency measurement already
    pins to one thread."""
    if kind == "linear":
        y = x + x @ weights["delta.weight"].T + weights["delta.bias"]
    else:
        h = x @ weights["up.weight"].T + weights["up.bias"]
        gelu = 0.5 * h * (1.0 + np.tanh(np.float32(np.sqrt(2.0 / np.pi)) * (h + np.float32(0.044715) * h**3)))
        y = x + gelu @ weights["down.weight"].T + weights["down.bias"]
    # torch.nn.functional.normalize's eps, so both paths agree on a zero vector too
    return (y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)).astype(np.float32, copy=False)


class AdapterEncoder:
    """An :class:`~harness.protocols.Encoder` whose ``model`` is an adapter folder (written by
    :func:`~harness.training.adapter.fit_adapter`).

    The base encoder is rebuilt from ``adapter.json``: documents get its vectors unchanged, queries
    the adapter applied to its query vectors. With a ``cache``, base document vectors (and a paid
    base's query vectors) go through it, so what the base rung embedded costs nothing again.
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
        self.folder = Path(model).expanduser()
        self.card = read_card(self.folder)
        self._check_restated(max_length=max_length, normalize=normalize, query_prompt=query_prompt, document_prompt=document_prompt)
        base = EncoderConfig.model_validate({**self.card.base, **({"batch_size": batch_size} if batch_size else {})})
        self.base_encoder = build_encoder(base)
        self.base = CachedEncoder(self.base_encoder, cache) if cache is not None else self.base_encoder
        paid = isinstance(self.base_encoder, PaidEncoder)
        # A local base encodes queries afresh, as harness.retrieval.retrievers.EncoderReranker does: it is cheap, and
        # a latency probe then times the real query path, not a cache hit. A paid base's are never bought twice.
        self._query_base = self.base if paid else self.base_encoder
        if cache is None and paid:
            log.warning("adapter '%s': no cache given, so its paid base '%s' embeds every text again", self.folder, base.model)
        if paid:  # the base's bill is the adapter rung's: its price, and the units of every vector it serves
            self.price_key = self.base_encoder.price_key
            self.encode_with_usage = self._encode_with_usage
        # Both now, so a stale or broken adapter stops a run before any work.
        self._fingerprint = self._adapter_fingerprint()
        self.weights = read_weights(self.folder, self.card)

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

    def _encode_with_usage(self, texts: Sequence[str], *, input_type: InputType) -> tuple[np.ndarray, float | None]:
        """:meth:`encode`, and the base's billed units for these texts (bought now or before; None without a cache)."""
        before = self.base.stats.units if isinstance(self.base, CachedEncoder) else None
        vectors = self.encode(texts, input_type=input_type)
        return vectors, None if before is None else self.base.stats.units - before

    def encode(self, texts: Sequence[str], *, input_type: InputType) -> np.ndarray:
        """Base vectors for documents; adapted, L2-normalised base vectors for queries."""
        if not texts:
            return np.zeros((0, self.card.dim), dtype=np.float32)
        if input_type == "document":
            return np.asarray(self.base.encode(list(texts), input_type="document"), dtype=np.float32)
        vectors = np.asarray(self._query_base.encode(list(texts), input_type="query"), dtype=np.float32)
        return apply_adapter(self.weights, self.card.kind, vectors)


# The folder format, as harness.training.adapter writes and reads it (harness.protocols.AdapterFormat).
AdapterEncoder.save = staticmethod(save_adapter)
AdapterEncoder.read_card = staticmethod(read_card)
