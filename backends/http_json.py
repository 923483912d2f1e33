"""JSON over plain HTTP (httpx) for servers without an SDK of ours: OpenAI's API and the servers that
copy it (Hugging Face TEI, vLLM, Infinity, Ollama, LiteLLM), and the TEI / Jina / Cohere-shaped ``/rerank``.

One client, one mapping of its failures for :class:`backends.http_retry.RetryPolicy`, and one rule
for where the base URL and the key come from (:func:`openai_endpoint`), shared by the chat generator
(:mod:`backends.llm_openai`), the embeddings encoder (:mod:`backends.openai_embed`) and the reranker
(:mod:`backends.http_rerank`). httpx rather than the ``openai`` SDK: the SDK covers neither ``/rerank``
nor a server that wants no key (it sends ``Authorization`` whenever it has a key and refuses to start
without one), and three backends on one transport keep one error mapping.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from backends.api_base import ApiService
from backends.http_retry import Failure, api_key, transport_failure
from harness.errors import ConfigError

OPENAI_URL = "https://api.openai.com/v1"
OPENAI_HOST = "api.openai.com"
URL_ENV = "OPENAI_BASE_URL"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def failure(exc: Exception) -> Failure | None:
    """An HTTP error status with the server's message; a body that is not JSON as a malformed 2xx; the
    rest (timeouts, dropped connections) as no response."""
    import httpx

    if isinstance(exc, httpx.HTTPStatusError):
        return Failure(exc.response.status_code, server_message(exc.response), exc.response.headers)
    if isinstance(exc, ValueError):  # json.JSONDecodeError from a 2xx body
        return Failure(200, f"the body is not JSON ({str(exc)[:100]})")
    return transport_failure(exc)


def server_message(response) -> str:
    """OpenAI's ``{"error": {"message"}}``, TEI's and Ollama's ``{"error": "..."}``, others' ``message`` / ``detail``."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    if not isinstance(body, dict):
        return str(body)[:300]
    error = body.get("error")
    found = error.get("message") if isinstance(error, dict) else error or body.get("message") or body.get("detail")
    return str(found or body)[:300]


def client(key: str, base_url: str | None, timeout: float):
    """An httpx client for ``base_url``; an empty key sends no ``Authorization`` header."""
    import httpx

    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout)


def post_json(http, path: str, body: dict) -> object:
    """POST ``body`` as JSON and return the parsed answer; a non-2xx status raises for the retry loop."""
    response = http.post(path, json=body)
    response.raise_for_status()
    return response.json()


def url_problem(url: str | None) -> str | None:
    """Why ``url`` cannot be a base URL (None when it can)."""
    if url is None:
        return None
    parts = urlsplit(str(url))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"must be an http:// or https:// URL with a host, got {str(url)[:100]!r}"
    return None


def env_problem(name: str | None) -> str | None:
    """Why ``name`` cannot name an environment variable (None when it can)."""
    if name is None or _ENV_NAME.fullmatch(str(name)):
        return None
    return f"must name an environment variable (letters, digits, _), got {str(name)[:60]!r}"


@dataclass(frozen=True)
class Endpoint:
    """Where a backend sends its requests: the base URL, the key ("" sends none) and the variable it came from."""

    url: str
    key: str = field(default="", repr=False)
    key_env: str = ""

    @property
    def host(self) -> str:
        """``host:port`` without user info, for messages."""
        parts = urlsplit(self.url)
        return parts.hostname + (f":{parts.port}" if parts.port else "")

    @property
    def server(self) -> str:
        """Host, port and path (no user info, query or key): which server answers, for fingerprints.
        Two servers serving a model under one name are not known to serve the same model."""
        return self.host + urlsplit(self.url).path.rstrip("/")

    @property
    def is_openai(self) -> bool:
        return urlsplit(self.url).hostname == OPENAI_HOST

    def service(self, name: str, prefix: str) -> ApiService:
        return ApiService(name, prefix, self.key_env, client, failure)


def openai_endpoint(base_url: str | None, key_env: str) -> Endpoint:
    """``base_url``, else ``$OPENAI_BASE_URL``, else OpenAI's. OpenAI itself needs the key in ``key_env``
    (unset: :class:`~harness.errors.MissingCredentials`, so the rung is skipped); another server gets
    the key if the variable is set and no ``Authorization`` header if not."""
    url = (base_url or os.environ.get(URL_ENV) or OPENAI_URL).rstrip("/")
    if problem := url_problem(url) or env_problem(key_env):
        raise ConfigError(f"base_url or api_key_env: {problem}")
    endpoint = Endpoint(url, "", key_env)
    key = api_key(key_env, "OpenAI") if endpoint.is_openai else os.environ.get(key_env, "").strip()
    return Endpoint(url, key, key_env)
