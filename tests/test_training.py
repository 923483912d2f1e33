"""Fine-tuning: the training file, pair files, the leakage guard, and `bench train` end to end on a
tiny model (round 0, a mining round, model folders with cards, records per round, same seed = same model)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import TINY_QUERIES, write_goldset
from harness.cli import main
from harness.config import validate
from harness.data.goldset import load_goldset
from harness.data.pair_files import goldset_pairs, read_pair_file
from harness.errors import ConfigError, GoldsetError
from harness.training.leakage import check_leakage, leakage, without
from harness.training.schema import TrainConfig


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"eval_split": "test"}, "must not be chosen on the test split"),
        ({"goldset": ""}, "give a goldset"),
        ({"lerning_rate": 1e-4}, "Did you mean 'learning_rate'"),
        ({"loss": {"kind": "infonse"}}, "loss.kind"),
        ({"mining": {"max_relative": 1.5}}, "mining.max_relative"),
    ],
)
def test_training_file_mistakes_are_one_line(data, fragment):
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(")):
        validate(TrainConfig, data, "train.toml")


def test_defaults_follow_current_practice():
    config = TrainConfig()
    assert (config.loss.kind, config.loss.temperature, config.batch_size, config.learning_rate, config.warmup_ratio, config.epochs) == ("infonce", 0.05, 32, 5e-5, 0.1, 3)
    assert (config.mining.rounds, config.mining.negatives, config.mining.epochs, config.mining.max_relative) == (1, None, 1, 0.95)  # negatives: sized when mining


def test_pair_files_jsonl_and_csv(tmp_path):
    jsonl = tmp_path / "pairs.jsonl"
    jsonl.write_text('{"query": "q1", "positive": "p1", "negatives": ["n1"]}\n\n{"anchor": "q2", "text": "p2"}\n')
    assert [(p.query, p.positive, p.negatives) for p in read_pair_file(jsonl)] == [("q1", "p1", ["n1"]), ("q2", "p2", [])]
    csv = tmp_path / "pairs.csv"
    csv.write_text("query,positive,negative\nq1,p1,n1\n")
    assert read_pair_file(csv)[0].negatives == ["n1"]
    jsonl.write_text('{"query": "q1"}\n')
    with pytest.raises(ConfigError, match=r"pairs.jsonl:1: needs non-empty string fields"):
        read_pair_file(jsonl)
    csv.write_text("a,b\n")
    with pytest.raises(ConfigError, match=r"pairs.csv:1: the header must start with query,positive"):
        read_pair_file(csv)


def test_leakage_guard_finds_repeated_queries_and_judged_positives(tmp_path):
    queries = {**TINY_QUERIES, "q7": "Oxalic acid, varroa MITES!"}  # q1 again, after normalisation
    qrels = {"test": {"q1": {"d1": 2}, "q2": {"d2": 2}}, "train": {"q7": {"d3": 1}, "q5": {"d2": 1}, "q6": {"d6": 2}}}
    goldset = load_goldset(write_goldset(tmp_path / "g", queries=queries, qrels=qrels))
    pairs = goldset_pairs(goldset, "train")
    found = leakage(pairs, goldset, ["test"])
    assert found.same_queries == ["q1"] and found.judged_positives == ["d2"] and (found.query_leaks, found.overlap) == (1, 1)
    with pytest.raises(GoldsetError, match="1 evaluation queries repeated in training.*on_leakage"):
        check_leakage(pairs, goldset, ["test"], "stop")
    assert check_leakage(pairs, goldset, ["test"], "allow").query_leaks == 1
    assert [p.query_id for p in without(pairs, goldset, found, queries=True, documents=True)] == ["q6"]
    assert [p.query_id for p in without(pairs, goldset, found, queries=True, documents=False)] == ["q5", "q6"]


TRAIN = """
name = "ft"
base_model = "{model}"
goldset = "{goldset}"
eval_split = ""
epochs = 2
batch_size = 4
learning_rate = 1e-3
seed = 7

