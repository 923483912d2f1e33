"""A first user with their own documents (issue 16): ``-g`` means one thing in every command, paths
resolve from the file that names them, bundled ladders have names, and mistakes read as one line
that names the key, what exists and the closest."""

from __future__ import annotations

import json

import pytest

from conftest import BOW_LADDER, write_goldset
from harness.config import validate
from harness.errors import ConfigError, ModelUnavailable
from harness.records import Leaderboard
from harness.training.schema import TrainConfig
from test_cli import assert_one_line_error, bench

WORSE_RUNG = """
[[rungs]]
name = "worse"
kind = "dense"
encoder = { backend = "bow", model = "bow", dim = 2 }
"""


@pytest.fixture
def user(monkeypatch, bow_backend, tmp_path):
    """A user's own folder: goldsets/pydocs (train and test, no dev), goldsets/other, a bag-of-words
    ladder.toml naming both by paths relative to it; the leaderboard in ./leaderboard."""
    work = tmp_path / "work"
    write_goldset(work / "goldsets" / "pydocs")
    write_goldset(work / "goldsets" / "other", manifest='name = "other"\n')
    ladder = BOW_LADDER.format(goldset="goldsets/pydocs").replace('goldsets = ["goldsets/pydocs"]', 'goldsets = ["goldsets/pydocs", "goldsets/other"]')
    (work / "ladder.toml").write_text(ladder + WORSE_RUNG)
    monkeypatch.chdir(work)
    monkeypatch.setenv("TUNEBENCH_LEADERBOARD", str(work / "leaderboard"))
    return work


# -- 4: -g is a folder, a bundled name or a name, in every command ---------------------------------------


def test_report_and_leaderboard_take_the_goldset_path_bench_run_took(user):
    assert bench("run", "-g", "goldsets/pydocs", "-r", "baseline", "-r", "bm25").exit_code == 0
    report = bench("report", "-g", "goldsets/pydocs")
    assert report.exit_code == 0, report.output
    assert "pydocs" in report.output
    rows = json.loads(bench("leaderboard", "-g", "goldsets/pydocs", "--json").stdout)
    assert {r["goldset"] for r in rows} == {"pydocs"}
    assert_one_line_error(bench("report", "-g", "goldsets/other"), "no records of goldset 'other'", "goldsets with records there: pydocs", "bench run -g goldsets/other")
    assert_one_line_error(bench("report", "-g", "pydoc"), "no records of goldset 'pydoc'", "Did you mean 'pydocs'?")


# -- 5: bench gate on stored records, limited by -g; candidates evaluated now stay out of the leaderboard --


def test_gate_on_stored_records_is_limited_to_one_goldset(user, tmp_path):
    assert bench("run", "-r", "baseline", "--leaderboard", str(tmp_path / "stored")).exit_code == 0  # both goldsets
    assert bench("run", "-g", "goldsets/pydocs", "-r", "baseline").exit_code == 0  # the candidate: pydocs only
    args = ["gate", "baseline", "-b", "baseline", "--baseline-leaderboard", str(tmp_path / "stored"), "-s", "test"]
    assert_one_line_error(bench(*args), "no record on goldset 'other'", "-g GOLDSET")
    result = bench(*args, "-g", "goldsets/pydocs", "--json")
    assert result.exit_code == 0, result.output
    assert [(c["goldset"], c["split"]) for c in json.loads(result.stdout)["checks"]] == [("pydocs", "test")]


def test_gate_run_writes_its_candidate_apart_from_the_leaderboard(user):
    assert bench("run", "-r", "baseline").exit_code == 0
    result = bench("gate", "worse", "--run", "-b", "baseline", "-g", "pydocs")
    assert result.exit_code == 1, result.output
    assert {r.rung.name for r in Leaderboard(user / "leaderboard").latest()} == {"baseline"}
    assert {r.rung.name for r in Leaderboard(user / "gate-candidates").latest()} == {"worse"}


