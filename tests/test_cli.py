"""The ``bench`` CLI: tables, JSON, and one-line errors with exit code 2 for everything a user can get wrong."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from conftest import write_ladder
from harness.cli import main
from harness.records import Leaderboard


def bench(*args, **kw):
    result = CliRunner().invoke(main, list(args), **kw)
    return result


def assert_one_line_error(result, *fragments, code=2):
    assert result.exit_code == code, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.fixture
def bow_ladder(monkeypatch, bow_backend, tmp_path, tiny_goldset):
    """Work in a folder whose ./ladder.toml is the bag-of-words encoder plus BM25 (no model, no torch)."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return write_ladder(work, tiny_goldset)


def test_run_prints_table_writes_records_and_skips_unchanged(tiny_goldset, tmp_path, bow_ladder):
    result = bench("run", "-g", str(tiny_goldset))
    assert result.exit_code == 0, result.output
    assert "baseline" in result.output and "bm25" in result.output and "new" in result.output
    assert len(list((tmp_path / "leaderboard/records/tiny/test").glob("*.json"))) == 2
    again = bench("run", "-g", str(tiny_goldset), "--json")
    rows = json.loads(again.stdout)
    assert [(r["rung"], r["action"]) for r in rows] == [("baseline", "unchanged"), ("bm25", "unchanged")]
    assert rows[0]["metrics"]["recall@1"] == 1.0
    board = bench("leaderboard", "--json")
    assert [r["rung"] for r in json.loads(board.stdout)] == ["baseline", "bm25"]
    assert "nDCG@10" in bench("leaderboard").output


def test_run_selects_rungs_and_splits(tiny_goldset, bow_ladder):
    rows = json.loads(bench("run", "-g", str(tiny_goldset), "-r", "bm25", "-s", "train", "-s", "test", "--json").stdout)
    assert [(r["rung"], r["split"]) for r in rows] == [("bm25", "train"), ("bm25", "test")]


def test_ctrl_c_keeps_finished_records_and_embeddings(tiny_goldset, tmp_path, monkeypatch, bow_ladder):
    from bow_encoder import BagOfWordsEncoder

    made = []

    def crashing(model, **kw):
        made.append(BagOfWordsEncoder(fail_after=1))  # documents encode, then Ctrl-C on the queries
        return made[-1]

    real_load = __import__("harness.registry", fromlist=["load"]).load
    text = bow_ladder.read_text()  # bm25 first, so it finishes before the dense rung is interrupted
    dense, bm25 = text.index("[[rungs]]"), text.rindex("[[rungs]]")
    bow_ladder.write_text(text[:dense] + text[bm25:] + "\n" + text[dense:bm25])
    with monkeypatch.context() as patch:
        patch.setattr("harness.registry.load", lambda kind, name: crashing if kind == "encoder" else real_load(kind, name))
        result = bench("run", "-g", str(tiny_goldset))
    assert result.exit_code == 130
    assert "interrupted: finished records and cached embeddings are kept" in result.output
    assert [p.name.split(".")[0] for p in (tmp_path / "leaderboard/records/tiny/test").glob("*.json")] == ["bm25"]
    rows = {r["rung"]: r["action"] for r in json.loads(bench("run", "-g", str(tiny_goldset), "--json").stdout)}
    assert rows == {"bm25": "unchanged", "baseline": "ran"}
    dense = next(r for r in Leaderboard(tmp_path / "leaderboard").latest() if r.rung.name == "baseline")
    assert (dense.counts.documents_cached, dense.counts.documents_encoded) == (6, 0)  # kept from the interrupted run


