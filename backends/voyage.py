"""Voyage AI's embeddings and rerank APIs through the official ``voyageai`` SDK.

The key comes only from ``VOYAGE_API_KEY``; ``base_url`` (or ``VOYAGE_BASE_URL``) is the SDK's base,
``/v1`` included. The SDK's retries are off (``max_retries=0``): :mod:`backends.http_retry` is the
only retry loop. Requests are capped by text count and by an estimate of their tokens, since Voyage
rejects a request over its model's token limit and its tokenizer would need a download.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from backends.api_base import ApiEncoder, ApiReranker, ApiService
from backends.http_retry import Failure, group, scores_in_order, to_matrix
from harness.errors import require
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


SERVICE = ApiService("Voyage", "voyage", KEY_ENV, _client, _failure)


class VoyageEncoder(ApiEncoder):
    """An :class:`~harness.protocols.Encoder` over Voyage's ``/v1/embeddings`` (``voyage-3-large`` by default).

    ``input_type`` is sent as ``query`` / ``document`` (Voyage then adds its own retrieval prompt);
    ``query_prompt`` / ``document_prompt`` are prepended on top. Long inputs are truncated by the API
    at the model's context length: Voyage has no per-request max length, so ``max_length`` is refused.
    """

    service = SERVICE
    default_model = "voyage-3-large"
    max_texts = MAX_TEXTS
    default_texts = DEFAULT_TEXTS

    def batches(self, texts: Sequence[str]) -> list[list[int]]:
        """Groups within ``batch_size`` texts (128 by default) and the model's token cap: one request each."""
        prompt = max(self.prompts.values(), key=len)
        return group([prompt + t for t in texts], self.batch_size, TOKEN_CAPS.get(self.model, DEFAULT_TOKEN_CAP))

    def encode_with_usage(self, texts: Sequence[str], *, input_type: InputType) -> tuple[np.ndarray, float | None]:
        """One ``/v1/embeddings`` request (retried as needed): the vectors and the billed tokens."""
        if not texts:
            return np.zeros((0, 0), dtype=np.float32), 0.0
        inputs = [self.prompts[input_type] + t for t in texts]
        result = self._call(lambda: self.client.embed(inputs, model=self.model, input_type=input_type, truncation=True, output_dimension=self.output_dimension), "embed")
        return to_matrix(result.embeddings, len(texts), "Voyage embed", self.normalize), _units(result.total_tokens)


class VoyageReranker(ApiReranker):
    """A :class:`~harness.protocols.Reranker` over Voyage's ``/v1/rerank`` (``rerank-2.5`` by default).

    The API truncates long documents itself (``truncation=True``), so ``max_length`` is refused;
    ``batch_size`` caps documents per request (1000 at most; a longer list is split). Billed units are tokens.
    """

    service = SERVICE
    default_model = "rerank-2.5"
    max_documents = MAX_DOCUMENTS

    def _rerank(self, query: str, documents: list[str]) -> tuple[list[float], float | None]:
        result = self._call(lambda: self.client.rerank(query, documents, model=self.model, truncation=True), "rerank")
        pairs = [(r.index, r.relevance_score) for r in result.results]
        return scores_in_order(pairs, len(documents), "Voyage rerank"), _units(result.total_tokens)
