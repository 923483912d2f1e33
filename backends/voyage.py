"""Voyage AI's embeddings and rerank APIs through the official ``voyageai`` SDK.

The key comes only from ``VOYAGE_API_KEY``; ``base_url`` (or ``VOYAGE_BASE_URL``) is the SDK's base,
``/v1`` included. The SDK's retries are off (``max_retries=0``): :mod:`backends.http_retry` is the
only retry loop. Requests are capped by text count and by an estimate of their tokens, since Voyage
rejects a request over its model's token limit and its tokenizer would need a download.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence

import numpy as np

from backends.http_retry import Failure, RetryPolicy, api_key, check_options, group, in_parts, scores_in_order, to_matrix
from harness.errors import ConfigError, require
from harness.protocols import InputType

KEY_ENV = "VOYAGE_API_KEY"
URL_ENV = "VOYAGE_BASE_URL"
DEFAULT_TEXTS = 128  # texts per request unless batch_size says otherwise
MAX_TEXTS = 1000  # the API's limit (docs.voyageai.com/reference/embeddings-api)
MAX_DOCUMENTS = 1000  # documents per rerank request (docs.voyageai.com/reference/reranker-api)
# Total tokens per embeddings request, from the same page; unknown models get the smallest.
TOKEN_CAPS = {"voyage-3.5-lite": 1_000_000, "voyage-3.5": 320_000, "voyage-3-large": 120_000, "voyage-3": 120_000, "voyage-code-3": 120_000}
DEFAULT_TOKEN_CAP = 120_000
# Errors the SDK raises while reading a body it did not expect (``response.usage.total_tokens`` etc.).
_SHAPE_ERRORS = (AttributeError, KeyError, TypeError, IndexError, ValueError)


def _failure(exc: Exception) -> Failure | None:
    """Map ``voyageai.error``: ``Timeout`` and ``APIConnectionError`` mean no response, the rest carry
    ``http_status``; a shape error inside the SDK means a 2xx body it could not read."""
    import requests
    from voyageai import error

    # requests' own errors escape the SDK when a body breaks off mid-read
    if isinstance(exc, (error.Timeout, error.APIConnectionError, requests.RequestException)):
        return Failure(None, f"{type(exc).__name__}: {str(exc)[:200]}")
    if isinstance(exc, error.VoyageError):
        if exc.http_status is None:
            return None  # raised before any request: not the API's doing
        body = exc.json_body if isinstance(exc.json_body, dict) else {}
        message = body.get("detail") if isinstance(body.get("detail"), str) else exc.user_message
        return Failure(exc.http_status, str(message or "")[:300], exc.headers or {})
    if isinstance(exc, _SHAPE_ERRORS):
        return Failure(200, f"{type(exc).__name__}: {str(exc)[:100]}")
    return None


def _units(tokens: object) -> float | None:
    return float(tokens) if isinstance(tokens, (int, float)) else None


def _client(key: str, base_url: str | None, timeout: float):
    voyageai = require("voyageai")
    url = base_url or os.environ.get(URL_ENV) or None
    # max_retries=0: the SDK makes one attempt (tenacity's stop_after_attempt(0)); RetryPolicy retries.
    return voyageai.Client(api_key=key, max_retries=0, timeout=timeout, base_url=url)


class VoyageEncoder:
    """An :class:`~harness.protocols.Encoder` over Voyage's ``/v1/embeddings`` (``voyage-3-large`` by default).

    ``input_type`` is sent as ``query`` / ``document`` (Voyage then adds its own retrieval prompt);
    ``query_prompt`` / ``document_prompt`` are prepended on top. Long inputs are truncated by the API
    at the model's context length: Voyage has no per-request max length, so ``max_length`` is refused.
    """

    def __init__(
        self,
        model: str = "voyage-3-large",
        *,
        query_prompt: str = "",
        document_prompt: str = "",
        batch_size: int | None = None,
        max_length: int | None = None,
        normalize: bool = True,
        base_url: str | None = None,
        concurrency: int = 4,
        max_retries: int = 6,
        timeout: float = 60.0,
        output_dimension: int | None = None,
    ):
        check_options(batch_size=batch_size, concurrency=concurrency, max_retries=max_retries, timeout=timeout, output_dimension=output_dimension)
        if max_length is not None:
            raise ConfigError("the voyage encoder has no max_length option (the API truncates at the model's context length); remove it")
        self.model = model
        self.prompts = {"query": query_prompt, "document": document_prompt}
        self.batch_size = min(batch_size or DEFAULT_TEXTS, MAX_TEXTS)
        self.max_tokens = TOKEN_CAPS.get(model, DEFAULT_TOKEN_CAP)
        self.normalize = normalize
        self.output_dimension = output_dimension
        self.concurrency = concurrency
        self.price_key = f"voyage:{model}"
        key = api_key(KEY_ENV, "Voyage")
        self.client = _client(key, base_url, timeout)
        self._retry = RetryPolicy("Voyage", KEY_ENV, _failure, max_retries, secret=key)

    def __repr__(self) -> str:
        return f"VoyageEncoder(model={self.model!r})"

    @property
    def fingerprint(self) -> str:
        settings = json.dumps([self.model, self.output_dimension, "truncation", self.prompts, self.normalize])
        return "voyage-" + hashlib.sha256(settings.encode()).hexdigest()[:24]

    def batches(self, texts: Sequence[str]) -> list[list[int]]:
        """Groups within ``batch_size`` texts (128 by default) and the model's token cap: one request each."""
        prompt = max(self.prompts.values(), key=len)
        return group([prompt + t for t in texts], self.batch_size, self.max_tokens)

    def encode(self, texts: Sequence[str], *, input_type: InputType) -> np.ndarray:
        return self.encode_with_usage(texts, input_type=input_type)[0]

    def encode_with_usage(self, texts: Sequence[str], *, input_type: InputType) -> tuple[np.ndarray, float | None]:
        """One ``/v1/embeddings`` request (retried as needed): the vectors and the billed tokens."""
        if not texts:
            return np.zeros((0, 0), dtype=np.float32), 0.0
        inputs = [self.prompts[input_type] + t for t in texts]
        result = self._retry.call(
            lambda: self.client.embed(inputs, model=self.model, input_type=input_type, truncation=True, output_dimension=self.output_dimension),
            operation="embed",
            model=self.model,
        )
        return to_matrix(result.embeddings, len(texts), "Voyage embed", self.normalize), _units(result.total_tokens)