[mining]
rounds = 1
negatives = 1
depth = 6
epochs = 1
"""


def write_train(tmp_path, tiny_model, tiny_goldset, name="train.toml"):
    path = tmp_path / name
    path.write_text(TRAIN.format(model=tiny_model, goldset=tiny_goldset))
    return path


def test_bench_train_rounds_models_cards_and_records(tmp_path, tiny_model, tiny_goldset):
    from sentence_transformers import SentenceTransformer

    config = write_train(tmp_path, tiny_model, tiny_goldset)
    result = CliRunner().invoke(main, ["train", str(config), "--models-dir", str(tmp_path / "models"), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert len(out["models"]) == 2 and out["leakage"]["query_leaks"] == 0 and out["leakage"]["on_overlap"] == "keep"
    rows = {(r["rung"], r["split"]): r for r in out["records"]}
    assert set(rows) == {("ft-base", "test"), ("ft-r0", "test"), ("ft-r1", "test")}
    for folder in out["models"]:
        card = json.loads((Path(folder) / "tunebench.json").read_text())
        assert card["config"]["loss"]["temperature"] == 0.05 and card["steps"] > 0
        assert "Fine-tuned by tunebench" in (Path(folder) / "README.md").read_text()
        assert SentenceTransformer(folder, device="cpu").encode(["hive"]).shape == (1, 32)
    r1 = json.loads((Path(out["models"][1]) / "tunebench.json").read_text())
    assert r1["round"] == 1 and r1["pairs"] > 0  # mined pairs carry a hard negative each
    r0 = json.loads((Path(out["models"][0]) / "tunebench.json").read_text())
    assert r0["steps"] == 2 * math.ceil(r0["pairs"] / 4) and r1["steps"] == math.ceil(r1["pairs"] / 4)  # 2 epochs, then mining.epochs = 1
    for card in (r0, r1):  # how each round was sized, and what it used
        assert card["resources"]["device"] == "cpu" and card["resources"]["peak_rss_mb"] > 100 and card["resources"]["seconds"] > 0
        assert card["recipe"]["memory"]["loss"] == "infonce" and not card["recipe"]["memory"]["switched"]
        assert card["recipe"]["max_length"] <= 64 and "95th percentile" in card["recipe"]["notes"]["max_length"]
    assert r0["recipe"]["negatives"] is None and r1["recipe"]["negatives"] == 1
    trained = json.loads((Path(out["models"][0]) / "trained_documents.json").read_text())["documents"]
    test_qrels = load_goldset(tiny_goldset).scored_qrels("test")
    seen = sorted(q for q, docs in test_qrels.items() if set(docs) & set(trained))
    for rung in ("ft-r0", "ft-r1"):  # every round's record scores seen and unseen documents apart
        subsets = rows[(rung, "test")]["subsets"]
        assert subsets["seen"]["n"] == len(seen) and subsets["seen"]["n"] + subsets["unseen"]["n"] == len(test_qrels)
    assert rows[("ft-base", "test")]["subsets"] == {}
    details = rows[("ft-r1", "test")]["details"]
    assert details["device"] == "cpu" and details["peak_rss_mb"] == r1["resources"]["peak_rss_mb"] and details["negatives"] == r1["recipe"]["negatives"]
    again = CliRunner().invoke(main, ["train", str(config), "--models-dir", str(tmp_path / "models"), "--json"])
    assert {r["action"] for r in json.loads(again.stdout)["records"]} == {"unchanged"}  # nothing retrained


def test_the_best_dev_epochs_vectors_serve_the_rounds_own_evaluation(tmp_path, tiny_model):
    """The corpus encoded for the dev evaluation of the epoch kept is the saved model's corpus: the
    round's test evaluation finds every document in the cache, and scores as if it had encoded them."""
    from harness.cache import Cache
    from harness.records import Leaderboard

    qrels = {"train": {"q5": {"d5": 1}, "q6": {"d6": 2}}, "dev": {"q4": {"d4": 1}}, "test": {"q1": {"d1": 2}, "q2": {"d2": 2}, "q3": {"d3": 2}}}
    goldset = write_goldset(tmp_path / "with-dev", qrels=qrels, manifest='eval_splits = ["test"]\n')
    config = write_train(tmp_path, tiny_model, goldset)
    config.write_text(config.read_text().replace('eval_split = ""', 'eval_split = "dev"').replace("rounds = 1", "rounds = 0"))
    board = tmp_path / "board"
    result = CliRunner().invoke(main, ["train", str(config), "--models-dir", str(tmp_path / "models"), "--leaderboard", str(board), "--json"])
    assert result.exit_code == 0, result.output
    record = next(r for r in Leaderboard(board).latest() if r.rung.name == "ft-r0")
    assert (record.counts.documents_encoded, record.counts.documents_cached) == (0, 6)
    fresh = CliRunner().invoke(main, ["train", str(config), "--models-dir", str(tmp_path / "models"), "--leaderboard", str(tmp_path / "board2"), "--cache-dir", str(tmp_path / "cold"), "--json"])
    encoded = next(r for r in Leaderboard(tmp_path / "board2").latest() if r.rung.name == "ft-r0")
    assert fresh.exit_code == 0 and encoded.counts.documents_encoded == 6
    assert encoded.metrics == pytest.approx(record.metrics, abs=1e-6)
    Cache(tmp_path / "cold").close()


