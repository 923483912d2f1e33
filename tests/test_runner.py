"""Running rungs: records written, unchanged rungs skipped, the schema stays loadable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cache import Cache
from harness.data.goldset import load_goldset
from harness.errors import GoldsetError
from harness.ladder.plan import plan_targets
from harness.ladder.rungs import BM25Rung, DenseRung
from harness.ladder.runner import Target, run_rungs
from harness.records import Leaderboard, RunRecord, read_record
from harness.registry import EncoderConfig

DATA = Path(__file__).parent / "data"


def rungs(backend="bow"):
    return [DenseRung(name="bow", encoder=EncoderConfig(backend=backend, model="bow")), BM25Rung(name="bm25")]


def run(tiny_goldset, tmp_path, **kw):
    targets = [Target(load_goldset(tiny_goldset), ("test",))]
    return run_rungs(targets, rungs(), leaderboard=Leaderboard(tmp_path / "lb"), cache=Cache(tmp_path / "c"), **kw)


def test_records_carry_scores_and_provenance(tiny_goldset, tmp_path, bow_backend):
    outcomes = run(tiny_goldset, tmp_path)
    assert [(o.record.rung.name, o.action) for o in outcomes] == [("bow", "ran"), ("bm25", "ran")]
    bow = outcomes[0].record
    assert bow.metrics["recall@1"] == 1.0 and bow.metrics["ndcg@10"] > 0.9
    assert set(bow.per_query) == {"q1", "q2", "q3", "q4"}
    assert bow.goldset.n_queries == 4 and bow.goldset.n_documents == 6
    assert bow.rung.encoder_fingerprint == "bow-512"
    assert bow.counts.documents_encoded == 6 and bow.counts.queries_encoded == 4
    assert "ranx" in bow.environment.packages
    files = sorted(p.name for p in (tmp_path / "lb/records/tiny/test").iterdir())
    assert len(files) == 4 and sum(f.endswith(".run.json.gz") for f in files) == 2
    lb = Leaderboard(tmp_path / "lb")
    assert lb.load_run(bow)["q1"]  # the run beside the record
    assert [r.rung.name for r in lb.latest()] == ["bow", "bm25"]


def test_unchanged_rung_is_skipped_and_overwrite_reruns(tiny_goldset, tmp_path, bow_backend):
    first = run(tiny_goldset, tmp_path)
    second = run(tiny_goldset, tmp_path)
    assert [o.action for o in second] == ["unchanged", "unchanged"]
    assert second[0].record == first[0].record
    third = run(tiny_goldset, tmp_path, overwrite=True)
    assert [o.action for o in third] == ["ran", "ran"]
    assert third[0].record.counts.documents_cached == 6  # re-run, but nothing re-encoded


def test_changed_goldset_makes_a_new_record(tiny_goldset, tmp_path, bow_backend):
    first = run(tiny_goldset, tmp_path)
    with open(tiny_goldset / "corpus.jsonl", "a") as f:
        f.write('{"_id": "d7", "title": "Mice", "text": "Mouse guards keep mice out in winter."}\n')
    second = run(tiny_goldset, tmp_path)
    assert [o.action for o in second] == ["ran", "ran"]
    assert second[0].record.key != first[0].record.key
    assert second[0].record.counts.documents_encoded == 1


def test_identical_ids_are_dropped_only_when_asked(tmp_path, bow_backend):
    from conftest import write_goldset

    docs = {"q1": ("Self", "oxalic acid varroa mites"), "d1": ("Varroa", "oxalic acid treatment for varroa mites")}
    for flag in ("false", "true"):
        folder = write_goldset(tmp_path / flag, docs=docs, queries={"q1": "oxalic acid varroa mites"}, qrels={"test": {"q1": {"d1": 1}}},
                               manifest=f"ignore_identical_ids = {flag}\n")
        record = run_rungs([Target(load_goldset(folder), ("test",))], rungs()[:1], leaderboard=Leaderboard(tmp_path / flag / "lb"),
                           cache=Cache(tmp_path / "c"))[0].record
        assert record.goldset.ignore_identical_ids is (flag == "true")
        assert record.metrics["recall@1"] == (1.0 if flag == "true" else 0.0)


def test_missing_split_fails_before_any_work(tiny_goldset, tmp_path, bow_backend):
    with pytest.raises(GoldsetError, match="no split 'dev'"):
        run_rungs([Target(load_goldset(tiny_goldset), ("dev",))], rungs(), leaderboard=Leaderboard(tmp_path / "lb"), cache=Cache(tmp_path))
    assert not (tmp_path / "lb").exists()


def test_plan_targets_adds_ood_companions(tmp_path):
    from conftest import write_goldset

    write_goldset(tmp_path / "other")
    main = write_goldset(tmp_path / "main", docs={"x1": ("t", "text")}, queries={"y1": "q"}, qrels={"test": {"y1": {"x1": 1}}},
                         manifest='ood = ["../other"]\n')
    targets = plan_targets([str(main)])
    assert [(t.goldset.name, t.splits, t.ood_of) for t in targets] == [("main", ("test",), None), ("other", ("test",), "main")]
    assert len(plan_targets([str(main)], include_ood=False)) == 1


@pytest.mark.parametrize("version", [1, 2, 3])
def test_golden_records_of_every_schema_version_still_load(version):
    path = DATA / f"record_v{version}.json"
    record = read_record(path)
    assert isinstance(record, RunRecord) and record.schema_version == 3  # upgraded on load
    assert record.metrics["ndcg@10"] == pytest.approx(json.loads(path.read_text())["metrics"]["ndcg@10"])
    if version == 1:
        assert record.latency is None and record.cost.api_calls == 0 and record.details == {}
    if version < 3:
        assert record.subsets == {}
    else:
        assert record.subsets["seen"].queries and record.subsets["unseen"].metrics
