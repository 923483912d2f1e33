"""One encoder's document vectors in cheaper forms, each searched exactly (:class:`CompressedRetriever`).

Forms (:data:`VECTOR_FORMS`, plus ``mrl-<dim>``), after sentence-transformers' embedding quantization
(``quantize_embeddings``; Shakir, Aarsen & Lee 2024, "Binary and Scalar Embedding Quantization"):

- ``int8``: each dimension cut into 256 buckets between its minimum and maximum over the corpus's
  vectors (the calibration set); the float query is scored against the codes as if dequantized (the
  documents' ``x = (code + 128) * step + min``, folded into the query: ``(q * step) . code + q . (min +
  128 * step)``), as faiss's SQ8 index decodes documents for a float query. 1 byte a dimension.
  sentence-transformers' int8 search quantizes the query too (an inner product of codes, whose per-
  dimension offsets bias the scores): on goldsets/demo with all-MiniLM-L6-v2 that scored nDCG@10 0.558
  against float's 0.643, where the float query against the codes scored 0.640.
- ``binary``: each dimension's sign, packed 8 to a byte; scored by the bits that agree (hamming). 1 bit
  a dimension.
- ``binary-rescore``: the binary search for ``rescore_multiplier * top_k`` candidates, then those
  rescored by the float query against the documents' int8 codes, dequantized (``rescore_with =
  "int8"``: sentence-transformers' demo keeps a binary index in memory and int8 vectors on disk), or
  against their float vectors (``"float"``). The index holds both.
- ``mrl-<dim>``: the first ``dim`` dimensions, re-normalised (Matryoshka truncation, Kusupati et al.
  2022). Honest for models not trained for it: the measured drop says how much it costs them.

Sizes are per document as the form stores it; the float form (the ``of`` rung) takes 4 bytes a dimension.

Model forms (:data:`MODEL_FORMS`) compress the model instead of its vectors: ``onnx-int8`` (ONNX Runtime,
dynamic int8) and ``openvino-int8`` (OpenVINO, static int8 calibrated by NNCF) serve a local
sentence-transformers model on the CPU (``backends.runtimes``); it is another model, so the corpus is
encoded again and its records carry encode throughput and the served model's size.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from harness.errors import ConfigError, did_you_mean
from harness.protocols import Run
from harness.retrieval.retrievers import DenseRetriever
from harness.retrieval.topk import break_ties, top_k_codes, top_k_dense, top_k_hamming

VECTOR_FORMS = ("int8", "binary", "binary-rescore")
MODEL_FORMS = {"onnx-int8": ("onnx", "int8"), "openvino-int8": ("openvino", "int8")}
"""Forms that serve a quantized model (runtime, quantization) rather than compressing its vectors."""
DEFAULT_FORMS = ("int8", "binary", "binary-rescore", "mrl-256", "mrl-128")
_MRL = re.compile(r"mrl-([0-9]{1,6})")


def form_problem(name: str) -> str | None:
    """Why ``name`` is not a form (None when it is), with the valid ones and the closest."""
    if name in VECTOR_FORMS or name in MODEL_FORMS or ((m := _MRL.fullmatch(name)) and int(m.group(1)) > 0):
        return None
    valid = [*VECTOR_FORMS, "mrl-<dim>", *MODEL_FORMS]
    return f"unknown form '{name}'.{did_you_mean(name, [*DEFAULT_FORMS, 'mrl-64', 'mrl-512', *MODEL_FORMS])} (valid: {', '.join(valid)}, e.g. mrl-256)"


def _ranges(vectors: np.ndarray) -> np.ndarray:
    """Per-dimension (min, max) of the calibration vectors: what ``quantize_embeddings`` computes from
    ``calibration_embeddings``; computed once here so queries and documents share it."""
    return np.vstack((vectors.min(axis=0), vectors.max(axis=0)))


def _steps(ranges: np.ndarray) -> np.ndarray:
    """Each dimension's bucket width, as ``quantize_embeddings`` computes it (1 where a dimension is constant)."""
    steps = (ranges[1] - ranges[0]) / 255
    return np.where(steps == 0, 1, steps).astype(np.float32)


def _dequantize(codes: np.ndarray, ranges: np.ndarray) -> np.ndarray:
    """int8 codes back to floats at their bucket's lower edge: the inverse sentence-transformers applies
    before rescoring (its ``_dequantize_embeddings``, a private function, so not imported)."""
    return ((codes.astype(np.float32) + 128) * _steps(ranges) + ranges[0]).astype(np.float32)


