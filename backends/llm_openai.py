"""Any OpenAI-compatible chat endpoint (OpenAI, vLLM, Ollama, a llama.cpp server) over plain HTTP
(httpx, through :mod:`backends.http_json`).

``POST {base_url}/chat/completions`` with one user message. ``base_url`` defaults to
``$OPENAI_BASE_URL`` or OpenAI's; the key comes from the variable named by ``api_key_env``
(``OPENAI_API_KEY``). OpenAI itself needs the key; a self-hosted server usually needs none, so there
an unset variable sends no ``Authorization`` header. Retries are :class:`backends.http_retry.RetryPolicy`'s
(429, 5xx and timeouts with backoff and ``Retry-After``; 401/403 at once, naming the variable).
"""

from __future__ import annotations

from backends.api_base import ApiBackend, Transport
from backends.http_json import openai_endpoint, post_json
from backends.http_retry import check_options, malformed
from harness.protocols import Generation


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
        # OpenAI itself needs a key (a clear error now, not a 401 later); a self-hosted server may not.
        endpoint = openai_endpoint(base_url, api_key_env)
        self.service = endpoint.service("OpenAI-compatible chat", "openai")
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.connect(model, Transport(endpoint.url, concurrency, max_retries, timeout), key=endpoint.key)

    @property
    def fingerprint(self) -> str:
        """Model and sampling options; never the key or the URL."""
        return self._digest("chat", [self.model, self.temperature, self.max_tokens])

    def _post(self, prompt: str) -> dict:
        body = {"model": self.model, "messages": [{"role": "user", "content": prompt}], "temperature": self.temperature, "max_tokens": self.max_tokens}
        return post_json(self.client, "/chat/completions", body)

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
