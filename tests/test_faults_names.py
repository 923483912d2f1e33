"""Hostile names (goldsets, splits, rungs, training jobs): nothing is written outside the folders the
user named, no two names share a file, and every view shows a name as text."""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import write_goldset, write_ladder
from harness.cli import main
from harness.data.goldset import load_goldset
from harness.decide.views import markdown_line, markdown_text
from harness.errors import GoldsetError
from harness.records import Leaderboard, is_plain_name, safe_name
from record_factory import scored_record

CAFE = "caf\u00e9"
HOSTILE = [
    "..", ".", "", "../x", "../../x", "/abs", "/", "a/b", "a\\b", "a_b", "a+b", "a b", "a:b", "$x$", "$\\frac$", "<script>alert(1)</script>",
    "Base", "base", "BASE", "x" * 300, "y" * 64, "y" * 65, "line\nbreak", "nul\x00byte", "tab\t", " space", "-rf", ".hidden",
    unicodedata.normalize("NFC", CAFE), unicodedata.normalize("NFD", CAFE), "\u202egnp.exe", "[/x]", "a|b", "`code`", "~1", "con",
]


def test_safe_names_stay_inside_their_folder_and_never_collide():
    mapped = {name: safe_name(name) for name in HOSTILE}
    for name, safe in mapped.items():
        assert re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9._+~-]*", safe), (name, safe)  # no separator, no leading dot or dash
        assert len(safe) <= 64 and Path(safe).name == safe
    assert len({s.casefold() for s in mapped.values()}) == len(HOSTILE)  # apart even where the file system folds case
    assert [safe_name(n) for n in ("baseline", "hybrid+cohere", "bge-base", "r0.v2", "test")] == ["baseline", "hybrid+cohere", "bge-base", "r0.v2", "test"]
    assert safe_name("a/b").startswith("a_b~") and safe_name("../x") != safe_name("_x")


def test_records_of_hostile_names_stay_under_the_records_folder(tmp_path):
    board = Leaderboard(tmp_path / "lb" / "inner")
    golden = scored_record({"q1": 1.0})
    names = ["..", "../x", "/abs", "a/b", "$x$", "<script>", "Base", "base", "a_b", "line\nbreak", "x" * 300]
    for i, name in enumerate(names):
        rec = golden.model_copy(update={"key": f"k{i}", "goldset": golden.goldset.model_copy(update={"name": name, "split": name}), "rung": golden.rung.model_copy(update={"name": name})})
        board.write(rec, {"q1": {"d1": 1.0}})
        assert board.find(name, name, name, f"k{i}") is not None
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(written) == 2 * len(names) and all(p.is_relative_to(board.records_dir) for p in written)
    assert len({p.parent.parent.name.casefold() for p in written}) == len(names)  # one goldset folder per name
    latest = board.latest()
    assert sorted(r.rung.name for r in latest) == sorted(names)
    assert all(board.load_run(r) == {"q1": {"d1": 1.0}} for r in latest)


def test_a_run_file_that_points_elsewhere_is_refused(tmp_path):
    board = Leaderboard(tmp_path / "lb")
    record = board.write(scored_record({"q1": 1.0}), {"q1": {"d1": 1.0}}).model_copy(update={"run_file": "../../secret.run.json.gz"})
    with pytest.raises(Exception, match="not a file name beside the record"):
        board.load_run(record)


@pytest.mark.parametrize("split", ["../../x", "/etc/passwd", "a/b", "..", "", "x" * 65])
def test_manifest_splits_must_be_plain_names(tmp_path, split):
    (tmp_path / "x.tsv").write_text("query-id\tcorpus-id\tscore\nSECRET\td1\t1\n")
    folder = write_goldset(tmp_path / "g" / "h", manifest=f"splits = [{json.dumps(split)}]\n")
    with pytest.raises(GoldsetError, match=r"goldset.toml: key 'splits'.*not a plain name") as caught:
        load_goldset(folder)
    assert "SECRET" not in str(caught.value) and "\n" not in str(caught.value)
    result = CliRunner().invoke(main, ["goldset", "validate", str(folder)])
    assert result.exit_code == 2 and "key 'splits'" in result.output and "SECRET" not in result.output