@pytest.mark.parametrize(("bar", "kept"), [(2.0, True), (-1.0, False)])
def test_a_mining_round_must_beat_its_start_on_dev_or_it_keeps_its_start(tmp_path, tiny_model, bar, kept, monkeypatch):
    """Round 1 starts from round 0's model and must beat round 0's dev score (set here on its card):
    evaluated four times an epoch, it stops at the first evaluation that beats nothing before it, and
    when none beat round 0 it saves round 0's weights, which share round 0's vectors (same fingerprint)."""
    import tomllib

    from harness.cache import Cache
    from harness.registry import EncoderConfig, build_encoder
    from harness.training.job import plan_job, run_job

    queries = TINY_QUERIES | {"q7": "feeding bees before winter", "q8": "raising new queens from larvae", "q9": "half the workers leave with the old queen",
                              "q10": "centrifugal force throws honey"}
    train = {"q5": {"d5": 1}, "q6": {"d6": 2}, "q2": {"d2": 2}, "q3": {"d3": 2}, "q7": {"d5": 1}, "q8": {"d6": 1}, "q9": {"d2": 1}, "q10": {"d3": 1}}
    qrels = {"train": train, "dev": {"q4": {"d4": 1}}, "test": {"q1": {"d1": 2}}}
    goldset = write_goldset(tmp_path / "with-dev", queries=queries, qrels=qrels, manifest='eval_splits = ["test"]\n')
    config = TrainConfig.model_validate(tomllib.loads(TRAIN.format(model=tiny_model, goldset=goldset)) | {"eval_split": "dev", "batch_size": 2, "warmup_ratio": 0})
    job, cache = plan_job(config, models_root=tmp_path / "models"), Cache(tmp_path / "cache")
    released = []  # the allocator's kept blocks are handed back after each round
    monkeypatch.setattr("harness.training.job.release_freed_memory", lambda: released.append(1))
    run_job(job, cache, up_to_round=0)
    card_path = job.model_dir(0) / "tunebench.json"
    card_path.write_text(json.dumps(json.loads(card_path.read_text()) | {"best_dev_metric": bar}))
    run_job(job, cache)
    assert len(released) == 2
    r1 = json.loads((job.model_dir(1) / "tunebench.json").read_text())
    weights = [(job.model_dir(r) / "model.safetensors").read_bytes() for r in (0, 1)]
    fingerprints = [build_encoder(EncoderConfig(model=str(job.model_dir(r)))).fingerprint for r in (0, 1)]
    assert r1["kept_start"] is kept and r1["trained_dev_metric"] is not None
    if kept:  # eight pairs (or the 6-7 that mining fills) at batch 2: evaluated after each quarter of the epoch (a step), stopped after the first
        assert r1["steps"] == 1 and r1["best_dev_metric"] == bar > r1["trained_dev_metric"]
        assert weights[0] == weights[1] and fingerprints[0] == fingerprints[1]
    else:
        assert r1["steps"] >= 2 and r1["best_dev_metric"] == r1["trained_dev_metric"] > bar
        assert weights[0] != weights[1] and fingerprints[0] != fingerprints[1]
    cache.close()


def test_a_job_over_its_memory_budget_is_refused_before_any_training(tmp_path, tiny_model, tiny_goldset):
    config = write_train(tmp_path, tiny_model, tiny_goldset)
    result = CliRunner().invoke(main, ["train", str(config), "--models-dir", str(tmp_path / "models"), "--max-memory", "0.2"])
    assert result.exit_code == 2 and result.output.startswith("error: fine-tuning 'ft' round 0 needs about"), result.output
    assert "over the 0.2 GB memory budget; lower max_length" in result.output and len(result.output.strip().splitlines()) == 1
    assert not list((tmp_path / "models").rglob("model.safetensors"))


