"""Documents encoded on Ray Data (backends/ray_engine.py, ``[execution] engine = "ray"``): the same
vectors and records as the local path, committed block by block, resumed after a kill without
encoding a committed block again, and one-line errors for a missing package, a bad table, a bad flag
and an address where no cluster answers.

Ray starts once for the module (``ray_session``: about 10 s); the bag-of-words encoder is registered
on its workers by a setup hook, as conftest's ``bow_backend`` registers it here.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from bow_encoder import BagOfWordsEncoder, PaidBagOfWords
from conftest import shared_dataset, write_goldset
from harness import registry
from harness.cache import BLOCK, Cache, CachedEncoder, Offload
from harness.errors import RunFailure
from harness.ladder.stages import offload
from harness.protocols import EncodeEngine
from harness.registry import EncoderConfig
from test_cli import assert_one_line_error, bench
from test_kill import cached_rows

TESTS = Path(__file__).resolve().parent
WORDS = "varroa swarm extractor comb syrup queen brood nectar pollen frame".split()
N_DOCS = 300  # over one cache block (256): a smaller encode stays local
SLOW_S = 0.4  # seconds per block of the slow encoder, so a kill can land between blocks


class SlowBagOfWords(BagOfWordsEncoder):
    """The bag-of-words encoder, slowed down per call, so a kill lands mid-encode."""

    def encode(self, texts, *, input_type):
        time.sleep(SLOW_S)
        return super().encode(texts, input_type=input_type)


def register_backends() -> None:
    """The Ray workers' registry: the test encoders (their setup hook; conftest registers them here)."""
    registry.BUILTIN["encoder"].update({"bow": "bow_encoder:BagOfWordsEncoder", "slow-bow": "test_ray_engine:SlowBagOfWords"})


RUNTIME_ENV = {"env_vars": {"PYTHONPATH": str(TESTS)}, "worker_process_setup_hook": "test_ray_engine.register_backends"}


