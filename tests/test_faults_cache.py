"""Faults at the embedding cache (issue 15): wrong answers never reach the file, storage failures are one
line naming the file and the way out, and runs sharing one cache never pay for a text twice.

API faults go through the real SDKs against ``fake_api.py``; the cache's own guard is also tested
with bag-of-words encoders that answer badly on purpose.
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from backends.cohere import CohereEncoder
from backends.voyage import VoyageEncoder
from bow_encoder import BagOfWordsEncoder, PaidBagOfWords
from conftest import write_ladder
from fake_api import KEY, FakeApi, Fault, fake_vector
from harness import cache as cache_mod
from harness.cache import Cache, CachedEncoder, CacheError, text_hash
from harness.cli import main
from harness.errors import ApiError, RunFailure

pytestmark = pytest.mark.usefixtures("sleeps")  # backoff delays recorded, not waited

REPO = Path(__file__).resolve().parents[1]
TEXTS = [f"note {i}: the bees of hive {i % 7} store {'honey ' * (i % 4)}" for i in range(20)]


@pytest.fixture
def api(monkeypatch):
    for name in ("COHERE_BASE_URL", "VOYAGE_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COHERE_API_KEY", KEY)
    monkeypatch.setenv("VOYAGE_API_KEY", KEY)
    with FakeApi() as server:
        yield server


def encoder(service: str, api: FakeApi, **options):
    if service == "cohere":
        return CohereEncoder(base_url=api.url, batch_size=5, concurrency=1, **options)
    return VoyageEncoder(base_url=api.url + "/v1", batch_size=5, concurrency=1, **options)


def no_secret(exc: BaseException) -> BaseException:
    seen: BaseException | None = exc
    while seen is not None:
        assert "SECRET" not in str(seen) and "SECRET" not in repr(seen)
        seen = seen.__cause__ or seen.__context__
    return exc


def widths(directory: Path) -> set[int]:
    with sqlite3.connect(directory / "embeddings.sqlite") as db:
        return {n // 4 for (n,) in db.execute("SELECT length(vector) FROM vectors")}


# -- 1. a wrong answer never reaches the cache ---------------------------------------------------------


@pytest.mark.parametrize("service", ["cohere", "voyage"])
def test_a_wrong_width_answer_is_refused_and_what_was_bought_before_is_kept(service, api, tmp_path):
    api.fault_at(3, Fault(dim=16))  # batches 1-2 are 32-dim; the third answers 16-dim vectors
    with pytest.raises(ApiError) as info:
        CachedEncoder(encoder(service, api), Cache(tmp_path)).encode(TEXTS, input_type="document")
    message = str(no_secret(info.value))
    assert "model '" in message and "returned 16-dimensional vectors where 32-dimensional ones are cached" in message
    assert "\n" not in message and widths(tmp_path) == {32}
    kept = {t for r in api.requests[:2] for t in r.texts}
    assert len(Cache(tmp_path).get(encoder(service, api).fingerprint, "document", [text_hash(t) for t in TEXTS])) == 10
    again = CachedEncoder(encoder(service, api), Cache(tmp_path))
    vectors = again.encode(TEXTS, input_type="document")  # no np.stack crash: the cache is whole
    rebought = [t for r in api.requests[3:] for t in r.texts]
    assert not kept & set(rebought) and len(rebought) == 10 and again.stats.hits == 10
    np.testing.assert_allclose(vectors, [fake_vector(t) for t in TEXTS], atol=1e-6)


@pytest.mark.parametrize("service", ["cohere", "voyage"])
def test_a_wrong_width_first_answer_against_an_older_cache_is_refused(service, api, tmp_path):
    CachedEncoder(encoder(service, api), Cache(tmp_path)).encode(TEXTS[:5], input_type="document")
    api.script(Fault(dim=16))
    with pytest.raises(ApiError, match="16-dimensional vectors where 32-dimensional"):
        CachedEncoder(encoder(service, api), Cache(tmp_path)).encode(TEXTS[5:10], input_type="query")
    assert widths(tmp_path) == {32}


@pytest.mark.parametrize("service", ["cohere", "voyage"])
@pytest.mark.parametrize(
    "fault", [Fault(poison=float("nan")), Fault(poison=float("inf")), Fault(rows=3), Fault(rows=0), Fault.malformed(), Fault(body={"nothing": 1})]
)
def test_bad_answers_are_one_line_and_nothing_is_committed(service, fault, api, tmp_path):
    api.fault_at(2, fault)
    with pytest.raises(ApiError) as info:
        CachedEncoder(encoder(service, api, max_retries=0), Cache(tmp_path)).encode(TEXTS[:10], input_type="document")
    assert "\n" not in str(no_secret(info.value))
    with sqlite3.connect(tmp_path / "embeddings.sqlite") as db:
        assert db.execute("SELECT count(*) FROM vectors").fetchone() == (5,)  # the first answer, only


class Spoiled(PaidBagOfWords):
    """A paid encoder whose ``bad``-th call answers ``spoil(vectors)`` (the backend's own checks bypassed)."""

    def __init__(self, bad: int, spoil, **kw):
        super().__init__(dim=32, **kw)
        self.bad, self.spoil, self.count = bad, spoil, 0

    def encode_with_usage(self, texts, *, input_type):
        vectors, units = super().encode_with_usage(texts, input_type=input_type)
        self.count += 1
        return (self.spoil(vectors) if self.count == self.bad else vectors), units


@pytest.mark.parametrize(
    ("spoil", "problem"),
    [
        (lambda v: v[:, :16], "16-dimensional vectors where 32-dimensional ones are cached"),
        (lambda v: np.where(np.arange(32) == 0, np.nan, v), "NaN or infinite values in 2 vectors"),
        (lambda v: v[:1], "1 vectors for 2 texts"),
        (lambda v: v[0], "an array of shape (32,)"),
        (lambda v: [list(v[0]), list(v[1][:5])], "not one numeric matrix"),
        (lambda v: np.zeros((2, 0)), "0-dimensional vectors"),
    ],
)
def test_the_cache_checks_every_answer_itself(spoil, problem, tmp_path):
    """Whatever a backend lets through, the cache stores only finite (n, width) matrices."""
    spoiled = Spoiled(bad=3, spoil=spoil)
    spoiled.concurrency = 1
    with pytest.raises(ApiError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        CachedEncoder(spoiled, Cache(tmp_path)).encode(TEXTS[:10], input_type="document")
    assert widths(tmp_path) == {32}
    fresh = PaidBagOfWords(dim=32)
    CachedEncoder(fresh, Cache(tmp_path)).encode(TEXTS[:10], input_type="document")
    assert sum(n for _, n in fresh.calls) == 6  # the 4 texts of the first two answers are kept


def test_a_local_model_of_another_width_is_a_run_failure(tmp_path):
    cache = Cache(tmp_path)
    CachedEncoder(BagOfWordsEncoder(dim=32), cache).encode(TEXTS[:2], input_type="query")

    class Grown(BagOfWordsEncoder):  # same fingerprint, new width: a model swapped under one name
        fingerprint = "bow-32"

    with pytest.raises(RunFailure, match="Grown .* returned 64-dimensional vectors where 32-dimensional") as info:
        CachedEncoder(Grown(dim=64), cache).encode(TEXTS[2:4], input_type="query")
    assert info.value.exit_code == 1 and not isinstance(info.value, ApiError)


def test_a_cache_already_holding_two_widths_says_how_to_recover(tmp_path):
    """A cache poisoned before this check existed: one line with the statement that drops the odd rows."""
    cache = Cache(tmp_path)
    base = PaidBagOfWords(dim=32)
    hashes = [text_hash(t) for t in TEXTS]
    cache.put(base.fingerprint, "document", hashes[:15], base.encode(TEXTS[:15], input_type="document"))
    cache.put(base.fingerprint, "document", hashes[15:], np.ones((5, 16), dtype=np.float32))
    with pytest.raises(CacheError) as info:
        CachedEncoder(base, cache).encode(TEXTS, input_type="document")
    message = str(info.value)
    assert "2 widths (15 x 32-dim, 5 x 16-dim)" in message and str(tmp_path) in message and "\n" not in message
    statement = message.split('"')[1]
    assert statement.startswith("DELETE FROM vectors WHERE fingerprint=")
    with sqlite3.connect(tmp_path / "embeddings.sqlite") as db:
        db.execute(statement)
    again = PaidBagOfWords(dim=32)
    vectors = CachedEncoder(again, Cache(tmp_path)).encode(TEXTS, input_type="document")
    assert sum(n for _, n in again.calls) == 5 and vectors.shape == (20, 32)


# -- 2. storage faults are one line naming the file ----------------------------------------------------


def filled_cache(directory: Path, count: int = 600) -> list[str]:
    texts = [f"passage {i} about varroa and wax moth in hive {i}" for i in range(count)]
    cache = Cache(directory)
    CachedEncoder(BagOfWordsEncoder(dim=256), cache).encode(texts, input_type="document")
    cache.close()  # the last connection checkpoints the WAL into the main file
    return texts


def test_a_corrupt_page_is_one_line_naming_the_file(tmp_path):
    texts = filled_cache(tmp_path)
    path = tmp_path / "embeddings.sqlite"
    size = path.stat().st_size
    with open(path, "r+b") as f:  # overwrite a page in the middle of the vectors table, header and all
        f.seek((size // 4096 // 2) * 4096)
        f.write(b"\xff" * 4096)
    with pytest.raises(CacheError) as info:
        CachedEncoder(BagOfWordsEncoder(dim=256), Cache(tmp_path)).encode(texts, input_type="document")
    message = str(info.value)
    assert str(path) in message and "damaged" in message and "-wal and -shm" in message and "bought again" in message
    assert "\n" not in message and info.value.exit_code == 1


def test_a_file_that_is_not_a_database_is_one_line(tmp_path):
    (tmp_path / "embeddings.sqlite").write_bytes(b"this is not sqlite at all" * 400)
    with pytest.raises(CacheError, match=r"embedding cache '.*embeddings.sqlite' failed \(file is not a database\); the file is damaged: move"):
        Cache(tmp_path)


class FullDisk:
    """The cache's connection, failing its ``after``-th write as a full disk does."""

    def __init__(self, db, after: int, error: Exception):
        self._db, self.after, self.error, self.writes = db, after, error, 0

    def executemany(self, sql, rows):
        if sql.startswith("INSERT OR REPLACE INTO vectors"):
            self.writes += 1
            if self.writes == self.after:
                raise self.error
        return self._db.executemany(sql, rows)

    def __getattr__(self, name):
        return getattr(self._db, name)

    def __enter__(self):
        return self._db.__enter__()

    def __exit__(self, *exc):
        return self._db.__exit__(*exc)


@pytest.mark.parametrize("error", [sqlite3.OperationalError("database or disk is full"), OSError(errno.ENOSPC, "No space left on device")])
def test_a_full_disk_is_one_line_and_keeps_what_was_committed(error, tmp_path, monkeypatch):
    monkeypatch.setattr(cache_mod, "BLOCK", 3)
    cache = Cache(tmp_path)
    cache._db = FullDisk(cache._db, after=3, error=error)
    with pytest.raises(CacheError) as info:
        CachedEncoder(BagOfWordsEncoder(), cache).encode(TEXTS[:10], input_type="document")
    assert "free disk space and run again" in str(info.value) and str(tmp_path) in str(info.value)
    resumed = BagOfWordsEncoder()
    CachedEncoder(resumed, Cache(tmp_path)).encode(TEXTS[:10], input_type="document")
    assert sum(n for _, n in resumed.calls) == 4  # two blocks of 3 were committed before the disk filled


def test_a_full_disk_while_claiming_is_one_line(tmp_path, monkeypatch):
    def full(self):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Cache, "_hold_owner_lock", full)
    with pytest.raises(CacheError, match="No space left on device.*free disk space"):
        CachedEncoder(PaidBagOfWords(), Cache(tmp_path)).encode(TEXTS, input_type="document")


def test_bench_run_on_a_damaged_cache_exits_1_with_one_line(tiny_goldset, tmp_path, monkeypatch, bow_backend):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    write_ladder(work, tiny_goldset)
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "embeddings.sqlite").write_bytes(b"\x00garbage" * 1000)
    result = CliRunner().invoke(main, ["run", "-g", str(tiny_goldset), "--cache-dir", str(tmp_path / "cache")])
    assert result.exit_code == 1, result.output
    assert result.output.strip().splitlines() == [result.output.strip()] and result.output.startswith("error: embedding cache '")
    assert "Traceback" not in result.output and "file is not a database" in result.output


# -- 3. runs sharing a cache never pay twice -----------------------------------------------------------

CONCURRENT_RUN = """
import json, pathlib, sys, time
from backends.cohere import CohereEncoder
from harness.cache import Cache, CachedEncoder
texts, cache, me = json.loads(pathlib.Path(sys.argv[1]).read_text()), sys.argv[2], pathlib.Path(sys.argv[3])
encoder = CachedEncoder(CohereEncoder(batch_size=20, concurrency=2, timeout=30), Cache(cache))
me.with_suffix(".ready").touch()
while not (me.parent / "go").exists():
    time.sleep(0.01)
vectors = encoder.encode(texts, input_type="document")
me.write_text(json.dumps({"calls": encoder.stats.api_calls, "computed": encoder.stats.computed, "hits": encoder.stats.hits, "sum": float(vectors.sum())}))
"""


def start(script: str, api: FakeApi, *args: Path) -> subprocess.Popen:
    env = {**os.environ, "COHERE_BASE_URL": api.url, "COHERE_API_KEY": KEY}
    return subprocess.Popen([sys.executable, "-c", script, *map(str, args)], env=env, cwd=REPO)


def wait_for_files(*paths: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not all(p.exists() for p in paths):
        assert time.monotonic() < deadline, f"timed out waiting for {paths}"
        time.sleep(0.02)


def test_two_runs_on_one_cache_buy_each_text_once(api, tmp_path):
    texts = [f"passage {i} on {'swarming' if i % 3 else 'mites'} in hive {i}" for i in range(400)] + TEXTS + TEXTS[:2]
    (tmp_path / "texts.json").write_text(json.dumps(texts))
    api.delay = 0.03  # both runs have requests in flight at once
    outs = [tmp_path / f"run{n}.json" for n in (1, 2)]
    procs = [start(CONCURRENT_RUN, api, tmp_path / "texts.json", tmp_path / "cache", out) for out in outs]
    try:
        wait_for_files(*[o.with_suffix(".ready") for o in outs])
        (tmp_path / "go").touch()
        assert [p.wait(timeout=120) for p in procs] == [0, 0]
    finally:
        for p in procs:
            p.kill()
    paid = api.paid_texts
    results = [json.loads(o.read_text()) for o in outs]
    assert len(set(texts)) == 420 and sum(paid.values()) == 420 and max(paid.values()) == 1, f"{sum(paid.values()) - 420} texts bought twice"
    assert sum(r["computed"] for r in results) == 420 and results[0]["sum"] == pytest.approx(results[1]["sum"])
    assert all(r["computed"] + r["hits"] == 420 for r in results)  # what one did not buy, it took from the other


KILLED_HOLDER = """
import json, pathlib, sys
from backends.cohere import CohereEncoder
from harness.cache import Cache, CachedEncoder
texts = json.loads(pathlib.Path(sys.argv[1]).read_text())
CachedEncoder(CohereEncoder(batch_size=20, concurrency=1, timeout=60), Cache(sys.argv[2])).encode(texts, input_type="document")
"""


def test_a_run_waiting_on_a_killed_run_takes_its_claims_over(api, tmp_path, monkeypatch):
    """SIGKILL of the run holding the claims: the waiting run neither deadlocks nor re-buys what was committed."""
    texts = [f"passage {i} about queen cells in hive {i}" for i in range(120)]
    (tmp_path / "texts.json").write_text(json.dumps(texts))
    api.fault_at(3, Fault(hang=True))  # requests 1-2 answered and committed; the 3rd never returns
    holder = start(KILLED_HOLDER, api, tmp_path / "texts.json", tmp_path / "cache")
    try:
        assert api.wait_for(3, timeout=60), "the holder never reached its 3rd request"
        monkeypatch.setenv("COHERE_BASE_URL", api.url)
        waiter = CachedEncoder(CohereEncoder(batch_size=20, concurrency=1), None)
        result: dict = {}

        def wait_then_buy() -> None:
            waiter.cache = Cache(tmp_path / "cache")  # SQLite connections belong to the thread that made them
            result["vectors"] = waiter.encode(texts, input_type="document")

        thread = threading.Thread(target=wait_then_buy, daemon=True)
        thread.start()
        time.sleep(1.0)
        assert thread.is_alive() and len(api.requests) == 3, "the waiting run bought texts the live holder had claimed"
    finally:
        holder.kill()
        holder.wait()
    thread.join(timeout=60)
    assert not thread.is_alive(), "the waiting run never took over the killed run's claims"
    assert sum(api.paid_texts.values()) == 120 and max(api.paid_texts.values()) == 1
    assert waiter.stats.hits == 40 and waiter.stats.computed == 80
    np.testing.assert_allclose(result["vectors"], [fake_vector(t) for t in texts], atol=1e-6)


def test_a_failed_run_releases_its_claims_at_once(api, tmp_path):
    """An API failure (not a kill) drops the run's claims, so the next run in the same process buys at once."""
    api.fault_at(2, Fault.error(401))
    cache = Cache(tmp_path)
    with pytest.raises(ApiError):
        CachedEncoder(encoder("cohere", api), cache).encode(TEXTS, input_type="document")
    with sqlite3.connect(tmp_path / "embeddings.sqlite") as db:
        assert db.execute("SELECT count(*) FROM claims").fetchone() == (0,)
    CachedEncoder(encoder("cohere", api), Cache(tmp_path)).encode(TEXTS, input_type="document")
    assert sum(api.paid_texts.values()) == 20


# -- 5. the key stays out of the cache -----------------------------------------------------------------


def test_the_api_key_is_never_written_into_the_cache(api, tmp_path):
    CachedEncoder(encoder("voyage", api), Cache(tmp_path)).encode(TEXTS, input_type="document")
    api.script(Fault(dim=8))
    with pytest.raises(ApiError) as info:
        CachedEncoder(encoder("cohere", api), Cache(tmp_path)).encode(TEXTS[:5] + ["one more"], input_type="query")
    no_secret(info.value)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "embeddings.sqlite" for p in files)
    for path in files:
        assert b"SECRET" not in path.read_bytes(), f"the API key reached {path}"
