"""The Cohere and Voyage backends through their real SDKs, against the fake API in ``fake_api.py``:
batching, retries (429 with Retry-After, 5xx storms, timeouts), bad keys, malformed bodies, the
cache in front of them, and a SIGKILL mid-run that loses nothing paid for.

Backoff sleeps are recorded, not slept; the key must never show in a message, repr or log record.
"""

from __future__ import annotations

import email.utils
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from backends import http_retry
from backends.cohere import CohereEncoder, CohereReranker
from backends.voyage import VoyageEncoder, VoyageReranker
from fake_api import KEY, FakeApi, Fault, fake_score, fake_tokens, fake_vector
from harness import registry
from harness.cache import Cache, CachedEncoder, CachedReranker
from harness.errors import ApiError, ConfigError, MissingCredentials

pytestmark = pytest.mark.usefixtures("sleeps")  # backoff delays recorded, not waited

SERVICES = ["cohere", "voyage"]
KEY_ENV = {"cohere": "COHERE_API_KEY", "voyage": "VOYAGE_API_KEY"}
EMBED_PATH = {"cohere": "/v2/embed", "voyage": "/v1/embeddings"}
INPUT_TYPES = {"cohere": {"query": "search_query", "document": "search_document"}, "voyage": {"query": "query", "document": "document"}}
TEXTS = [f"note {i}: the {'queen' if i % 2 else 'worker'} bees of hive {i % 7} store {'honey ' * (i % 5)}" for i in range(300)]
DOCS = ["varroa mites in winter", "queen bees swarm in spring", "honey extractor", "mites and bees", "wax moth"]


def encoder(service: str, api: FakeApi, **options):
    if service == "cohere":
        return CohereEncoder(base_url=api.url, **options)
    return VoyageEncoder(base_url=api.url + "/v1", **options)


def reranker(service: str, api: FakeApi, **options):
    if service == "cohere":
        return CohereReranker(base_url=api.url, **options)
    return VoyageReranker(base_url=api.url + "/v1", **options)