def test_same_seed_trains_the_same_model(tmp_path, tiny_model, tiny_goldset):
    config = write_train(tmp_path, tiny_model, tiny_goldset)
    losses = []
    for run in ("a", "b"):
        result = CliRunner().invoke(main, ["train", str(config), "--rounds", "0", "--models-dir", str(tmp_path / run), "--leaderboard", str(tmp_path / run / "lb"), "--json"])
        assert result.exit_code == 0, result.output
        folder = json.loads(result.stdout)["models"][0]
        card = json.loads((Path(folder) / "tunebench.json").read_text())
        losses.append([row["loss"] for row in card["history"] if "loss" in row])
        metrics = {r["rung"]: r["metrics"] for r in json.loads(result.stdout)["records"]}
        losses[-1].append(metrics["ft-r0"])
    assert losses[0] == losses[1]


def test_leaking_training_data_stops_bench_train(tmp_path, tiny_model):
    queries = {**TINY_QUERIES, "q7": TINY_QUERIES["q1"]}
    goldset = write_goldset(tmp_path / "g", queries=queries, qrels={"test": {"q1": {"d1": 2}}, "train": {"q7": {"d1": 1}, "q5": {"d5": 1}}})
    config = write_train(tmp_path, tiny_model, goldset)
    result = CliRunner().invoke(main, ["train", str(config), "--models-dir", str(tmp_path / "models")])
    assert result.exit_code == 2 and "training queries leak into evaluation" in result.output
    assert not (tmp_path / "models").exists()


