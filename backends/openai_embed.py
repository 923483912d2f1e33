"""OpenAI's embeddings API, and every server that speaks it (Hugging Face TEI, vLLM, Infinity, Ollama,
LiteLLM), over plain HTTP (httpx, through :mod:`backends.http_json`).

``POST {base_url}/embeddings`` with ``{"model", "input": [...], "encoding_format", "dimensions"?}``.
``base_url`` defaults to ``$OPENAI_BASE_URL`` or OpenAI's. The key comes from the variable named by
``api_key_env`` (``OPENAI_API_KEY``): OpenAI itself needs it (unset, the rung is skipped); another
server gets it if it is set and no ``Authorization`` header if not.

Tokens are estimated (:func:`backends.http_retry.estimate_tokens`, one per 3 UTF-8 bytes), never
counted with tiktoken: tiktoken downloads its BPE tables on first use (an offline run would stall),
and vectors that changed with an optional package installed would make one fingerprint mean two
things. The estimate is high for English and code (~4 bytes a token), so requests stay under the
API's caps at the price of a few more of them. An input over ``max_length`` estimated tokens
(default: the model's context for OpenAI's models, none for other servers, which truncate or refuse
by their own settings) is cut at the end to fit, as Cohere's and Voyage's APIs cut theirs, with a
warning; an error would make the one rung unable to run a corpus every other rung can.
"""

from __future__ import annotations

import base64
import binascii
import logging
import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Literal

import numpy as np

from backends.api_base import ApiEncoder, Transport, transport_problems
from backends.http_json import Endpoint, env_problem, openai_endpoint, post_json, url_problem
from backends.http_retry import estimate_tokens, malformed, to_matrix
from harness.errors import ConfigError
from harness.protocols import InputType

log = logging.getLogger(__name__)

KEY_ENV = "OPENAI_API_KEY"
# Per request: 2048 inputs and 300,000 tokens summed over them (platform.openai.com/docs/api-reference/embeddings/create).
MAX_TEXTS = 2048
MAX_TOKENS = 300_000
# Tokens per input (platform.openai.com/docs/guides/embeddings: 8192 for the v3 models; 8191, the
# older documented limit of ada-002, for all three to be safe).
CONTEXT = {"text-embedding-3-small": 8191, "text-embedding-3-large": 8191, "text-embedding-ada-002": 8191}
ENCODINGS = ("float", "base64")