def test_plain_names():
    assert all(map(is_plain_name, ["test", "dev", "Train", "fold-1", "v1.2_b"]))
    assert not any(map(is_plain_name, ["", ".", "..", "../x", ".hidden", "a b", "a/b", "x" * 65, CAFE]))


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def test_a_goldset_named_dotdot_with_a_dotdot_split_writes_only_into_the_leaderboard(tmp_path, bow_backend):
    goldset = write_goldset(tmp_path / "data" / "g", manifest='name = ".."\n')
    (goldset / "qrels" / "test.tsv").rename(goldset / "qrels" / "...tsv")  # the split '..'
    ladder = write_ladder(tmp_path / "data", goldset)
    before = _files(tmp_path)
    result = CliRunner().invoke(main, ["run", "-l", str(ladder), "-s", "..", "--leaderboard", str(tmp_path / "out" / "lb"), "--cache-dir", str(tmp_path / "cache"), "--json"])
    assert result.exit_code == 0, result.output
    new = _files(tmp_path) - before
    records = [p for p in new if p.suffix == ".json"]
    assert len(records) == 2 and all(p.is_relative_to(tmp_path / "out" / "lb" / "records") for p in records)
    assert all(p.is_relative_to(tmp_path / "out" / "lb") or p.is_relative_to(tmp_path / "cache") for p in new)


@pytest.mark.parametrize("name", ["../../escaped", "/abs/job", "a/b", "..", "$x$"])
def test_training_job_names_make_model_folders_inside_models(tmp_path, tiny_goldset, name):
    from harness.training.job import plan_job
    from harness.training.schema import TrainConfig

    job = plan_job(TrainConfig(name=name, base_model="unused", goldset=str(tiny_goldset), eval_split=None), models_root=tmp_path / "models")
    assert job.folder.parent == tmp_path / "models" and job.folder.name.endswith(f"-{job.fingerprint}")


def test_training_job_names_that_differ_get_different_folders(tmp_path, tiny_goldset):
    from harness.training.job import plan_job
    from harness.training.schema import TrainConfig

    folders = {plan_job(TrainConfig(name=n, base_model="unused", goldset=str(tiny_goldset), eval_split=None), models_root=tmp_path).folder.name.casefold()
               for n in ("ft", "FT", "f/t", "f_t", "f:t")}
    assert len(folders) == 5


ADAPTER_RUNG = """
[[rungs]]
name = "../../escaped"
kind = "adapter"
encoder = {{ backend = "bow", model = "bow" }}
adapter = {{ lr = 1e-2, batch_size = 8, epochs = 2 }}
"""


def test_an_adapter_rung_named_dotdot_fits_inside_models(tmp_path, bow_backend, monkeypatch):
    from harness import registry
    from harness.cache import Cache
    from harness.ladder.plan import run_ladder
    from harness.ladder.schema import load_ladder

    monkeypatch.setitem(registry.BUILTIN["encoder"], "adapter", "backends.adapter:AdapterEncoder")
    goldset = write_goldset(tmp_path / "work" / "g")
    path = write_ladder(tmp_path / "work", goldset, ADAPTER_RUNG.format())
    outcomes = run_ladder(load_ladder(path), leaderboard=Leaderboard(tmp_path / "work" / "lb"), cache=Cache(tmp_path / "cache"))
    adapted = next(o.record for o in outcomes if o.record.rung.name == "../../escaped")
    assert adapted.status == "ok" and Path(adapted.details["adapter"]).parent == (tmp_path / "work" / "models").resolve()
    assert not (tmp_path / "escaped").exists() and not any(p.name.startswith("escaped") for p in tmp_path.parent.iterdir())


