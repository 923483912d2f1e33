"""Rungs of the ladder as typed configuration, and how each one becomes a retriever.

A rung's resolved configuration is recorded verbatim and hashed into the record key, so changing any
option (or the model's weights, through the encoder fingerprint) makes a new record instead of
silently reusing an old one.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EncoderConfig(_Strict):
    """Which encoder backend and model a dense rung uses, with its options."""

    backend: str = "sentence-transformers"
    model: str = DEFAULT_MODEL
    query_prompt: str = ""
    document_prompt: str = ""
    batch_size: int | None = Field(None, ge=1, description="default: 16 on CPU, 64 on GPU")
    max_length: int | None = Field(None, ge=1)
    normalize: bool = True


class DenseRung(_Strict):
    """Exact nearest-neighbour search over embeddings (inner product; cosine when normalised)."""

    kind: Literal["dense"] = "dense"
    name: str
    encoder: EncoderConfig = EncoderConfig()
    top_k: int = Field(100, ge=1)


class BM25Rung(_Strict):
    """Lexical BM25 through bm25s."""

    kind: Literal["bm25"] = "bm25"
    name: str
    k1: float = 1.5
    b: float = 0.75
    method: Literal["lucene", "robertson", "atire", "bm25l", "bm25+"] = "lucene"
    stemmer: str | None = "english"
    stopwords: str | None = "en"
    top_k: int = Field(100, ge=1)


Rung = Annotated[DenseRung | BM25Rung, Field(discriminator="kind")]


def default_rungs(model: str | None = None) -> list[DenseRung | BM25Rung]:
    """The ladder until ladder files exist: the baseline embedder and BM25.

    ``model`` swaps the baseline's model; the rung is then named after it, so records of different
    models never share a name.
    """
    baseline = DenseRung(name="baseline")
    if model:
        baseline = DenseRung(name=f"dense:{model.rstrip('/').split('/')[-1]}", encoder=EncoderConfig(model=model))
    return [baseline, BM25Rung(name="bm25")]
