"""Everything the core calls on a backend, and the nouns that cross the line.

``harness`` depends on these, never on a backend module: it gets a backend class from
:mod:`harness.registry` by name and calls it only through the protocols below. A backend imports
this module and small kernel helpers (errors, config, the cache), never orchestration.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

InputType = Literal["query", "document"]
Run = dict[str, dict[str, float]]
"""ranx's run shape: ``{query_id: {doc_id: score}}``."""


@runtime_checkable
class Encoder(Protocol):
    """Turns texts into vectors; queries and documents may be encoded differently (prompts, API input types)."""

    @property
    def fingerprint(self) -> str:
        """Stable identity of everything that changes the vectors (weights, prompts, max length,
        normalisation). Computable without loading the model, so a warm cache needs no model."""
        ...

    def encode(self, texts: Sequence[str], *, input_type: InputType) -> np.ndarray:
        """Return a float32 array of shape ``(len(texts), dim)``."""
        ...


@runtime_checkable
class ServesOnRuntimes(Protocol):
    """A local encoder that can serve its model on another inference runtime (ONNX Runtime, OpenVINO):
    the ladder's ``[execution] runtime`` reaches it here, before its first encode."""

    setup_s: float  # seconds spent preparing the runtime (a one-off export, its check) in this process: not encoding

    def use_runtime(self, runtime: str) -> None:
        """Serve on ``runtime`` unless the encoder's own configuration named one."""
        ...

    def runtime_details(self) -> dict[str, Any]:
        """For records: empty on torch; else the runtime, the served model's size, its agreement with torch."""
        ...


@runtime_checkable
class Concurrent(Protocol):
    """A backend that may have several requests in flight (an API); others are called one at a time."""

    concurrency: int


@runtime_checkable
class Batched(Protocol):
    """An encoder that groups texts into requests itself (an API's size and token caps); the cache
    commits each request's vectors as it returns, so a crash loses at most the requests in flight."""

    def batches(self, texts: Sequence[str]) -> list[list[int]]:
        """Indices of ``texts``, one list per request."""
        ...


@runtime_checkable
class PaidEncoder(Protocol):
    """An encoder that bills per call: its price-table key and the units each call was billed for.
    :class:`harness.cache.CachedEncoder` records the units with the vectors: nothing is paid for twice."""

    price_key: str  # e.g. "cohere:embed-v4.0", looked up in the ladder's price table

    def encode_with_usage(self, texts: Sequence[str], *, input_type: InputType) -> tuple[np.ndarray, float | None]:
        """:meth:`Encoder.encode`, and the billed units (None where the API does not say)."""
        ...


@runtime_checkable
class PaidReranker(Protocol):
    """A reranker that bills per call (see :class:`PaidEncoder`)."""

    price_key: str

    def rerank_with_usage(self, query: str, documents: Sequence[str]) -> tuple[Sequence[float], float | None]:
        """:meth:`Reranker.rerank`, and the billed units (None where the API does not say)."""
        ...


@runtime_checkable
class Reranker(Protocol):
    """Re-scores a query's candidate documents (a cross-encoder, or a rerank API)."""

    @property
    def fingerprint(self) -> str:
        """Stable identity of everything that changes the scores (model weights or API model, options)."""
        ...

    def rerank(self, query: str, documents: Sequence[str]) -> Sequence[float]:
        """Return one relevance score per document, in the order given (higher is more relevant)."""
        ...


@runtime_checkable
class Retriever(Protocol):
    """Anything that ranks a corpus for queries: dense search, BM25, fusion."""

    def index(self, corpus: Mapping[str, str]) -> None:
        """Prepare to search ``{doc_id: text}``."""
        ...

    def search(self, queries: Mapping[str, str], top_k: int) -> Run:
        """Return the top ``top_k`` documents per query."""
        ...


