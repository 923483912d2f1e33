"""Any OpenAI-compatible chat endpoint (OpenAI, vLLM, Ollama, a llama.cpp server) over plain HTTP (httpx).

``POST {base_url}/chat/completions`` with one user message. ``base_url`` defaults to
``$OPENAI_BASE_URL`` or OpenAI's; the key comes from the variable named by ``api_key_env``
(``OPENAI_API_KEY``). OpenAI itself needs the key; a self-hosted server usually needs none, so there
an unset variable sends no ``Authorization`` header. Retries are :class:`backends.http_retry.RetryPolicy`'s
(429, 5xx and timeouts with backoff and ``Retry-After``; 401/403 at once, naming the variable).
"""

from __future__ import annotations

import os

from backends.api_base import ApiBackend, ApiService, Transport
from backends.http_retry import Failure, api_key, check_options, malformed, transport_failure
from harness.protocols import Generation

OPENAI_URL = "https://api.openai.com/v1"
URL_ENV = "OPENAI_BASE_URL"


def _failure(exc: Exception) -> Failure | None:
    """An HTTP error status with the server's message; a body that is not JSON as a malformed 2xx; the
    rest (timeouts, dropped connections) as no response."""
    import httpx

    if isinstance(exc, httpx.HTTPStatusError):
        return Failure(exc.response.status_code, _server_message(exc.response), exc.response.headers)
    if isinstance(exc, ValueError):  # json.JSONDecodeError from a 2xx body
        return Failure(200, f"the body is not JSON ({str(exc)[:100]})")
    return transport_failure(exc)


def _server_message(response) -> str:
    """OpenAI's ``{"error": {"message"}}``, Ollama's ``{"error": "..."}``, others' ``message`` / ``detail``."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    if not isinstance(body, dict):
        return str(body)[:300]
    error = body.get("error")
    found = error.get("message") if isinstance(error, dict) else error or body.get("message") or body.get("detail")
    return str(found or body)[:300]


def _client(key: str, base_url: str | None, timeout: float):
    import httpx

    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout)


class OpenAIChatGenerator(ApiBackend):
    """A :class:`~harness.protocols.Generator` over ``/chat/completions`` (``gpt-4o-mini`` by default)."""

    default_model = "gpt-4o-mini"

    def __init__(
        self,
        model: str | None = None,
        *,
        base_url: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        temperature: float = 0.7,
        max_tokens: int = 256,
        concurrency: int = 4,
        max_retries: int = 6,
        timeout: float = 60.0,
    ):
        check_options(max_tokens=max_tokens)
        transport = Transport(base_url or os.environ.get(URL_ENV) or OPENAI_URL, concurrency, max_retries, timeout)
        # OpenAI itself needs a key (a clear error now, not a 401 later); a self-hosted server may not.
        key = api_key(api_key_env, "OpenAI") if transport.base_url.rstrip("/") == OPENAI_URL else os.environ.get(api_key_env, "").strip()
        self.service = ApiService("OpenAI-compatible chat", "openai", api_key_env, _client, _failure)
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.connect(model, transport, key=key)

    @property
    def fingerprint(self) -> str:
        """Model and sampling options; never the key or the URL."""
        return self._digest("chat", [self.model, self.temperature, self.max_tokens])

    def _post(self, prompt: str) -> dict:
        body = {"model": self.model, "messages": [{"role": "user", "content": prompt}], "temperature": self.temperature, "max_tokens": self.max_tokens}
        response = self.client.post("/chat/completions", json=body)
        response.raise_for_status()
        return response.json()

    def generate(self, prompt: str) -> Generation:
        """One chat completion (retried as needed): its text and token counts."""
        body = self._call(lambda: self._post(prompt), "chat")
        try:
            text = body["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise malformed("OpenAI-compatible chat", "no choices[0].message.content in the body") from None
        if not isinstance(text, str):
            raise malformed("OpenAI-compatible chat", "the message content is not text")
        usage = body.get("usage") if isinstance(body.get("usage"), dict) else {}
        return Generation(text, usage.get("prompt_tokens"), usage.get("completion_tokens"))
