"""Cohere's chat API (v2) through the official ``cohere`` SDK, as a synthetic-query generator.

Key, base URL, client and error mapping are :mod:`backends.cohere`'s (``COHERE_API_KEY``,
``COHERE_BASE_URL``, SDK retries off, one :class:`~backends.http_retry.RetryPolicy` loop).
"""

from __future__ import annotations

from backends.api_base import ApiBackend, Transport
from backends.cohere import SERVICE
from backends.http_retry import attribute_path, check_options, malformed
from harness.protocols import Generation


class CohereGenerator(ApiBackend):
    """A :class:`~harness.protocols.Generator` over ``v2/chat`` (``command-r7b-12-2024`` by default).
    Token counts are the billed units (input and output)."""

    service = SERVICE
    default_model = "command-r7b-12-2024"

    def __init__(
        self,
        model: str | None = None,
        *,
        base_url: str | None = None,
        temperature: float = 0.7,
        max_tokens: int = 256,
        concurrency: int = 4,
        max_retries: int = 6,
        timeout: float = 60.0,
    ):
        check_options(max_tokens=max_tokens)
        transport = Transport(base_url, concurrency, max_retries, timeout)
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.connect(model, transport)

    @property
    def fingerprint(self) -> str:
        return self._digest("chat", [self.model, self.temperature, self.max_tokens])

    def generate(self, prompt: str) -> Generation:
        """One ``v2/chat`` request (retried as needed): the reply's text and billed tokens."""
        messages = [{"role": "user", "content": prompt}]
        response = self._call(
            lambda: self.client.chat(model=self.model, messages=messages, temperature=self.temperature, max_tokens=self.max_tokens),
            "chat",
        )
        parts = attribute_path(response, "message", "content")
        texts = [getattr(p, "text", None) for p in parts] if isinstance(parts, list) else []
        if not texts or not all(isinstance(t, str) for t in texts):
            raise malformed("Cohere chat", "no text content in the message")
        billed = attribute_path(response, "usage", "billed_units")
        return Generation("".join(texts), _int(getattr(billed, "input_tokens", None)), _int(getattr(billed, "output_tokens", None)))


def _int(value: object) -> int | None:
    return None if value is None else int(value)
