"""Issue 16, a first user with their own documents: every `bench pairs` builder keeps the corpus it was
given (and says how many documents no query judges), a labels column left unread is a warning, and
`from-structure` makes no queries of boilerplate headings and keeps each document's title."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.cli import main
from harness.commands.pairs_cmd import from_labels as from_labels_command
from harness.data.goldset import Document, load_goldset
from harness.pairs.filters import Candidate
from harness.pairs.pairset import LabelColumns, column_flag
from harness.pairs.structure import from_structure, is_boilerplate
from harness.pairs.synthetic import Chunks, SyntheticResult

TOPICS = ["varroa", "swarming", "extractor", "wax moth", "syrup", "grafting", "drones", "pollen", "propolis", "nectar", "brood", "smoker"]
N, K = len(TOPICS), 6  # documents given, documents judged


def bench(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def corpus_file(tmp_path) -> Path:
    return write_jsonl(tmp_path / "corpus.jsonl", [{"_id": f"d{i}", "title": t.title(), "text": f"All about {t} in the apiary."} for i, t in enumerate(TOPICS)])


def assert_whole_corpus(result, goldset_dir: Path) -> None:
    """N documents in, N documents in the goldset; N - K unjudged in the counts, the goldset's
    report, a warning and the manifest's description."""
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert (out["counts"]["documents"], out["counts"]["unjudged_documents"]) == (N, N - K)
    assert (out["goldset"]["documents"], out["goldset"]["unjudged_documents"]) == (N, N - K)
    assert f"note: {N - K} of the {N} documents in {goldset_dir} are judged by no query; they stay as distractors" in result.stderr
    goldset = load_goldset(goldset_dir)
    assert len(goldset.corpus) == N
    assert f"({N} documents, {N - K} judged by no query)" in goldset.manifest.description


def test_from_labels_keeps_the_whole_corpus_and_counts_the_unjudged(tmp_path, corpus_file):
    write_jsonl(tmp_path / "labels.jsonl", [{"query_id": f"q{i}", "query": TOPICS[i], "doc_id": f"d{i}", "label": 1} for i in range(K)])
    out = ["-o", tmp_path / "p.jsonl", "--goldset-out", tmp_path / "g", "--splits", 0.5, 0.25, 0.25]
    assert_whole_corpus(bench("pairs", "from-labels", tmp_path / "labels.jsonl", "--corpus", corpus_file, *out, "--json"), tmp_path / "g")
    plain = bench("pairs", "from-labels", tmp_path / "labels.jsonl", "--corpus", corpus_file, *out, "--force")  # the same goldset folder again
    assert f"; {N} documents, {N - K} judged by no query" in plain.stdout and re.search(rf"unjudged documents +{N - K}\n", plain.stdout)


def test_from_clicks_keeps_the_whole_corpus_and_counts_the_unjudged(tmp_path, corpus_file):
    sessions = [{"query": TOPICS[i], "results": [f"d{i}"], "clicks": [{"doc_id": f"d{i}", "dwell": 60}]} for i in range(K)]
    write_jsonl(tmp_path / "log.jsonl", sessions)
    out = ["-o", tmp_path / "p.jsonl", "--goldset-out", tmp_path / "g", "--splits", 0.5, 0.25, 0.25, "--json"]
    assert_whole_corpus(bench("pairs", "from-clicks", tmp_path / "log.jsonl", "--corpus", corpus_file, *out), tmp_path / "g")


def test_from_structure_keeps_unjudged_sections_in_the_corpus(tmp_path):
    (tmp_path / "docs").mkdir()
    for topic in TOPICS[:K]:  # one judged section each, and one boilerplate section no query judges
        (tmp_path / "docs" / f"{topic}.md").write_text(f"## {topic} basics\n\nAll about {topic} in a working apiary.\n\n## License\n\nMIT licensed, see the {topic} notice file.\n")
    result = bench("pairs", "from-structure", tmp_path / "docs", "-o", tmp_path / "p.jsonl", "--goldset-out", tmp_path / "g", "--splits", 0.5, 0.25, 0.25, "--json")
    assert result.exit_code == 0, result.output
    counts = json.loads(result.stdout)["counts"]
    assert (counts["documents"], counts["unjudged_documents"], counts["boilerplate_headings"]) == (2 * K, K, K)
    goldset = load_goldset(tmp_path / "g")
    assert len(goldset.corpus) == 2 * K and f"({2 * K} documents, {K} judged by no query)" in goldset.manifest.description


def test_synthetic_pair_set_counts_the_unjudged():
    corpus = {f"d{i}": Document("", f"All about {t}.") for i, t in enumerate(TOPICS)}
    chunks = Chunks([d.text for d in corpus.values()], list(corpus))
    kept = [Candidate(f"what about {TOPICS[i]}", "question", (i,), chunks.texts[i]) for i in range(K)]
    report = {"documents": N, "excluded_documents": 0, "chunks": N, "prompts": K, "calls": {"made": K, "cached": 0}, "tokens": {"input": 0, "output": 0}}
    report |= {"cost_usd": 0.0, "generated": K, "dropped": {}, "kept": K}
    built = SyntheticResult(kept, corpus, chunks, report).pair_set()
    assert len(built.corpus) == N and built.unjudged == N - K and built.counts["unjudged_documents"] == N - K


