"""Loading and validating goldsets: every problem a goldset author can make, with file and line."""

from __future__ import annotations

import json
import re

import pytest

from conftest import write_goldset
from harness.data.goldset import load_goldset, scan_goldset
from harness.data.resolve import resolve_goldset
from harness.errors import GoldsetError


def issues(folder):
    _, diag = scan_goldset(folder)
    return [(i.severity, i.file.split("/")[-1], i.line, i.message) for i in diag.issues]


def test_loads_tiny_goldset(tiny_goldset):
    gs = load_goldset(tiny_goldset)
    assert gs.name == "tiny"
    assert len(gs.corpus) == 6 and len(gs.queries) == 6
    assert gs.splits == ["test", "train"]
    assert gs.qrels["test"]["q3"] == {"d3": 2, "d4": 0}
    assert gs.document_text(gs.corpus["d1"]).startswith("Varroa mites Oxalic acid")
    assert list(gs.split_queries("test")) == ["q1", "q2", "q3", "q4"]


def test_manifest_controls_title_join_and_identical_ids(tmp_path):
    folder = write_goldset(tmp_path / "g", manifest='name = "bees"\ninclude_title = false\nignore_identical_ids = true\n')
    gs = load_goldset(folder)
    assert gs.name == "bees"
    assert gs.document_text(gs.corpus["d1"]).startswith("Oxalic")
    assert gs.manifest.ignore_identical_ids


def test_manifest_unknown_key_is_one_clear_error(tmp_path):
    folder = write_goldset(tmp_path / "g", manifest='nmae = "x"\n')
    with pytest.raises(GoldsetError, match=r"goldset.toml: unknown key 'nmae'. Did you mean 'name'\?.*valid keys here: name"):
        load_goldset(folder)


def test_malformed_json_reports_file_and_line(tiny_goldset):
    with open(tiny_goldset / "corpus.jsonl", "a") as f:
        f.write('{"_id": "d7", "text": "unterminated\n')
    found = issues(tiny_goldset)
    assert ("error", "corpus.jsonl", 7) == found[0][:3]
    assert "malformed JSON" in found[0][3]
    with pytest.raises(GoldsetError, match=r"corpus.jsonl:7: malformed JSON"):
        load_goldset(tiny_goldset)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"title": "t", "text": "no id"}', 'missing or invalid "_id"'),
        ('{"_id": "d1", "title": "t", "text": "again"}', "duplicate document id 'd1' (first on line 1)"),
        ('["not", "an", "object"]', "not a JSON object"),
        ('{"_id": "d9", "title": 3, "text": "x"}', 'field "title" of document \'d9\' must be a string'),
    ],
)
def test_corpus_line_errors(tiny_goldset, line, message):
    with open(tiny_goldset / "corpus.jsonl", "a") as f:
        f.write(line + "\n")
    found = [i for i in issues(tiny_goldset) if i[0] == "error"]
    assert found[0][1:3] == ("corpus.jsonl", 7)
    assert message in found[0][3]


def test_empty_document_is_a_warning_empty_query_an_error(tiny_goldset):
    with open(tiny_goldset / "corpus.jsonl", "a") as f:
        f.write('{"_id": "d7", "title": "", "text": "  "}\n')
    with open(tiny_goldset / "queries.jsonl", "a") as f:
        f.write('{"_id": "q7", "text": ""}\n')
    found = issues(tiny_goldset)
    assert ("warning", "corpus.jsonl", 7) in [i[:3] for i in found]
    assert ("error", "queries.jsonl", 7) in [i[:3] for i in found]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("q1\td1\thigh", "relevance grade 'high' is not an integer"),
        ("q1\td1\t1.5", "relevance grade '1.5' is not an integer"),
        ("q99\td1\t1", "query id 'q99' is not in queries.jsonl"),
        ("q1\td99\t1", "document id 'd99' is not in corpus.jsonl"),
        ("q1\td1", "expected 3 tab-separated columns"),
        ("q1\td1\t0", "judged twice with different grades"),
    ],
)
def test_qrels_errors_name_the_line(tiny_goldset, row, message):
    path = tiny_goldset / "qrels" / "test.tsv"
    path.write_text(path.read_text() + row + "\n")
    errors = [i for i in issues(tiny_goldset) if i[0] == "error"]
    assert len(errors) == 1
    assert errors[0][1:3] == ("test.tsv", 7)
    assert message in errors[0][3]


def test_split_without_positive_judgement_is_an_error(tmp_path):
    folder = write_goldset(tmp_path / "g", qrels={"test": {"q1": {"d1": 1}}, "dev": {"q2": {"d2": 0}}})
    errors = [i for i in issues(folder) if i[0] == "error"]
    assert errors == [("error", "dev.tsv", None, "split 'dev' has no query with a positive judgement; it cannot be scored")]


def test_unjudged_queries_are_reported_not_fatal(tmp_path):
    folder = write_goldset(tmp_path / "g", qrels={"test": {"q1": {"d1": 1}}})
    found = issues(folder)
    assert [i[0] for i in found] == ["warning"]
    assert "5 queries have no judgement" in found[0][3]
    assert load_goldset(folder).split_queries("test") == {"q1": "oxalic acid varroa mites"}


def test_query_in_two_splits_is_flagged(tmp_path):
    folder = write_goldset(tmp_path / "g", qrels={"test": {"q1": {"d1": 1}}, "train": {"q1": {"d1": 1}, "q2": {"d2": 1}}})
    assert any("judged in both" in i[3] for i in issues(folder))


