"""Rungs of the ladder as typed configuration.

A rung's resolved configuration is recorded verbatim and hashed into the record key, so changing any
option (or the model's weights, through the encoder fingerprint, or an input rung's result) makes a
new record instead of silently reusing an old one.

Backend tables (``encoder``, ``reranker``) take the common options below plus whatever keyword
arguments the chosen backend's constructor accepts (``concurrency``, ``base_url``, ...); those are
checked against the backend's signature by :func:`harness.ladder.schema.check_backends`, without loading
a model.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_serializer, model_validator

from harness.choices import LeakagePolicy, OverlapPolicy
from harness.config import StrictModel
from harness.metrics import metric_problem
from harness.registry import EncoderConfig, IndexConfig, RerankerConfig
from harness.retrieval.compression import DEFAULT_FORMS, form_problem

FUSION_METHODS = ("rrf", "wsum", "wmnz", "sum", "mnz", "max", "isr", "bordafuse")
"""ranx fusion methods that need no training run: reciprocal rank fusion (Cormack et al. 2009), weighted
sum and weighted CombMNZ of normalised scores, CombSUM/CombMNZ/CombMAX (Fox & Shaw 1994), ISR, Borda."""
TUNABLE_METHODS = ("rrf", "wsum", "wmnz")
"""Methods whose parameters ``ranx.optimize_fusion`` searches (``k`` for RRF, weights otherwise)."""
NORMS = ("min-max", "zmuv", "max", "sum", "rank", "borda")


def _metric(name: str) -> str:
    if problem := metric_problem(name):
        raise ValueError(problem)
    return name


MetricName = Annotated[str, AfterValidator(_metric)]
"""A metric ranx computes (``ndcg@10``; a cut-off of at least 1), checked where the key is written."""


class DenseRung(StrictModel):
    """Exact nearest-neighbour search over embeddings (inner product; cosine when normalised), or, with
    an ``ann`` table (``ann = { kind = "hnsw", M = 32, ef_search = 128 }``), search through a vector
    index whose recall against exact search on the rung's own queries the record keeps."""

    kind: Literal["dense"] = "dense"
    name: str
    encoder: EncoderConfig = EncoderConfig()
    ann: IndexConfig | None = Field(None, description="a vector index (flat, hnsw, ivf) to search through; none: exact search")
    top_k: int = Field(100, ge=1)

    @model_serializer(mode="wrap")
    def _exact_as_before(self, handler):
        """Without ``ann`` the rung dumps as it did before the key existed: the record key is a hash of
        the dump, so records of exact rungs written then are still found."""
        dumped = handler(self)
        if self.ann is None:
            dumped.pop("ann", None)
        return dumped


class BM25Rung(StrictModel):
    """Lexical BM25 through bm25s."""

    kind: Literal["bm25"] = "bm25"
    name: str
    k1: float = 1.5
    b: float = 0.75
    method: Literal["lucene", "robertson", "atire", "bm25l", "bm25+"] = "lucene"
    stemmer: str | None = "english"
    stopwords: str | None = "en"
    top_k: int = Field(100, ge=1)


class HybridRung(StrictModel):
    """Fusion of earlier rungs' runs through ``ranx.fuse``.

    ``tune_on`` names a split (never the evaluated one) on which ``ranx.optimize_fusion`` picks the
    parameters (weights, or RRF's k) for ``tune_metric``; the in-domain goldset's tuned parameters
    are reused for its out-of-domain companions, as they would be in deployment.
    """

    kind: Literal["hybrid"] = "hybrid"
    name: str
    inputs: list[str] = Field(min_length=2)
    method: Literal[FUSION_METHODS] = "rrf"  # type: ignore[valid-type]
    norm: Literal[NORMS] | None = "min-max"  # type: ignore[valid-type]
    weights: list[float] | None = None
    rrf_k: int = Field(60, ge=1, description="RRF's k (60 in Cormack et al. 2009)")
    tune_on: str | None = None
    tune_metric: MetricName | None = Field(None, description="default: the ladder's primary metric")
    top_k: int = Field(100, ge=1)

    @model_validator(mode="after")
    def _consistent(self) -> HybridRung:
        if self.tune_on and self.method not in TUNABLE_METHODS:
            raise ValueError(f"method '{self.method}' has nothing to tune; use one of {', '.join(TUNABLE_METHODS)} with tune_on")
        if self.tune_on == "test":
            raise ValueError("fusion must never be tuned on the test split; use tune_on = 'dev' (or 'train')")
        if self.weights is not None and len(self.weights) != len(self.inputs):
            raise ValueError(f"weights has {len(self.weights)} values for {len(self.inputs)} inputs")
        if self.weights is not None and self.tune_on:
            raise ValueError("give weights or tune_on, not both")
        return self


