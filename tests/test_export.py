"""``bench export --format mteb``: MTEB result files that mteb's own loader reads back with the same numbers,
and MTEB tasks (NanoBEIR) as out-of-domain canaries, offline one warning line."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import TINY_QRELS, write_goldset, write_ladder
from harness.cli import main
from harness.records import Leaderboard, RunRecord, read_record, safe_name

mteb = pytest.importorskip("mteb")

GOLDEN = Path(__file__).resolve().parent / "data" / "record_v3.json"
MINILM = "sentence-transformers/all-MiniLM-L6-v2"
MINILM_DIR = "sentence-transformers__all-MiniLM-L6-v2"
REV = "no_revision_available"
NANO = "NanoSciFactRetrieval"
METRICS = {"ndcg@10": 0.6430481209273975, "recall@10": 0.7848484848484849, "recall@100": 0.9742424242424241, "mrr@10": 0.6466883116883116,
           "map@100": 0.5759547111530405, "precision@10": 0.11454545454545452, "f1@10": 0.2, "bpref": 0.5}


def record(rung="baseline", *, kind="dense", model=MINILM, goldset="tiny", source="/data/tiny", split="test", ood_of=None,
           created="2026-01-01T00:00:00+00:00", metrics=None, fingerprint="f1", config=None) -> RunRecord:
    """The golden record made over: a rung of ``kind`` (dense ones over ``model``) on ``goldset``, scored ``metrics``."""
    golden = read_record(GOLDEN)
    config = config or ({"kind": kind, "name": rung, "encoder": {"model": model}} if kind == "dense" else {"kind": kind, "name": rung})
    return golden.model_copy(update={
        "key": f"{abs(hash((rung, goldset, split, created))):016x}"[:16],
        "created_at": created,
        "goldset": golden.goldset.model_copy(update={"name": goldset, "source": source, "split": split, "ood_of": ood_of, "fingerprint": fingerprint}),
        "rung": golden.rung.model_copy(update={"name": rung, "kind": kind, "config": config}),
        "metrics": dict(metrics or METRICS),
        "run_file": None,
        "subsets": {},
    })


def board(tmp_path: Path, *records: RunRecord) -> Path:
    lb = Leaderboard(tmp_path / "lb")
    for r in records:
        lb.write(r, None)
    return lb.root


def export(lb: Path, out: Path, *args: str):
    return CliRunner().invoke(main, ["export", "--leaderboard", str(lb), "-o", str(out), *args])


def loaded(cache: Path) -> dict[tuple[str, str], object]:
    """What mteb's own loader reads from ``cache/results``: ``{(model, task): TaskResult}``."""
    results = mteb.ResultCache(cache).load_results(include_remote=False)
    return {(m.model_name, t.task_name): t for m in results.model_results for t in m.task_results}


def test_mteb_reads_the_export_back_with_the_same_numbers(tmp_path):
    lb = board(tmp_path, record(), record(split="dev", metrics={**METRICS, "ndcg@10": 0.25}), record("bm25", kind="bm25", metrics={"ndcg@10": 0.5, "recall@100": 0.75}))
    result = export(lb, tmp_path / "cache" / "results")
    assert result.exit_code == 0, result.output
    got = loaded(tmp_path / "cache")
    assert set(got) == {(MINILM, "tiny"), ("bm25", "tiny")}
    tiny = got[(MINILM, "tiny")]
    assert tiny.scores["test"][0] == {"ndcg_at_10": METRICS["ndcg@10"], "recall_at_10": METRICS["recall@10"], "recall_at_100": METRICS["recall@100"],
                                      "mrr_at_10": METRICS["mrr@10"], "map_at_100": METRICS["map@100"], "precision_at_10": METRICS["precision@10"],
                                      "main_score": METRICS["ndcg@10"], "hf_subset": "default", "languages": ["eng-Latn"], "mteb_version": mteb.__version__}
    assert tiny.scores["dev"][0]["main_score"] == 0.25 and tiny.get_score(splits=["test"]) == METRICS["ndcg@10"]
    assert tiny.dataset_revision == "f1"  # a goldset's revision is its content fingerprint
    assert got[("bm25", "tiny")].scores["test"][0]["recall_at_100"] == 0.75
    files = sorted(p.relative_to(tmp_path / "cache" / "results").as_posix() for p in (tmp_path / "cache" / "results").rglob("*") if p.is_file())
    assert files == [f"bm25/{REV}/model_meta.json", f"bm25/{REV}/tiny.json", f"{MINILM_DIR}/{REV}/model_meta.json", f"{MINILM_DIR}/{REV}/tiny.json"]
    meta = json.loads((tmp_path / "cache" / "results" / MINILM_DIR / REV / "model_meta.json").read_text())
    assert meta["name"] == MINILM and meta["revision"] == REV and meta["embed_dim"] == 384  # mteb's registry entry
    assert "rung 'bm25' (bm25) is not one published model: exported as model 'bm25'" in result.stderr
    assert "goldset 'tiny' is not an MTEB task" in result.stderr and "wrote 2 MTEB result file(s) of 2 model(s)" in result.stdout