@pytest.fixture
def api(monkeypatch):
    for name in ("COHERE_BASE_URL", "VOYAGE_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    for name in KEY_ENV.values():
        monkeypatch.setenv(name, KEY)
    with FakeApi() as server:
        yield server


@pytest.fixture(autouse=True)
def no_key_in_logs(caplog):
    caplog.set_level(logging.DEBUG)
    yield
    leaked = [r.getMessage() for r in caplog.records if KEY in r.getMessage() or "SECRET" in r.getMessage()]
    assert not leaked, "the API key reached a log record"


def api_error(call, *args, **kwargs) -> ApiError:
    """Run ``call`` expecting an :class:`ApiError`; check the key is in none of its messages or reprs."""
    with pytest.raises(ApiError) as info:
        call(*args, **kwargs)
    exc: BaseException | None = info.value
    while exc is not None:
        assert "SECRET" not in str(exc) and "SECRET" not in repr(exc)
        exc = exc.__cause__ or exc.__context__
    return info.value


def encode_all(enc, texts: list[str], input_type: str) -> tuple[np.ndarray, float]:
    """What CachedEncoder does without a cache: one encode_with_usage per batch."""
    out, units = {}, 0.0
    for group in enc.batches(texts):
        vectors, billed = enc.encode_with_usage([texts[i] for i in group], input_type=input_type)
        out.update(zip(group, vectors))
        units += billed
    return np.stack([out[i] for i in range(len(texts))]), units


# --- the happy path ---------------------------------------------------------------------------------


@pytest.mark.parametrize("service", SERVICES)
def test_encode_returns_vectors_in_order_in_capped_batches(service, api):
    enc = encoder(service, api, query_prompt="query: ")
    vectors, units = encode_all(enc, TEXTS, "query")
    expected = np.array([fake_vector("query: " + t) for t in TEXTS], dtype=np.float32)
    np.testing.assert_allclose(vectors, expected, atol=1e-6)
    assert vectors.dtype == np.float32 and units == sum(fake_tokens("query: " + t) for t in TEXTS)
    cap = {"cohere": 96, "voyage": 128}[service]
    assert max(len(r.texts) for r in api.requests) == cap and len(api.requests) == -(-len(TEXTS) // cap)
    for request in api.requests:
        assert request.path == EMBED_PATH[service]
        assert request.body["input_type"] == INPUT_TYPES[service]["query"]
        assert request.headers["authorization"] == f"Bearer {KEY}"


@pytest.mark.parametrize("service", SERVICES)
def test_document_input_type_output_dimension_and_unnormalised(service, api):
    enc = encoder(service, api, normalize=False, output_dimension=16)
    vectors, _ = enc.encode_with_usage(["hive"], input_type="document")
    assert api.requests[0].body["input_type"] == INPUT_TYPES[service]["document"]
    assert api.requests[0].body["output_dimension"] == 16 and vectors.shape == (1, 16)


def test_cohere_request_options(api):
    CohereEncoder(base_url=api.url, max_length=256).encode(["hive"], input_type="query")
    body = api.requests[0].body
    assert body["embedding_types"] == ["float"] and body["truncate"] == "END" and body["max_tokens"] == 256


@pytest.mark.parametrize("service", SERVICES)
def test_base_url_from_the_environment(service, api, monkeypatch):
    monkeypatch.setenv(f"{service.upper()}_BASE_URL", api.url + ("/v1" if service == "voyage" else ""))
    enc = CohereEncoder() if service == "cohere" else VoyageEncoder()
    enc.encode(["hive"], input_type="query")
    assert len(api.requests) == 1


def test_token_caps_split_long_texts(api):
    long_texts = ["bee " * 25_000] * 10  # 100 kB each: ~33k estimated tokens
    assert [len(g) for g in CohereEncoder(base_url=api.url).batches(long_texts)] == [3, 3, 3, 1]
    assert [len(g) for g in VoyageEncoder("voyage-3-large", base_url=api.url).batches(long_texts)] == [3, 3, 3, 1]
    assert [len(g) for g in VoyageEncoder("voyage-3.5", base_url=api.url).batches(long_texts)] == [9, 1]
    assert [len(g) for g in VoyageEncoder(batch_size=4, base_url=api.url).batches(["hive"] * 10)] == [4, 4, 2]
    assert [len(g) for g in CohereEncoder(batch_size=500, base_url=api.url).batches(["hive"] * 100)] == [96, 4]


@pytest.mark.parametrize("service", SERVICES)
def test_fingerprint_ignores_key_and_url_but_not_settings(service, api, monkeypatch):
    enc = encoder(service, api)
    assert enc.fingerprint.startswith(service) and enc.price_key == f"{service}:{enc.model}"
    monkeypatch.setenv(KEY_ENV[service], "another-key")
    assert encoder(service, api).fingerprint == enc.fingerprint
    assert encoder(service, api, document_prompt="passage: ").fingerprint != enc.fingerprint
    assert encoder(service, api, normalize=False).fingerprint != enc.fingerprint
    assert encoder(service, api, output_dimension=256).fingerprint != enc.fingerprint
    assert "SECRET" not in repr(enc) + repr(vars(enc)) + repr(reranker(service, api))


def test_registry_names_the_backends():
    assert registry.load("encoder", "cohere") is CohereEncoder and registry.load("reranker", "voyage") is VoyageReranker


def test_bad_options_are_config_errors(api):
    with pytest.raises(ConfigError, match="concurrency"):
        CohereEncoder(base_url=api.url, concurrency=0)
    with pytest.raises(ConfigError, match="max_length"):
        VoyageEncoder(base_url=api.url, max_length=512)


# --- faults -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("service", SERVICES)
def test_429_waits_as_long_as_retry_after_says(service, api, sleeps, caplog):
    api.script(Fault.error(429, "too many requests", retry_after="3"))
    vectors = encoder(service, api).encode(["hive", "queen"], input_type="query")
    assert vectors.shape == (2, 32) and len(api.requests) == 2 and sleeps == [3.0]
    warning = next(r for r in caplog.records if r.levelno == logging.WARNING)
    assert "HTTP 429" in warning.getMessage() and "retry 1 of 6" in warning.getMessage()


@pytest.mark.parametrize("service", SERVICES)
def test_a_proxy_error_page_is_retried(service, api, sleeps):
    api.script(Fault(status=502, body=b"<html><h1>502 Bad Gateway</h1></html>"))
    assert encoder(service, api).encode(["hive"], input_type="query").shape == (1, 32)
    assert len(api.requests) == 2 and len(sleeps) == 1


@pytest.mark.parametrize("service", SERVICES)
def test_wrong_base_url_says_so(service, api):
    enc = CohereEncoder(base_url=api.url + "/v9") if service == "cohere" else VoyageEncoder(base_url=api.url)
    assert "HTTP 404" in str(api_error(enc.encode, ["hive"], input_type="query")) and len(api.requests) == 1


def test_retry_after_as_an_http_date():
    date = email.utils.formatdate(time.time() + 10, usegmt=True)
    assert 8 <= http_retry.retry_after({"retry-after": date}) <= 10
    assert http_retry.retry_after({"Retry-After": "2.5"}) == 2.5
    assert http_retry.retry_after({"Retry-After": "soon"}) is None and http_retry.retry_after({}) is None


@pytest.mark.parametrize("status", [500, 503])
@pytest.mark.parametrize("service", SERVICES)
def test_5xx_storm_exhausts_retries(service, status, api, sleeps):
    api.script(*[Fault.error(status, "overloaded")] * 4)
    error = api_error(encoder(service, api, max_retries=3).encode, ["hive"], input_type="document")
    assert f"embed: 4 attempts failed (last: HTTP {status}" in str(error) and "re-run to resume" in str(error)
    assert str(error).startswith(service.capitalize())
    assert len(api.requests) == 4 and len(sleeps) == 3
    assert all(0 <= s <= 2**i for i, s in enumerate(sleeps)), "full jitter: uniform in [0, base * 2**retry]"


def test_backoff_doubles_and_is_capped(monkeypatch):
    monkeypatch.setattr(http_retry.rng, "uniform", lambda low, high: high)
    assert [http_retry.backoff(i) for i in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]


COHERE_BAD = [b"<html>oops</html>", {"id": "x", "embeddings": {}}, {"id": "x", "embeddings": {"float": [[1.0, 0.0]]}}, {"id": "x", "embeddings": {"float": [["a"], ["b"]]}}]
VOYAGE_BAD = [b"<html>oops</html>", {"object": "list"}, {"data": [{"embedding": [1.0, 0.0], "index": 0}], "usage": {"total_tokens": 1}}, {"data": [{"embedding": "@@@", "index": 0}, {"embedding": "@@@", "index": 1}], "usage": {"total_tokens": 1}}]


@pytest.mark.parametrize("service,body", [("cohere", b) for b in COHERE_BAD] + [("voyage", b) for b in VOYAGE_BAD])
def test_malformed_body_is_an_api_error_without_retry(service, body, api, sleeps):
    api.script(Fault(body=body))
    error = api_error(encoder(service, api).encode, ["hive", "queen"], input_type="query")
    assert "malformed" in str(error) and str(error).startswith(service.capitalize() + " embed")
    assert len(api.requests) == 1 and sleeps == []


@pytest.mark.parametrize("service", SERVICES)
def test_slow_response_times_out_and_is_retried(service, api, sleeps):
    api.script(Fault(delay=3.0))
    vectors = encoder(service, api, timeout=0.3).encode(["hive"], input_type="query")
    np.testing.assert_allclose(vectors[0], fake_vector("hive"), atol=1e-6)
    assert len(api.requests) == 2 and len(sleeps) == 1


@pytest.mark.parametrize("service", SERVICES)
def test_connection_refused_is_retried_then_reported(service, api, sleeps):
    enc = encoder(service, api, max_retries=2)
    api.__exit__()  # nothing listens on the port any more
    error = api_error(enc.encode, ["hive"], input_type="query")
    assert "3 attempts failed (last: no response" in str(error) and len(sleeps) == 2


@pytest.mark.parametrize("service", SERVICES)
def test_rejected_key_names_the_variable_and_is_not_retried(service, api, sleeps, monkeypatch):
    monkeypatch.setenv(KEY_ENV[service], "wrong-key-SECRET456")
    error = api_error(encoder(service, api).encode, ["hive"], input_type="query")
    assert f"rejected the API key in {KEY_ENV[service]} (HTTP 401)" in str(error)
    assert len(api.requests) == 1 and sleeps == []


@pytest.mark.parametrize("service", SERVICES)
def test_forbidden_and_bad_request_fail_at_once(service, api, sleeps):
    api.script(Fault.error(403, "model not allowed"), Fault.error(400, "texts must not be empty"))
    assert "(HTTP 403); check the key and that it may use" in str(api_error(encoder(service, api).encode, ["hive"], input_type="query"))
    error = api_error(encoder(service, api).encode, ["hive"], input_type="query")
    assert "HTTP 400: texts must not be empty" in str(error) and len(api.requests) == 2 and sleeps == []


@pytest.mark.parametrize("service", SERVICES)
def test_a_server_message_echoing_the_key_is_scrubbed(service, api):
    api.script(Fault.error(422, f"key {KEY} may not set output_dimension"))
    assert "key *** may not" in str(api_error(encoder(service, api).encode, ["hive"], input_type="query"))


@pytest.mark.parametrize("service", SERVICES)
def test_missing_key_is_missing_credentials(service, monkeypatch):
    monkeypatch.delenv(KEY_ENV[service], raising=False)
    for build in (encoder, reranker):
        with pytest.raises(MissingCredentials, match=KEY_ENV[service]):
            build(service, SimpleNamespace(url="http://127.0.0.1:9"))  # never contacted


# --- rerank -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("service", SERVICES)
def test_rerank_scores_come_back_in_document_order(service, api):
    scores, units = reranker(service, api).rerank_with_usage("queen bees mites", DOCS)
    assert scores == [fake_score("queen bees mites", d) for d in DOCS]
    assert scores != sorted(scores, reverse=True), "the API answers sorted by score; the test needs another order"
    tokens = len(DOCS) * fake_tokens("queen bees mites") + sum(fake_tokens(d) for d in DOCS)
    assert units == {"cohere": 1, "voyage": tokens}[service]
    assert api.requests[0].path == {"cohere": "/v2/rerank", "voyage": "/v1/rerank"}[service]


@pytest.mark.parametrize("service", SERVICES)
def test_rerank_splits_past_batch_size(service, api):
    scores = reranker(service, api, batch_size=2).rerank("queen bees mites", DOCS)
    assert scores == [fake_score("queen bees mites", d) for d in DOCS]
    assert [len(r.texts) for r in api.requests] == [2, 2, 1]


def test_cohere_rerank_max_length(api):
    CohereReranker(base_url=api.url, max_length=128).rerank("q", ["d"])
    assert api.requests[0].body["max_tokens_per_doc"] == 128


@pytest.mark.parametrize("service", SERVICES)
def test_rerank_retries_429_and_gives_up_on_a_500_storm(service, api, sleeps):
    api.script(Fault.error(429, retry_after="1"), None, *[Fault.error(500)] * 3)
    rr = reranker(service, api, max_retries=2)
    assert rr.rerank("queen", DOCS) == [fake_score("queen", d) for d in DOCS] and sleeps == [1.0]
    error = api_error(rr.rerank, "queen", DOCS)
    assert str(error).startswith(f"{service.capitalize()} rerank: 3 attempts failed (last: HTTP 500")
    assert len(api.requests) == 5


@pytest.mark.parametrize("service", SERVICES)
def test_rerank_malformed_indices(service, api):
    body = {"results": [{"index": 7, "relevance_score": 0.5}]} if service == "cohere" else {"data": [{"index": 0, "relevance_score": 0.5}], "usage": {"total_tokens": 3}}
    api.script(Fault(body=body))
    assert "malformed" in str(api_error(reranker(service, api).rerank, "queen", DOCS[:2]))


# --- through the cache ------------------------------------------------------------------------------


@pytest.mark.parametrize("service", SERVICES)
def test_cache_makes_no_second_request_and_bounds_concurrency(service, api, tmp_path):
    api.delay = 0.05  # so requests overlap if the cache lets them
    cached = CachedEncoder(encoder(service, api, batch_size=5, concurrency=2), Cache(tmp_path))
    first = cached.encode(TEXTS[:40], input_type="document")
    assert len(api.requests) == 8 and api.max_in_flight == 2
    assert cached.stats.api_calls == 8 and cached.stats.units == pytest.approx(sum(fake_tokens(t) for t in TEXTS[:40]))
    again = CachedEncoder(encoder(service, api, batch_size=5, concurrency=2), Cache(tmp_path))
    np.testing.assert_array_equal(again.encode(TEXTS[:40], input_type="document"), first)
    assert len(api.requests) == 8 and again.stats.hits == 40


@pytest.mark.parametrize("service", SERVICES)
def test_cached_reranker_pays_once(service, api, tmp_path):
    items = {f"q{i}": (f"queen bees {i}", DOCS) for i in range(4)}
    api.delay = 0.05
    scores = CachedReranker(reranker(service, api, concurrency=3), Cache(tmp_path)).rerank(items)
    assert scores["q0"] == [fake_score("queen bees 0", d) for d in DOCS]
    assert len(api.requests) == 4 and api.max_in_flight <= 3
    again = CachedReranker(reranker(service, api, concurrency=3), Cache(tmp_path)).rerank(items)
    assert again == scores and len(api.requests) == 4


KILLED_RUN = """
import json, sys
from backends.voyage import VoyageEncoder
from harness.cache import Cache, CachedEncoder
texts = json.loads(open(sys.argv[1]).read())
CachedEncoder(VoyageEncoder(batch_size=50, concurrency=1, timeout=30), Cache(sys.argv[2])).encode(texts, input_type="document")
"""


def test_sigkill_mid_run_then_resume_pays_for_nothing_twice(api, tmp_path, monkeypatch):
    texts = [f"passage {i} on {'swarming' if i % 3 else 'mites'} in hive {i}" for i in range(500)]
    (tmp_path / "texts.json").write_text(json.dumps(texts))
    api.fault_at(4, Fault(hang=True))  # requests 1-3 are answered and committed; the 4th never returns
    env = {**os.environ, "VOYAGE_BASE_URL": api.url + "/v1"}
    proc = subprocess.Popen([sys.executable, "-c", KILLED_RUN, str(tmp_path / "texts.json"), str(tmp_path / "cache")], env=env, cwd=Path(__file__).parents[1])
    try:
        assert api.wait_for(4, timeout=60), "the first run never reached its 4th request"
    finally:
        proc.kill()
        proc.wait()
    answered = {t for r in api.requests[:3] for t in r.texts}
    assert len(answered) == 150
    monkeypatch.setenv("VOYAGE_BASE_URL", api.url + "/v1")
    resumed = CachedEncoder(VoyageEncoder(batch_size=50, concurrency=1), Cache(tmp_path / "cache"))
    vectors = resumed.encode(texts, input_type="document")
    again = [t for r in api.requests[4:] for t in r.texts]
    assert not answered & set(again), "a text paid for in the killed run was requested again"
    assert len(again) == 350 and answered | set(again) == set(texts) and resumed.stats.hits == 150
    np.testing.assert_allclose(vectors, [fake_vector(t) for t in texts], atol=1e-6)
