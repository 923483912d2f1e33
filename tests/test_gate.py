"""``bench gate``: planted regressions fail with exit 1, non-regressions pass, misuse and a changed goldset exit 2."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import TINY_QUERIES, write_goldset, write_ladder
from harness.config import validate
from harness.decide.gate import run_gate
from harness.errors import ConfigError
from harness.ladder.schema import Gate, GateRule, load_ladder
from record_factory import scored_record
from test_cli import assert_one_line_error, bench

BASE = np.random.default_rng(0).random(200)


def write(tmp_path, name, values, **kw) -> str:
    path = tmp_path / f"{name}.json"
    record = scored_record({f"q{i}": float(v) for i, v in enumerate(values)}, rung=name, **kw)
    path.write_text(record.model_dump_json())
    return str(path)


@pytest.fixture
def files(tmp_path):
    """A baseline record and candidates: 2 points worse on every query, 0.5 point worse, and noisy."""
    noise = np.random.default_rng(1).normal(0, 0.3, len(BASE))
    return {
        "baseline": write(tmp_path, "baseline", BASE),
        "regressed": write(tmp_path, "regressed", BASE * (1 - 0.02 / BASE.mean())),
        "slightly": write(tmp_path, "slightly", BASE - 0.005),
        "noisy": write(tmp_path, "noisy", np.clip(BASE + noise - 0.02, 0, None)),
    }


def test_a_planted_two_point_regression_fails(files):
    result = bench("gate", files["regressed"], "--baseline", files["baseline"])
    assert result.exit_code == 1, result.output
    assert "regression" in result.output and "-0.0200" in result.output
    assert result.output.strip().splitlines()[-1].startswith("gate: FAIL: ndcg@10 on tiny/test dropped 0.0200 (allowed 0.0100")
    report = json.loads(bench("gate", files["regressed"], "-b", files["baseline"], "--json", "--significant").stdout)
    check = report["checks"][0]
    assert report["passed"] is False and check["verdict"] == "regression" and check["p_value"] < 0.001
    assert check["ci_high"] < -0.01 and check["n"] == 200 and check["requires_significance"] is True


def test_a_drop_within_the_allowance_passes(files):
    result = bench("gate", files["slightly"], "-b", files["baseline"])
    assert result.exit_code == 0, result.output
    assert "gate: PASS (1 check)" in result.output
    assert bench("gate", files["slightly"], "-b", files["baseline"], "--max-drop", "0.001").exit_code == 1
    assert bench("gate", files["baseline"], "-b", files["baseline"], "--max-drop", "0").exit_code == 0


def test_significance_forgives_a_drop_within_the_noise(files):
    report = json.loads(bench("gate", files["noisy"], "-b", files["baseline"], "--significant", "--json").stdout)
    check = report["checks"][0]
    assert check["delta"] < -0.01 and check["p_value"] > 0.05 and check["verdict"] == "not significant"
    assert report["passed"] is True
    assert bench("gate", files["noisy"], "-b", files["baseline"], "--any-drop").exit_code == 1


def test_a_changed_goldset_is_an_error_naming_both_fingerprints(tmp_path, files):
    changed = write(tmp_path, "changed", BASE, split_fingerprint="c" * 64)
    result = bench("gate", changed, "-b", files["baseline"])
    assert_one_line_error(result, "cccccccccccccccc", "9d1d1af7f594ac1f", "baseline rung 'baseline'")


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["-b", "{baseline}"], "name one candidate"),
        (["{regressed}", "-m", "some/model", "-b", "{baseline}"], "name one candidate"),
        (["{regressed}", "-b", "missing/record.json"], "record file 'missing/record.json' not found"),
        (["{regressed}", "-b", "baselin"], "no record of rung 'baselin'"),
        (["{regressed}", "-b", "{baseline}", "-s", "dev"], "matches no baseline record (baseline records: tiny/test)"),
        (["{regressed}", "-b", "{baseline}", "-M", "recall@10"], "no per-query 'recall@10' (it has: ndcg@10)"),
        (["{regressed}", "-b", "{baseline}", "-M", "ndgc@10"], "--metric ndgc@10: key 'metric': unknown metric 'ndgc@10'"),
        (["{regressed}", "-b", "{baseline}", "-g", "demo"], "the candidate has no record on goldset 'demo' (candidate records: tiny/test); pick from those with -g"),
    ],
)
def test_misuse_exits_2_with_one_line(files, args, fragment):
    assert_one_line_error(bench("gate", *[a.format(**files) for a in args]), fragment)


def test_bad_flag_values_are_usage_errors(files):
    for flags in (["--max-drop", "-1"], ["--alpha", "1.5"], ["--test", "wilcoxon"]):
        result = bench("gate", files["regressed"], "-b", files["baseline"], *flags)
        assert result.exit_code == 2 and "Invalid value" in result.output


WORSE_RUNG = """
[[rungs]]
name = "worse"
kind = "dense"
encoder = {{ backend = "bow", model = "bow", dim = 2 }}
"""


@pytest.fixture
def bow_work(monkeypatch, bow_backend, tmp_path, tiny_goldset):
    """A folder whose ladder has the bag-of-words baseline, BM25 and a 2-bucket bag of words (much worse)."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    write_ladder(work, tiny_goldset, WORSE_RUNG.format())
    return work