class RerankRung(StrictModel):
    """An earlier rung's top ``depth`` candidates re-scored by a reranker."""

    kind: Literal["rerank"] = "rerank"
    name: str
    first_stage: str
    depth: int = Field(100, ge=1)
    reranker: RerankerConfig = RerankerConfig()
    top_k: int = Field(100, ge=1)


class ChunkedRung(StrictModel):
    """Documents split into overlapping token windows, each embedded; a document scores by its chunks.

    ``aggregate``: ``max`` (MaxP), ``sum`` (SumP) or ``first`` (FirstP), after Dai & Callan 2019,
    "Deeper Text Understanding for IR with Contextual Neural Language Modeling".
    """

    kind: Literal["chunked"] = "chunked"
    name: str
    encoder: EncoderConfig = EncoderConfig()
    chunk_size: int = Field(128, ge=8, description="tokens of the encoder's tokenizer per chunk")
    overlap: int = Field(32, ge=0)
    prefix_title: bool = True
    prefix_metadata: list[str] = Field(default_factory=list, description="metadata fields written as 'field: value' before each chunk")
    aggregate: Literal["max", "sum", "first"] = "max"
    top_k: int = Field(100, ge=1)

    @model_validator(mode="after")
    def _overlap_fits(self) -> ChunkedRung:
        if self.overlap >= self.chunk_size:
            raise ValueError(f"overlap ({self.overlap}) must be smaller than chunk_size ({self.chunk_size})")
        return self


class FinetuneRung(StrictModel):
    """A model fine-tuned on the goldset's train split (``train`` is a training table, see
    :class:`harness.training.schema.TrainConfig`), evaluated like a dense rung. A ladder lists it once;
    it becomes one rung per round, ``<name>-r0``, ``<name>-r1``, ... (round 0, then mining rounds).
    Out-of-domain companions are scored with the model trained on their in-domain goldset."""

    kind: Literal["finetune"] = "finetune"
    name: str
    train: dict = Field(default_factory=dict)
    round: int | None = Field(None, ge=0, description="set by the ladder when it expands the rounds")
    top_k: int = Field(100, ge=1)


class AdapterRung(StrictModel):
    """A query-side adapter over a frozen encoder (``backends.adapter``): fine-tuning for API embedders
    whose vendors offer none. Fitted on the in-domain goldset's ``train_split`` with the ``adapter``
    options (kind, epochs, lr, ...; see ``backends.adapter.AdapterOptions``), the epoch kept chosen on
    ``eval_split`` when the goldset has it, then evaluated like a dense rung: documents keep the base
    encoder's (cached, paid-once) vectors, queries are adapted. Out-of-domain companions are scored with
    the adapter fitted on their in-domain goldset."""

    kind: Literal["adapter"] = "adapter"
    name: str
    encoder: EncoderConfig = Field(default_factory=EncoderConfig, description="the frozen base encoder")
    adapter: dict = Field(default_factory=dict, description="adapter training options")
    train_split: str = "train"
    eval_split: str = Field("dev", description="split that picks the epoch (skipped when the goldset lacks it; '' never)")
    on_leakage: LeakagePolicy = "stop"
    on_overlap: OverlapPolicy = "keep"
    top_k: int = Field(100, ge=1)

    @model_validator(mode="after")
    def _never_test(self) -> AdapterRung:
        if "test" in (self.train_split, self.eval_split):
            raise ValueError(f"rung '{self.name}': an adapter is never fitted or selected on 'test'; use train_split = 'train', eval_split = 'dev'")
        return self


DEFAULT_ALPHAS = tuple(i / 10 for i in range(11))
"""WiSE-FT's grid (Wortsman et al. 2022 sweep alpha in steps of 0.1): 0 is the base, 1 the fine-tuned model."""


