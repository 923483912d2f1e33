"""BM25 through bm25s (Lucene's scoring variant by default, as in bm25s' published BEIR table)."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from harness.errors import ConfigError, require
from harness.protocols import Run


class BM25Retriever:
    """:class:`~harness.protocols.Retriever` over ``bm25s.BM25``.

    ``stemmer`` is a Snowball language for PyStemmer (``None`` for no stemming); ``stopwords`` is a
    bm25s stopword list name (``"en"``) or ``None``.
    """

    def __init__(self, *, k1: float = 1.5, b: float = 0.75, method: str = "lucene", stemmer: str | None = "english", stopwords: str | None = "en"):
        self.params = {"k1": k1, "b": b, "method": method}
        self.stopwords = stopwords
        self._stemmer = self._make_stemmer(stemmer)
        self._doc_ids: list[str] = []
        self._model = None

    @staticmethod
    def _make_stemmer(language: str | None):
        if language is None:
            return None
        stemmer_mod = require("Stemmer", package="PyStemmer")
        if language not in stemmer_mod.algorithms():
            raise ConfigError(f"unknown stemmer language '{language}' (choices: {', '.join(stemmer_mod.algorithms())})")
        return stemmer_mod.Stemmer(language)

    def _tokenize(self, texts: list[str]):
        import bm25s

        # bm25s pins its logger to DEBUG at import; follow the application's level instead.
        logging.getLogger("bm25s").setLevel(logging.getLogger().getEffectiveLevel())

        return bm25s.tokenize(texts, stopwords=self.stopwords, stemmer=self._stemmer, show_progress=False)

    def index(self, corpus: Mapping[str, str]) -> None:
        import bm25s

        self._doc_ids = list(corpus)
        self._model = bm25s.BM25(**self.params)
        self._model.index(self._tokenize(list(corpus.values())), show_progress=False)

    def search(self, queries: Mapping[str, str], top_k: int) -> Run:
        if self._model is None:
            raise RuntimeError("call index() before search()")
        query_ids = list(queries)
        k = min(top_k, len(self._doc_ids))
        tokens = self._tokenize(list(queries.values()))
        docs, scores = self._model.retrieve(tokens, k=k, show_progress=False, n_threads=1)
        run: Run = {}
        for row, qid in enumerate(query_ids):
            # bm25s pads with zero-score hits when fewer than k documents share a term; drop them.
            run[qid] = {self._doc_ids[int(d)]: float(s) for d, s in zip(docs[row], scores[row]) if s > 0}
        return run
