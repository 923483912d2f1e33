"""`bench run` with API rungs end to end, against the fake API: a SIGKILL mid-run, a re-run that buys
nothing twice, token counts and dollars in the records, and the key in no record."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import write_ladder
from fake_api import KEY, FakeApi, Fault
from harness.cli import main

API_LADDER = """
name = "api"
goldsets = ["{goldset}"]
latency_queries = 3

[[rungs]]
name = "bm25"
kind = "bm25"

[[rungs]]
name = "voyage"
kind = "dense"
encoder = {{ backend = "voyage", model = "voyage-3-large", batch_size = 2, concurrency = 1 }}

[[rungs]]
name = "voyage+cohere"
kind = "rerank"
first_stage = "voyage"
depth = 4
reranker = {{ backend = "cohere", model = "rerank-v3.5", concurrency = 1 }}
"""


@pytest.fixture
def api_env(monkeypatch, tmp_path):
    with FakeApi() as api:
        env = {"VOYAGE_API_KEY": KEY, "COHERE_API_KEY": KEY, "VOYAGE_BASE_URL": api.url + "/v1", "COHERE_BASE_URL": api.url}
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        yield api


def test_killed_bench_run_resumes_without_paying_twice(api_env, tmp_path, tiny_goldset, monkeypatch):
    api = api_env
    ladder = write_ladder(tmp_path, tiny_goldset, template=API_LADDER)
    api.fault_at(2, Fault(hang=True))  # the first 2-document request is answered; the second never is
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "run", "-l", str(ladder), "-r", "voyage+cohere"], env=os.environ.copy(), cwd=Path(__file__).parents[1])
    try:
        assert api.wait_for(2, timeout=60), "bench run never reached its second request"
    finally:
        proc.kill()
        proc.wait()
    answered = set(api.requests[0].texts)
    assert len(answered) == 2

    result = CliRunner().invoke(main, ["run", "-l", str(ladder), "--json"])
    assert result.exit_code == 0, result.output
    again = [t for r in api.requests[2:] if r.path.endswith("/embeddings") for t in r.texts]
    assert not answered & set(again), "a document embedded before the kill was paid for again"
    rows = {r["rung"]: r for r in json.loads(result.stdout)}
    assert rows["voyage"]["status"] == "ok" and rows["voyage+cohere"]["status"] == "ok"
    assert rows["voyage+cohere"]["metrics"]["recall@1"] == 1.0  # fake scores are word overlap
    assert rows["voyage"]["cost_usd"] > 0 and rows["voyage+cohere"]["cost_usd"] > rows["voyage"]["cost_usd"]
    assert rows["voyage"]["latency_p50_ms"] is not None and rows["voyage+cohere"]["latency_p50_ms"] >= rows["voyage"]["latency_p50_ms"]

    before = len(api.requests)
    rerun = CliRunner().invoke(main, ["run", "-l", str(ladder), "--json", "--overwrite"])
    assert rerun.exit_code == 0 and len(api.requests) == before, "a re-scored run called the API again"
    costs = {r["rung"]: (r["cost_usd"], r["api_calls"]) for r in json.loads(rerun.stdout)}
    assert costs["voyage"] == (rows["voyage"]["cost_usd"], 0)

    records = "".join(p.read_text() for p in (Path(os.environ["TUNEBENCH_LEADERBOARD"]) / "records").rglob("*.json"))
    assert "voyage:voyage-3-large tokens" in records and "cohere:rerank-v3.5 searches" in records
    views = CliRunner().invoke(main, ["leaderboard", "--write"])
    report = CliRunner().invoke(main, ["report", "-l", str(ladder), "--format", "html", "-o", str(tmp_path / "report.html")])
    assert views.exit_code == 0 and report.exit_code == 0, views.output + report.output
    written = [f for root in (tmp_path, Path(os.environ["TUNEBENCH_CACHE"])) for f in root.rglob("*") if f.is_file()]
    assert any(f.suffix == ".sqlite" for f in written) and any(f.name.endswith(".run.json.gz") for f in written)
    for f in written:  # every file the run wrote, binary and compressed ones too, and everything printed
        data = f.read_bytes()
        data = gzip.decompress(data) if f.suffix == ".gz" else data
        assert KEY.encode() not in data and b"SECRET" not in data, f"the API key was written into {f}"
    assert not any(KEY in out or "SECRET" in out for out in (result.output, rerun.output, views.output, report.output))


def test_api_down_for_good_fails_the_run_after_the_local_rung(api_env, tmp_path, tiny_goldset):
    api = api_env
    api.script(*[Fault(status=503)] * 50)
    ladder = write_ladder(tmp_path, tiny_goldset, template=API_LADDER.replace("concurrency = 1 }}", "concurrency = 1, max_retries = 1 }}"))
    result = CliRunner().invoke(main, ["run", "-l", str(ladder)])
    assert result.exit_code == 1
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("error: rung 'voyage' failed: Voyage embed: 2 attempts failed (last: HTTP 503") and "resume" in last
    records = {p.name.split(".")[0] for p in (Path(os.environ["TUNEBENCH_LEADERBOARD"]) / "records" / "tiny" / "test").glob("*.json")}
    assert "bm25" in records and "voyage" not in records
