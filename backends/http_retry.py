"""What every API backend shares (Cohere, Voyage, OpenAI-compatible): one retry loop, request batching and response checks.

Each SDK's own retries are switched off, so :class:`RetryPolicy` is the only loop: it retries HTTP 408,
429 and 5xx, timeouts and dropped connections with exponential backoff and full jitter (base 1 s,
doubling, capped at 60 s: "Exponential Backoff And Jitter", AWS Architecture Blog, 2015), or waits as
long as a ``Retry-After`` header asks. Anything else fails at once with an :class:`ApiError` that
names the service, the status and the fix. A backend only has to say how its SDK's exceptions map to
an HTTP status and headers (:class:`Failure`).

The API key never reaches a message or a log record: failures are described from the status and the
server's error text, never from the request.
"""

from __future__ import annotations

import email.utils
import logging
import math
import os
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np

from harness.errors import ApiError, ConfigError, MissingCredentials

log = logging.getLogger(__name__)

T = TypeVar("T")

BASE_DELAY = 1.0  # seconds before the first retry (at most; full jitter draws from [0, delay])
MAX_DELAY = 60.0
MAX_RETRY_AFTER = 600.0  # a Retry-After is honoured up to ten minutes; beyond that it is more likely a bogus date
RETRY_STATUSES = frozenset({408, 429})  # and every 5xx
AUTH_STATUSES = frozenset({401, 403})

# Module-level so tests can replace them: ``monkeypatch.setattr(http_retry, "sleep", ...)``.
sleep = time.sleep
rng = random.Random()


@dataclass
class Failure:
    """One failed attempt as the retry loop sees it.

    ``status`` is the HTTP status, or None when no response came (a timeout, a dropped connection);
    a 2xx status means the body could not be read. ``message`` is the server's error text or the
    transport error, and must not contain the key.
    """

    status: int | None
    message: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def retryable(self) -> bool:
        return self.status is None or self.status in RETRY_STATUSES or self.status >= 500

    def describe(self) -> str:
        head = "no response" if self.status is None else f"HTTP {self.status}"
        return f"{head}: {self.message}" if self.message else head


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date, RFC 9110 §10.2.3), or None."""
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def backoff(retry: int) -> float:
    """Full jitter: uniform in [0, min(MAX_DELAY, BASE_DELAY * 2**retry)] for the ``retry``-th retry (from 0)."""
    return rng.uniform(0.0, min(MAX_DELAY, BASE_DELAY * 2.0**retry))


@dataclass
class RetryPolicy:
    """Calls an SDK function with retries; ``to_failure`` maps the SDK's exceptions (None: not an API failure)."""

    service: str  # "Cohere"
    key_env: str  # "COHERE_API_KEY"
    to_failure: Callable[[Exception], Failure | None]
    max_retries: int = 6
    secret: str = field(default="", repr=False)  # scrubbed from server messages, in case one echoes the key

    def call(self, request: Callable[[], T], *, operation: str, model: str) -> T:
        """``request()``, retried; raise :class:`ApiError` when it fails for good."""
        what = f"{self.service} {operation}"
        for attempt in range(self.max_retries + 1):
            try:
                return request()
            except Exception as exc:
                failure = self.to_failure(exc)
                if failure is None:
                    raise
                if self.secret:
                    failure.message = failure.message.replace(self.secret, "***")
            self._raise_if_final(failure, what, model)
            if attempt == self.max_retries:
                break
            delay = retry_after(failure.headers)
            delay = backoff(attempt) if delay is None else delay
            log.warning("%s: %s; retry %d of %d in %.1f s", what, failure.describe(), attempt + 1, self.max_retries, delay)
            sleep(delay)
        raise ApiError(
            f"{what}: {self.max_retries + 1} attempts failed (last: {failure.describe()}); "
            "finished requests are cached: re-run to resume"
        )

    def _raise_if_final(self, failure: Failure, what: str, model: str) -> None:
        if failure.status in AUTH_STATUSES and not self.secret:  # a self-hosted server sent no key, and wants one
            where = f"set {self.key_env}" if self.key_env else "name the variable that holds it in the backend's api_key_env option"
            raise ApiError(f"{self.service} asks for an API key (HTTP {failure.status}) and none was sent: {where}")
        if failure.status in AUTH_STATUSES:
            raise ApiError(
                f"{self.service} rejected the API key in {self.key_env} (HTTP {failure.status}); "
                f"check the key and that it may use {model}"
            )
        if failure.status is not None and 200 <= failure.status < 300:
            raise malformed(what, failure.message or "unreadable body")
        if failure.status == 404:  # most often a base URL without its version path, or a model name typo
            raise ApiError(f"{what} failed: {failure.describe()}; check the base URL and that model '{model}' exists")
        if failure.status == 413:  # a self-hosted server's own cap (TEI's max_client_batch_size is 32)
            raise ApiError(f"{what} failed: {failure.describe()}; lower batch_size to the server's limit")
        if not failure.retryable:
            raise ApiError(f"{what} failed: {failure.describe()}")