# -- 6: bench train: splits checked before training, paths from the training file's folder ------------


def test_train_names_the_split_key_and_the_splits_there(user):
    train = user / "train.toml"
    train.write_text('base_model = "unused"\ngoldset = "demo"\n')
    result = bench("train", str(train), "-g", "demo-ood")
    assert_one_line_error(result, "train_split = 'train'", "goldset 'demo-ood' has no such split (it has: test)", "(goldset from -g)")
    assert "--split" not in result.output
    train.write_text('base_model = "unused"\ngoldset = "goldsets/pydocs"\neval_split = "dev"\n')
    assert_one_line_error(bench("train", str(train)), "eval_split = 'dev'", "it has: test, train", 'eval_split = "" to keep the last epoch')
    assert TrainConfig(goldset="x", eval_split="").split_problem("pydocs", ["test", "train"]) is None


def test_paths_in_a_training_file_are_relative_to_its_folder(user, tiny_goldset):
    from harness.training.job import plan_job

    (user / "configs").mkdir()
    train = user / "configs" / "train.toml"
    train.write_text('base_model = "unused"\ngoldset = "goldsets/pydocs"\n')
    assert_one_line_error(bench("train", str(train)), "relative to", "write '../goldsets/pydocs'")
    # -g on the command line is relative to the working directory, whatever the file's folder
    assert_one_line_error(bench("train", str(train), "-g", "goldsets/pydocs"), "eval_split = 'dev'", "goldset 'pydocs'")
    config = TrainConfig(base_model="unused", goldset=str(tiny_goldset), eval_split=None, output_dir="out")
    assert plan_job(config, models_root=user / "models", base=train.parent).folder == train.parent / "out"


def test_goldsets_in_a_ladder_are_relative_to_its_folder(user):
    (user / "ladders").mkdir()
    (user / "ladders" / "mine.toml").write_text((user / "ladder.toml").read_text())
    assert_one_line_error(bench("validate", "ladders/mine.toml"), "goldset 'goldsets/pydocs'", "write '../goldsets/pydocs'")


# -- 7: bundled ladder names; goldset suggestions tell bundled from local -----------------------------


def test_bundled_ladders_by_name_and_a_not_found_that_lists_them(user):
    result = bench("validate", "demo")
    assert result.exit_code == 0, result.output
    assert "ladder 'demo'" in result.output
    assert_one_line_error(bench("run", "-l", "ladders/demo.toml"), "ladder file 'ladders/demo.toml' not found", "bundled: demo", "pass -l demo")


def test_a_goldset_typo_lists_bundled_and_local_goldsets_apart(user):
    result = bench("run", "-g", "goldsets/pydcs")
    assert_one_line_error(result, "bundled names: demo, demo-ood;", "folders in ./goldsets: goldsets/other, goldsets/pydocs", "Did you mean 'goldsets/pydocs'?")


# -- 8: configuration mistakes: one line naming the rung, the valid values and the closest -----------------


@pytest.mark.parametrize(
    ("rungs", "fragments"),
    [
        ('[[rungs]]\nname = "dense-one"\nkind = "dence"\n', ["key 'rungs[0].kind' (rung 'dense-one')", "unknown kind 'dence'", "Did you mean 'dense'?", "valid: dense, bm25, hybrid"]),
        ('[[rungs]]\nname = "a"\nkind = "bm25"\n[[rungs]]\nname = "h"\nkind = "hybrid"\ninputs = ["a", ""]\n', ["rung 'h' uses rung '', which does not exist (rungs before it: a)"]),
        ("".join(f'[[rungs]]\nname = "{n}"\nkind = "bm25"\n' for n in "zyxw") + '[[rungs]]\nname = "h"\nkind = "hybrid"\ninputs = ["z", "v"]\n',
         ["which does not exist (rungs before it: z, y, x, w)"]),  # in ladder order
        ('metrics = ["ndcg@10", "recall@10"]\nprimary_metric = "ndcg@5"\n[[rungs]]\nname = "a"\nkind = "bm25"\n', ["'ndcg@5' is not in metrics (ndcg@10, recall@10)", "Did you mean 'ndcg@10'?"]),
    ],
)
def test_ladder_mistakes_name_the_rung_and_the_choices(user, rungs, fragments):
    path = user / "bad.toml"
    path.write_text('goldsets = ["demo"]\n' + rungs)
    result = bench("validate", str(path))
    assert_one_line_error(result, *fragments)
    assert "Input tag" not in result.output and "Value error" not in result.output and "key ''" not in result.output