class OpenAIEncoder(ApiEncoder):
    """An :class:`~harness.protocols.Encoder` over an OpenAI-compatible ``/embeddings``
    (``text-embedding-3-small`` by default).

    OpenAI's API has no input type: ``query_prompt`` / ``document_prompt`` are prepended (what e5 or
    bge models served by TEI or vLLM expect). ``output_dimension`` is sent as ``dimensions``;
    ``encoding_format = "base64"`` asks for smaller bodies (decoded as little-endian float32).
    ``price_key`` is the ``[prices]`` entry usage is billed at: ``openai:<model>`` on OpenAI's API,
    none (no cost) on any other server unless named, e.g. for a proxy in front of a paid API.
    """

    default_model = "text-embedding-3-small"
    max_texts = default_texts = MAX_TEXTS

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
        api_key_env: str = KEY_ENV,
        encoding_format: Literal["float", "base64"] = "float",
        price_key: str | None = None,
        concurrency: int = 4,
        max_retries: int = 6,
        timeout: float = 60.0,
        output_dimension: int | None = None,
    ):
        given = {"base_url": base_url, "api_key_env": api_key_env, "encoding_format": encoding_format}
        if problems := self.config_problems(self.default_model if model is None else model, given):
            key, problem = next(iter(problems.items()))
            raise ConfigError(f"openai encoder option '{key}' {problem}")
        self.api_key_env = api_key_env
        self.encoding_format = encoding_format
        self._price_key = price_key or None
        self.truncated = 0  # inputs cut to max_length by this instance
        super().__init__(
            model, query_prompt=query_prompt, document_prompt=document_prompt, batch_size=batch_size, max_length=max_length, normalize=normalize,
            base_url=base_url, concurrency=concurrency, max_retries=max_retries, timeout=timeout, output_dimension=output_dimension,
        )  # fmt: skip
        self.max_length = max_length or CONTEXT.get(self.model)

    @classmethod
    def config_problems(cls, model: str, options: dict) -> dict[str, str]:
        """Transport options out of range, a base URL or key variable that cannot be one, an unknown
        encoding, and a model name no server serves (empty, or with control characters)."""
        checks = {
            "model": model_problem(model),
            "base_url": url_problem(options.get("base_url")),
            "api_key_env": env_problem(options.get("api_key_env")),
            "encoding_format": None if options.get("encoding_format", "float") in ENCODINGS else f"must be one of {', '.join(ENCODINGS)}",
        }
        return transport_problems(options) | {k: v for k, v in checks.items() if v}

    def connect(self, model: str | None, transport: Transport, *, key: str | None = None) -> None:
        """Resolve the base URL and key (:func:`~backends.http_json.openai_endpoint`), then connect."""
        self.endpoint: Endpoint = openai_endpoint(transport.base_url, self.api_key_env)
        name = "OpenAI" if self.endpoint.is_openai else f"OpenAI-compatible server at {self.endpoint.host}"
        self.service = self.endpoint.service(name, "openai")
        super().connect(model, replace(transport, base_url=self.endpoint.url), key=self.endpoint.key)
        self.price_key = self._price_key or (f"openai:{self.model}" if self.endpoint.is_openai else None)

    @property
    def fingerprint(self) -> str:
        """Server (host, port, path), model and every option that changes the vectors; never the key."""
        return self._digest("embed", [self.endpoint.server, self.model, self.output_dimension, self.max_length, self.prompts, self.normalize])

    def batches(self, texts: Sequence[str]) -> list[list[int]]:
        """Groups within ``batch_size`` texts (2048 at most) and 300,000 estimated tokens: one request each."""
        return self.token_groups(texts, MAX_TOKENS)

    def encode_with_usage(self, texts: Sequence[str], *, input_type: InputType) -> tuple[np.ndarray, float | None]:
        """One ``/embeddings`` request (retried as needed): the vectors and ``usage.prompt_tokens``."""
        if not texts:
            return np.zeros((0, 0), dtype=np.float32), 0.0
        body = {"model": self.model, "input": self._inputs(texts, input_type), "encoding_format": self.encoding_format}
        if self.output_dimension:
            body["dimensions"] = self.output_dimension
        answer = self._call(lambda: post_json(self.client, "/embeddings", body), "embed")
        return self._vectors(answer, len(texts)), _usage(answer)

    def _inputs(self, texts: Sequence[str], input_type: InputType) -> list[str]:
        """The prompted texts, each cut to ``max_length`` estimated tokens (a warning the first time)."""
        inputs = [self.prompts[input_type] + t for t in texts]
        if not self.max_length:
            return inputs
        cut = [cut_to_tokens(t, self.max_length) for t in inputs]
        over = sum(a is not b for a, b in zip(inputs, cut))
        if over and not self.truncated:
            log.warning("%s embed: %d input(s) over max_length=%d estimated tokens cut at the end to fit (later cuts are not logged)", self.service.name, over, self.max_length)
        self.truncated += over
        return cut

    def _vectors(self, answer: object, n: int) -> np.ndarray:
        """``data[].embedding`` put in ``data[].index`` order, checked: one row per input, one width, finite."""
        what = f"{self.service.name} embed"
        data = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(data, list):
            raise malformed(what, "no data list in the body")
        rows: list[object] = [None] * n
        for item in data:
            index = item.get("index") if isinstance(item, dict) else None
            if type(index) is not int or not 0 <= index < n or rows[index] is not None:
                raise malformed(what, f"data[].index {str(index)[:20]!r} is not one of 0..{n - 1}, each once")
            rows[index] = _decode(item.get("embedding"), what)
        if missing := sum(row is None for row in rows):
            raise malformed(what, f"{missing} of {n} embeddings are missing")
        matrix = to_matrix(rows, n, what, self.normalize)
        if self.output_dimension and matrix.shape[1] != self.output_dimension:
            raise malformed(what, f"{matrix.shape[1]}-dimensional vectors where dimensions={self.output_dimension} was asked")
        return matrix


def model_problem(model: object) -> str | None:
    """Why ``model`` cannot be a served model's name (None when it can): it goes verbatim into the JSON body."""
    if not isinstance(model, str) or not model.strip():
        return "must be the model name the server serves, got an empty name"
    if any(ord(c) < 32 or ord(c) == 127 for c in model):
        return f"has control characters: {model[:60]!r}"
    return None


def cut_to_tokens(text: str, max_tokens: int) -> str:
    """``text`` itself when its estimate is within ``max_tokens``, else its longest head that is
    (cut between UTF-8 characters)."""
    if estimate_tokens(text) <= max_tokens:
        return text
    return text.encode("utf-8")[: 3 * (max_tokens - 1)].decode("utf-8", "ignore")


def _decode(embedding: object, what: str) -> object:
    """A list of numbers as is; a base64 string as little-endian float32 (what OpenAI sends for ``base64``)."""
    if not isinstance(embedding, str):
        return embedding
    try:
        raw = base64.b64decode(embedding, validate=True)
        return np.frombuffer(raw, dtype="<f4")
    except (binascii.Error, ValueError):
        raise malformed(what, "an embedding is neither numbers nor base64 float32") from None


def _usage(answer: dict) -> float | None:
    """Billed tokens: ``usage.prompt_tokens`` (``total_tokens`` where a server gives only that); None if absent."""
    usage = answer.get("usage") if isinstance(answer.get("usage"), dict) else {}
    for key in ("prompt_tokens", "total_tokens"):
        value = usage.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value >= 0:
            return float(value)
    return None
