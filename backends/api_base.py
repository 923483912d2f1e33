"""What every API backend is, whichever the provider: transport, key, client, retries, fingerprint.

A provider module (:mod:`backends.cohere`, :mod:`backends.voyage`, :mod:`backends.llm_openai`)
declares an :class:`ApiService` (its name, key variable, client and error mapping) and subclasses
:class:`ApiEncoder` / :class:`ApiReranker` / :class:`ApiBackend` with the one request each makes.
Every one reaches its server through one :class:`Transport` (base URL, requests in flight, retries,
timeout). The paid-API protocols the cache relies on (:class:`~harness.protocols.PaidEncoder`,
:class:`~harness.protocols.PaidReranker`, :class:`~harness.protocols.Batched`,
:class:`~harness.protocols.Concurrent`) are implemented here.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from backends.http_retry import Failure, RetryPolicy, api_key, check_options, estimate_tokens, group, in_parts
from harness.errors import ConfigError
from harness.protocols import InputType


@dataclass(frozen=True)
class ApiService:
    name: str  # "Cohere", in messages
    prefix: str  # "cohere", in price keys and fingerprints
    key_env: str
    client: Callable[[str, str | None, float], Any]  # (key, base_url, timeout) -> SDK client, its retries off
    failure: Callable[[Exception], Failure | None]  # an SDK exception as an HTTP status and headers


@dataclass(frozen=True)
class Transport:
    """How an API backend reaches its server: the base URL (None: the provider's, or its environment
    variable's), requests in flight at once, retries of one request, and seconds per attempt. Every
    API backend's constructor takes these four options and hands them here."""

    base_url: str | None = None
    concurrency: int = 4
    max_retries: int = 6
    timeout: float = 60.0

    def __post_init__(self) -> None:
        check_options(concurrency=self.concurrency, max_retries=self.max_retries, timeout=self.timeout)


def transport_problems(options: dict) -> dict[str, str]:
    """``{key: why}`` for the :class:`Transport` options (and ``output_dimension``) in a backend table that
    can never work, checked when a ladder is loaded, so the error names the file, rung and key."""
    problems = {}
    for key, low in (("concurrency", 1), ("max_retries", 0), ("output_dimension", 1)):
        value = options.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
            problems[key] = f"must be a whole number >= {low}, got {value!r}"
    timeout = options.get("timeout")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout < float("inf")):
        problems["timeout"] = f"must be a number of seconds > 0, got {timeout!r}"
    return problems


class ApiBackend:
    """An API client with tunebench's transport: ``model``, ``price_key``, ``concurrency``, the SDK client
    and one retry loop; subclasses make their requests through :meth:`_call`."""

    service: ClassVar[ApiService]
    default_model: ClassVar[str]
    no_max_length: ClassVar[str] = "backend has no max_length option"

    def connect(self, model: str | None, transport: Transport, *, key: str | None = None) -> None:
        """Set up the client; ``key`` defaults to the service's variable (unset: :class:`MissingCredentials`)."""
        service = self.service
        self.model = model or self.default_model
        self.concurrency = transport.concurrency
        self.price_key = f"{service.prefix}:{self.model}"
        key = api_key(service.key_env, service.name) if key is None else key
        self.client = service.client(key, transport.base_url, transport.timeout)
        self._retry = RetryPolicy(service.name, service.key_env, service.failure, transport.max_retries, secret=key)

    @classmethod
    def config_problems(cls, model: str, options: dict) -> dict[str, str]:
        """Transport options out of range (:func:`transport_problems`) and a ``max_length`` the API has
        no parameter for, without a key or a client."""
        problems = transport_problems(options)
        if options.get("max_length") is not None and getattr(cls, "max_length_option", None) is None:
            problems["max_length"] = f"the {cls.service.prefix} {cls.no_max_length}; remove it"
        return problems

    def _call(self, request: Callable[[], Any], operation: str) -> Any:
        return self._retry.call(request, operation=operation, model=self.model)

    def _digest(self, kind: str, settings: list) -> str:
        return f"{self.service.prefix}-{kind}-" + hashlib.sha256(json.dumps(settings).encode()).hexdigest()[:24]

    def __repr__(self) -> str:  # never the client: it holds the key
        return f"{type(self).__name__}(model={self.model!r})"


class ApiEncoder(ApiBackend):
    """An :class:`~harness.protocols.Encoder` over an embeddings API; subclasses make one request in
    :meth:`encode_with_usage` and say how texts are grouped into requests in :meth:`batches`."""

    max_texts: ClassVar[int]  # the API's cap on texts per request
    default_texts: ClassVar[int]
    max_length_option: ClassVar[str | None] = None  # the API parameter max_length becomes, if any
    no_max_length: ClassVar[str] = "encoder has no max_length option (the API truncates at the model's context length)"

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
        check_options(batch_size=batch_size, max_length=max_length, output_dimension=output_dimension)
        transport = Transport(base_url, concurrency, max_retries, timeout)
        if problem := self.config_problems(model, {"max_length": max_length}).get("max_length"):
            raise ConfigError(problem)
        self.prompts = {"query": query_prompt, "document": document_prompt}
        self.batch_size = min(batch_size or self.default_texts, self.max_texts)
        self.max_length = max_length
        self.normalize = normalize
        self.output_dimension = output_dimension
        self.connect(model, transport)

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

    def token_groups(self, texts: Sequence[str], max_tokens: int) -> list[list[int]]:
        """Groups within ``batch_size`` texts and ``max_tokens`` estimated tokens, the longest prompt
        included and each text counted at most ``max_length`` (where it is cut)."""
        prompt = max(self.prompts.values(), key=len)
        cap = self.max_length

        def tokens(text: str) -> int:
            return min(estimate_tokens(prompt + text), cap) if cap else estimate_tokens(prompt + text)

        return group(texts, self.batch_size, max_tokens, tokens)


class ApiReranker(ApiBackend):
    """A :class:`~harness.protocols.Reranker` over a rerank API; subclasses make one request in
    :meth:`_rerank`. ``batch_size`` caps documents per request (longer lists are split)."""

    max_documents: ClassVar[int] = 1000
    max_length_option: ClassVar[str | None] = None
    no_max_length: ClassVar[str] = "reranker has no max_length option (the API truncates documents itself)"

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
        check_options(batch_size=batch_size, max_length=max_length)
        transport = Transport(base_url, concurrency, max_retries, timeout)
        if problem := self.config_problems(model, {"max_length": max_length}).get("max_length"):
            raise ConfigError(problem)
        self.max_length = max_length
        self.batch_size = min(batch_size or self.max_documents, self.max_documents)
        self.connect(model, transport)

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