class MergeRung(StrictModel):
    """A fine-tuned model interpolated with its base in weight space, ``(1 - alpha) * base + alpha *
    finetuned`` (WiSE-FT; :mod:`harness.training.merge`), for each alpha of ``alphas``. The fine-tuned
    model is ``of`` (a finetune rung's round, ``finetune-r1``, or a finetune rung's name: its last
    round) or ``model`` (a fine-tuned folder with its tunebench card); ``base`` defaults to the card's
    base model. alpha is chosen on the in-domain goldset's ``select_on`` split (``train`` when it has
    no such split; never ``test``): the best ``select_metric`` among the alphas whose out-of-domain drop
    against the base stays within ``ood_tolerance``. The chosen model is evaluated like a dense rung;
    out-of-domain companions are scored with the model chosen for their in-domain goldset."""

    kind: Literal["merge"] = "merge"
    name: str
    of: str | None = Field(None, description="the finetune rung (its last round) or round whose model is merged")
    model: str | None = Field(None, description="or a fine-tuned model folder with a tunebench.json card")
    base: str | None = Field(None, description="default: the fine-tuned card's base_model")
    alphas: list[float] = Field(default_factory=lambda: list(DEFAULT_ALPHAS), min_length=1, description="in [0, 1]; 0 (the base) is always added")
    select_on: str = Field("dev", description="split alpha is chosen on (train when the goldset lacks it; never test)")
    select_metric: MetricName | None = Field(None, description="default: the ladder's primary metric")
    ood_tolerance: float | None = Field(None, ge=0, description="default: the ladder's [decision] ood_tolerance")
    top_k: int = Field(100, ge=1)

    @model_validator(mode="after")
    def _valid(self) -> MergeRung:
        if (self.of is None) == (self.model is None):
            raise ValueError(f"rung '{self.name}': give exactly one of of = '<finetune rung>' and model = '<fine-tuned folder>'")
        if self.select_on == "test":
            raise ValueError(f"rung '{self.name}': alpha is never chosen on 'test'; use select_on = 'dev' (or 'train')")
        outside = [a for a in self.alphas if not 0 <= a <= 1]
        if outside:
            raise ValueError(f"rung '{self.name}': alphas must lie in [0, 1] (0: the base, 1: the fine-tuned model); got {outside[0]}")
        rounded = sorted({round(a, 4) for a in self.alphas} | {0.0})  # the base is always on the curve: drops are measured against it
        if len(rounded) != len(set(self.alphas) | {0.0}):
            raise ValueError(f"rung '{self.name}': alphas closer than 0.0001 would share a model folder")
        self.alphas = rounded
        return self


COMPRESSIBLE = ("dense", "finetune", "merge")
"""Kinds whose model ``of`` may name: one float vector per document, from a model a record names."""


class CompressRung(StrictModel):
    """An earlier dense-like rung's model (``of``: a dense rung, a finetune rung (its last round) or round,
    or a merge rung) served in cheaper forms (:mod:`harness.retrieval.compression`): int8 and binary
    quantization of its vectors, binary search with rescoring, Matryoshka truncation (``mrl-<dim>``), each
    searching the ``of`` rung's cached float vectors (nothing is re-encoded); and int8 models served on a
    CPU runtime (``onnx-int8``, ``openvino-int8``: a local sentence-transformers model, its corpus encoded
    again). A ladder lists it once; it becomes one rung per form, ``<name>-<form>``, each recording its
    index size (and a model form its model's size and encode rate) beside its metrics."""

    kind: Literal["compress"] = "compress"
    name: str
    of: str = Field(description="the dense, finetune (its last round) or merge rung whose model is compressed")
    forms: list[str] = Field(default_factory=lambda: list(DEFAULT_FORMS), min_length=1, description="int8, binary, binary-rescore, mrl-<dim>, onnx-int8, openvino-int8")
    rescore_multiplier: int = Field(4, ge=1, description="binary-rescore: candidates rescored per result kept (sentence-transformers' demo: 4)")
    rescore_with: Literal["int8", "float"] = Field("int8", description="binary-rescore: the document vectors the float query rescores")
    form: str | None = Field(None, description="set by the ladder when it expands the forms")
    top_k: int = Field(100, ge=1)

    @model_validator(mode="after")
    def _valid(self) -> CompressRung:
        for form in self.forms:
            if problem := form_problem(form):
                raise ValueError(f"rung '{self.name}' forms: {problem}")
        if len(set(self.forms)) != len(self.forms):
            raise ValueError(f"rung '{self.name}' forms: '{next(f for f in self.forms if self.forms.count(f) > 1)}' is listed twice")
        return self


AnyRung = DenseRung | BM25Rung | HybridRung | RerankRung | ChunkedRung | FinetuneRung | AdapterRung | MergeRung | CompressRung
Rung = Annotated[AnyRung, Field(discriminator="kind")]


def depends_on(rung: AnyRung) -> list[str]:
    """Names of the rungs whose runs this rung consumes."""
    if isinstance(rung, HybridRung):
        return list(rung.inputs)
    if isinstance(rung, RerankRung):
        return [rung.first_stage]
    if isinstance(rung, MergeRung | CompressRung) and rung.of:
        return [rung.of]
    return []