def test_an_mteb_goldset_exports_as_its_mteb_task(tmp_path):
    lb = board(tmp_path, record(goldset="SciFact", source="mteb:SciFact"), record(goldset=NANO, source=f"mteb:{NANO}", split="train", ood_of="SciFact"))
    result = export(lb, tmp_path / "cache" / "results")
    assert result.exit_code == 0, result.output
    got = loaded(tmp_path / "cache")
    scifact = mteb.get_task("SciFact").metadata
    assert got[(MINILM, "SciFact")].dataset_revision == scifact.revision
    assert got[(MINILM, "SciFact")].scores["test"][0]["languages"] == scifact.eval_langs
    assert got[(MINILM, NANO)].scores["train"][0]["main_score"] == METRICS["ndcg@10"]
    assert (tmp_path / "cache" / "results" / MINILM_DIR / REV / "SciFact.json").is_file()
    assert "not an MTEB task" not in result.stderr


def test_latest_record_wins_and_older_versions_are_left_out(tmp_path):
    lb = board(tmp_path,
               record(created="2026-01-01T00:00:00+00:00", metrics={"ndcg@10": 0.1}),
               record(created="2026-01-02T00:00:00+00:00", metrics={"ndcg@10": 0.2}, fingerprint="f2"),  # the goldset changed since
               record(split="dev", created="2026-01-01T00:00:00+00:00", metrics={"ndcg@10": 0.3}),  # scored on the old version
               record("tuned", kind="hybrid", config={"kind": "hybrid", "tune_on": "dev"}, split="dev", metrics={"ndcg@10": 0.9}),
               record("tuned", kind="hybrid", config={"kind": "hybrid", "tune_on": "dev"}, metrics={"ndcg@10": 0.4}))
    result = export(lb, tmp_path / "cache" / "results")
    assert result.exit_code == 0, result.output
    got = loaded(tmp_path / "cache")
    assert list(got[(MINILM, "tiny")].scores) == ["test"] and got[(MINILM, "tiny")].scores["test"][0]["main_score"] == 0.2
    assert list(got[("tuned", "tiny")].scores) == ["test"]  # not dev, the split it was tuned on
    assert "split 'dev' left out (scored on another version of the goldset" in result.stderr
    assert "rung 'tuned' on 'tiny': split 'dev' left out (the rung was tuned or trained on it)" in result.stderr


def test_two_rungs_of_one_model_are_one_line(tmp_path):
    lb = board(tmp_path, record("a"), record("b"))
    result = export(lb, tmp_path / "out")
    assert result.exit_code == 2 and result.output.strip().splitlines() == [
        f"error: rungs 'a' and 'b' both export as model '{MINILM}' (one model with other settings); export one of them at a time with -r"]
    assert export(lb, tmp_path / "out", "-r", "b").exit_code == 0


