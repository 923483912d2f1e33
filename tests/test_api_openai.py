"""The OpenAI-compatible embeddings encoder and the ``/rerank`` reranker over httpx, against
:class:`fake_api.FakeOpenAI`: vectors in ``index`` order, base64, batching by the text and token caps,
over-long inputs, cost from usage, retries, keys (OpenAI needs one, a self-hosted server none),
malformed answers never cached, a SIGKILL mid-run, hostile model names, both rerank shapes, and the
rungs in a ladder.

Backoff sleeps are recorded, not slept; the key must never show in a message, repr or log record.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from backends.http_rerank import HttpReranker
from backends.openai_embed import OpenAIEncoder
from conftest import write_ladder
from fake_api import KEY, OPENAI_MAX_TEXTS, TEI_MAX_TEXTS, FakeOpenAI, Fault, fake_score, fake_tokens, fake_vector
from harness import registry
from harness.cache import Cache, CachedEncoder, CachedReranker
from harness.errors import ApiError, ConfigError, MissingCredentials
from harness.prices import DEFAULT_PRICES

pytestmark = pytest.mark.usefixtures("sleeps")

TEXTS = [f"note {i}: the {'queen' if i % 2 else 'worker'} bees of hive {i % 7} store {'honey ' * (i % 5)}" for i in range(300)]
DOCS = ["varroa mites in winter", "queen bees swarm in spring", "honey extractor", "mites and bees", "wax moth"]
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def api(monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def self_hosted(api):
    api.key = None  # any key or none
    return api


@pytest.fixture(autouse=True)
def no_key_in_logs(caplog):
    caplog.set_level(logging.DEBUG)
    yield
    assert not [r for r in caplog.records if "SECRET" in r.getMessage()], "the API key reached a log record"


def encoder(api: FakeOpenAI, model: str = "text-embedding-3-large", **options) -> OpenAIEncoder:
    return OpenAIEncoder(model, base_url=api.url + "/v1", **options)


def api_error(call, *args, **kwargs) -> ApiError:
    with pytest.raises(ApiError) as info:
        call(*args, **kwargs)
    exc: BaseException | None = info.value
    while exc is not None:
        assert "SECRET" not in str(exc) and "SECRET" not in repr(exc)
        exc = exc.__cause__ or exc.__context__
    return info.value


def encode_all(enc, texts, input_type="document"):
    """What CachedEncoder does without a cache: one encode_with_usage per batch."""
    out, units = {}, 0.0
    for group in enc.batches(texts):
        vectors, billed = enc.encode_with_usage([texts[i] for i in group], input_type=input_type)
        out.update(zip(group, vectors))
        units += billed
    return np.stack([out[i] for i in range(len(texts))]), units


# --- the encoder ------------------------------------------------------------------------------------


def test_vectors_follow_data_index_with_prompts_and_usage(api):
    enc = encoder(api, query_prompt="query: ")
    vectors, units = enc.encode_with_usage(TEXTS[:5], input_type="query")
    np.testing.assert_allclose(vectors, [fake_vector("query: " + t) for t in TEXTS[:5]], atol=1e-6)
    assert vectors.dtype == np.float32 and units == sum(fake_tokens("query: " + t) for t in TEXTS[:5])
    request = api.requests[0]
    assert request.path == "/v1/embeddings" and request.headers["authorization"] == f"Bearer {KEY}"
    assert request.body == {"model": "text-embedding-3-large", "input": ["query: " + t for t in TEXTS[:5]], "encoding_format": "float"}


def test_base64_dimensions_and_unnormalised(api):
    enc = encoder(api, encoding_format="base64", output_dimension=16, normalize=False)
    vectors = enc.encode(TEXTS[:3], input_type="document")
    np.testing.assert_allclose(vectors, [fake_vector(t, 16) for t in TEXTS[:3]], atol=1e-6)
    assert api.requests[0].body["dimensions"] == 16 and api.requests[0].body["encoding_format"] == "base64"


def test_vectors_are_l2_normalised_like_the_other_api_encoders(api, monkeypatch):
    api.script(Fault(body={"data": [{"index": 0, "embedding": [3.0, 4.0]}], "usage": {"prompt_tokens": 2}}))
    np.testing.assert_allclose(encoder(api).encode(["hive"], input_type="query"), [[0.6, 0.8]])


def test_batches_respect_the_text_cap(api):
    texts = [f"hive {i}" for i in range(OPENAI_MAX_TEXTS + 500)]
    vectors, _ = encode_all(encoder(api, batch_size=5000), texts)
    assert [len(r.texts) for r in api.requests] == [OPENAI_MAX_TEXTS, 500] and vectors.shape == (len(texts), 32)
    assert [len(g) for g in encoder(api, batch_size=100).batches(texts[:250])] == [100, 100, 50]


def test_batches_respect_the_token_cap(api):
    texts = [f"doc {i} " + "bee " * 5200 for i in range(100)]  # 6,936 estimated tokens each, 5,203 counted: 100 are over the cap
    vectors, units = encode_all(encoder(api), texts)
    sizes = [len(r.texts) for r in api.requests]
    assert sizes == [43, 43, 14] and all(r.status == 200 for r in api.requests)
    assert units == sum(fake_tokens(t) for t in texts) and vectors.shape == (100, 32)


def test_the_fake_enforces_the_caps_a_batching_bug_would_break(api):
    status, body = api.embeddings({"model": "m", "input": ["bee " * 5200] * 100})
    assert status == 400 and "max 300000 tokens per request" in body["error"]["message"]
    assert api.embeddings({"model": "m", "input": ["x"] * (OPENAI_MAX_TEXTS + 1)})[0] == 400


def test_an_overlong_input_is_cut_to_the_models_context_with_a_warning(api, caplog):
    enc = encoder(api)
    long = "bee " * 10_000  # 10,001 tokens at the fake server: over its 8,192
    vectors = enc.encode(["short", long, long + "tail"], input_type="document")
    sent = api.requests[0].body["input"]
    assert api.requests[0].status == 200 and vectors.shape == (3, 32) and enc.truncated == 2
    assert sent[0] == "short" and long.startswith(sent[1]) and len(sent[1].encode()) <= 3 * 8191
    assert sum("cut at the end" in r.getMessage() for r in caplog.records) == 1
    assert encoder(api, max_length=512).fingerprint != enc.fingerprint and enc.max_length == 8191


def test_an_unknown_self_hosted_model_is_not_cut_unless_asked(api):
    assert encoder(api, "BAAI/bge-m3").max_length is None
    enc = encoder(api, "BAAI/bge-m3", max_length=100)
    enc.encode(["bee " * 1000], input_type="document")
    assert len(api.requests[0].body["input"][0].encode()) <= 3 * 99


def test_cost_comes_from_usage_and_the_price_table(api):
    enc = encoder(api)
    _, units = enc.encode_with_usage(TEXTS[:10], input_type="document")
    assert enc.price_key is None  # a server other than OpenAI's: self-hosted, no cost
    assert OpenAIEncoder("text-embedding-3-large").price_key == "openai:text-embedding-3-large"
    assert DEFAULT_PRICES["openai:text-embedding-3-large"].dollars(units) == pytest.approx(units * 0.13 / 1e6)
    assert {k: p.per_million_tokens for k, p in DEFAULT_PRICES.items() if "embedding" in k} == {
        "openai:text-embedding-3-small": 0.02, "openai:text-embedding-3-large": 0.13, "openai:text-embedding-ada-002": 0.10,
    }  # fmt: skip
    assert encoder(api, price_key="openai:text-embedding-3-large").price_key == "openai:text-embedding-3-large"


def test_fingerprint_names_the_server_model_and_dimensions_never_the_key(api, monkeypatch):
    enc = encoder(api)
    assert re.fullmatch(r"openai-embed-[0-9a-f]{24}", enc.fingerprint)
    assert OpenAIEncoder("text-embedding-3-large", base_url="http://other-host:8080/v1").fingerprint != enc.fingerprint
    assert OpenAIEncoder("text-embedding-3-large", base_url=api.url + "/v2").fingerprint != enc.fingerprint
    assert encoder(api, "text-embedding-3-small").fingerprint != enc.fingerprint
    assert encoder(api, output_dimension=256).fingerprint != enc.fingerprint
    assert encoder(api, encoding_format="base64").fingerprint == enc.fingerprint
    monkeypatch.setenv("OPENAI_API_KEY", "another-key")
    assert encoder(api).fingerprint == enc.fingerprint
    assert OpenAIEncoder("text-embedding-3-large", base_url=api.url.replace("//", "//user:pw@") + "/v1/").fingerprint == enc.fingerprint
    assert "SECRET" not in repr(enc) + repr(vars(enc))


def test_registry_and_options():
    assert registry.load("encoder", "openai") is OpenAIEncoder and registry.load("reranker", "http-rerank") is HttpReranker
    with pytest.raises(ConfigError, match="encoding_format"):
        OpenAIEncoder(base_url="http://127.0.0.1:9/v1", encoding_format="binary")
    with pytest.raises(ConfigError, match="base_url"):
        OpenAIEncoder(base_url="localhost:8080")
    with pytest.raises(ConfigError, match="api_key_env"):
        OpenAIEncoder(base_url="http://127.0.0.1:9/v1", api_key_env="MY KEY")


# --- faults -----------------------------------------------------------------------------------------


def test_429_waits_as_long_as_retry_after_says(api, sleeps):
    api.script(Fault.error(429, "Rate limit reached for requests", retry_after="3"), Fault.error(503, "overloaded"))
    assert encoder(api).encode(["hive", "queen"], input_type="query").shape == (2, 32)
    assert len(api.requests) == 3 and sleeps[0] == 3.0 and len(sleeps) == 2


def test_5xx_storm_names_the_service_and_resumes(api, sleeps):
    api.script(*[Fault.error(500, "The server had an error")] * 3)
    error = api_error(encoder(api, max_retries=2).encode, ["hive"], input_type="query")
    assert str(error).startswith(f"OpenAI-compatible server at 127.0.0.1:{api.url.rsplit(':', 1)[1]} embed: 3 attempts failed")
    assert "HTTP 500: The server had an error" in str(error) and "re-run to resume" in str(error)


def test_a_rejected_key_names_the_variable_never_the_key(api, monkeypatch, sleeps):
    monkeypatch.setenv("MY_EMBED_KEY", "wrong-key-SECRET456")
    error = api_error(encoder(api, api_key_env="MY_EMBED_KEY").encode, ["hive"], input_type="query")
    assert "rejected the API key in MY_EMBED_KEY (HTTP 401)" in str(error) and len(api.requests) == 1 and sleeps == []


def test_openai_itself_needs_the_key(monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(MissingCredentials, match="set OPENAI_API_KEY"):
        OpenAIEncoder("text-embedding-3-large")


def test_a_self_hosted_server_gets_no_authorization_header(api, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.setenv("OPENAI_BASE_URL", api.url + "/v1")
    api.key = None
    OpenAIEncoder("BAAI/bge-small-en-v1.5").encode(["hive"], input_type="query")
    assert "authorization" not in api.requests[0].headers
    api.key = KEY  # a server that does want a key says so, naming the variable
    error = api_error(OpenAIEncoder("BAAI/bge-small-en-v1.5").encode, ["hive"], input_type="query")
    assert "asks for an API key (HTTP 401) and none was sent: set OPENAI_API_KEY" in str(error)


MALFORMED = [
    Fault(body=b"<html>oops</html>"),
    Fault(body={"object": "list"}),
    Fault(rows=1),
    Fault(dim=8),
    Fault(poison=float("nan")),
    Fault(body={"data": [{"index": 0, "embedding": [1.0, 0.0]}, {"index": 0, "embedding": [1.0, 0.0]}]}),
    Fault(body={"data": [{"index": 0, "embedding": [1.0, 0.0]}, {"index": 1, "embedding": [1.0]}]}),
    Fault(body={"data": [{"index": 0, "embedding": "@@@"}, {"index": 1, "embedding": "@@@"}]}),
    Fault(body=[1, 2]),
]


@pytest.mark.parametrize("fault", MALFORMED, ids=["html", "no-data", "missing-row", "width", "nan", "duplicate-index", "ragged", "bad-base64", "list"])
def test_malformed_answers_are_errors_and_never_cached(fault, api, tmp_path, sleeps):
    api.script(fault)
    cache = Cache(tmp_path)
    cached = CachedEncoder(encoder(api, output_dimension=32 if fault.dim else None), cache)
    error = api_error(cached.encode, ["hive", "queen"], input_type="query")
    assert "malformed" in str(error) and str(error).startswith("OpenAI-compatible server at 127.0.0.1")
    assert len(api.requests) == 1 and sleeps == []
    assert cache._db.execute("SELECT COUNT(*) FROM vectors").fetchone()[0] == 0


def test_an_unknown_model_is_a_404_naming_it(api):
    api.models = {"text-embedding-3-large"}
    error = api_error(encoder(api, "text-embedding-4").encode, ["hive"], input_type="query")
    assert "HTTP 404" in str(error) and "model 'text-embedding-4' exists" in str(error)


@pytest.mark.parametrize("name", ["../../etc/passwd", "a\"b'; DROP TABLE vectors;--", "<script>alert(1)</script>", "hf.co/org/m:Q4_K_M", "caf\u00e9 \u202e"])
def test_a_hostile_model_name_is_only_ever_data(name, api, tmp_path):
    cached = CachedEncoder(encoder(api, name), Cache(tmp_path / "cache"))
    cached.encode(["hive"], input_type="document")
    assert api.requests[0].body["model"] == name and re.fullmatch(r"openai-embed-[0-9a-f]{24}", cached.fingerprint)
    assert all(p.name.startswith("embeddings.sqlite") for p in tmp_path.rglob("*") if p.is_file() and "claims" not in p.parts)


@pytest.mark.parametrize("name", ["", "  ", "bad\nname", "nul\x00"])
def test_a_model_name_no_server_serves_is_refused(name):
    assert "model" in OpenAIEncoder.config_problems(name, {})
    with pytest.raises(ConfigError, match="model"):
        OpenAIEncoder(name, base_url="http://127.0.0.1:9/v1")


# --- through the cache, and a SIGKILL ---------------------------------------------------------------


def test_cache_pays_once(api, tmp_path):
    api.delay = 0.05
    first = CachedEncoder(encoder(api, batch_size=5, concurrency=2), Cache(tmp_path)).encode(TEXTS[:40], input_type="document")
    assert len(api.requests) == 8 and api.max_in_flight == 2
    again = CachedEncoder(encoder(api, batch_size=5, concurrency=2), Cache(tmp_path))
    np.testing.assert_array_equal(again.encode(TEXTS[:40], input_type="document"), first)
    assert len(api.requests) == 8 and again.stats.hits == 40


KILLED_RUN = """
import json, sys
from backends.openai_embed import OpenAIEncoder
from harness.cache import Cache, CachedEncoder
texts = json.loads(open(sys.argv[1]).read())
CachedEncoder(OpenAIEncoder("text-embedding-3-large", batch_size=50, concurrency=1, timeout=30), Cache(sys.argv[2])).encode(texts, input_type="document")
"""


def test_sigkill_mid_run_then_resume_pays_for_nothing_twice(api, tmp_path, monkeypatch):
    texts = [f"passage {i} on {'swarming' if i % 3 else 'mites'} in hive {i}" for i in range(300)]
    (tmp_path / "texts.json").write_text(json.dumps(texts))
    api.fault_at(4, Fault(hang=True))  # requests 1-3 are answered and committed; the 4th never returns
    env = {**os.environ, "OPENAI_BASE_URL": api.url + "/v1"}
    proc = subprocess.Popen([sys.executable, "-c", KILLED_RUN, str(tmp_path / "texts.json"), str(tmp_path / "cache")], env=env, cwd=ROOT)
    try:
        assert api.wait_for(4, timeout=60), "the first run never reached its 4th request"
    finally:
        proc.kill()
        proc.wait()
    answered = {t for r in api.requests[:3] for t in r.texts}
    monkeypatch.setenv("OPENAI_BASE_URL", api.url + "/v1")
    resumed = CachedEncoder(OpenAIEncoder("text-embedding-3-large", batch_size=50, concurrency=1), Cache(tmp_path / "cache"))
    vectors = resumed.encode(texts, input_type="document")
    again = [t for r in api.requests[4:] for t in r.texts]
    assert len(answered) == 150 and not answered & set(again) and len(again) == 150 and resumed.stats.hits == 150
    np.testing.assert_allclose(vectors, [fake_vector(t) for t in texts], atol=1e-6)


# --- the /rerank reranker ---------------------------------------------------------------------------


def test_tei_shape(self_hosted):
    api = self_hosted
    rr = HttpReranker("BAAI/bge-reranker-base", base_url=api.url, shape="tei")
    scores, units = rr.rerank_with_usage("queen bees mites", DOCS)
    assert scores == [fake_score("queen bees mites", d) for d in DOCS] and units == 1.0
    assert api.requests[0].path == "/rerank" and api.requests[0].body == {"query": "queen bees mites", "texts": DOCS, "truncate": True}
    assert "authorization" not in api.requests[0].headers and rr.price_key is None


def test_cohere_shape_with_a_key_and_a_price(api, monkeypatch):
    monkeypatch.setenv("JINA_API_KEY", KEY)
    rr = HttpReranker("jina-reranker-v2-base-multilingual", base_url=api.url + "/v1", api_key_env="JINA_API_KEY", price_key="jina:rerank")
    assert rr.rerank("queen bees mites", DOCS) == [fake_score("queen bees mites", d) for d in DOCS]
    body = api.requests[0].body
    assert api.requests[0].path == "/v1/rerank" and body["documents"] == DOCS and body["top_n"] == 5 and body["model"] == "jina-reranker-v2-base-multilingual"
    assert api.requests[0].headers["authorization"] == f"Bearer {KEY}" and rr.price_key == "jina:rerank"


def test_the_answer_shape_is_read_whichever_comes(self_hosted):
    api = self_hosted
    api.script(Fault(body=[{"index": 1, "score": 0.9}, {"index": 0, "score": 0.1}]), Fault(body={"results": [{"index": 0, "relevance_score": 0.2}, {"index": 1, "relevance_score": 0.7}]}))
    rr = HttpReranker("m", base_url=api.url + "/v1")
    assert rr.rerank("q", DOCS[:2]) == [0.1, 0.9] and rr.rerank("q", DOCS[:2]) == [0.2, 0.7]


def test_tei_batch_cap_is_split_by_batch_size_and_named_when_not(self_hosted, sleeps):
    api = self_hosted
    docs = [f"doc {i} about bees" for i in range(40)]
    assert HttpReranker("m", base_url=api.url, shape="tei", batch_size=TEI_MAX_TEXTS).rerank("bees", docs) == [fake_score("bees", d) for d in docs]
    assert [len(r.texts) for r in api.requests] == [32, 8]
    error = api_error(HttpReranker("m", base_url=api.url, shape="tei").rerank, "bees", docs)
    assert "HTTP 413: batch size 40 > maximum allowed batch size 32; lower batch_size" in str(error) and sleeps == []


@pytest.mark.parametrize("body", [{"results": [{"index": 7, "relevance_score": 0.5}]}, {"results": [{"index": 0, "relevance_score": 0.5}]}, {"error": "x"}, [1], b"nope"])
def test_rerank_malformed_answers(body, self_hosted):
    api = self_hosted
    api.script(Fault(body=body))
    error = api_error(HttpReranker("m", base_url=api.url, shape="tei").rerank, "queen", DOCS[:2])
    assert "malformed" in str(error) and str(error).startswith("Rerank server at 127.0.0.1")


def test_rerank_retries_and_keys(self_hosted, sleeps, monkeypatch):
    api = self_hosted
    api.script(Fault.error(429, retry_after="2"))
    assert HttpReranker("m", base_url=api.url, shape="tei").rerank("queen", DOCS) and sleeps == [2.0]
    monkeypatch.delenv("JINA_API_KEY", raising=False)
    with pytest.raises(MissingCredentials, match="set JINA_API_KEY"):
        HttpReranker("m", base_url=api.url, api_key_env="JINA_API_KEY")
    with pytest.raises(ConfigError, match="base_url.*required"):
        HttpReranker("m")
    with pytest.raises(ConfigError, match="shape"):
        HttpReranker("m", base_url=api.url, shape="jina")
    fp = HttpReranker("m", base_url=api.url, shape="tei").fingerprint
    assert fp != HttpReranker("m", base_url=api.url + "/v1").fingerprint != HttpReranker("m", base_url="http://other:1").fingerprint


def test_cached_reranker_pays_once(self_hosted, tmp_path):
    api = self_hosted
    items = {f"q{i}": (f"queen bees {i}", DOCS) for i in range(4)}
    scores = CachedReranker(HttpReranker("m", base_url=api.url, shape="tei", concurrency=2), Cache(tmp_path)).rerank(items)
    again = CachedReranker(HttpReranker("m", base_url=api.url, shape="tei", concurrency=2), Cache(tmp_path)).rerank(items)
    assert again == scores and len(api.requests) == 4


# --- rungs in a ladder ------------------------------------------------------------------------------

LADDER = """
name = "openai"
goldsets = ["{goldset}"]
latency_queries = 3