class VoyageReranker:
    """A :class:`~harness.protocols.Reranker` over Voyage's ``/v1/rerank`` (``rerank-2.5`` by default).

    The API truncates long documents itself (``truncation=True``), so ``max_length`` is refused;
    ``batch_size`` caps documents per request (1000 at most; a longer list is split). Billed units are tokens.
    """

    def __init__(
        self,
        model: str = "rerank-2.5",
        *,
        base_url: str | None = None,
        concurrency: int = 4,
        max_retries: int = 6,
        timeout: float = 60.0,
        batch_size: int | None = None,
        max_length: int | None = None,
    ):
        check_options(batch_size=batch_size, concurrency=concurrency, max_retries=max_retries, timeout=timeout)
        if max_length is not None:
            raise ConfigError("the voyage reranker has no max_length option (the API truncates documents itself); remove it")
        self.model = model
        self.batch_size = min(batch_size or MAX_DOCUMENTS, MAX_DOCUMENTS)
        self.concurrency = concurrency
        self.price_key = f"voyage:{model}"
        key = api_key(KEY_ENV, "Voyage")
        self.client = _client(key, base_url, timeout)
        self._retry = RetryPolicy("Voyage", KEY_ENV, _failure, max_retries, secret=key)

    def __repr__(self) -> str:
        return f"VoyageReranker(model={self.model!r})"

    @property
    def fingerprint(self) -> str:
        return "voyage-rerank-" + hashlib.sha256(json.dumps([self.model, "truncation"]).encode()).hexdigest()[:24]

    def rerank(self, query: str, documents: Sequence[str]) -> list[float]:
        return self.rerank_with_usage(query, documents)[0]

    def rerank_with_usage(self, query: str, documents: Sequence[str]) -> tuple[list[float], float | None]:
        """Scores in the order given and the billed tokens (one request per ``batch_size`` documents)."""
        return in_parts(lambda part: self._rerank(query, part), documents, self.batch_size)

    def _rerank(self, query: str, documents: list[str]) -> tuple[list[float], float | None]:
        result = self._retry.call(
            lambda: self.client.rerank(query, documents, model=self.model, truncation=True),
            operation="rerank",
            model=self.model,
        )
        pairs = [(r.index, r.relevance_score) for r in result.results]
        return scores_in_order(pairs, len(documents), "Voyage rerank"), _units(result.total_tokens)