def test_real_records_of_a_worse_model_fail_the_gate(bow_work, tmp_path):
    assert bench("run").exit_code == 0
    worse = json.loads(bench("gate", "worse", "-b", "baseline", "--json").stdout)
    assert worse["passed"] is False and worse["checks"][0]["delta"] < -0.1
    assert bench("gate", "worse", "-b", "baseline").exit_code == 1
    assert bench("gate", "baseline", "-b", "baseline").exit_code == 0
    assert bench("gate", "baseline", "-b", "worse").exit_code == 0  # an improvement passes
    # 4 queries: the exact randomisation test cannot go below p = 2/16, so a significance rule forgives it
    tiny = json.loads(bench("gate", "worse", "-b", "baseline", "--significant", "--json").stdout)
    assert tiny["checks"][0]["p_value"] >= 0.125 and tiny["passed"] is True


def test_the_splits_a_rung_was_tuned_on_are_not_gated_by_default(bow_work):
    """A tuned hybrid writes the baseline's records on its tuning split; the candidate has none there."""
    (bow_work / "ladder.toml").write_text((bow_work / "ladder.toml").read_text() + TUNED_HYBRID)
    assert bench("run").exit_code == 0
    checked = json.loads(bench("gate", "worse", "-b", "baseline", "--json").stdout)["checks"]
    assert {c["split"] for c in checked} == {"test"}
    assert_one_line_error(bench("gate", "worse", "-b", "baseline", "-s", "train"), "the candidate has no record on goldset 'tiny' split 'train'")


TUNED_HYBRID = """
[[rungs]]
name = "tuned"
kind = "hybrid"
inputs = ["bm25", "baseline"]
method = "wsum"
tune_on = "train"
"""


def test_a_rung_evaluated_now_is_gated(bow_work, tmp_path):
    assert bench("run", "-r", "baseline", "--leaderboard", str(tmp_path / "stored")).exit_code == 0
    result = bench("gate", "worse", "--run", "-b", "baseline", "--baseline-leaderboard", str(tmp_path / "stored"))
    assert result.exit_code == 1, result.output
    assert "regression" in result.output


def test_a_model_evaluated_now_is_gated(bow_work, tiny_model):
    assert bench("run", "-r", "baseline").exit_code == 0
    result = bench("gate", "--model", str(tiny_model), "-b", "baseline", "--json")
    report = json.loads(result.stdout)
    assert result.exit_code == 1 and report["checks"][0]["candidate_rung"] == "dense:st"  # random weights lose to bag of words
    assert report["checks"][0]["candidate"] < report["checks"][0]["reference"] == 1.0


def test_a_goldset_changed_since_the_baseline_stops_the_gate(bow_work, tmp_path):
    assert bench("run", "-r", "baseline", "--leaderboard", str(tmp_path / "stored")).exit_code == 0
    edited = write_goldset(tmp_path / "edited" / "tiny", queries={**TINY_QUERIES, "q1": "oxalic acid against varroa"})
    result = bench("gate", "baseline", "--run", "-g", str(edited), "-b", "baseline", "--baseline-leaderboard", str(tmp_path / "stored"))
    assert_one_line_error(result, "goldset 'tiny' split 'test' is not the one the baseline was scored on", "fingerprint", " vs ")


def test_the_ladder_gate_table_sets_the_rules(bow_work, tmp_path):
    ladder = bow_work / "ladder.toml"
    ladder.write_text(ladder.read_text() + '\n[gate]\nalpha = 0.1\n[[gate.rules]]\nmetric = "recall@100"\nmax_drop = 0.5\n')
    assert bench("run").exit_code == 0
    report = json.loads(bench("gate", "worse", "-b", "baseline", "--json").stdout)
    assert [(c["metric"], c["max_drop"], c["alpha"]) for c in report["checks"]] == [("recall@100", 0.5, 0.1)]
    ladder.write_text(ladder.read_text().replace('metric = "recall@100"', 'metric = "recall@7"'))
    with pytest.raises(ConfigError, match="gate rule metric 'recall@7' is not in metrics"):
        load_ladder(ladder)