@pytest.mark.parametrize("policy", ["keep", "drop"])
def test_overlapping_documents_train_unless_dropped_and_records_say_which_queries_were_seen(tmp_path, tiny_model, policy):
    """q5 (train) is about d1, the document test query q1 is judged on: document overlap, not a leak."""
    goldset = write_goldset(tmp_path / "g", qrels={"test": {"q1": {"d1": 2}, "q2": {"d2": 2}}, "train": {"q5": {"d1": 1}, "q6": {"d6": 2}}})
    config = write_train(tmp_path, tiny_model, goldset)
    args = ["train", str(config), "--models-dir", str(tmp_path / "models"), "--rounds", "0", "--on-overlap", policy, "--json"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["leakage"]["overlap"] == 1 and out["leakage"]["query_leaks"] == 0 and out["leakage"]["on_overlap"] == policy
    card = json.loads((Path(out["models"][0]) / "tunebench.json").read_text())
    assert card["pairs"] == (2 if policy == "keep" else 1)
    subsets = {r["rung"]: r["subsets"] for r in out["records"]}["ft-r0"]
    assert (subsets["seen"]["n"], subsets["unseen"]["n"]) == ((1, 1) if policy == "keep" else (0, 2))
    assert "on_overlap = " + policy in (Path(out["models"][0]) / "README.md").read_text()


def test_finetune_rung_in_a_ladder_records_every_round(tmp_path, tiny_model, bow_backend):
    from conftest import TINY_DOCS, write_ladder
    from harness.cache import Cache
    from harness.ladder.plan import run_ladder
    from harness.ladder.schema import load_ladder
    from harness.records import Leaderboard

    write_goldset(tmp_path / "other", docs={**TINY_DOCS, "d7": ("Mice", "Mouse guards keep mice out in winter.")})
    main_goldset = write_goldset(tmp_path / "main", manifest='ood = ["../other"]\n')
    extra = f'\n[[rungs]]\nname = "ft"\nkind = "finetune"\ntrain = {{ base_model = "{tiny_model}", eval_split = "", epochs = 1, batch_size = 4, mining = {{ rounds = 1, negatives = 1, depth = 6 }} }}\n'
    ladder = load_ladder(write_ladder(tmp_path, main_goldset, extra))
    assert [r.name for r in ladder.rungs][-2:] == ["ft-r0", "ft-r1"]
    outcomes = run_ladder(ladder, leaderboard=Leaderboard(tmp_path / "lb"), cache=Cache(tmp_path / "cache"))
    records = {(o.record.goldset.name, o.record.rung.name): o.record for o in outcomes}
    assert records[("main", "ft-r1")].details["round"] == 1 and records[("main", "ft-r1")].details["trained_on"] == "main/train"
    assert records[("other", "ft-r0")].details["model"] == records[("main", "ft-r0")].details["model"]  # OOD uses the in-domain model
    assert (tmp_path / "models").is_dir() and records[("main", "ft-r0")].latency is not None
    main_subsets = records[("main", "ft-r1")].subsets  # the tiny goldset's train documents are none of its test documents
    assert main_subsets["seen"].queries == [] and len(main_subsets["unseen"].queries) == records[("main", "ft-r1")].goldset.n_queries
    other = records[("other", "ft-r1")].subsets  # another corpus: every query unseen (same document ids, other documents)
    assert other["seen"].queries == [] and len(other["unseen"].queries) == records[("other", "ft-r1")].goldset.n_queries
    assert records[("main", "ft-r1")].details["on_overlap"] == "keep"
    with pytest.raises(ConfigError, match="rung 'ft' train table: unknown key 'epoch'"):
        load_ladder(write_ladder(tmp_path, main_goldset, extra.replace("epochs = 1", "epoch = 1")))


def test_killed_training_resumes_from_its_last_checkpoint(tmp_path, tiny_model, tiny_goldset):
    from transformers import TrainerCallback

    from backends.st_train import train

    class CrashAfterFirstSave(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            raise KeyboardInterrupt

    config = TrainConfig(base_model=str(tiny_model), goldset=str(tiny_goldset), eval_split=None, epochs=3, batch_size=2)
    data = {"tiny/train": goldset_pairs(load_goldset(tiny_goldset), "train") * 2}
    with pytest.raises(KeyboardInterrupt):
        train(config, data, start_model=tiny_model, out_dir=tmp_path / "job", callbacks=[CrashAfterFirstSave()])
    assert [p.name for p in (tmp_path / "job" / "checkpoints").iterdir()] == ["checkpoint-2"]  # epoch 1 of 3
    class CountSteps(TrainerCallback):
        steps = 0

        def on_step_end(self, args, state, control, **kwargs):
            CountSteps.steps += 1

    result = train(config, data, start_model=tiny_model, out_dir=tmp_path / "job", callbacks=[CountSteps()])
    assert result.steps == 6 and (result.model_dir / "model.safetensors").is_file()
    assert CountSteps.steps == 4  # resumed after epoch 1's 2 steps, not started over


LORA = """
name = "lora"
base_model = "{model}"
goldset = "{goldset}"
eval_split = ""
epochs = 5
batch_size = 4
seed = 3
{extra}
lora = {{ r = 4, alpha = 8, target_modules = {targets} }}

[mining]
rounds = 0
"""


@pytest.mark.parametrize("kind", ["encoder", "decoder"])
def test_lora_trains_a_merged_model_and_keeps_the_adapter(tmp_path, tiny_goldset, tiny_model, tiny_decoder, kind):
    import numpy as np
    from sentence_transformers import SentenceTransformer

    if kind == "encoder":
        model, extra, targets = tiny_model, "", '["query", "value"]'
    else:  # a decoder embedder: last-token pooling and an instruction before each query
        model, extra, targets = tiny_decoder, 'pooling = "lasttoken"\nquery_prompt = "Instruct: find the beekeeping answer. Query: "', '["q_proj", "v_proj"]'
    config = tmp_path / "lora.toml"
    config.write_text(LORA.format(model=model, goldset=tiny_goldset, extra=extra, targets=targets))
    result = CliRunner().invoke(main, ["train", str(config), "--models-dir", str(tmp_path / "models"), "--json"])
    assert result.exit_code == 0, result.output
    folder = Path(json.loads(result.stdout)["models"][0])
    card = json.loads((folder / "tunebench.json").read_text())
    assert card["config"]["learning_rate"] == 2e-4 and card["config"]["lora"]["r"] == 4
    assert (folder.parent / "adapter" / "adapter_config.json").is_file()
    tuned = SentenceTransformer(str(folder), device="cpu")
    assert not any("lora" in name for name, _ in tuned.named_parameters())  # merged: a plain model
    if kind == "decoder":
        assert tuned[1].pooling_mode == "lasttoken" or "lasttoken" in str(tuned[1].get_config_dict())
    base = load_model_for_test(model, kind)
    assert not np.allclose(tuned.encode(["varroa mites"]), base.encode(["varroa mites"]), atol=1e-6)  # training moved it


def load_model_for_test(path, kind):
    from backends.st_train import load_model

    return load_model(path, TrainConfig(goldset="x", pooling="model" if kind == "encoder" else "lasttoken"))


@pytest.mark.slow
def test_data_parallel_training_under_torchrun(tmp_path, tiny_model):
    import os
    import subprocess
    import sys

    topics = ["varroa mites", "swarming", "honey extraction", "wax moth", "autumn feeding", "queen rearing", "brood disease", "hive ventilation", "pollen traps", "winter clusters"]
    docs = {f"d{i}": (t.title(), f"A note on {t} and what a beekeeper does about {t}.") for i, t in enumerate(topics)}
    queries = {f"q{i}": f"what to do about {t}" for i, t in enumerate(topics)}
    qrels = {"test": {"q0": {"d0": 1}, "q1": {"d1": 1}}, "train": {f"q{i}": {f"d{i}": 1} for i in range(2, 10)}}
    goldset = write_goldset(tmp_path / "bees", docs=docs, queries=queries, qrels=qrels)
    config = write_train(tmp_path, tiny_model, goldset)
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "harness.cli", "train", str(config), "--rounds", "0", "--models-dir", str(tmp_path / "models"), "--json"]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, cwd=Path(__file__).parents[1], timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout[done.stdout.index("{"):])
    card = json.loads((Path(out["models"][0]) / "tunebench.json").read_text())
    assert card["steps"] == 2  # 8 pairs, batch 4 in each of 2 processes: 1 step an epoch (2 on one process), 2 epochs
    assert {r["rung"] for r in out["records"]} == {"ft-base", "ft-r0"}