def test_a_training_metric_the_dev_split_is_not_scored_with_is_refused():
    with pytest.raises(ConfigError, match=r"'ndcg@5' is not a metric the dev split is scored with \(ndcg@10, .*Did you mean 'ndcg@10'"):
        validate(TrainConfig, {"primary_metric": "ndcg@5"}, "train.toml")


# -- 3b: a model id the hub does not have, and one it cannot be asked about ----------------------------------


def _hub_answers(monkeypatch, error):
    import huggingface_hub

    def snapshot_download(model_id, **kw):
        raise error

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)


def test_a_model_the_hub_does_not_have_is_no_such_model(monkeypatch):
    import httpx2
    from huggingface_hub.errors import RepositoryNotFoundError

    from backends.sentence_transformers import UnusableModel, resolve_model

    response = httpx2.Response(404, request=httpx2.Request("GET", "https://huggingface.co/api/models/x"))
    _hub_answers(monkeypatch, RepositoryNotFoundError("404", response=response))
    with pytest.raises(UnusableModel, match="no such model 'sentence-transformers/all-MiniLM-L6-v3' on the Hugging Face hub.*Did you mean 'sentence-transformers/all-MiniLM-L6-v2'"):
        resolve_model("sentence-transformers/all-MiniLM-L6-v3")


def test_offline_a_model_id_is_neither_confirmed_nor_denied(monkeypatch):
    from huggingface_hub.errors import LocalEntryNotFoundError

    from backends.sentence_transformers import UnusableModel, resolve_model

    _hub_answers(monkeypatch, LocalEntryNotFoundError("offline"))
    with pytest.raises(ModelUnavailable, match=r"cannot be reached to tell whether it exists \(offline\); check the id. Did you mean") as info:
        resolve_model("sentence-transformers/all-MiniLM-L6-v3")
    assert not isinstance(info.value, UnusableModel)  # offline, the rung is skipped, not refused


@pytest.fixture
def hub(monkeypatch, tmp_path):
    """The hub tunebench asks is a fake that has only all-MiniLM-L6-v2; an empty Hugging Face cache."""
    from huggingface_hub import constants

    from fake_hub import FakeHub

    fake = FakeHub({"sentence-transformers/all-MiniLM-L6-v2", "BAAI/bge-base-en-v1.5"})
    monkeypatch.setattr(constants, "ENDPOINT", fake.url)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    yield fake
    fake.close()


TYPO_RUNG = """
[[rungs]]
name = "typo"
kind = "dense"
encoder = {{ model = "{model}" }}
"""


def test_validate_asks_the_hub_and_a_typo_is_no_such_model(user, hub):
    (user / "ladder.toml").write_text((user / "ladder.toml").read_text() + TYPO_RUNG.format(model="sentence-transformers/all-MiniLM-L6-v3"))
    assert_one_line_error(
        bench("validate"), "rungs[3] ('typo').encoder.model: no such model 'sentence-transformers/all-MiniLM-L6-v3' on the Hugging Face hub",
        "Did you mean 'sentence-transformers/all-MiniLM-L6-v2'",
    )
    assert "sentence-transformers/all-MiniLM-L6-v3" in hub.asked


