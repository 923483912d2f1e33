"""Faithful to published numbers: SciFact test with all-MiniLM-L6-v2 and BM25, and metric parity with pytrec_eval.

Published (MTEB, test split, title + " " + text): all-MiniLM-L6-v2 nDCG@10 0.645, recall@10 0.783,
recall@100 0.925; BM25 (bm25s) nDCG@10 0.687.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from conftest import pytrec_eval_reference, shared_dataset
from harness.cache import Cache
from harness.cli import main
from harness.ladder.plan import plan_targets
from harness.ladder.rungs import BM25Rung, DenseRung, HybridRung
from harness.ladder.runner import run_rungs
from harness.records import Leaderboard

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def scifact_records(tmp_path_factory):
    folder = shared_dataset("scifact")
    root = tmp_path_factory.mktemp("scifact")
    board = Leaderboard(root / "lb")
    rungs = [DenseRung(name="baseline"), BM25Rung(name="bm25"), HybridRung(name="hybrid", inputs=["bm25", "baseline"], method="rrf")]
    outcomes = run_rungs(plan_targets([str(folder)], ["test"]), rungs, leaderboard=board, cache=Cache(root / "cache"))
    return board, {o.record.rung.name: o.record for o in outcomes}


def test_baseline_reproduces_mteb(scifact_records):
    _, records = scifact_records
    metrics = records["baseline"].metrics
    assert records["baseline"].goldset.n_queries == 300
    assert metrics["ndcg@10"] == pytest.approx(0.645, abs=0.005)
    assert metrics["recall@10"] == pytest.approx(0.783, abs=0.005)
    assert metrics["recall@100"] == pytest.approx(0.925, abs=0.005)


def test_bm25_lands_near_bm25s_published(scifact_records):
    _, records = scifact_records
    assert records["bm25"].metrics["ndcg@10"] == pytest.approx(0.687, abs=0.03)


def test_hybrid_is_not_worse_than_the_better_input(scifact_records):
    _, records = scifact_records
    better = max(records["baseline"].metrics["ndcg@10"], records["bm25"].metrics["ndcg@10"])
    assert records["hybrid"].metrics["ndcg@10"] >= better - 0.005
    assert records["hybrid"].details["method"] == "rrf" and records["hybrid"].latency.n == 50


@pytest.mark.parametrize("rung", ["baseline", "bm25", "hybrid"])
def test_metrics_equal_pytrec_eval_on_the_same_run(scifact_records, rung):
    board, records = scifact_records
    record = records[rung]
    qrels = {q: v for q, v in _scifact_qrels().items() if q in record.per_query}
    ref = pytrec_eval_reference(qrels, board.load_run(record))
    worst = max(abs(ours[name] - ref[q][name]) for q, ours in record.per_query.items() for name in ref[q])
    assert worst < 1e-6


def _scifact_qrels():
    qrels: dict = {}
    for line in (shared_dataset("scifact") / "qrels" / "test.tsv").read_text().splitlines()[1:]:
        q, d, g = line.split("\t")
        qrels.setdefault(q, {})[d] = int(g)
    return qrels


def test_default_ladder_end_to_end_offline(monkeypatch, tmp_path):
    """The README's main job: `bench run` (the default ladder on demo), offline: the rungs that need
    the hub or API keys are skipped with their reasons, the rest run; then an unchanged re-run.
    To keep CI within its time, the ladder runs with no mining round (round 1 costs 3.5x round 0 and
    is tested on a tiny model in test_training.py)."""
    from harness.ladder.schema import DEFAULT_LADDER

    for key in ("COHERE_API_KEY", "VOYAGE_API_KEY", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    text = DEFAULT_LADDER.read_text()
    assert 'on_leakage = "drop" }' in text
    (tmp_path / "ladder.toml").write_text(text.replace('on_leakage = "drop" }', 'on_leakage = "drop", mining = { rounds = 0 } }'))
    monkeypatch.chdir(tmp_path)  # ./ladder.toml: the default ladder, one round
    result = CliRunner().invoke(main, ["run", "--json"])
    assert result.exit_code == 0, result.output
    rows = {(r["goldset"], r["rung"]): r for r in json.loads(result.stdout)}
    ran = {rung for (goldset, rung), r in rows.items() if goldset == "demo" and r["status"] == "ok"}
    assert ran == {"baseline", "bm25", "hybrid", "hybrid-tuned", "chunked", "finetune-r0"}
    skipped = {rung: r["reason"] for (goldset, rung), r in rows.items() if goldset == "demo" and r["status"] == "skipped"}
    assert "COHERE_API_KEY" in skipped["cohere-embed-v4"] and "VOYAGE_API_KEY" in skipped["hybrid+voyage-rerank"]
    assert "OPENAI_API_KEY" in skipped["openai-3-large"]
    assert "BAAI/bge-base-en-v1.5" in skipped["bge-base"] and "cross-encoder/ms-marco-MiniLM-L6-v2" in skipped["hybrid+ce"]
    baseline = rows[("demo", "baseline")]["metrics"]
    assert 0.5 <= baseline["recall@10"] <= 0.8, "the demo should leave the ladder room to climb"
    assert rows[("demo", "hybrid-tuned")]["metrics"]["ndcg@10"] > baseline["ndcg@10"]
    assert rows[("demo", "finetune-r0")]["metrics"]["ndcg@10"] > baseline["ndcg@10"]  # the default recipe pays on demo
    assert rows[("demo-ood", "finetune-r0")]["metrics"]["ndcg@10"] >= rows[("demo-ood", "baseline")]["metrics"]["ndcg@10"] - 0.02
    assert rows[("demo-ood", "baseline")]["ood_of"] == "demo"
    assert rows[("demo", "baseline")]["latency_p95_ms"] >= rows[("demo", "baseline")]["latency_p50_ms"] > 0
    again = CliRunner().invoke(main, ["run", "--json"])
    actions = {r["action"] for r in json.loads(again.stdout) if r["status"] == "ok"}
    assert again.exit_code == 0 and actions == {"unchanged"}