@pytest.mark.parametrize("loss", ["infonce-symmetric", "cached-infonce", "triplet", "cosine"])
def test_every_loss_trains_on_multi_task_pair_files(tmp_path, tiny_model, tiny_goldset, loss):
    from conftest import TINY_DOCS

    texts = [f"{t} {x}" for t, x in TINY_DOCS.values()]
    for name, offset in (("qa.jsonl", 1), ("titles.jsonl", 2)):  # two tasks, sampled round-robin
        rows = [{"query": f"question {i} about {t.split()[0]}", "positive": f"summary: {t}", "negatives": [texts[(i + offset) % 6]]} for i, t in enumerate(texts)]
        (tmp_path / name).write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    config = tmp_path / "multi.toml"
    config.write_text(
        f'name = "multi"\nbase_model = "{tiny_model}"\ngoldset = "{tiny_goldset}"\neval_split = ""\nepochs = 1\nbatch_size = 4\n'
        f'sampling = "round-robin"\nloss = {{ kind = "{loss}", mini_batch_size = 2 }}\n'
        '[[pair_files]]\npath = "qa.jsonl"\n[[pair_files]]\npath = "titles.jsonl"\n[mining]\nrounds = 0\n'
    )
    if loss in ("triplet", "cosine"):  # the goldset's own pairs have no negatives: train on the files alone, evaluate on the goldset
        config.write_text(config.read_text().replace('eval_split = ""', 'eval_split = ""\ntrain_split = ""'))
    result = CliRunner().invoke(main, ["train", str(config), "--models-dir", str(tmp_path / "models"), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    card = json.loads((Path(out["models"][0]) / "tunebench.json").read_text())
    assert card["config"]["loss"]["kind"] == loss and card["steps"] > 0
    assert card["pairs"] == (12 if loss in ("triplet", "cosine") else 14)
    assert {(r["rung"], r["split"]) for r in out["records"]} == {("multi-base", "test"), ("multi-r0", "test")}


def test_cosine_without_negatives_is_one_clear_error(tmp_path, tiny_model, tiny_goldset):
    config = tmp_path / "cos.toml"
    config.write_text(f'base_model = "{tiny_model}"\ngoldset = "{tiny_goldset}"\neval_split = ""\nloss = {{ kind = "cosine" }}\n[mining]\nrounds = 0\n')
    result = CliRunner().invoke(main, ["train", str(config), "--models-dir", str(tmp_path / "models")])
    assert result.exit_code == 2 and "the cosine loss needs a negative for every pair" in result.output
