"""`bench compare-queries`: lengths, vocabulary, question words, and a classifier telling two query sets apart."""

from __future__ import annotations

import json
import random

import pytest
from click.testing import CliRunner

from conftest import write_goldset
from harness.cli import main
from harness.pairs.drift import drift_warnings, question_mix, read_queries, vocabulary
from harness.pairs.pairset import write_pairs
from harness.protocols import Pair

PESTS = ["varroa", "wax moth", "small hive beetle", "nosema", "chalkbrood", "foulbrood", "tracheal mites", "hornets"]
TREATMENTS = ["oxalic acid", "formic acid", "thymol", "freezing frames", "requeening", "screened boards", "sugar dusting"]
SEASONS = ["winter", "spring", "summer", "autumn"]


def keyword_queries(n: int, seed: int) -> list[str]:
    """Short keyword queries, as people type them into a search box."""
    rng = random.Random(seed)
    return [f"{rng.choice(PESTS)} {rng.choice(TREATMENTS)} {rng.choice(SEASONS)}" for _ in range(n)]


def question_queries(n: int, seed: int) -> list[str]:
    """Long natural questions, as a language model writes them."""
    rng = random.Random(seed)
    openers = ["What is the most effective way to", "How should a beginner", "Why do experienced beekeepers recommend that you"]
    tasks = ["protect a colony against parasites", "prepare the hives for the cold months", "decide when to intervene in a struggling colony"]
    return [f"{rng.choice(openers)} {rng.choice(tasks)} according to current guidance?" for _ in range(n)]


def test_measures_on_small_sets():
    assert vocabulary(["varroa mites", "oxalic acid"], ["varroa acid", "honey"]) == {"jaccard": 0.4, "b_tokens_seen_in_a": 0.6667}
    mix = question_mix(["What is varroa?", "how to treat", "Is oxalic acid safe?", "varroa winter"])
    assert (mix["what"], mix["how"], mix["yes/no"], mix["other"], mix["ends_with_?"]) == (0.25, 0.25, 0.25, 0.25, 0.5)


def test_queries_from_every_kind_of_source(tmp_path):
    goldset = write_goldset(tmp_path / "g")
    (tmp_path / "q.txt").write_text("first query\n\nsecond query\n")
    write_pairs(tmp_path / "pairs.jsonl", [Pair("same query", "a"), Pair("same query", "b"), Pair("other query", "c")])
    assert read_queries(str(tmp_path / "q.txt")) == ["first query", "second query"]
    assert read_queries(str(tmp_path / "pairs.jsonl")) == ["same query", "other query"]
    assert read_queries(str(goldset / "queries.jsonl"))[0] == "oxalic acid varroa mites"
    assert read_queries(f"{goldset}:train") == ["sugar syrup autumn winter stores", "grafting larvae queen cups"]


def compare(tmp_path, a: list[str], b: list[str], *extra):
    (tmp_path / "a.txt").write_text("\n".join(a))
    (tmp_path / "b.txt").write_text("\n".join(b))
    return CliRunner().invoke(main, ["compare-queries", str(tmp_path / "a.txt"), str(tmp_path / "b.txt"), "--encoder-backend", "bow", "--model", "bow", *extra])


def test_keywords_against_questions_are_far_apart_and_warned(tmp_path, bow_backend):
    result = compare(tmp_path, keyword_queries(80, 1), question_queries(80, 2), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["classifier_auc"] > 0.95
    assert report["length_words"]["ks_statistic"] == 1.0 and report["vocabulary"]["b_tokens_seen_in_a"] < 0.1
    assert report["question_words"]["a"]["other"] == 1.0 and report["question_words"]["b"]["ends_with_?"] == 1.0
    assert any("a model that improves on a synthetic eval may fail in production" in w for w in report["warnings"])
    assert any(w.startswith("query lengths differ") for w in report["warnings"])
    assert any(w.startswith("the queries open differently: 100% of A's start 'other'") for w in report["warnings"])
    text = compare(tmp_path, keyword_queries(80, 1), question_queries(80, 2))
    assert "warning: the two query sets are easy to tell apart" in text.output and "classifier AUC (A vs B, 80 + 80 queries)" in text.output


def test_two_halves_of_one_set_look_alike(tmp_path, bow_backend):
    queries = keyword_queries(200, 3) + question_queries(200, 4)
    random.Random(5).shuffle(queries)
    result = compare(tmp_path, queries[::2], queries[1::2], "--json")
    report = json.loads(result.stdout)
    assert 0.35 < report["classifier_auc"] < 0.65 and report["warnings"] == []
    assert report["vocabulary"]["b_tokens_seen_in_a"] > 0.99
    assert "the two sets look alike on every measure" in compare(tmp_path, queries[::2], queries[1::2]).output


def test_lengths_alone_are_warned_when_the_classifier_sees_no_difference():
    """SmolLM2's paraphrases of SciFact claims: the classifier cannot tell them apart (AUC 0.52), but
    they run longer (median 17 words against 12), which alone deserves a warning."""
    report = {
        "classifier_auc": 0.52,
        "length_words": {"a": {"mean": 12.3, "median": 12.0, "p90": 19.0}, "b": {"mean": 19.4, "median": 17.0, "p90": 36.0}, "ks_statistic": 0.38, "ks_pvalue": 8.4e-09},
        "question_words": {"a": {"what": 0.0, "other": 1.0, "ends_with_?": 0.0}, "b": {"what": 0.01, "other": 0.99, "ends_with_?": 0.04}},
    }
    warnings = drift_warnings(report)
    assert len(warnings) == 1 and warnings[0].startswith("query lengths differ (median 12 words in A, 17 in B; p90 19 and 36; KS 0.38")
    report["length_words"]["ks_pvalue"] = 0.2  # a large KS on few queries is not evidence
    assert drift_warnings(report) == []


def test_too_few_queries_is_one_line(tmp_path, bow_backend):
    result = compare(tmp_path, ["only one"], ["two", "three"])
    assert result.exit_code == 2 and "at least 2 queries" in result.output


@pytest.mark.slow
def test_packaged_minilm_tells_keywords_from_questions(tmp_path):
    report = json.loads(CliRunner().invoke(main, ["compare-queries", *_write(tmp_path), "--json"]).stdout)
    assert report["classifier_auc"] > 0.95


def _write(tmp_path):
    (tmp_path / "a.txt").write_text("\n".join(keyword_queries(40, 1)))
    (tmp_path / "b.txt").write_text("\n".join(question_queries(40, 2)))
    return str(tmp_path / "a.txt"), str(tmp_path / "b.txt")