def test_crlf_and_bom_are_warnings_and_read_correctly(tiny_goldset):
    corpus = tiny_goldset / "corpus.jsonl"
    corpus.write_bytes(b"\xef\xbb\xbf" + corpus.read_bytes().replace(b"\n", b"\r\n"))
    found = issues(tiny_goldset)
    assert {i[3].split(";")[0] for i in found} == {
        "file starts with a UTF-8 byte-order mark (BOM)",
        "Windows (CRLF) line endings",
    }
    assert all(i[0] == "warning" for i in found)
    lf = load_goldset(write_goldset(tiny_goldset.parent / "lf"))
    assert load_goldset(tiny_goldset).split_fingerprint("test") == lf.split_fingerprint("test")


def test_non_utf8_bytes_are_an_error_on_their_line(tiny_goldset):
    queries = tiny_goldset / "queries.jsonl"
    queries.write_bytes(queries.read_bytes() + b'{"_id": "q7", "text": "caf\xe9"}\n')
    errors = [i for i in issues(tiny_goldset) if i[0] == "error"]
    assert errors[0][1:3] == ("queries.jsonl", 7)
    assert "not UTF-8 at column 27" in errors[0][3]


def test_missing_files_and_splits(tmp_path, tiny_goldset):
    (tiny_goldset / "queries.jsonl").unlink()
    with pytest.raises(GoldsetError, match="queries.jsonl: file is missing"):
        load_goldset(tiny_goldset)
    with pytest.raises(GoldsetError, match="does not exist"):
        load_goldset(tmp_path / "nowhere")
    gs = load_goldset(write_goldset(tmp_path / "ok"))
    with pytest.raises(GoldsetError, match=r"no split 'dev' \(it has: test, train\)"):
        gs.split_qrels("dev")


def test_manifest_split_without_file(tmp_path):
    folder = write_goldset(tmp_path / "g", manifest='splits = ["test", "dev"]\n')
    with pytest.raises(GoldsetError, match="split 'dev' is listed in goldset.toml but its qrels file is missing"):
        load_goldset(folder)


def test_fingerprint_tracks_content(tmp_path):
    a = load_goldset(write_goldset(tmp_path / "a"))
    b = load_goldset(write_goldset(tmp_path / "b"))
    assert a.fingerprint == b.fingerprint
    docs = {**__import__("conftest").TINY_DOCS, "d6": ("Queen rearing", "Changed text.")}
    c = load_goldset(write_goldset(tmp_path / "c", docs=docs))
    assert c.fingerprint != a.fingerprint
    qrels = {"test": {"q1": {"d1": 1}, "q2": {"d2": 2}, "q3": {"d3": 2, "d4": 0}, "q4": {"d4": 1}}, "train": {"q5": {"d5": 1}}}
    d = load_goldset(write_goldset(tmp_path / "d", qrels=qrels))
    assert d.split_fingerprint("test") != a.split_fingerprint("test")  # a grade changed
    assert d.corpus_fingerprint == a.corpus_fingerprint


def test_resolve_bundled_name_and_suggestions(tmp_path, monkeypatch):
    assert resolve_goldset("demo").name == "demo"
    with pytest.raises(GoldsetError, match="Did you mean 'demo'"):
        resolve_goldset("dmeo")


def test_bundled_demo_goldsets_meet_the_brief():
    demo = resolve_goldset("demo")
    assert len(demo.corpus) >= 300
    sizes = {s: len(demo.split_queries(s)) for s in demo.splits}
    assert sizes["train"] >= 300 and sizes["dev"] >= 50 and sizes["test"] >= 100
    split_of = [q for s in demo.splits for q in demo.qrels[s]]
    assert len(split_of) == len(set(split_of)), "a query is in two splits"
    assert len({t.lower() for t in demo.queries.values()}) == len(demo.queries), "duplicate query text"
    assert not demo.warnings
    ood = [resolve_goldset(s) for s in demo.ood_sources()]
    assert [g.name for g in ood] == ["demo-ood"]
    assert len(ood[0].corpus) >= 100 and len(ood[0].split_queries("test")) >= 40
    assert not set(ood[0].corpus) & set(demo.corpus)


def test_demo_documents_are_long_and_queries_short():
    demo = resolve_goldset("demo")
    doc_words = [len(demo.document_text(d).split()) for d in demo.corpus.values()]
    query_words = [len(q.split()) for q in demo.queries.values()]
    assert min(doc_words) >= 150 and sum(doc_words) / len(doc_words) > 250
    assert max(query_words) <= 16 and sum(query_words) / len(query_words) < 12
    first_sentences = {json.dumps(d.text.split(".")[0]) for d in demo.corpus.values()}
    assert len(first_sentences) == len(demo.corpus), "templated text: documents share an opening"


@pytest.mark.parametrize("manifest", [None, 'domain = "beekeeping [hives]"'])
def test_stats_header_is_one_line_with_nothing_dangling(tmp_path, manifest):
    """A header past 80 columns was hard-wrapped by rich, leaving "... queries (0 unjudged), " and the
    fingerprint on a line of its own."""
    from click.testing import CliRunner

    from harness.cli import main

    folder = write_goldset(tmp_path / "a-goldset-with-a-rather-long-name-for-its-folder", manifest=manifest)
    lines = CliRunner().invoke(main, ["goldset", "stats", str(folder)]).stdout.splitlines()
    domain = " (beekeeping [hives])" if manifest else ""
    assert re.fullmatch(rf"{re.escape(folder.name + domain)}: 6 documents \(mean [\d.]+ words\), 6 queries \(0 unjudged\), fingerprint [0-9a-f]{{16}}", lines[0])