def test_a_failed_rung_still_shows_the_rungs_that_finished(tiny_goldset, tmp_path, bow_ladder, monkeypatch):
    """A rung failing at run time (an API gone for good) is exit 1 with one error line, after the table
    of every rung that finished; their records are written."""
    from harness.errors import ApiError

    class Broken:
        fingerprint = "broken-1"

        def __init__(self, model, **options):
            pass

        def encode(self, texts, *, input_type):
            raise ApiError("Fake API failed: HTTP 500 after 6 retries")

    real_load = __import__("harness.registry", fromlist=["load"]).load
    monkeypatch.setattr("harness.registry.load", lambda kind, name: Broken if kind == "encoder" else real_load(kind, name))
    result = bench("run", "-g", str(tiny_goldset), "--json")
    assert result.exit_code == 1, result.output
    assert [r["rung"] for r in json.loads(result.stdout)] == ["bm25"]
    assert "rung 'baseline' failed: Fake API failed" in result.stderr
    table = bench("run", "-g", str(tiny_goldset))
    assert "bm25" in table.stdout and "unchanged" in table.stdout and table.exit_code == 1


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["run", "-g", "no-such-goldset"], ["goldset 'no-such-goldset' is not a folder"]),
        (["run", "-g", "demo", "-r", "bm52", "--no-ood"], ["unknown rung 'bm52'", "Did you mean 'bm25'"]),
        (["run", "-g", "demo", "-s", "validation"], ["no split 'validation'", "it has: dev, test, train"]),
        (["run", "-g", "demo", "-m", "./models/nope"], ["model folder './models/nope' does not exist"]),
        (["run", "-g", "demo", "-m", "org-that-is-not-cached/model-x"], ["rung 'dense:model-x' cannot run here", "model 'org-that-is-not-cached/model-x'"]),
        (["run", "-l", "no-such-ladder.toml"], ["ladder file 'no-such-ladder.toml' not found", "bundled: demo"]),
        (["validate", "no-such-ladder.toml"], ["ladder file 'no-such-ladder.toml' not found", "bundled: demo"]),
        (["leaderboard"], ["no records in"]),
        (["goldset", "stats", "mteb:SciFakt"], ["is not an MTEB task", "Did you mean 'SciFact'"]),
    ],
)
def test_user_errors_are_one_line_exit_2(args, fragments):
    assert_one_line_error(bench(*args), *fragments)


def test_unwritable_leaderboard_is_one_line(tiny_goldset, tmp_path, bow_ladder):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    result = bench("run", "-g", str(tiny_goldset), "-r", "bm25", "--leaderboard", str(blocker / "lb"))
    assert_one_line_error(result, "cannot write records under", "--leaderboard")


def test_bad_goldset_names_file_and_line(tiny_goldset):
    with open(tiny_goldset / "qrels" / "test.tsv", "a") as f:
        f.write("q1\td1\tx\n")
    assert_one_line_error(bench("run", "-g", str(tiny_goldset)), "test.tsv:7: relevance grade 'x' is not an integer")
    result = bench("goldset", "validate", str(tiny_goldset))
    assert result.exit_code == 2 and "test.tsv:7" in result.output


def test_goldset_validate_and_stats_on_demo():
    result = bench("goldset", "validate", "goldsets/demo")
    assert result.exit_code == 0 and result.output.startswith("ok: demo: 312 documents")
    stats = json.loads(bench("goldset", "stats", "demo", "--json").stdout)
    assert stats["splits"]["train"]["queries"] >= 300 and stats["ood"] == ["../demo-ood"]


def test_debug_shows_the_traceback():
    result = bench("--debug", "run", "-g", "no-such-goldset")
    assert result.exit_code != 0 and isinstance(result.exception, Exception)


def test_help_does_not_import_heavy_modules():
    code = "import sys; from harness.cli import main; print(sorted(m for m in ('torch', 'ranx', 'sentence_transformers', 'pydantic', 'numpy') if m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"


def test_progress_bars_can_be_forced_on(tiny_goldset, bow_ladder):
    result = bench("--progress", "run", "-g", str(tiny_goldset), "--json")
    assert result.exit_code == 0, result.output
    assert [r["action"] for r in json.loads(result.stdout)] == ["ran", "ran"]