def test_holm_adjusts_the_rules_that_ask_for_significance():
    base = {f"q{i}": float(v) for i, v in enumerate(BASE)}
    rng = np.random.default_rng(2)
    candidate = {q: v - 0.05 + rng.normal(0, 0.2) for q, v in base.items()}
    records = [scored_record(candidate, rung="c")], [scored_record(base, rung="b")]
    rules = [GateRule(metric="ndcg@10", significant=True), GateRule(metric="ndcg@10", max_drop=0.2, significant=True), GateRule(metric="ndcg@10")]
    result = run_gate(*records, Gate(), rules)
    p = result.checks[0].comparison.p_value
    assert [c.p_holm for c in result.checks] == [pytest.approx(min(1.0, 2 * p))] * 2 + [None]
    assert p < 0.001 and [c.verdict for c in result.checks] == ["regression", "pass", "regression"]


def test_a_rule_on_unseen_documents_gates_generalisation_alone():
    """A candidate that gains on the queries about documents it trained on and loses on the others:
    the whole split passes, a rule on its unseen subset fails."""
    from harness.records import subset

    base = {f"q{i}": float(v) for i, v in enumerate(BASE)}
    seen, unseen = list(base)[:150], list(base)[150:]
    candidate = scored_record({q: v + (0.03 if q in seen else -0.05) for q, v in base.items()}, rung="ft-r0")
    candidate = candidate.model_copy(update={"subsets": {"seen": subset(candidate.per_query, seen), "unseen": subset(candidate.per_query, unseen)}})
    baseline = scored_record(base, rung="ft-old")
    result = run_gate([candidate], [baseline], Gate(), [GateRule(metric="ndcg@10"), GateRule(metric="ndcg@10", subset="unseen"), GateRule(metric="ndcg@10", subset="seen")])
    assert [c.verdict for c in result.checks] == ["pass", "regression", "pass"]
    assert result.checks[1].comparison.n == 50 and result.checks[1].comparison.delta == pytest.approx(-0.05)
    assert result.as_dict()["checks"][1]["subset"] == "unseen"
    with pytest.raises(Exception, match="rung 'ft-old' on tiny/test has no such subset"):
        run_gate([baseline], [candidate], Gate(), [GateRule(metric="ndcg@10", subset="unseen")])
    # an out-of-domain companion: a fine-tuned model saw none of its documents, so all its queries are unseen
    far = {"far": 0.5, "away": 0.7}
    far_candidate = scored_record(far, rung="ft-r0", split_fingerprint="far")
    far_candidate = far_candidate.model_copy(update={"goldset": far_candidate.goldset.model_copy(update={"name": "far", "ood_of": "tiny"}),
                                                     "subsets": {"seen": subset(far_candidate.per_query, []), "unseen": subset(far_candidate.per_query, list(far))}})
    far_baseline = scored_record(far, rung="ft-old", split_fingerprint="far")
    far_baseline = far_baseline.model_copy(update={"goldset": far_candidate.goldset})
    result = run_gate([candidate, far_candidate], [baseline, far_baseline], Gate(), [GateRule(metric="ndcg@10", subset="unseen")])
    assert [(c.goldset, c.comparison.n, c.verdict) for c in result.checks] == [("tiny", 50, "regression"), ("far", 2, "pass")]
    with pytest.raises(ConfigError, match="subset"):  # a typo'd subset is a config error, not an empty check
        validate(GateRule, {"metric": "ndcg@10", "subset": "unsen"}, "ladder.toml gate rule")


DOCS = Path(__file__).resolve().parents[1] / "docs"


def gate_args(line: str) -> list[str]:
    """The arguments of one ``bench gate ...`` command line, parsed by the real command (nothing runs)."""
    from harness.commands.gate_cmd import gate

    args = shlex.split(line.split("#")[0])[2:]
    gate.make_context("gate", list(args))
    return args


def test_the_github_actions_example_runs_then_gates():
    workflow = yaml.safe_load((DOCS / "github-actions-gate.yml").read_text())
    commands = [step["run"] for step in workflow["jobs"]["gate"]["steps"] if "run" in step]
    runs = [i for i, c in enumerate(commands) if c.startswith("bench run")]
    gates = [i for i, c in enumerate(commands) if c.startswith("bench gate")]
    assert runs and gates and runs[0] < gates[0] and "pip install" in commands[0]
    args = gate_args(commands[gates[0]])
    assert args[args.index("--baseline-leaderboard") + 1] == "ci/baseline"


def test_the_ci_gate_doc_commands_and_gate_table_are_valid():
    text = (DOCS / "ci-gate.md").read_text()
    lines = [line for line in text.splitlines() if line.startswith("bench gate")]
    assert len(lines) == 4 and all(gate_args(line) for line in lines)
    table = tomllib.loads(re.search(r"```toml\n(.+?)```", text, re.S).group(1))["gate"]
    assert [r.subset for r in Gate.model_validate(table).rules] == [None, None, None, "unseen"]
