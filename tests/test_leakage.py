"""The leakage guard: every kind of planted leak is caught and listed, by `bench check-leakage` and before training;
query leaks and document overlap are counted and handled apart."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from conftest import TINY_DOCS, TINY_QUERIES, write_goldset
from harness.cli import main
from harness.data.goldset import load_goldset
from harness.errors import GoldsetError
from harness.pairs.pairset import write_pairs
from harness.protocols import Pair
from harness.training.job import plan_job
from harness.training.leakage import QUERY_KINDS, check_leakage, guard, leakage, near_duplicates, without
from harness.training.schema import TrainConfig
from test_cli import assert_one_line_error

# test: q1 (d1), q2 (d2), q3 (d3); train: q5 (d5), q6 (d6)
QRELS = {"test": {"q1": {"d1": 2}, "q2": {"d2": 2}, "q3": {"d3": 2, "d4": 0}}, "train": {"q5": {"d5": 1}, "q6": {"d6": 2}}}
CLEAN = [Pair(TINY_QUERIES["q5"], TINY_DOCS["d5"][1], query_id="q5", positive_id="d5"), Pair(TINY_QUERIES["q6"], TINY_DOCS["d6"][1], query_id="q6", positive_id="d6")]
PLANTED = {
    "same_queries": Pair("Oxalic acid, VARROA mites!", "Feed syrup.", query_id="t1"),  # q1 after normalisation
    "near_queries": Pair("why did my queens swarm in the spring", "Feed syrup.", query_id="t2"),  # q2 reworded
    "judged_positives": Pair("centrifugal honey", "whatever", query_id="t3", positive_id="d3"),  # q3's document by id
    "synthetic_origins": Pair("what kills varroa", "Oxalic acid kills mites.", source="synthetic/question", query_id="t4", generated_from=["d1"]),
}


@pytest.fixture
def goldset(tmp_path):
    return load_goldset(write_goldset(tmp_path / "g", qrels=QRELS))


def test_clean_data_has_no_leak(goldset):
    found = leakage(CLEAN, goldset, ["test"])
    assert found.query_leaks == found.overlap == 0


@pytest.mark.parametrize("kind", list(PLANTED))
def test_each_planted_leak_is_caught_and_named(goldset, kind):
    found = leakage([*CLEAN, PLANTED[kind]], goldset, ["test"])
    expected = {"same_queries": ["q1"], "near_queries": ["q2"], "judged_positives": ["d3"], "synthetic_origins": ["d1"]}[kind]
    query_kind = kind in QUERY_KINDS
    assert getattr(found, kind) == expected and (found.query_leaks, found.overlap) == ((1, 0) if query_kind else (0, 1))
    assert [(e.kind, e.eval_id) for e in found.evidence] == [(kind, expected[0])]
    assert without([*CLEAN, PLANTED[kind]], goldset, found, queries=query_kind, documents=not query_kind) == CLEAN
    assert without([*CLEAN, PLANTED[kind]], goldset, found, queries=not query_kind, documents=query_kind) == [*CLEAN, PLANTED[kind]]


def test_positive_by_text_and_synthetic_by_source(goldset):
    by_text = Pair("hive tools", goldset.document_text(goldset.corpus["d2"]))  # a pair file without ids
    synthetic = Pair("spinning frames", "An extractor spins frames.", source="synthetic", positive_id="d3")
    found = leakage([by_text, synthetic], goldset, ["test"])
    assert found.judged_positives == ["d2"] and found.synthetic_origins == ["d3"]
    assert {e.train for e in found.evidence} == {"hive tools", "spinning frames"}


def test_near_duplicate_threshold():
    hits = near_duplicates(["why did my queen swarm in spring", "grafting larvae"], ["Why did my queens swarm in the spring?", "oxalic acid"], 0.85)
    assert [(i, j) for i, j, _ in hits] == [(0, 0)] and 0.85 <= hits[0][2] < 1
    assert near_duplicates(["grafting larvae into queen cups"], ["feeding sugar syrup in autumn"], 0.3) == []


def test_dropping_near_duplicates_leaves_none(goldset):
    """An evaluation query nearly repeated by two train queries: both are found, so the pairs left
    after dropping are clean on a second check (the closest alone would leave the other behind)."""
    twins = [Pair("Why did my queens swarm in the spring?", "A hive."), Pair("why did my queen swarm in the spring", "A hive."), *CLEAN]
    found = leakage(twins, goldset, ["test"])
    assert {e.train for e in found.evidence if e.kind == "near_queries"} >= {twins[0].query, twins[1].query}
    assert leakage(without(twins, goldset, found, queries=True, documents=True), goldset, ["test"]).query_leaks == 0


def test_check_leakage_cli_reports_query_leaks_and_document_overlap_apart(tmp_path, goldset):
    write_pairs(tmp_path / "pairs.jsonl", [*CLEAN, *PLANTED.values()])
    result = CliRunner().invoke(main, ["check-leakage", str(tmp_path / "pairs.jsonl"), str(tmp_path / "g")])
    assert result.exit_code == 1, result.output
    assert "  query leaks: 2\n" in result.output and "  document overlap (not a leak for a fixed corpus" in result.output
    assert "1 evaluation queries nearly repeated in training: q2" in result.output and "q2 ~ 'why did my queens swarm in the spring'" in result.output
    assert "1 documents judged for evaluation queries that synthetic training queries were written from: d1" in result.output
    result = CliRunner().invoke(main, ["check-leakage", str(tmp_path / "pairs.jsonl"), f"{tmp_path / 'g'}:test", "--no-near", "--json"])
    report = json.loads(result.stdout)["goldsets"][0]
    assert result.exit_code == 1 and (report["query_leaks"], report["overlap"]) == (1, 2) and report["near_queries"] == [] and report["synthetic_origins"] == ["d1"]
    assert {e["train"] for e in report["evidence"]} == {"Oxalic acid, VARROA mites!", "t3", "t4"}


def test_document_overlap_alone_exits_0_unless_asked(tmp_path, goldset):
    """Training on the documents the test queries are judged on is what a team with a fixed corpus does: reported, not failed."""
    write_pairs(tmp_path / "pairs.jsonl", [*CLEAN, PLANTED["judged_positives"]])
    result = CliRunner().invoke(main, ["check-leakage", str(tmp_path / "pairs.jsonl"), str(tmp_path / "g")])
    assert result.exit_code == 0, result.output
    assert "query leaks: none" in result.output and "1 documents judged for evaluation queries used as training positives: d3" in result.output
    assert CliRunner().invoke(main, ["check-leakage", str(tmp_path / "pairs.jsonl"), str(tmp_path / "g"), "--fail-on-overlap"]).exit_code == 1


def test_check_leakage_cli_on_a_goldsets_own_train_split(tmp_path):
    queries = {**TINY_QUERIES, "q7": "wax moth larva in the stored comb"}  # q4 reworded, in train
    qrels = {**QRELS, "test": {**QRELS["test"], "q4": {"d4": 1}}, "train": {**QRELS["train"], "q7": {"d5": 1}}}
    write_goldset(tmp_path / "g", queries=queries, qrels=qrels)
    result = CliRunner().invoke(main, ["check-leakage", str(tmp_path / "g"), str(tmp_path / "g"), "--json"])
    assert result.exit_code == 1 and json.loads(result.stdout)["goldsets"][0]["near_queries"] == ["q4"]
    assert CliRunner().invoke(main, ["check-leakage", f"{tmp_path / 'g'}:train", str(tmp_path / "g"), "--threshold", "0.99"]).exit_code == 0
    result = CliRunner().invoke(main, ["check-leakage", str(tmp_path / "g"), str(tmp_path / "g"), "--eval-split", "dev"])
    assert result.exit_code == 2 and "has no split 'dev'" in result.output


def test_a_missing_pair_file_is_named_as_one(tmp_path, goldset):
    """It used to say "goldset 'pairs/nope.jsonl' is not a folder, a bundled name or mteb:<Task>"."""
    (tmp_path / "pairs").mkdir()
    write_pairs(tmp_path / "pairs" / "train.jsonl", CLEAN)
    result = CliRunner().invoke(main, ["check-leakage", str(tmp_path / "pairs" / "nope.jsonl"), f"{tmp_path / 'g'}:test"])
    assert_one_line_error(result, f"pair file '{tmp_path / 'pairs' / 'nope.jsonl'}' not found (files there: train.jsonl)")
    result = CliRunner().invoke(main, ["check-leakage", str(tmp_path / "none" / "p.csv"), f"{tmp_path / 'g'}:test"])
    assert_one_line_error(result, f"pair file '{tmp_path / 'none' / 'p.csv'}' not found: there is no folder")


def test_training_stops_on_a_near_duplicate_or_drops_it(tmp_path, goldset):
    write_pairs(tmp_path / "extra.jsonl", [PLANTED["near_queries"], PLANTED["synthetic_origins"]])
    data = {"goldset": str(tmp_path / "g"), "pair_files": [{"path": str(tmp_path / "extra.jsonl")}], "eval_split": ""}
    with pytest.raises(GoldsetError, match=r"leak into evaluation on 'g': 1 evaluation queries nearly repeated in training \(e.g. q2\); remove them"):
        plan_job(TrainConfig(**data), models_root=tmp_path / "models")
    job = plan_job(TrainConfig(**data, on_leakage="drop"), models_root=tmp_path / "models")
    assert (job.leakage.query_leaks, job.leakage.overlap) == (1, 1)
    assert job.datasets[str(tmp_path / "extra.jsonl")] == [PLANTED["synthetic_origins"]]  # document overlap is kept by default
    assert [p.query_id for p in job.datasets["g/train"]] == ["q5", "q6"]
    job = plan_job(TrainConfig(**data, on_leakage="drop", on_overlap="drop"), models_root=tmp_path / "models")
    assert job.datasets[str(tmp_path / "extra.jsonl")] == []
    with pytest.raises(GoldsetError, match="near"):
        check_leakage([PLANTED["near_queries"]], goldset, ["test"], "stop")


def test_document_overlap_never_stops_training(goldset):
    """on_leakage = "stop" is about query leaks: a train positive judged for a test query trains (kept) or is dropped, never refused."""
    datasets = {"train": [*CLEAN, PLANTED["judged_positives"]]}
    kept, found = guard(datasets, goldset, ["test"], "stop")
    assert kept == datasets and found.judged_positives == ["d3"] and found.counts("stop", "keep")["overlap"] == 1
    dropped, _ = guard(datasets, goldset, ["test"], "stop", "drop")
    assert dropped == {"train": CLEAN}
    with pytest.raises(Exception, match="on_overlap must be one of keep, drop"):
        guard(datasets, goldset, ["test"], "stop", "allow")
