"""Splitting documents into overlapping token windows for the ``chunked`` rung.

Windows are cut on the encoder's own tokens when the backend exposes ``token_spans(texts)`` (character
offsets of each token, from a fast tokenizer), so ``chunk_size = 128`` means 128 model tokens; other
backends (APIs) are cut on whitespace-separated words, and the record says which unit was used.
Chunk text is a slice of the original document, so nothing is re-tokenised or normalised away.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from harness.data.goldset import Document

_WORD = re.compile(r"\S+")
Spans = list[tuple[int, int]]


def word_spans(texts: Sequence[str]) -> list[Spans]:
    return [[m.span() for m in _WORD.finditer(t)] for t in texts]


def windows(spans: Spans, size: int, overlap: int) -> list[tuple[int, int]]:
    """Character ranges of token windows of ``size`` tokens, consecutive windows sharing ``overlap``."""
    if not spans:
        return [(0, 0)]
    step = size - overlap
    out = []
    for first in range(0, len(spans), step):
        last = min(first + size, len(spans)) - 1
        out.append((spans[first][0], spans[last][1]))
        if last == len(spans) - 1:
            break
    return out


@dataclass(frozen=True)
class Chunking:
    """How a ``chunked`` rung cuts documents (``size`` and ``overlap`` in tokens, or words) and how a
    document scores from its chunks (``aggregate``: max, sum or first)."""

    size: int
    overlap: int
    prefix_title: bool = True
    prefix_metadata: tuple[str, ...] = ()
    aggregate: str = "max"


@dataclass(frozen=True)
class Chunks:
    texts: list[str]
    starts: np.ndarray  # index of each document's first chunk; a document's chunks are consecutive
    unit: str  # "tokens" (the encoder's tokenizer) or "words"


def chunk_corpus(
    docs: Sequence[Document],
    *,
    size: int,
    overlap: int,
    prefix_title: bool,
    prefix_metadata: Sequence[str],
    title_separator: str,
    token_spans: Callable[[Sequence[str]], list[Spans]] | None,
) -> Chunks:
    """Chunk every document's body; prefix each chunk with its title and chosen metadata fields.

    With ``prefix_title`` off, the title is only the start of the body (so it lands in the first chunk).
    """
    bodies = [d.text if prefix_title else _joined(d, title_separator) for d in docs]
    spans = (token_spans or word_spans)(bodies)
    texts: list[str] = []
    starts = np.empty(len(docs), dtype=np.int64)
    for i, (doc, body, doc_spans) in enumerate(zip(docs, bodies, spans)):
        starts[i] = len(texts)
        prefix = _prefix(doc, prefix_title, prefix_metadata, title_separator)
        texts += [(prefix + body[a:b]).strip() for a, b in windows(doc_spans, size, overlap)]
    return Chunks(texts, starts, "tokens" if token_spans else "words")


def _joined(doc: Document, separator: str) -> str:
    return f"{doc.title}{separator}{doc.text}" if doc.title.strip() else doc.text


def _prefix(doc: Document, title: bool, fields: Sequence[str], separator: str) -> str:
    parts = [f"{f}: {doc.metadata[f]}" for f in fields if doc.metadata.get(f)]
    if title and doc.title.strip():
        parts.insert(0, doc.title)
    return separator.join(parts) + separator if parts else ""