@pytest.fixture(scope="module")
def ray_session():
    """One local Ray for the module (2 CPUs); yields its address, which a subprocess joins."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False, runtime_env=RUNTIME_ENV)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def corpus(n: int = N_DOCS) -> dict[str, tuple[str, str]]:
    """Documents that bag-of-words can tell apart, with an empty one and non-ASCII ones among them."""
    docs = {f"d{i}": (f"note {i}", f"{WORDS[i % 10]} {WORDS[(i * 3) % 10]} item{i} señal-{i} 蜂{i}") for i in range(n)}
    docs["d7"] = ("", "")
    return docs


@pytest.fixture
def big_goldset(tmp_path) -> Path:
    queries = {f"q{i}": f"item{i} {WORDS[i % 10]}" for i in range(0, N_DOCS, 15)}
    qrels = {"test": {q: {f"d{q[1:]}": 1} for q in queries}}
    return write_goldset(tmp_path / "big", docs=corpus(), queries=queries, qrels=qrels)


def ladder(folder: Path, goldset: Path, execution: str = "") -> Path:
    path = folder / "ladder.toml"
    path.write_text(textwrap.dedent(f"""
        name = "ray"
        goldsets = ["{goldset}"]
        latency_queries = 2

        [[rungs]]
        name = "bow"
        kind = "dense"
        encoder = {{ backend = "bow", model = "bow" }}
    """) + execution)
    return path


class ListEngine:
    """An engine without Ray: blocks of 100 encoded in this process, so the cache side is tested alone."""

    label = "list (1 worker)"

    def __init__(self):
        self.sent: list[tuple[str, int]] = []

    def encode_blocks(self, encoder, fingerprint, texts, *, input_type):
        self.sent.append((input_type, len(texts)))
        inner = registry.build_encoder(EncoderConfig.model_validate(encoder))
        assert inner.fingerprint == fingerprint
        for start in range(0, len(texts), 100):
            positions = np.arange(start, min(start + 100, len(texts)))
            yield positions[::-1], inner.encode([texts[i] for i in positions[::-1]], input_type=input_type)  # any order


def test_a_large_document_encode_goes_to_the_engine_block_by_block(tmp_path, bow_backend):
    engine = ListEngine()
    assert isinstance(engine, EncodeEngine)
    assert {"label", "encode_blocks"} <= set(dir(registry.load("engine", "ray")))
    config = EncoderConfig(backend="bow", model="bow")
    encoder = CachedEncoder(registry.build_encoder(config), Cache(tmp_path / "c"))
    encoder.offload = offload(engine, config)
    rows = []
    encoder.on_progress = lambda done, total: rows.append((done, cached_rows(tmp_path / "c")))
    texts = [text for _, text in corpus().values()]
    vectors = encoder.encode(texts, input_type="document")
    assert engine.sent == [("document", N_DOCS)] and encoder.stats.engine == "list (1 worker)"
    assert rows == [(0, 0), (100, 100), (200, 200), (300, 300)], "each block is in the cache before the next arrives"
    np.testing.assert_array_equal(vectors, BagOfWordsEncoder().encode(texts, input_type="document"))
    encoder.encode(["a query", *texts[:5]], input_type="query")
    encoder.encode([f"new {i}" for i in range(BLOCK - 1)], input_type="document")
    assert engine.sent == [("document", N_DOCS)], "queries and encodes under a block stay local"


def test_the_engine_is_not_used_for_paid_or_cache_sharing_encoders(tmp_path, bow_backend):
    engine = ListEngine()
    paid = CachedEncoder(PaidBagOfWords(), Cache(tmp_path / "c"))
    paid.offload = Offload(engine, EncoderConfig(backend="bow-paid", model="bow").model_dump())
    paid.encode([f"text {i}" for i in range(BLOCK)], input_type="document")
    assert engine.sent == [] and paid.stats.engine is None
    assert offload(engine, EncoderConfig(backend="adapter", model="some-folder")) is None, "an adapter's documents are its base's cached vectors"


def test_a_wrong_answer_from_the_engine_is_not_cached(tmp_path, bow_backend):
    class Short(ListEngine):
        def encode_blocks(self, encoder, fingerprint, texts, *, input_type):
            yield np.arange(len(texts)), np.ones((len(texts) - 1, 4), dtype=np.float32)

    encoder = CachedEncoder(BagOfWordsEncoder(), Cache(tmp_path / "c"))
    encoder.offload = offload(Short(), EncoderConfig(backend="bow", model="bow"))
    with pytest.raises(RunFailure, match=f"returned {BLOCK - 1} vectors for {BLOCK} texts"):
        encoder.encode([f"text {i}" for i in range(BLOCK)], input_type="document")
    assert cached_rows(tmp_path / "c") == 0


def test_missing_ray_is_one_line_with_the_pip_line(tmp_path, big_goldset, bow_backend, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now fails, as where it is not installed
    monkeypatch.setitem(sys.modules, "ray.data", None)
    result = bench("run", "-l", str(ladder(tmp_path, big_goldset)), "--engine", "ray")
    assert_one_line_error(result, "pip install 'tunebench[ray]'")
    assert not list((tmp_path / "leaderboard").glob("records/*/*/*.json")), "nothing ran"


@pytest.mark.parametrize(
    ("execution", "flag", "fragments"),
    [
        ("[execution]\nengine = 'ray'\nwrokers = 3\n", None, ["unknown key 'execution.wrokers'", "Did you mean 'workers'?"]),
        ("[execution]\nengine = 'rya'\n", None, ["unknown engine 'rya' (choices: local, ray)", "Did you mean 'ray'?"]),
        ("[execution]\nbatch_size = 0\n", None, ["execution.batch_size"]),
        ("", "rya", ["--engine", "unknown engine 'rya'", "Did you mean 'ray'?"]),
    ],
)
def test_a_bad_execution_table_or_engine_flag_is_one_line(tmp_path, big_goldset, bow_backend, execution, flag, fragments):
    path = ladder(tmp_path, big_goldset, execution)
    result = bench("run", "-l", str(path), *(["--engine", flag] if flag else []))
    assert_one_line_error(result, *fragments)
    if not flag:
        assert_one_line_error(bench("validate", str(path), "--offline"), *fragments)


@pytest.mark.parametrize("address", ["127.0.0.1:1", "ray://127.0.0.1:1", "no-port-here"])
def test_an_address_where_no_cluster_answers_is_one_line_in_seconds(tmp_path, big_goldset, bow_backend, monkeypatch, address):
    ray = pytest.importorskip("ray")
    monkeypatch.setattr(ray, "is_initialized", lambda: False)  # as in a fresh process, whatever this one started
    monkeypatch.setattr(ray, "init", lambda *a, **k: pytest.fail("ray.init reached: Ray would retry for minutes"))
    start = time.monotonic()
    result = bench("run", "-l", str(ladder(tmp_path, big_goldset, f"[execution]\nengine = 'ray'\naddress = '{address}'\n")))
    assert_one_line_error(result, f"[execution] address '{address}': cannot reach a Ray cluster", "ray start --head")
    assert time.monotonic() - start < 10


def test_ray_gives_the_local_vectors_and_records(tmp_path, big_goldset, bow_backend, ray_session):
    path = ladder(tmp_path, big_goldset, "[execution]\nworkers = 2\nbatch_size = 64\n")
    runs = {}
    for engine in ("local", "ray"):
        env = {"TUNEBENCH_CACHE": str(tmp_path / f"cache-{engine}"), "TUNEBENCH_LEADERBOARD": str(tmp_path / f"lb-{engine}")}
        result = bench("run", "-l", str(path), "--engine", engine, "--json", env=env)
        assert result.exit_code == 0, result.output
        record = json.loads(next((tmp_path / f"lb-{engine}").glob("records/big/test/*.json")).read_text())
        runs[engine] = record, vectors(tmp_path / f"cache-{engine}")
    (local, local_vectors), (ray, ray_vectors) = runs["local"], runs["ray"]
    assert ray["details"]["encoded_on"] == "ray (2 workers)" and "encoded_on" not in local["details"]
    assert ray["key"] == local["key"] and ray["metrics"] == local["metrics"] and ray["per_query"] == local["per_query"]
    assert ray["counts"] == local["counts"] and ray["counts"]["documents_encoded"] == N_DOCS
    assert local_vectors.keys() == ray_vectors.keys() and len(ray_vectors) == N_DOCS
    assert max(np.abs(local_vectors[h] - ray_vectors[h]).max() for h in local_vectors) <= 1e-5


def vectors(cache_dir: Path) -> dict[bytes, np.ndarray]:
    with sqlite3.connect(cache_dir / "embeddings.sqlite") as db:
        rows = db.execute("SELECT text_hash, vector FROM vectors WHERE input_type = 'document'").fetchall()
    return {h: np.frombuffer(v, dtype=np.float32) for h, v in rows}


KILLED = """
import sys
sys.path.insert(0, {tests!r})
import ray
from test_ray_engine import RUNTIME_ENV, register_backends
from backends.ray_engine import RayEngine
from harness.cache import Cache, CachedEncoder, Offload
from harness.registry import EncoderConfig, build_encoder

