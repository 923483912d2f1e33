"""A deterministic bag-of-words encoder for fast tests that carry real signal.

Each lower-cased word is hashed into one of ``dim`` buckets; vectors are L2-normalised counts, so a
query shares a direction with the documents that contain its words (a test can assert recall@1 == 1).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np

WORD = re.compile(r"[a-z0-9]+")


class BagOfWordsEncoder:
    def __init__(self, model: str = "bow", *, dim: int = 512, fail_after: int | None = None, **_ignored):
        self.dim = dim
        self.calls: list[tuple[str, int]] = []
        self.fail_after = fail_after  # raise KeyboardInterrupt on this call number (simulates Ctrl-C)

    @property
    def fingerprint(self) -> str:
        return f"bow-{self.dim}"

    def _bucket(self, word: str) -> int:
        return int.from_bytes(hashlib.md5(word.encode()).digest()[:4], "little") % self.dim

    def encode(self, texts: Sequence[str], *, input_type: str) -> np.ndarray:
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise KeyboardInterrupt
        self.calls.append((input_type, len(texts)))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in WORD.findall(text.lower()):
                out[row, self._bucket(word)] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-9)


class PaidBagOfWords(BagOfWordsEncoder):
    """The bag-of-words encoder dressed as a paid API: billed one token per word, two requests in flight."""

    price_key = "test:bow"
    concurrency = 2

    @property
    def fingerprint(self) -> str:
        return f"paid-bow-{self.dim}"

    def batches(self, texts):
        return [list(range(s, min(s + 2, len(texts)))) for s in range(0, len(texts), 2)]

    def encode_with_usage(self, texts, *, input_type):
        return self.encode(texts, input_type=input_type), float(sum(len(WORD.findall(t.lower())) for t in texts))


class OverlapReranker:
    """Scores a document by how many of the query's words it contains (a reranker with real signal)."""

    fingerprint = "overlap-1"

    def __init__(self, model: str = "overlap", **_ignored):
        self.calls = 0

    def rerank(self, query, documents):
        self.calls += 1
        words = set(WORD.findall(query.lower()))
        return [float(len(words & set(WORD.findall(d.lower())))) for d in documents]
