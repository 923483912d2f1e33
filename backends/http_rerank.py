"""Any ``/rerank`` server: Hugging Face TEI's shape, and the Cohere shape that Jina, vLLM, Infinity and
LiteLLM share, over plain HTTP (httpx, through :mod:`backends.http_json`).

``shape = "cohere"`` (the default) sends ``POST {base_url}/rerank`` with ``{"model", "query",
"documents", "top_n"}``; ``shape = "tei"`` sends ``{"query", "texts", "truncate": true}`` (TEI serves
one model and refuses over-long texts unless asked to truncate). Either answer is read, whichever
comes: TEI's ``[{"index", "score"}]`` or ``{"results": [{"index", "relevance_score"}]}``.

``base_url`` is required (there is no one provider). The key comes from the variable named by
``api_key_env``; none named, no ``Authorization`` header is sent (a self-hosted server), and a named
variable that is unset skips the rung. Each request bills one search, priced by ``price_key``'s
``[prices]`` entry (``per_thousand_searches``) when one is named; without one the reranker costs
nothing (a self-hosted server). TEI's default ``max_client_batch_size`` is 32: set ``batch_size = 32``
there and a longer candidate list is split over requests.
"""

from __future__ import annotations

from typing import Literal

from backends.api_base import ApiReranker, Transport
from backends.http_json import Endpoint, env_problem, post_json, url_problem
from backends.http_retry import api_key, malformed, scores_in_order
from harness.errors import ConfigError

SHAPES = ("cohere", "tei")


class HttpReranker(ApiReranker):
    """A :class:`~harness.protocols.Reranker` over a TEI / Jina / Cohere-compatible ``/rerank``."""

    default_model = "rerank"

    def __init__(
        self,
        model: str | None = None,
        *,
        base_url: str | None = None,
        shape: Literal["cohere", "tei"] = "cohere",
        api_key_env: str | None = None,
        price_key: str | None = None,
        concurrency: int = 4,
        max_retries: int = 6,
        timeout: float = 60.0,
        batch_size: int | None = None,
        max_length: int | None = None,
    ):
        if problems := self.config_problems(self.default_model if model is None else model, {"base_url": base_url, "shape": shape, "api_key_env": api_key_env}):
            key, problem = next(iter(problems.items()))
            raise ConfigError(f"http-rerank option '{key}' {problem}")
        self.shape = shape
        self.api_key_env = api_key_env
        self._price_key = price_key or None
        super().__init__(model, base_url=base_url, concurrency=concurrency, max_retries=max_retries, timeout=timeout, batch_size=batch_size, max_length=max_length)

    @classmethod
    def config_problems(cls, model: str, options: dict) -> dict[str, str]:
        """Transport options out of range, no or no valid ``base_url``, an unknown ``shape``, a ``max_length``."""
        checks = {
            "base_url": url_problem(options.get("base_url")) if options.get("base_url") else "is required: the server's URL, e.g. http://localhost:8080",
            "shape": None if options.get("shape", "cohere") in SHAPES else f"must be one of {', '.join(SHAPES)}",
            "api_key_env": env_problem(options.get("api_key_env")),
        }
        return super().config_problems(model, options) | {k: v for k, v in checks.items() if v}

    def connect(self, model: str | None, transport: Transport, *, key: str | None = None) -> None:
        url = transport.base_url.rstrip("/")
        key = api_key(self.api_key_env, f"The rerank server at {Endpoint(url).host}") if self.api_key_env else ""
        self.endpoint = Endpoint(url, key, self.api_key_env or "")
        self.service = self.endpoint.service(f"Rerank server at {self.endpoint.host}", "http-rerank")
        super().connect(model, transport, key=self.endpoint.key)
        self.price_key = self._price_key

    @property
    def fingerprint(self) -> str:
        """Server (host, port, path), model and request shape; never the key."""
        return self._digest("rerank", [self.endpoint.server, self.model, self.shape])

    def _rerank(self, query: str, documents: list[str]) -> tuple[list[float], float | None]:
        if self.shape == "tei":
            body = {"query": query, "texts": documents, "truncate": True}
        else:
            body = {"model": self.model, "query": query, "documents": documents, "top_n": len(documents)}
        answer = self._call(lambda: post_json(self.client, "/rerank", body), "rerank")
        return scores_in_order(_pairs(answer, f"{self.service.name} rerank"), len(documents), f"{self.service.name} rerank"), 1.0


def _pairs(answer: object, what: str) -> list[tuple[object, object]]:
    """``(index, score)`` from TEI's list or a ``{"results": [...]}`` body (``relevance_score``, else ``score``)."""
    results = answer.get("results") if isinstance(answer, dict) else answer
    if not isinstance(results, list) or not all(isinstance(r, dict) for r in results):
        raise malformed(what, "no list of results in the body")
    return [(r.get("index"), r.get("relevance_score", r.get("score"))) for r in results]