def transport_failure(exc: Exception) -> Failure | None:
    """An httpx error that got no response (a timeout, a dropped connection) as a retryable failure;
    None for anything else (the cohere SDK and the OpenAI-compatible client talk httpx)."""
    import httpx

    if isinstance(exc, httpx.TimeoutException):
        return Failure(None, f"timed out ({type(exc).__name__})")
    if isinstance(exc, httpx.TransportError):
        return Failure(None, f"{type(exc).__name__}: {str(exc)[:200]}")
    return None


def attribute_path(obj: object, *names: str) -> object:
    """``obj.a.b.c`` for names ``a, b, c``, or None where any step is missing (an SDK response of an unexpected shape)."""
    for name in names:
        obj = getattr(obj, name, None)
    return obj


def malformed(what: str, problem: str) -> ApiError:
    return ApiError(f"{what} returned a malformed response ({problem}); check that the base URL serves this API (a proxy, or an API change)")


def api_key(env: str, service: str) -> str:
    """The key in ``env``; raise :class:`MissingCredentials` naming the variable (never a value) if unset."""
    key = os.environ.get(env, "").strip()
    if not key:
        raise MissingCredentials(f"{service} needs an API key: set {env} (the rung is skipped without it)")
    return key


def check_options(**values: float | None) -> None:
    """Reject options that must be positive (``max_retries`` may be 0); None means "the default"."""
    for name, value in values.items():
        low = 0 if name == "max_retries" else 1e-9
        if value is not None and value < low:
            raise ConfigError(f"option '{name}' must be {'>= 0' if low == 0 else '> 0'}, got {value}")


def estimate_tokens(text: str) -> int:
    """A deliberately high token estimate: one token per 3 UTF-8 bytes.

    English BPE averages ~4 bytes a token, CJK ~3; the providers' own tokenizers would need a download
    (Voyage's come from the Hugging Face hub), and overestimating only costs a few more requests.
    """
    return len(text.encode("utf-8")) // 3 + 1


def group(texts: Sequence[str], max_items: int, max_tokens: int, estimate: Callable[[str], int] = estimate_tokens) -> list[list[int]]:
    """Consecutive indices, each group within ``max_items`` texts and ``max_tokens`` estimated tokens
    (a text over the token cap goes alone and the API truncates it)."""
    groups: list[list[int]] = []
    tokens = 0
    for i, text in enumerate(texts):
        cost = estimate(text)
        if not groups or len(groups[-1]) >= max_items or tokens + cost > max_tokens:
            groups.append([])
            tokens = 0
        groups[-1].append(i)
        tokens += cost
    return groups


def to_matrix(rows: object, n: int, what: str, normalize: bool) -> np.ndarray:
    """Check a response's vectors (``n`` rows of equal length, finite numbers) and return float32,
    L2-normalised if asked."""
    try:
        matrix = np.asarray(rows, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise malformed(what, f"vectors are not numeric: {str(exc)[:100]}") from None
    if matrix.ndim != 2 or matrix.shape[0] != n or matrix.shape[1] == 0:
        raise malformed(what, f"expected {n} vectors, got an array of shape {matrix.shape}")
    if not np.isfinite(matrix).all():
        raise malformed(what, "vectors contain NaN or infinity")
    if normalize:
        matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
    return matrix


def scores_in_order(results: object, n: int, what: str) -> list[float]:
    """``[(index, score), ...]`` from a rerank response (sorted by score) back into document order."""
    scores: list[float | None] = [None] * n
    try:
        for index, score in results:
            if not 0 <= int(index) < n or not math.isfinite(float(score)):
                raise ValueError(f"index {index} or score {score} out of range")
            scores[int(index)] = float(score)
    except (TypeError, ValueError) as exc:
        raise malformed(what, str(exc)[:100]) from None
    if None in scores:
        raise malformed(what, f"scores for {scores.count(None)} of {n} documents are missing")
    return scores


def in_parts(call: Callable[[list[str]], tuple[list[float], float | None]], documents: Sequence[str], size: int) -> tuple[list[float], float | None]:
    """Rerank ``documents`` in requests of at most ``size``: scores in order, billed units summed
    (None if any request's are unknown)."""
    scores: list[float] = []
    units: float | None = 0.0
    for start in range(0, len(documents), size):
        part, billed = call(list(documents[start : start + size]))
        scores += part
        units = None if units is None or billed is None else units + billed
    return scores, units