[[rungs]]
name = "bm25"
kind = "bm25"

[[rungs]]
name = "openai-3-large"
kind = "dense"
encoder = {{ backend = "openai", model = "text-embedding-3-large", concurrency = 1 }}

[[rungs]]
name = "tei-embed"
kind = "dense"
encoder = {{ backend = "openai", model = "BAAI/bge-small-en-v1.5", base_url = "{url}/v1", batch_size = 32 }}

[[rungs]]
name = "bm25+tei"
kind = "rerank"
first_stage = "bm25"
depth = 4
reranker = {{ backend = "http-rerank", model = "BAAI/bge-reranker-base", base_url = "{url}", shape = "tei", batch_size = 32 }}
"""


def _ladder(tmp_path, goldset, url):
    return write_ladder(tmp_path, goldset, template=LADDER.replace("{url}", url))


def test_without_the_key_the_openai_rung_is_skipped_and_self_hosted_rungs_cost_nothing(api, tmp_path, tiny_goldset, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    api.key = None
    result = CliRunner().invoke(main_cli(), ["run", "-l", str(_ladder(tmp_path, tiny_goldset, api.url)), "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["rung"]: r for r in json.loads(result.stdout)}
    assert rows["openai-3-large"]["status"] == "skipped" and "OPENAI_API_KEY" in rows["openai-3-large"]["reason"]
    assert rows["tei-embed"]["status"] == "ok" and rows["tei-embed"]["cost_usd"] == 0 and rows["bm25+tei"]["cost_usd"] == 0
    assert rows["bm25+tei"]["metrics"]["recall@1"] == 1.0
    assert not any("authorization" in r.headers for r in api.requests)


def test_the_openai_rung_bills_usage_at_list_price(api, tmp_path, tiny_goldset, monkeypatch):
    """OpenAI's own host cannot be reached from a test, so the rung names the fake as a proxy billed at OpenAI's price."""
    ladder = LADDER.replace('model = "text-embedding-3-large", concurrency = 1', 'model = "text-embedding-3-large", base_url = "{url}/v1", price_key = "openai:text-embedding-3-large"')
    path = write_ladder(tmp_path, tiny_goldset, template=ladder.replace("{url}", api.url))
    result = CliRunner().invoke(main_cli(), ["run", "-l", str(path), "-r", "openai-3-large", "--json"])
    assert result.exit_code == 0, result.output
    row = next(r for r in json.loads(result.stdout) if r["rung"] == "openai-3-large")
    tokens = sum(fake_tokens(t) for r in api.requests for t in r.texts)
    assert row["status"] == "ok" and row["cost_usd"] == pytest.approx(round(tokens * 0.13 / 1e6, 6))
    assert "SECRET" not in result.output


def test_validate_checks_the_new_backends_options(tmp_path, tiny_goldset):
    bad = LADDER.replace('shape = "tei"', 'shape = "jina"').replace("{url}", "http://127.0.0.1:9")
    result = CliRunner().invoke(main_cli(), ["validate", str(write_ladder(tmp_path, tiny_goldset, template=bad)), "--offline"])
    assert result.exit_code == 2 and "reranker.shape: must be one of cohere, tei" in result.output
    typo = LADDER.replace("batch_size = 32 }}\n\n[[rungs]]", "batch_size = 32, dimensions = 256 }}\n\n[[rungs]]", 1).replace("{url}", "http://127.0.0.1:9")
    result = CliRunner().invoke(main_cli(), ["validate", str(write_ladder(tmp_path, tiny_goldset, template=typo)), "--offline"])
    assert result.exit_code == 2 and "unknown key 'dimensions'" in result.output


def test_the_default_ladder_has_the_openai_rung_and_validates(monkeypatch):
    from harness.ladder.schema import DEFAULT_LADDER, load_ladder

    rung = load_ladder(DEFAULT_LADDER).rung("openai-3-large")
    assert rung.encoder.backend == "openai" and rung.encoder.model == "text-embedding-3-large"
    text = DEFAULT_LADDER.read_text()
    assert 'backend = "http-rerank"' in text and "# encoder = { backend = \"openai\"" in text  # the commented TEI examples
    result = CliRunner().invoke(main_cli(), ["validate", str(DEFAULT_LADDER), "--offline"])
    assert result.exit_code == 0, result.output


def main_cli():
    from harness.cli import main

    return main
