"""Cohere's embed and rerank APIs (v2) through the official ``cohere`` SDK.

The key comes only from ``COHERE_API_KEY``; ``base_url`` (or ``COHERE_BASE_URL``) points the SDK
elsewhere, e.g. at a proxy or the test server. The SDK's own retries are off: one loop in
:mod:`backends.http_retry` retries, so a request is never retried 3 × 7 times. Every request's result
is committed by :mod:`harness.cache` as it arrives, so nothing is paid for twice.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from backends.api_base import ApiEncoder, ApiReranker, ApiService
from backends.http_retry import Failure, attribute_path, malformed, scores_in_order, to_matrix, transport_failure
from harness.errors import require
from harness.protocols import InputType

KEY_ENV = "COHERE_API_KEY"
URL_ENV = "COHERE_BASE_URL"
MAX_TEXTS = 96  # texts per embed request (API reference, v2/embed)
MAX_TOKENS = 128_000  # estimated tokens per embed request
MAX_DOCUMENTS = 1000  # documents per rerank request; Cohere advises no more (API reference, v2/rerank)
_INPUT_TYPES = {"query": "search_query", "document": "search_document"}


def _failure(exc: Exception) -> Failure | None:
    """Map the SDK's exceptions: ``ApiError`` / ``ParsingError`` carry the status; httpx errors mean no response."""
    if hasattr(exc, "status_code") and hasattr(exc, "body"):
        return Failure(exc.status_code, _server_message(exc.body), getattr(exc, "headers", None) or {})
    return transport_failure(exc)


def _server_message(body: object) -> str:
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return body["message"][:300]
    return str(body)[:300] if body else ""


def _client(key: str, base_url: str | None, timeout: float):
    cohere = require("cohere")
    url = base_url or os.environ.get(URL_ENV)
    # max_retries=0: our RetryPolicy is the only retry loop.
    return cohere.ClientV2(api_key=key, timeout=timeout, max_retries=0, **({"base_url": url} if url else {}))


SERVICE = ApiService("Cohere", "cohere", KEY_ENV, _client, _failure)


class CohereEncoder(ApiEncoder):
    """An :class:`~harness.protocols.Encoder` over Cohere's ``v2/embed`` (``embed-v4.0`` by default).

    Queries are embedded as ``search_query``, documents as ``search_document``; prompts are prepended
    to the texts. ``max_length`` becomes the API's ``max_tokens`` (inputs are truncated at the end),
    ``output_dimension`` picks a Matryoshka size on embed-v4. ``batch_size`` lowers the 96-texts cap.
    """

    service = SERVICE
    default_model = "embed-v4.0"
    max_texts = default_texts = MAX_TEXTS
    max_length_option = "max_tokens"

    def batches(self, texts: Sequence[str]) -> list[list[int]]:
        """Groups of at most 96 texts (or ``batch_size``) and 128,000 estimated tokens: one request each."""
        return self.token_groups(texts, MAX_TOKENS)

    def encode_with_usage(self, texts: Sequence[str], *, input_type: InputType) -> tuple[np.ndarray, float | None]:
        """One ``v2/embed`` request (retried as needed): the vectors and the billed input tokens."""
        if not texts:
            return np.zeros((0, 0), dtype=np.float32), 0.0
        inputs = [self.prompts[input_type] + t for t in texts]
        options = {k: v for k, v in {"max_tokens": self.max_length, "output_dimension": self.output_dimension}.items() if v}
        response = self._call(
            lambda: self.client.embed(model=self.model, input_type=_INPUT_TYPES[input_type], texts=inputs, embedding_types=["float"], truncate="END", **options),
            "embed",
        )
        rows = attribute_path(response, "embeddings", "float_")
        if rows is None:
            raise malformed("Cohere embed", "no float embeddings in the body")
        return to_matrix(rows, len(texts), "Cohere embed", self.normalize), attribute_path(response, "meta", "billed_units", "input_tokens")


class CohereReranker(ApiReranker):
    """A :class:`~harness.protocols.Reranker` over Cohere's ``v2/rerank`` (``rerank-v3.5`` by default).

    ``max_length`` becomes ``max_tokens_per_doc``; ``batch_size`` caps documents per request (1000 at
    most; a longer list is split). Billed units are search units (one per query and 100 documents).
    """

    service = SERVICE
    default_model = "rerank-v3.5"
    max_documents = MAX_DOCUMENTS
    max_length_option = "max_tokens_per_doc"

    def _rerank(self, query: str, documents: list[str]) -> tuple[list[float], float | None]:
        options = {"max_tokens_per_doc": self.max_length} if self.max_length else {}
        response = self._call(lambda: self.client.rerank(model=self.model, query=query, documents=documents, **options), "rerank")
        results = attribute_path(response, "results")
        if not isinstance(results, list):
            raise malformed("Cohere rerank", "no results in the body")
        pairs = [(attribute_path(r, "index"), attribute_path(r, "relevance_score")) for r in results]
        return scores_in_order(pairs, len(documents), "Cohere rerank"), attribute_path(response, "meta", "billed_units", "search_units")