def test_hostile_names_stay_inside_the_export_folder(tmp_path):
    names = {"rung": "../../Evil rung", "model": "../../etc/passwd", "goldset": "../x\u202e/y"}
    lb = board(tmp_path, record(names["rung"], kind="bm25", goldset=names["goldset"]), record("dense", model=names["model"], goldset=names["goldset"]))
    out = tmp_path / "deep" / "results"
    result = export(lb, out)
    assert result.exit_code == 0, result.output
    written = {p.relative_to(out).as_posix() for p in out.rglob("*.json")}
    task = f"{safe_name(names['goldset'])}.json"
    assert written == {f"{safe_name(names['rung'])}/{REV}/{task}", f"{safe_name(names['rung'])}/{REV}/model_meta.json",
                       f"{safe_name(names['model'])}/{REV}/{task}", f"{safe_name(names['model'])}/{REV}/model_meta.json"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deep", "lb"]
    got = loaded(tmp_path / "deep")
    assert set(got) == {(names["rung"], names["goldset"]), (names["model"], names["goldset"])}  # mteb reads the names as given


def test_a_folder_with_files_needs_force_and_keeps_the_others(tmp_path):
    lb = board(tmp_path, record())
    out = tmp_path / "results"
    (out / "other__model" / REV).mkdir(parents=True)
    (out / "other__model" / REV / "SciFact.json").write_text("{}")
    result = export(lb, out)
    assert result.exit_code == 2 and result.output.strip().splitlines() == [
        f"error: -o '{out}' is not empty; pass --force to write into it (files of the same names are replaced), or a new folder"]
    assert export(lb, out, "--force").exit_code == 0
    assert (out / "other__model" / REV / "SciFact.json").read_text() == "{}" and (out / MINILM_DIR / REV / "tiny.json").is_file()
    (tmp_path / "file").write_text("x")
    assert "is a file" in export(lb, tmp_path / "file").output


@pytest.mark.parametrize(("args", "fragment"), [
    (["--format", "mtab"], "unknown --format 'mtab'; formats: mteb. Did you mean 'mteb'?"),
    (["-r", "bm52"], "no records of rung 'bm52'"),
    (["-g", "nope"], "no records of goldset 'nope'"),
])
def test_bad_options_are_one_line(tmp_path, args, fragment):
    result = export(board(tmp_path, record()), tmp_path / "out", *args)
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1 and fragment in result.output, result.output
    assert not (tmp_path / "out").exists()


def test_an_empty_leaderboard_is_one_line(tmp_path):
    result = export(tmp_path / "empty", tmp_path / "out")
    assert result.exit_code == 2 and result.output.strip() == f"error: no scored records in '{tmp_path / 'empty'}/records'; run: bench run"


# ---- NanoBEIR canaries: MTEB tasks as out-of-domain companions ------------------------------------


@pytest.fixture
def canary_goldset(tmp_path) -> Path:
    return write_goldset(tmp_path / "tiny", manifest=f'ood = ["mteb:{NANO}"]\n')


@pytest.fixture
def closed_hub(monkeypatch):
    """The hub at a local port nothing listens on: refused at once, as offline is, whatever this machine's network."""
    from datasets import config
    from huggingface_hub import constants

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setattr(constants, "ENDPOINT", url)
    monkeypatch.setattr(config, "HF_ENDPOINT", url)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


def test_offline_canary_is_one_warning_and_the_goldset_still_runs(canary_goldset, closed_hub, caplog):
    from harness.ladder.plan import plan_targets

    started = time.monotonic()
    with caplog.at_level(logging.WARNING):
        targets = plan_targets([str(canary_goldset)])
    assert [t.goldset.name for t in targets] == ["tiny"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and f"out-of-domain companion of 'tiny' skipped: 'mteb:{NANO}' needs its data from the Hugging Face hub" in warnings[0], warnings
    assert time.monotonic() - started < 20  # read from the cache only: no five retries with back-off (32 s)


def test_offline_canary_named_by_a_training_file_is_one_warning_too(tmp_path, monkeypatch, caplog):
    """`bench train`'s own ``ood`` list goes through the same companion step as a goldset's."""
    from huggingface_hub import constants

    from harness.commands.train_cmd import _targets
    from harness.training.schema import TrainConfig

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    config = TrainConfig(goldset=str(write_goldset(tmp_path / "tiny")), ood=[f"mteb:{NANO}"])
    with caplog.at_level(logging.WARNING):
        targets = _targets(config, None)
    assert [t.goldset.name for t in targets] == ["tiny"]
    assert [r.getMessage().split(":")[0] for r in caplog.records if NANO in r.getMessage()] == ["out-of-domain companion of 'tiny' skipped"]


def test_offline_canary_through_bench_run(tmp_path, canary_goldset, bow_backend, monkeypatch, caplog):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # the user's HF_HUB_OFFLINE=1
    monkeypatch.chdir(tmp_path)
    with caplog.at_level(logging.WARNING):
        result = CliRunner().invoke(main, ["run", "-l", str(write_ladder(tmp_path, canary_goldset)), "-r", "bm25", "--json"])
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    assert [r.name for r in caplog.records if NANO in r.getMessage()] == ["harness.ladder.plan"]
    assert [r["goldset"] for r in json.loads(result.stdout)] == ["tiny"]


def test_online_canary_is_scored_and_exports_as_its_nanobeir_task(tmp_path, canary_goldset, bow_backend, monkeypatch):
    """The hub reachable: the loader (replaced here by a tiny goldset with the task's name and split) feeds a
    companion; its records export under the NanoBEIR task's name, comparable with the MTEB leaderboard."""
    from harness.data import resolve
    from harness.data.goldset import load_goldset

    tiny = load_goldset(write_goldset(tmp_path / "nano", qrels={"train": TINY_QRELS["test"]}, manifest='eval_splits = ["train"]\n'))
    monkeypatch.setattr(resolve, "load_mteb_goldset", lambda name: replace(tiny, name=name, source=f"mteb:{name}"))
    monkeypatch.chdir(tmp_path)
    ran = CliRunner().invoke(main, ["run", "-l", str(write_ladder(tmp_path, canary_goldset)), "-r", "bm25", "--json"])
    assert ran.exit_code == 0, ran.output
    rows = {(r["goldset"], r["split"]): r for r in json.loads(ran.stdout)}
    assert rows[(NANO, "train")]["ood_of"] == "tiny"
    result = export(tmp_path / "leaderboard", tmp_path / "cache" / "results")
    assert result.exit_code == 0, result.output
    nano = loaded(tmp_path / "cache")[("bm25", NANO)]
    assert nano.scores["train"][0]["main_score"] == rows[(NANO, "train")]["metrics"]["ndcg@10"]
    assert nano.dataset_revision == mteb.get_task(NANO).metadata.revision
    assert "goldset 'tiny' is not an MTEB task" in result.stderr and f"'{NANO}' is not" not in result.stderr


# ---- faults --------------------------------------------------------------------------------------

SLOW_WRITER = """
import sys, time
from harness.decide import mteb_export
write = mteb_export.write_atomic
def slow(path, data):
    write(path, data)
    time.sleep(30)  # killed here, after the first file
mteb_export.write_atomic = slow
from harness.cli import main
sys.argv = ["bench", *sys.argv[1:]]
main()
"""


@pytest.mark.slow
def test_sigkill_mid_export_leaves_whole_files_and_force_completes_it(tmp_path):
    lb = board(tmp_path, record(), record(goldset="other"), record("bm25", kind="bm25"))
    out = tmp_path / "cache" / "results"
    args = ["export", "--leaderboard", str(lb), "-o", str(out)]
    proc = subprocess.Popen([sys.executable, "-c", SLOW_WRITER, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ)
    deadline = time.monotonic() + 120
    while not list(out.rglob("*.json")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = list(out.rglob("*"))
    assert [p.name for p in first if p.is_file()] == ["tiny.json"] or [p.name for p in first if p.is_file()] == ["other.json"]
    assert loaded(tmp_path / "cache") == {}  # no model_meta.json yet: mteb shows nothing half-exported
    again = subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True)
    assert again.returncode == 2 and "pass --force" in again.stderr
    subprocess.run([sys.executable, "-m", "harness.cli", *args, "--force"], check=True, capture_output=True)
    assert set(loaded(tmp_path / "cache")) == {(MINILM, "tiny"), (MINILM, "other"), ("bm25", "tiny")}