register_backends()
ray.init(address={address!r}, log_to_driver=False, runtime_env=RUNTIME_ENV)
config = EncoderConfig(backend="slow-bow", model="bow")
encoder = CachedEncoder(build_encoder(config), Cache({cache!r}))
encoder.offload = Offload(RayEngine(workers=2, batch_size=100), config.model_dump())
encoder.encode({texts!r}, input_type="document")
"""


def test_a_rerun_after_kill_9_encodes_only_the_blocks_not_committed(tmp_path, bow_backend, monkeypatch, ray_session):
    from backends.ray_engine import RayEngine

    texts = [f"{WORDS[i % 10]} text {i}" for i in range(800)]
    script = tmp_path / "encode.py"
    script.write_text(KILLED.format(tests=str(TESTS), address=ray_session, cache=str(tmp_path / "c"), texts=texts))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(TESTS)})
    deadline = time.monotonic() + 90
    while cached_rows(tmp_path / "c") < 200 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    kept = cached_rows(tmp_path / "c")
    assert 200 <= kept < 800 and kept % 100 == 0, f"the kill should land between whole blocks ({kept} cached)"

    class Spy(RayEngine):
        def encode_blocks(self, encoder, fingerprint, texts, *, input_type):
            self.sent = len(texts)
            yield from super().encode_blocks(encoder, fingerprint, texts, input_type=input_type)

    monkeypatch.setitem(registry.BUILTIN["encoder"], "slow-bow", "test_ray_engine:SlowBagOfWords")
    config = EncoderConfig(backend="slow-bow", model="bow")
    spy = Spy(workers=2, batch_size=100)
    encoder = CachedEncoder(registry.build_encoder(config), Cache(tmp_path / "c"))
    encoder.offload = Offload(spy, config.model_dump())
    result = encoder.encode(texts, input_type="document")
    assert spy.sent == 800 - kept and encoder.stats.hits == kept and encoder.stats.computed == 800 - kept
    np.testing.assert_array_equal(result, BagOfWordsEncoder().encode(texts, input_type="document"))


@pytest.mark.slow
def test_minilm_on_scifact_through_ray_equals_the_local_path(tmp_path, ray_session):
    from harness.data.goldset import load_goldset

    goldset = load_goldset(shared_dataset("scifact"))
    texts = [goldset.document_text(doc) for doc in list(goldset.corpus.values())[:512]]
    config = EncoderConfig(max_length=64)  # the packaged all-MiniLM-L6-v2, on the first 64 tokens: the slow-test budget
    local = CachedEncoder(registry.build_encoder(config), Cache(tmp_path / "local")).encode(texts, input_type="document")
    from backends.ray_engine import RayEngine

    on_ray = CachedEncoder(registry.build_encoder(config), Cache(tmp_path / "ray"))
    on_ray.offload = Offload(RayEngine(workers=2, batch_size=128), config.model_dump())
    vectors = on_ray.encode(texts, input_type="document")
    assert on_ray.stats.engine == "ray (2 workers)" and on_ray.stats.computed == len(set(texts))
    assert np.abs(vectors - local).max() <= 1e-5


def test_a_worker_whose_encoder_fingerprints_otherwise_fails_in_one_line(bow_backend, ray_session):
    from backends.ray_engine import RayEngine

    config = EncoderConfig(backend="bow", model="bow")
    engine = RayEngine(workers=1)
    with pytest.raises(RunFailure) as caught:
        list(engine.encode_blocks(config.model_dump(), "not-the-fingerprint", ["a", "b"], input_type="document"))
    message = str(caught.value)
    assert "\n" not in message and "fingerprints as bow-512, not not-the-fingerprint" in message, message
