"""`bench pairs`: the pair-file and goldset writers, labels and click logs turned into pairs."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import TINY_DOCS
from harness.cli import main
from harness.data.goldset import Document, load_goldset
from harness.data.pair_files import read_pair_file
from harness.errors import ConfigError, GoldsetError
from harness.pairs.pairset import split_queries, write_goldset, write_pairs
from harness.protocols import Pair
from test_cli import assert_one_line_error


def bench(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_pair_file_round_trips_with_ids_and_origins(tmp_path):
    pairs = [
        Pair("varroa treatment", "Oxalic acid kills mites.", ["Swarms in spring."], source="labels", query_id="q1", positive_id="d1"),
        Pair("how do bees swarm", "Colonies swarm in spring.", source="synthetic/question", positive_id="d2", generated_from=["d2"]),
        Pair("plain", "no ids at all"),
    ]
    assert write_pairs(tmp_path / "p.jsonl", pairs) == 3
    back = read_pair_file(tmp_path / "p.jsonl")
    assert back[:2] == pairs[:2]
    assert (back[2].query, back[2].positive, back[2].query_id, back[2].source) == ("plain", "no ids at all", None, str(tmp_path / "p.jsonl"))


def test_pair_file_lines_must_be_objects_with_string_ids(tmp_path):
    (tmp_path / "p.jsonl").write_text('{"query": "q", "positive": "p"}\n["q", "p"]\n')
    with pytest.raises(ConfigError, match=r"p.jsonl:2: not a JSON object; each line is \{\"query\""):
        read_pair_file(tmp_path / "p.jsonl")
    (tmp_path / "p.jsonl").write_text('{"query": "q", "positive": "p", "generated_from": "d1"}\n')
    with pytest.raises(ConfigError, match=r"p.jsonl:1: \"generated_from\" must be a list of document ids"):
        read_pair_file(tmp_path / "p.jsonl")


def one_positive_each(n: int) -> dict[str, dict[str, int]]:
    return {f"q{i}": {f"d{i}": 1, "shared-negative": 0} for i in range(n)}


def test_split_is_by_query_with_the_shares_asked_and_the_seed():
    shares = {"train": 0.7, "dev": 0.15, "test": 0.15}
    split = split_queries(one_positive_each(100), shares, seed=1)
    assert Counter(split.values()) == {"train": 70, "dev": 15, "test": 15}
    assert split == split_queries(dict(reversed(one_positive_each(100).items())), shares, seed=1)  # order of input does not matter
    assert split != split_queries(one_positive_each(100), shares, seed=2)
    assert Counter(split_queries(one_positive_each(3), {"train": 0.8, "dev": 0.1, "test": 0.1}, seed=0).values()) == {"train": 1, "dev": 1, "test": 1}
    assert set(split_queries(one_positive_each(5), {"train": 1, "dev": 0, "test": 1}, seed=0).values()) == {"train", "test"}
    with pytest.raises(GoldsetError, match=r"2 queries with a positive \(2 group\(s\) sharing no positive document\) cannot fill 3 splits"):
        split_queries(one_positive_each(2), shares, seed=0)


def test_queries_sharing_a_positive_stay_in_one_split():
    qrels = one_positive_each(40) | {"a": {"d1": 1}, "b": {"d1": 0, "x": 2}, "c": {"x": 1, "d7": 1}}  # a-q1, b-c-q7 by positives
    for seed in range(10):
        split = split_queries(qrels, {"train": 0.5, "dev": 0.25, "test": 0.25}, seed=seed)
        assert split["a"] == split["q1"] and split["b"] == split["c"] == split["q7"]
        assert len(set(split.values())) == 3


def test_written_goldset_validates_and_keeps_each_query_in_one_split(tmp_path):
    corpus = {d: Document(title, text) for d, (title, text) in TINY_DOCS.items()}
    corpus |= {f"e{i}": Document("", f"extra document {i}") for i in range(20)}
    queries = {f"q{i}": f"question {i}" for i in range(20)}
    qrels = {q: {f"e{i}": 2, f"d{i % 6 + 1}": 0} for i, q in enumerate(queries)}
    assignment = write_goldset(tmp_path / "g", corpus, queries, qrels, seed=3, name="bees")
    result = bench("goldset", "validate", tmp_path / "g")
    assert result.exit_code == 0 and "ok: bees: 26 documents, 20 queries; splits: train (14 queries), dev (3 queries), test (3 queries); 0 warning(s)" in result.output
    goldset = load_goldset(tmp_path / "g")
    for split in goldset.splits:
        for qid, judged in goldset.qrels[split].items():
            assert assignment[qid] == split and judged == qrels[qid]  # every judgement of a query, in its one split
    assert goldset.manifest.eval_splits == ["test"]
    assert write_goldset(tmp_path / "again", corpus, queries, qrels, seed=3) == assignment


LABELS = """query,document,label
oxalic acid for mites,Oxalic acid treatment kills varroa mites in broodless colonies.,2
oxalic acid for mites,Colonies swarm in spring when the queen leaves.,0
oxalic acid for mites,Oxalic acid treatment kills varroa mites in broodless colonies.,1
when do colonies swarm,Colonies swarm in spring when the queen leaves.,1
when do colonies swarm,Feed thick sugar syrup in autumn.,0.2
no good answer here,Feed thick sugar syrup in autumn.,0
"""


def test_from_labels_graded_csv_negatives_and_counts(tmp_path):
    (tmp_path / "labels.csv").write_text(LABELS)
    result = bench("pairs", "from-labels", tmp_path / "labels.csv", "-o", tmp_path / "pairs.jsonl", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["counts"] == {"rows": 6, "duplicate_rows": 1, "queries": 2, "queries_without_positive": 1, "positives": 3, "negatives": 1, "documents": 3, "unjudged_documents": 0}
    pairs = {(p.query, p.positive[:8]): p for p in read_pair_file(tmp_path / "pairs.jsonl")}
    assert set(pairs) == {("oxalic acid for mites", "Oxalic a"), ("when do colonies swarm", "Colonies"), ("when do colonies swarm", "Feed thi")}  # 0.2 > 0 is a positive
    assert pairs["oxalic acid for mites", "Oxalic a"].negatives == ["Colonies swarm in spring when the queen leaves."]
    result = bench("pairs", "from-labels", tmp_path / "labels.csv", "-o", tmp_path / "strict.jsonl", "--min-label", 1, "--json")
    assert json.loads(result.stdout)["counts"]["positives"] == 2  # 0.2 is now a negative


TOPICS = ["varroa", "swarming", "extractor", "wax moth", "syrup", "grafting", "drones", "pollen", "propolis", "nectar", "brood", "smoker"]


def test_from_labels_by_id_into_a_corpus_writes_a_graded_goldset(tmp_path):
    write_jsonl(tmp_path / "corpus.jsonl", [{"_id": f"d{i}", "title": t.title(), "text": f"All about {t}."} for i, t in enumerate(TOPICS)])
    rows = [{"qid": f"q{i}", "question": t, "doc": f"d{i}", "grade": 1 + i % 2} for i, t in enumerate(TOPICS)]
    write_jsonl(tmp_path / "labels.jsonl", rows + [{"qid": "q0", "question": "varroa", "doc": "d11", "grade": 0}])
    args = ["--query-id-column", "qid", "--query-column", "question", "--doc-id-column", "doc", "--label-column", "grade", "--corpus", tmp_path / "corpus.jsonl"]
    result = bench("pairs", "from-labels", tmp_path / "labels.jsonl", *args, "-o", tmp_path / "p.jsonl", "--goldset-out", tmp_path / "g", "--splits", 0.5, 0.25, 0.25, "--seed", 5)
    assert result.exit_code == 0, result.output
    assert "wrote 6 pairs" in result.output and "(train split only: 6 dev/test queries are held out)" in result.output
    goldset = load_goldset(tmp_path / "g")
    assert {s: len(goldset.qrels[s]) for s in goldset.splits} == {"train": 6, "dev": 3, "test": 3}
    assert goldset.manifest.query_origin == "human"
    assert goldset.queries["q1"] == "swarming" and goldset.corpus["d1"].title == "Swarming"
    split_of = {q: s for s in goldset.splits for q in goldset.qrels[s]}
    assert goldset.qrels[split_of["q0"]]["q0"] == {"d0": 1, "d11": 0} and goldset.qrels[split_of["q1"]]["q1"] == {"d1": 2}
    assert {split_of[p.query_id] for p in read_pair_file(tmp_path / "p.jsonl")} == {"train"}
    assert bench("check-leakage", tmp_path / "p.jsonl", tmp_path / "g").exit_code == 0  # the pair file never sees dev or test


@pytest.mark.parametrize(
    ("row", "extra", "fragment"),
    [
        ({"query": "q", "doc_id": "d1"}, [], "labels.jsonl:1: documents are given by id ('doc_id'); pass the corpus with --corpus"),
        ({"query": "q", "document": "text", "label": "high"}, [], "labels.jsonl:1: label 'high' is not a number"),
        ({"question": "q", "document": "text"}, [], "labels.jsonl:1: no query in column 'query'"),
        ({"query": "q", "label": 1}, [], "labels.jsonl:1: no document"),
    ],
)
def test_from_labels_bad_rows_are_one_line_errors(tmp_path, row, extra, fragment):
    write_jsonl(tmp_path / "labels.jsonl", [row])
    result = bench("pairs", "from-labels", tmp_path / "labels.jsonl", "-o", tmp_path / "p.jsonl", *extra)
    assert result.exit_code == 2 and fragment in result.output


def session(query, shown, clicks):
    return {"query": query, "results": shown, "clicks": [{"doc_id": d, "dwell": s} for d, s in clicks]}


def doc(doc_id):
    return {"doc_id": doc_id, "title": TINY_DOCS[doc_id][0], "text": TINY_DOCS[doc_id][1]}


LOG = [
    session("varroa treatment", [doc("d2"), doc("d3"), doc("d1")], [("d1", 45)]),  # d2, d3 skipped above d1
    session("Varroa treatment!", [doc("d3"), doc("d1")], [("d3", 5), ("d1", 60)]),  # same query; short click on d3 is no negative
    session("honey extractor", [doc("d4"), doc("d3")], [("d3", 12)]),  # only a short click: no positive
    session("wax moth", [doc("d4"), doc("d5")], [("d4", 90), ("d6", 30)]),  # d6 was never shown
    session("varroa treatment", [doc("d2"), doc("d1")], [("d2", 40)]),  # d2 is a positive after all
]


def test_from_clicks_dwell_skip_above_and_pooled_queries(tmp_path):
    write_jsonl(tmp_path / "log.jsonl", LOG)
    result = bench("pairs", "from-clicks", tmp_path / "log.jsonl", "-o", tmp_path / "p.jsonl", "--json")
    assert result.exit_code == 0, result.output
    counts = json.loads(result.stdout)["counts"]
    assert counts == {
        "sessions": 5, "clicks": 7, "short_dwell_clicks": 2, "clicks_not_shown": 1, "skipped_above": 2, "judgements_without_text": 0,
        "queries": 2, "queries_without_positive": 1, "positives": 3, "negatives": 1, "documents": 5, "unjudged_documents": 1,
    }  # fmt: skip
    # d5 was shown and never judged: it stays in the corpus as a distractor
    pairs = {(p.query, p.positive_id): p for p in read_pair_file(tmp_path / "p.jsonl")}
    assert set(pairs) == {("varroa treatment", "d1"), ("varroa treatment", "d2"), ("wax moth", "d4")}
    assert pairs["varroa treatment", "d1"].negatives == [TINY_DOCS["d3"][0] + " " + TINY_DOCS["d3"][1]]  # d2 turned positive, so only d3
    result = bench("pairs", "from-clicks", tmp_path / "log.jsonl", "-o", tmp_path / "p.jsonl", "--no-skip-above", "--min-dwell", 10, "--json")
    counts = json.loads(result.stdout)["counts"]
    assert (counts["negatives"], counts["short_dwell_clicks"], counts["positives"]) == (0, 1, 4)  # d3 clicked 12 s now counts


def test_from_clicks_needs_texts_from_results_or_a_corpus(tmp_path):
    write_jsonl(tmp_path / "log.jsonl", [session("varroa", ["d2", "d1"], [("d1", 40)]), session("swarm", ["d2"], [("d2", 40)])])
    result = bench("pairs", "from-clicks", tmp_path / "log.jsonl", "-o", tmp_path / "p.jsonl")
    assert result.exit_code == 2 and "no pairs: nothing was kept" in result.output and "judgements without text 3" in result.output
    write_jsonl(tmp_path / "corpus.jsonl", [{"_id": d, "title": t, "text": x} for d, (t, x) in TINY_DOCS.items()])
    result = bench("pairs", "from-clicks", tmp_path / "log.jsonl", "--corpus", tmp_path / "corpus.jsonl", "-o", tmp_path / "p.jsonl")
    assert result.exit_code == 0 and "wrote 2 pairs" in result.output
    write_jsonl(tmp_path / "bad.jsonl", [{"query": "x", "results": ["d1"], "clicks": [{"doc_id": "d1"}]}])
    result = bench("pairs", "from-clicks", tmp_path / "bad.jsonl", "-o", tmp_path / "p.jsonl")
    assert result.exit_code == 2 and "bad.jsonl:1: each click needs \"doc_id\" and \"dwell\"" in result.output


@pytest.fixture
def builders(tmp_path) -> dict[str, list]:
    """Arguments of each builder with --goldset-out, on inputs that make 12 queries."""
    write_jsonl(tmp_path / "labels.jsonl", [{"query": t, "document": f"All about {t}."} for t in TOPICS])
    write_jsonl(tmp_path / "log.jsonl", [session(t, [{"doc_id": f"d{i}", "text": f"All about {t}."}], [(f"d{i}", 40)]) for i, t in enumerate(TOPICS)])
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "guide.md").write_text("".join(f"## {t} care\n\nAll about {t} in the apiary.\n\n" for t in TOPICS))
    write_jsonl(tmp_path / "corpus.jsonl", [{"_id": f"d{i}", "title": t, "text": f"All about {t}."} for i, t in enumerate(TOPICS)])
    return {
        "from-labels": ["from-labels", tmp_path / "labels.jsonl"],
        "from-clicks": ["from-clicks", tmp_path / "log.jsonl"],
        "from-structure": ["from-structure", tmp_path / "docs"],
        "synthetic": ["synthetic", tmp_path / "corpus.jsonl", "--generator", "openai", "--base-url", "http://127.0.0.1:9/v1"],  # refused before any call
    }


@pytest.mark.parametrize("builder", ["from-labels", "from-clicks", "from-structure", "synthetic"])
def test_goldset_out_refuses_a_folder_that_is_not_empty(tmp_path, builders, builder):
    """A re-run used to rewrite a goldset that had records (a first user's test split went from 13 to
    7 queries); every builder refuses before it builds anything."""
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "corpus.jsonl").write_text("")
    result = bench("pairs", *builders[builder], "-o", tmp_path / "p.jsonl", "--goldset-out", tmp_path / "g")
    assert_one_line_error(result, f"--goldset-out '{tmp_path / 'g'}' already holds a goldset; pass --force")
    assert not (tmp_path / "p.jsonl").exists()


def test_force_replaces_the_goldset_and_its_old_splits(tmp_path, builders):
    out = ["-o", tmp_path / "p.jsonl", "--goldset-out", tmp_path / "g"]
    assert bench("pairs", *builders["from-labels"], *out).exit_code == 0
    assert sorted(p.name for p in (tmp_path / "g" / "qrels").iterdir()) == ["dev.tsv", "test.tsv", "train.tsv"]
    result = bench("pairs", *builders["from-labels"], *out, "--splits", 0.5, 0.5, 0, "--force")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "g" / "qrels").iterdir()) == ["dev.tsv", "train.tsv"]  # no stale test split
    assert load_goldset(tmp_path / "g").splits == ["train", "dev"]


@pytest.mark.parametrize(
    ("splits", "goldset", "fragment"),
    [
        ((0.5, 0.2, 0.2), True, "--splits 0.5 0.2 0.2 sum to 0.9, not 1; give the train, dev and test shares as fractions of 1"),
        ((5, 2, 3), True, "--splits 5 2 3 sum to 10, not 1"),
        ((-0.2, 1, 0.2), True, "--splits -0.2 1 0.2: a share cannot be negative"),
        ((0, 0, 0), True, "--splits 0 0 0 sum to 0, not 1"),
        ((0.8, 0.1, 0.1), False, "--splits 0.8 0.1 0.1 only applies to a goldset: add --goldset-out DIR"),
    ],
)
def test_splits_are_checked(tmp_path, builders, splits, goldset, fragment):
    out = ["-o", tmp_path / "p.jsonl", "--splits", *splits] + (["--goldset-out", tmp_path / "g"] if goldset else [])
    assert_one_line_error(bench("pairs", *builders["from-labels"], *out), fragment)
