"""What every paid API backend is, whichever the provider: options, key, client, retries, fingerprint.

A provider module (:mod:`backends.cohere`, :mod:`backends.voyage`) declares an :class:`ApiService`
(its name, key variable, SDK client and error mapping) and subclasses :class:`ApiEncoder` /
:class:`ApiReranker` with the one request each makes. The interface the cache relies on
(``price_key``, ``concurrency``, ``batches``, ``encode_with_usage``, ``rerank_with_usage``) is here.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from backends.http_retry import Failure, RetryPolicy, api_key, check_options, in_parts
from harness.errors import ConfigError
from harness.protocols import InputType


@dataclass(frozen=True)
class ApiService:
    name: str  # "Cohere", in messages
    prefix: str  # "cohere", in price keys and fingerprints
    key_env: str
    client: Callable[[str, str | None, float], Any]  # (key, base_url, timeout) -> SDK client, its retries off
    failure: Callable[[Exception], Failure | None]  # an SDK exception as an HTTP status and headers


class _ApiBackend:
    service: ClassVar[ApiService]
    default_model: ClassVar[str]

    def _connect(self, model: str | None, base_url: str | None, concurrency: int, max_retries: int, timeout: float) -> None:
        service = self.service
        self.model = model or self.default_model
        self.concurrency = concurrency
        self.price_key = f"{service.prefix}:{self.model}"
        key = api_key(service.key_env, service.name)
        self.client = service.client(key, base_url, timeout)
        self._retry = RetryPolicy(service.name, service.key_env, service.failure, max_retries, secret=key)

    def _call(self, request: Callable[[], Any], operation: str) -> Any:
        return self._retry.call(request, operation=operation, model=self.model)

    def _digest(self, kind: str, settings: list) -> str:
        return f"{self.service.prefix}-{kind}-" + hashlib.sha256(json.dumps(settings).encode()).hexdigest()[:24]

    def __repr__(self) -> str:  # never the client: it holds the key
        return f"{type(self).__name__}(model={self.model!r})"


class ApiEncoder(_ApiBackend):
    """An :class:`~harness.protocols.Encoder` over an embeddings API; subclasses make one request in
    :meth:`encode_with_usage` and say how texts are grouped into requests in :meth:`batches`."""

    max_texts: ClassVar[int]  # the API's cap on texts per request
    default_texts: ClassVar[int]
    max_length_option: ClassVar[str | None] = None  # the API parameter max_length becomes, if any

    def __init__(
        self,
        model: str | None = None,
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
        check_options(batch_size=batch_size, max_length=max_length, concurrency=concurrency, max_retries=max_retries, timeout=timeout, output_dimension=output_dimension)
        if max_length is not None and self.max_length_option is None:
            raise ConfigError(f"the {self.service.prefix} encoder has no max_length option (the API truncates at the model's context length); remove it")
        self.prompts = {"query": query_prompt, "document": document_prompt}
        self.batch_size = min(batch_size or self.default_texts, self.max_texts)
        self.max_length = max_length
        self.normalize = normalize
        self.output_dimension = output_dimension
        self._connect(model, base_url, concurrency, max_retries, timeout)

    @property
    def fingerprint(self) -> str:
        """Model and every option that changes the vectors; never the key or the URL."""
        return self._digest("embed", [self.model, self.output_dimension, self.max_length, self.prompts, self.normalize])

    def encode(self, texts: Sequence[str], *, input_type: InputType) -> np.ndarray:
        return self.encode_with_usage(texts, input_type=input_type)[0]

    def encode_with_usage(self, texts: Sequence[str], *, input_type: InputType) -> tuple[np.ndarray, float | None]:
        raise NotImplementedError

    def batches(self, texts: Sequence[str]) -> list[list[int]]:
        raise NotImplementedError


class ApiReranker(_ApiBackend):
    """A :class:`~harness.protocols.Reranker` over a rerank API; subclasses make one request in
    :meth:`_rerank`. ``batch_size`` caps documents per request (longer lists are split)."""

    max_documents: ClassVar[int] = 1000
    max_length_option: ClassVar[str | None] = None

    def __init__(
        self,
        model: str | None = None,
        *,
        base_url: str | None = None,
        concurrency: int = 4,
        max_retries: int = 6,
        timeout: float = 60.0,
        batch_size: int | None = None,
        max_length: int | None = None,
    ):
        check_options(batch_size=batch_size, max_length=max_length, concurrency=concurrency, max_retries=max_retries, timeout=timeout)
        if max_length is not None and self.max_length_option is None:
            raise ConfigError(f"the {self.service.prefix} reranker has no max_length option (the API truncates documents itself); remove it")
        self.max_length = max_length
        self.batch_size = min(batch_size or self.max_documents, self.max_documents)
        self._connect(model, base_url, concurrency, max_retries, timeout)

    @property
    def fingerprint(self) -> str:
        return self._digest("rerank", [self.model, self.max_length])

    def rerank(self, query: str, documents: Sequence[str]) -> list[float]:
        return self.rerank_with_usage(query, documents)[0]

    def rerank_with_usage(self, query: str, documents: Sequence[str]) -> tuple[list[float], float | None]:
        """Scores in the order given and the billed units (one request per ``batch_size`` documents)."""
        return in_parts(lambda part: self._rerank(query, part), documents, self.batch_size)

    def _rerank(self, query: str, documents: list[str]) -> tuple[list[float], float | None]:
        raise NotImplementedError