def test_validate_passes_a_model_the_hub_has_and_says_when_it_cannot_ask(user, hub, monkeypatch):
    from huggingface_hub import constants

    (user / "ladder.toml").write_text((user / "ladder.toml").read_text() + TYPO_RUNG.format(model="BAAI/bge-base-en-v1.5"))
    result = bench("validate")
    assert result.exit_code == 0 and "note" not in result.output, result.output
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens there: the hub cannot be reached
    result = bench("validate")
    assert result.exit_code == 0, result.output
    assert "note: the Hugging Face hub cannot be reached to tell whether BAAI/bge-base-en-v1.5 exist (offline)" in result.output
    assert "cannot be reached" not in bench("validate", "--offline").output


def test_run_with_a_model_the_hub_does_not_have_fails_after_the_other_rungs(user, hub):
    (user / "ladder.toml").write_text((user / "ladder.toml").read_text() + TYPO_RUNG.format(model="sentence-transformers/all-MiniLM-L6-v3"))
    result = bench("run", "-g", "goldsets/pydocs")
    assert result.exit_code == 2, result.output
    assert "error: rung 'typo' cannot run: no such model 'sentence-transformers/all-MiniLM-L6-v3'" in result.output
    assert "Fix the ladder; the other rungs' records are written" in result.output
    records = Leaderboard(user / "leaderboard").records()
    assert {r.rung.name: r.status for r in records} == {"baseline": "ok", "bm25": "ok", "worse": "ok", "typo": "skipped"}


def test_a_model_that_cannot_run_leaves_no_record_and_one_line(user, hub):
    assert_one_line_error(bench("run", "-m", "sentence-transformers/all-MiniLM-L6-v3"), "no such model 'sentence-transformers/all-MiniLM-L6-v3'")
    assert Leaderboard(user / "leaderboard").records() == []


def test_g_names_a_goldset_of_a_ladder_run_from_another_folder(user, monkeypatch):
    monkeypatch.chdir(user.parent)  # ./goldsets/pydocs is not here; the ladder lists it
    result = bench("run", "-l", "work/ladder.toml", "-g", "pydocs", "-r", "bm25", "--leaderboard", "lb")
    assert result.exit_code == 0, result.output
    assert {r.goldset.name for r in Leaderboard(user.parent / "lb").records()} == {"pydocs"}
    assert f"records in {user.parent / 'lb' / 'records'}" in " ".join(result.output.split())


def test_the_terminal_leaderboard_follows_the_ladder_not_the_record_order(user):
    assert bench("run", "-g", "goldsets/pydocs", "-r", "worse").exit_code == 0
    assert bench("run", "-g", "goldsets/pydocs", "-r", "bm25", "-r", "baseline").exit_code == 0
    rows = [line for line in bench("leaderboard").output.splitlines() if "pydocs" in line]
    assert [next(n for n in ("baseline", "bm25", "worse") if n in row) for row in rows] == ["baseline", "bm25", "worse"]


def test_the_report_says_when_the_goldset_changed_since_its_records(user):
    assert bench("run", "-g", "goldsets/pydocs", "-r", "baseline", "-r", "bm25").exit_code == 0
    assert "has changed since these records were scored" not in bench("report", "-g", "goldsets/pydocs").output
    qrels = user / "goldsets" / "pydocs" / "qrels" / "test.tsv"
    qrels.write_text("\n".join(qrels.read_text().splitlines()[:-1]) + "\n")  # a judgement gone: the goldset was rebuilt
    report = " ".join(bench("report", "-g", "goldsets/pydocs").output.split())
    assert "has changed since these records were scored (split test: fingerprint" in report and "re-run (bench run -g" in report


def test_validate_asks_the_hub_once_per_model(user, hub):
    (user / "ladder.toml").write_text((user / "ladder.toml").read_text() + TYPO_RUNG.format(model="BAAI/bge-base-en-v1.5") + TYPO_RUNG.replace("typo", "again").format(model="BAAI/bge-base-en-v1.5"))
    assert bench("validate").exit_code == 0
    assert hub.asked.count("BAAI/bge-base-en-v1.5") == 1