@runtime_checkable
class VectorIndex(Protocol):
    """Nearest neighbours by inner product (cosine on normalised vectors) through a search structure (the
    ``index`` registry kind, built from a :class:`harness.registry.IndexConfig`): for corpora that exact
    search (:mod:`harness.retrieval.topk`) cannot search fast enough. Exact search stays the reference:
    the core measures an approximate index's recall against it, never trusts it unmeasured."""

    def build(self, vectors: np.ndarray) -> None:
        """Index float32 row vectors, read in row ranges (and, for a training sample, a sorted list of
        rows), so a memory map or any array-like that reads rows will do; building again replaces them."""
        ...

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(indices, scores)``, each ``(n_queries, min(k, n))``, best first; index -1 where an
        approximate index found fewer than k."""
        ...

    def describe(self) -> dict[str, Any]:
        """The backend, kind and resolved parameters (a default computed from the corpus included), for records."""
        ...

    def index_bytes(self) -> int:
        """Bytes the built index holds in memory: vectors, graph, lists."""
        ...


@dataclass(frozen=True)
class Generation:
    """One LLM answer and the tokens it was billed for (None where the backend does not say)."""

    text: str
    input_tokens: int | None = None
    output_tokens: int | None = None


@runtime_checkable
class Generator(Protocol):
    """Writes text for a prompt: an LLM behind a chat API or in-process (synthetic queries)."""

    @property
    def fingerprint(self) -> str:
        """Stable identity of everything that changes the answers (model, sampling options); never a key or URL."""
        ...

    def generate(self, prompt: str) -> Generation:
        """Answer one user message."""
        ...


@runtime_checkable
class PaidGenerator(Protocol):
    """A generator billed per token: its key in the price table (chat prices per million input and
    output tokens). It may also be :class:`Concurrent`; harness.pairs.generators caches every answer as it arrives."""

    price_key: str


@runtime_checkable
class Tokenizing(Protocol):
    """An encoder that exposes its tokenizer's token offsets, so chunks are cut on model tokens, not words."""

    def token_spans(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        """Character ``(start, end)`` of each token of each text."""
        ...


@runtime_checkable
class EncodeEngine(Protocol):
    """Encodes a large set of texts outside this process (the ``engine`` registry kind, chosen by a
    ladder's ``[execution]`` table): workers each rebuild the encoder once from its configuration and
    hand back blocks of vectors, which :class:`harness.cache.CachedEncoder` commits to the cache one
    by one as they arrive. A killed run so keeps every block it received, and a re-run sends only the rest."""

    label: str  # what a record says encoded its documents, e.g. "ray (2 workers)"

    def encode_blocks(self, encoder: Mapping[str, Any], fingerprint: str, texts: Sequence[str], *, input_type: InputType) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(positions in texts, float32 vectors)`` for each block as it is done, in any order.

        ``encoder`` is a :class:`harness.registry.EncoderConfig` as a plain dict, which each worker
        rebuilds with :func:`harness.registry.build_encoder`; a worker whose encoder does not have
        ``fingerprint`` (another model version on that machine) fails the call before any vector returns."""
        ...


@dataclass
class Pair:
    """One training example: a query, a relevant text, and optional hard negatives, with where it came from."""

    query: str
    positive: str
    negatives: list[str] = field(default_factory=list)
    source: str = ""  # which goldset split or file it came from (multi-task sampling)
    query_id: str | None = None  # goldset pairs: for the leakage check and mining
    positive_id: str | None = None
    generated_from: list[str] = field(default_factory=list)  # synthetic pairs: ids of the documents the query was written from


EncodeFn = Callable[..., np.ndarray]
"""``encode(texts, *, input_type)``: the model being trained as an encoder (prompts applied,
L2-normalised), handed by a :class:`Trainer` to the core's dev evaluation."""


@dataclass
class TrainResult:
    """What one training round left: the model folder, steps taken, the log, the best dev score, and
    what it used (``device``, ``peak_rss_mb``, ``peak_gpu_mb``, ``seconds``)."""

    model_dir: Path
    steps: int
    history: list[dict]
    best_metric: float | None
    resources: dict[str, Any] = field(default_factory=dict)
    kept_start: bool = False  # no evaluation beat ``must_beat``: the saved model is the start model
    trained_metric: float | None = None  # the best dev score the round's own training reached


@dataclass(frozen=True)
class ModelShape:
    """What sizing a training step needs to know of a model, read without loading it."""

    params: int
    hidden: int
    layers: int
    heads: int
    max_length: int  # the longest input the model takes (its max_seq_length)


class Trainer(Protocol):
    """Fine-tunes a model on pairs, one round at a time (the ``trainer`` registry kind).

    ``config`` is a :class:`harness.training.schema.TrainConfig` (loss, batch, learning rate, LoRA, ...).
    The core plans rounds, mines negatives and records results; the trainer only trains and saves.
    """

    def resolve_model(self, model: str) -> Path:
        """The local folder of ``model`` (a hub id or a folder), or :class:`~harness.errors.ModelUnavailable`."""
        ...

    def train(
        self,
        config: Any,
        datasets: dict[str, list[Pair]],
        *,
        start_model: Path,
        out_dir: Path,
        evaluate_model: Callable[[EncodeFn], dict[str, float]] | None = None,
        must_beat: float | None = None,
    ) -> TrainResult:
        """Train ``start_model`` on ``datasets`` (one list per source; several make multi-task
        training), keep the best epoch by ``evaluate_model`` (called after each epoch with the model
        as an :data:`EncodeFn`; returns metric name -> value on a dev split) and save the model to
        ``out_dir / "model"``; re-running with the same ``out_dir`` resumes.

        ``must_beat`` (the start model's own dev score) makes the start a candidate too: evaluations
        come four times an epoch, training stops at the first that beats neither it nor the best before,
        and when none beat it the start model is what is saved (``TrainResult.kept_start``)."""
        ...

    def write_card(self, model_dir: Path, card: dict) -> None:
        """Write the model card (machine-readable and README) beside the model's own files."""
        ...

    def model_shape(self, model: Path) -> ModelShape:
        """Parameters, width, depth, heads and input limit of the model in the folder ``model``."""
        ...

    def token_lengths(self, model: Path, texts: Sequence[str]) -> list[int]:
        """Tokens of each text under the model's tokenizer (no truncation)."""
        ...


class AdapterFormat(Protocol):
    """The folder format of query adapters, as the encoder backend that serves them (``adapter``)
    defines it; :mod:`harness.training.adapter` fits an adapter and writes and reads folders only through it."""

    def save(self, weights: Mapping[str, np.ndarray], card: Mapping[str, Any], folder: Path) -> Path:
        """Write the weights (name -> array) and the card; the folder counts as complete once the card is there."""
        ...

    def read_card(self, folder: Path) -> Any:
        """The folder's card (``kind``, ``dim``, ``training``, ``history``, ...), or a one-line ConfigError."""
        ...


class Merger(Protocol):
    """Weighted averages of the weights of models of one architecture (the ``merger`` registry kind):
    WiSE-FT's interpolation between a base and its fine-tuned model (Wortsman et al. 2022), LM-Cocktail's
    mix of several (Xiao et al. 2023). Built with the models' folders or hub ids; the first is the
    template, whose modules, tokenizer, configuration and non-float buffers the merged folder keeps.
    Models whose weights differ in names or shapes are refused with a one-line
    :class:`~harness.errors.ConfigError`."""

    def modules_match(self) -> bool:
        """Whether every model's folder holds the template's modules and settings (pooling, maximum length,
        normalisation), so a weight of 1 on any model gives that model's own vectors."""
        ...

    def write(self, weights: Sequence[float], out_dir: Path, card: Mapping[str, Any], files: Mapping[str, str] | None = None) -> Path:
        """Save ``sum(weights[i] * theta_i)`` (weights summing to 1) as a folder ``SentenceTransformer(out_dir)``
        loads, with ``card`` (``tunebench.json`` and a README) and ``files`` (name -> text) beside it.
        Atomic: the folder appears complete or not at all, so a killed write leaves nothing to trust."""
        ...


@runtime_checkable
class ChecksConfig(Protocol):
    """A backend that can say, without loading a model or opening a client, why a configuration can
    never work: ``bench validate`` (and every ladder load) asks each backend that has the method."""

    @classmethod
    def config_problems(cls, model: str, options: dict) -> dict[str, str]:
        """``{key: why}`` for each option (``"model"`` included) that cannot work; empty when none."""
        ...


@runtime_checkable
class ChecksOnline(Protocol):
    """A backend that can ask its service whether a configured model exists (``bench validate``), so
    a typo in a model id is found before a run, not recorded as a skipped rung after it."""

    @classmethod
    def online_problems(cls, model: str, options: dict) -> dict[str, str] | None:
        """``{key: why}`` for what the service says does not exist; empty when it does or nothing
        needs asking (a local folder); None when the service cannot be reached to tell (offline)."""
        ...