LABELS_WITH_GRADES = "query,document,grade\noxalic acid for mites,Oxalic acid kills varroa mites.,3\noxalic acid for mites,Colonies swarm in spring.,0\n"


def test_an_unread_grade_column_is_a_warning_naming_the_flag(tmp_path):
    (tmp_path / "labels.csv").write_text(LABELS_WITH_GRADES)
    forgot = bench("pairs", "from-labels", tmp_path / "labels.csv", "-o", tmp_path / "p.jsonl")
    assert forgot.exit_code == 0 and "wrote 2 pairs" in forgot.stdout  # every grade read as 1: the 0 became a positive
    assert "warning: labels.csv: column 'grade' is not used, and with no 'label' column every row counts as a positive (grade 1)" in forgot.stderr
    assert "pass --label-column grade" in forgot.stderr
    fixed = bench("pairs", "from-labels", tmp_path / "labels.csv", "--label-column", "grade", "-o", tmp_path / "p.jsonl")
    assert fixed.exit_code == 0 and "wrote 1 pairs" in fixed.stdout and "warning" not in fixed.stderr


def test_any_unread_column_is_a_warning(tmp_path):
    (tmp_path / "labels.csv").write_text("query,document,label,relevance,qid,annotator\nq,d,1,2,7,ann\n")
    result = bench("pairs", "from-labels", tmp_path / "labels.csv", "-o", tmp_path / "p.jsonl", "--json")
    assert result.exit_code == 0, result.output
    warnings = json.loads(result.stdout)["warnings"]
    assert warnings == [
        "labels.csv: column 'relevance' is not used (graded labels come from 'label'); if it holds graded labels, pass --label-column relevance",
        "labels.csv: column 'qid' is not used (query ids come from 'query_id'); if it holds query ids, pass --query-id-column qid",
        "labels.csv: column 'annotator' is not used (the columns read are --query-column 'query', --query-id-column 'query_id', "
        "--document-column 'document', --doc-id-column 'doc_id', --label-column 'label')",
    ]


def test_every_label_column_names_a_real_option():
    options = {opt for p in from_labels_command.params for opt in p.opts}
    assert {column_flag(f) for f in LabelColumns.model_fields} <= options


@pytest.mark.parametrize(
    "heading",
    ["Credits", "CHANGELOG", "Download", "License", "Installation", "Table of Contents", "Contributing", "2.1 License", "v1.2.0", "2024-05-01", "Overview", "FAQ", "Go", "README"],
)
def test_boilerplate_and_generic_headings(heading):
    assert is_boilerplate(heading)


@pytest.mark.parametrize("heading", ["Varroa mites", "Installing a queen excluder", "Propolis", "Licensing honey sales in the EU", "1. Feeding in autumn"])
def test_content_headings_are_kept(heading):
    assert not is_boilerplate(heading)


def test_from_structure_skips_boilerplate_headings_and_titles_every_chunk(tmp_path):
    (tmp_path / "guide.md").write_text(
        "# Winter beekeeping\n\nHow to bring a colony through the cold months.\n\n## Table of contents\n\n- varroa\n- feeding and more\n\n"
        "## Varroa treatment\n\nOxalic acid kills varroa mites in broodless colonies.\n\n## Credits\n\nWritten by the apiary club members in 2024.\n\n"
        "## Changelog\n\nFirst version of this guide for members.\n\n### 1.2.0\n\nAdded the feeding section with syrup ratios.\n\n"
        "## Installation\n\nCopy the guide to your phone for the apiary.\n"
    )
    (tmp_path / "feeding.md").write_text("Feed thick sugar syrup in autumn so the colony stores enough food.\n")
    built = from_structure([tmp_path], min_words=4)
    assert sorted(built.queries.values()) == ["Varroa treatment", "Winter beekeeping", "feeding"]
    assert built.counts["boilerplate_headings"] == 5  # Table of contents, Credits, Changelog, 1.2.0, Installation
    name = tmp_path.name
    assert {d: doc.title for d, doc in built.corpus.items()} == {
        f"{name}/guide.md": "Winter beekeeping",
        f"{name}/guide.md#table-of-contents": "Winter beekeeping",
        f"{name}/guide.md#varroa-treatment": "Winter beekeeping",
        f"{name}/guide.md#credits": "Winter beekeeping",
        f"{name}/guide.md#changelog": "Winter beekeeping",
        f"{name}/guide.md#1-2-0": "Winter beekeeping",
        f"{name}/guide.md#installation": "Winter beekeeping",
        f"{name}/feeding.md": "feeding",  # no heading: the file's name
    }
    assert built.counts["unjudged_documents"] == 5  # the boilerplate sections stay, unjudged