# ---- views ------------------------------------------------------------------------------------

HOSTILE_LADDER = """
name = "hostile"
goldsets = ["{goldset}"]
latency_queries = 2

[[rungs]]
name = '$\\frac$ <script>alert(1)</script>'
kind = "dense"
encoder = {{ backend = "bow", model = "bow" }}

[[rungs]]
name = '[/x] *bold* | `tick` _u_ #h'
kind = "bm25"

[[rungs]]
name = "- two\\nlines & more"
kind = "hybrid"
inputs = ['$\\frac$ <script>alert(1)</script>', '[/x] *bold* | `tick` _u_ #h']
"""


@pytest.fixture
def hostile_leaderboard(tmp_path, bow_backend):
    write_goldset(tmp_path / "ood", manifest='name = "$o$ <i>ood</i>"\n')
    goldset = write_goldset(tmp_path / "g", manifest='name = "$g$ <b>gs</b> | x"\nood = ["../ood"]\n')
    ladder = write_ladder(tmp_path, goldset, template=HOSTILE_LADDER)
    result = CliRunner().invoke(main, ["run", "-l", str(ladder), "--leaderboard", str(tmp_path / "lb"), "--cache-dir", str(tmp_path / "cache")])
    assert result.exit_code == 0, result.output
    assert "[/x] *bold*" in result.output  # the terminal table shows the name, not rich markup
    return ladder, tmp_path / "lb"


def test_leaderboard_and_report_views_show_hostile_names_as_text(hostile_leaderboard, tmp_path):
    ladder, board = hostile_leaderboard
    result = CliRunner().invoke(main, ["leaderboard", "--write", "--leaderboard", str(board)])
    assert result.exit_code == 0, result.output
    for page in [(board / "index.html").read_text()]:
        assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "$\\frac$" in page
    readme = (board / "README.md").read_text()
    for out in (tmp_path / "report.html", tmp_path / "report.md"):
        result = CliRunner().invoke(main, ["report", "-l", str(ladder), "--leaderboard", str(board), "--format", out.suffix[1:], "-o", str(out)])
        assert result.exit_code == 0, result.output
    report_md, report_html = (tmp_path / "report.md").read_text(), (tmp_path / "report.html").read_text()
    assert "<script>" not in report_html and "&lt;script&gt;" in report_html
    for markdown in (readme, report_md):
        assert "<script>" not in markdown and "<b>" not in markdown and "&lt;script>" in markdown
        assert "\\$g\\$ &lt;b>gs&lt;/b> \\| x" in markdown  # the goldset's heading: no math, no bold, no table cell
    assert "\\[/x\\] \\*bold\\* \\| \\`tick\\` \\_u\\_ \\#h" in readme
    assert "two\\\\nlines & more" in readme and not any(line.startswith("lines") for line in readme.splitlines())


@pytest.mark.parametrize(
    ("name", "markdown"),
    [
        ("<script>", "&lt;script>"),
        ("AT&T &lt;", "AT&T &amp;lt;"),
        ("recall >= 0.8", "recall >= 0.8"),
        ("a|b", "a\\|b"),
        ("$x$", "\\$x\\$"),
        ("cost $5", "cost $5"),
        ("VOYAGE_API_KEY", "VOYAGE_API_KEY"),
        ("_x_", "\\_x\\_"),
        ("[a](http://e)", "\\[a\\](http://e)"),
        ("a\nb", "a\\\\nb"),
        ("nul\x00", "nul\\\\x00"),
        ("\u202eevil", "\\\\u202eevil"),
    ],
)
def test_markdown_text_escapes(name, markdown):
    assert markdown_text(name) == markdown


def test_a_list_item_cannot_start_a_nested_list():
    assert markdown_line("- x") == "\\- x" and markdown_line("> x") == "\\> x" and markdown_line("1. x") == "1\\. x" and markdown_line("+0.5 ndcg") == "\\+0.5 ndcg"