def _normalised(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


def quantize(vectors: np.ndarray, precision: str, ranges: np.ndarray | None = None) -> np.ndarray:
    from sentence_transformers.util.quantization import quantize_embeddings  # torch: only when a compress rung runs

    return quantize_embeddings(vectors, precision=precision, ranges=ranges)


@dataclass
class Form:
    """A compressed index of document vectors: :meth:`index` once, then :meth:`search` (best first)."""

    name: str
    rescore_multiplier: int = 4
    rescore_with: str = "int8"
    dim: int = 0  # of the stored vectors (the truncated width for mrl-<dim>)
    full_dim: int = 0  # of the encoder's vectors
    bytes_per_doc: int = 0  # everything stored per document
    search_bytes_per_doc: int = 0  # what the first search reads per document (the rest may stay on disk)
    ties: bool = False  # whole-number scores (hamming): ties broken by document id

    def index(self, vectors: np.ndarray) -> None:
        self.full_dim = self.dim = vectors.shape[1]
        if self.name.startswith("mrl-"):
            self._index_mrl(vectors, int(self.name[4:]))
        elif self.name == "int8":
            self._ranges = _ranges(vectors)
            self._codes = quantize(vectors, "int8", self._ranges)
            self.bytes_per_doc = self.search_bytes_per_doc = self.dim
        else:
            self._bits = quantize(vectors, "ubinary")
            self.bytes_per_doc = self.search_bytes_per_doc = self._bits.shape[1]
            self.ties = self.name == "binary"
            if self.name == "binary-rescore":
                self._index_rescoring(vectors)

    def _index_mrl(self, vectors: np.ndarray, dim: int) -> None:
        if dim >= vectors.shape[1]:
            raise ConfigError(f"form '{self.name}' keeps {dim} dimensions, but the encoder's vectors have {vectors.shape[1]}; pick fewer (e.g. mrl-{vectors.shape[1] // 2})")
        self.dim = dim
        self._vectors = _normalised(vectors[:, :dim])
        self.bytes_per_doc = self.search_bytes_per_doc = 4 * dim

    def _index_rescoring(self, vectors: np.ndarray) -> None:
        if self.rescore_with == "float":
            self._rescore = vectors.astype(np.float32)
        else:
            self._ranges = _ranges(vectors)
            self._rescore = quantize(vectors, "int8", self._ranges)
        self.bytes_per_doc += self._rescore.nbytes // max(len(vectors), 1)

    def search(self, queries: np.ndarray, top_k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(indices, scores)``, each ``(n_queries, k)``, best first."""
        if self.name.startswith("mrl-"):
            return top_k_dense(_normalised(queries[:, : self.dim]), self._vectors, top_k)
        if self.name == "int8":
            steps = _steps(self._ranges)
            indices, scores = top_k_codes(queries * steps, self._codes, top_k)
            return indices, scores + (queries @ (self._ranges[0] + 128 * steps))[:, None]
        if self.name == "binary":
            return top_k_hamming(quantize(queries, "ubinary"), self._bits, self.full_dim, top_k)
        return self._rescored(queries, top_k)

    def _rescored(self, queries: np.ndarray, top_k: int) -> tuple[np.ndarray, np.ndarray]:
        """The binary candidates rescored by the float query, as sentence-transformers'
        ``semantic_search_faiss(..., rescore=True)`` does (its einsum over the candidates)."""
        candidates, _ = top_k_hamming(quantize(queries, "ubinary"), self._bits, self.full_dim, top_k * self.rescore_multiplier)
        stored = self._rescore[candidates]
        vectors = stored if self.rescore_with == "float" else _dequantize(stored, self._ranges)
        scores = np.einsum("qd,qkd->qk", queries.astype(np.float32), vectors)
        order = np.argsort(-scores, axis=1, kind="stable")[:, :top_k]
        return np.take_along_axis(candidates, order, axis=1), np.take_along_axis(scores, order, axis=1)

    def details(self, n_docs: int) -> dict:
        """What a record keeps about the form: its width, its bytes per document and the index's size."""
        out = {"form": self.name, "dim": self.dim, "of_dim": self.full_dim, "index_bytes_per_doc": self.bytes_per_doc,
               "index_mb": round(self.bytes_per_doc * n_docs / 1e6, 3), "compression": round(4 * self.full_dim / self.bytes_per_doc, 2)}
        if self.name == "binary-rescore":
            out |= {"search_bytes_per_doc": self.search_bytes_per_doc, "rescore_multiplier": self.rescore_multiplier, "rescore_with": self.rescore_with}
        return out


class CompressedRetriever(DenseRetriever):
    """A :class:`DenseRetriever` whose document vectors (the encoder's, from the cache) are searched in
    a cheaper :class:`Form`; queries are encoded in full and compressed on the query path."""

    def __init__(self, encoder, cache, form: Form):
        super().__init__(encoder, cache)
        self.form = form

    def index(self, corpus: Mapping[str, str]) -> None:
        super().index(corpus)
        self.form.index(self._doc_vectors)
        self._doc_vectors = None  # the form keeps what it searches

    def index_bytes(self) -> int:
        return self.form.bytes_per_doc * len(self._doc_ids)

    def _top_k(self, query_vectors: np.ndarray, top_k: int) -> tuple[np.ndarray, np.ndarray]:
        return self.form.search(query_vectors, top_k)

    def search(self, queries: Mapping[str, str], top_k: int) -> Run:
        run = super().search(queries, top_k)
        return {q: break_ties(hits) for q, hits in run.items()} if self.form.ties else run
