"""The merge rung: weight interpolation (backends.merge), the alpha curve and its choice
(harness.training.merge), and the rung in a ladder (harness.ladder.tuned.MergeStage).

The ladder tests use two static-embedding models (a bag of words whose word vectors are set by hand),
so the curve is known in advance: the "fine-tuned" model maps two in-domain query words onto their
relevant documents' words (in-domain dev rises at alpha > 0.24 and alpha > 0.86) and one out-of-domain
query word onto a wrong document's word (out-of-domain falls at alpha > 0.59). The best dev alpha (0.9)
breaks the out-of-domain tolerance, so 0.3 is kept: the smallest of the best alphas within it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import write_goldset
from harness.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]

# word -> the word whose one-hot vector it gets, in the base and in the fine-tuned model
BASE_MAP = {"qwa": "ya", "qwb": "yb", "omega": "zo"}
TUNED_MAP = {"qwa": "xa", "qwb": "xb", "omega": "wo"}
MAIN_DOCS = {
    "da": ("", "xa"),
    "ea": ("", "ya fa fa fa"),  # the base's match for qwa, diluted: the tuned match wins from alpha 0.24
    "db": ("", "xb fb fb fb fb fb fb"),  # the tuned match for qwb, diluted: wins only from alpha 0.86
    "eb": ("", "yb"),
    "dc": ("", "xc"),
}
MAIN_QUERIES = {"qa": "qwa", "qb": "qwb", "t1": "xa", "t2": "xc", "tr": "xb"}
MAIN_QRELS = {"dev": {"qa": {"da": 1}, "qb": {"db": 1}}, "test": {"t1": {"da": 1}, "t2": {"dc": 1}}, "train": {"tr": {"db": 1}}}
OOD_DOCS = {"do": ("", "zo"), "dw": ("", "wo g1"), "dz": ("", "zz")}  # the tuned omega points at dw: wrong from alpha 0.59
OOD_QUERIES = {"qo": "omega"}
OOD_QRELS = {"test": {"qo": {"do": 1}}}


def static_model(folder: Path, mapping: dict[str, str]) -> Path:
    """A sentence-transformers bag of words: each word a one-hot vector (unknown words zero), except the
    words of ``mapping``, which take another word's vector."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, StaticEmbedding
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = sorted({w for _, text in [*MAIN_DOCS.values(), *OOD_DOCS.values()] for w in text.split()} | set(BASE_MAP) | {"[UNK]"})
    index = {w: i for i, w in enumerate(words)}
    tokenizer = Tokenizer(models.WordLevel(index, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    weights = np.eye(len(words), dtype=np.float32)
    weights[index["[UNK]"]] = 0
    for word, target in mapping.items():
        weights[index[word]] = np.eye(len(words), dtype=np.float32)[index[target]]
    SentenceTransformer(modules=[StaticEmbedding(tokenizer, embedding_weights=weights), Normalize()], device="cpu").save(str(folder))
    return folder


@pytest.fixture
def merge_pair(tmp_path) -> tuple[Path, Path, Path]:
    """The base, a "fine-tuned" round of it with its card and trained documents, and the in-domain goldset."""
    from harness.data.goldset import load_goldset
    from harness.protocols import Pair
    from harness.training.seen import write_trained

    write_goldset(tmp_path / "other", OOD_DOCS, OOD_QUERIES, OOD_QRELS)
    main = write_goldset(tmp_path / "main", MAIN_DOCS, MAIN_QUERIES, MAIN_QRELS, manifest='ood = ["../other"]\n')
    base = static_model(tmp_path / "base", BASE_MAP)
    tuned = static_model(tmp_path / "ft", TUNED_MAP)
    card = {"name": "ft-r1", "base_model": str(base), "round": 1, "pairs": 1, "config": {"query_prompt": "", "on_leakage": "drop", "on_overlap": "keep"},
            "leakage": {"query_leaks": 0, "overlap": 1, "on_leakage": "drop", "on_overlap": "keep"}}
    (tuned / "tunebench.json").write_text(json.dumps(card))
    write_trained(tuned, [Pair("xa", "xa", positive_id="da")], load_goldset(main))
    return base, tuned, main


LADDER = """
name = "merge"
goldsets = ["{main}"]
latency_queries = 2
{decision}
[[rungs]]
name = "base"
kind = "dense"
encoder = {{ model = "{base}" }}

[[rungs]]
name = "{name}"
kind = "merge"
model = "{tuned}"
{extra}
"""


def run(tmp_path, merge_pair, *, name="wise", extra="", decision="", splits=(), overwrite=False):
    from harness.cache import Cache
    from harness.ladder.plan import run_ladder
    from harness.ladder.schema import load_ladder
    from harness.records import Leaderboard

    base, tuned, main = merge_pair
    path = tmp_path / "ladder.toml"
    path.write_text(LADDER.format(main=main, base=base, tuned=tuned, name=name, extra=extra, decision=decision))
    outcomes = run_ladder(load_ladder(path), leaderboard=Leaderboard(tmp_path / "lb"), cache=Cache(tmp_path / "cache"), splits=splits, overwrite=overwrite)
    return {(o.record.goldset.name, o.record.goldset.split, o.record.rung.name): o for o in outcomes}


# -- the interpolation ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_pair(tiny_model, tmp_path_factory) -> tuple[Path, Path]:
    """The tiny BERT and a copy with every float weight perturbed."""
    import torch
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(tiny_model), device="cpu")
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * 0.1)
    folder = tmp_path_factory.mktemp("tuned") / "model"
    model.save(str(folder))
    return tiny_model, folder


def _state(folder: Path) -> dict:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(folder), device="cpu").state_dict()


def test_interpolation_is_exact_at_the_ends_and_the_mean_between(tiny_pair, tmp_path):
    import torch

    from backends.merge import WeightMerger

    base, tuned = tiny_pair
    merger = WeightMerger([tuned, base])
    a, b = _state(base), _state(tuned)
    assert any(not torch.equal(a[k], b[k]) for k in a)
    for alpha, expected in ((0.0, a), (1.0, b)):
        merged = merger.merged_state([alpha, 1 - alpha])
        assert all(torch.equal(merged[k], expected[k]) for k in a), alpha
    half = merger.merged_state([0.5, 0.5])
    for key in a:
        if torch.is_floating_point(a[key]):
            torch.testing.assert_close(half[key], (a[key] + b[key]) / 2, rtol=0, atol=1e-7)
    written = merger.write([0.5, 0.5], tmp_path / "half", {"name": "half", "models": [str(tuned), str(base)], "weights": [0.5, 0.5], "alpha": 0.5})
    assert all(torch.equal(v, half[k]) for k, v in _state(written).items())
    assert json.loads((written / "tunebench.json").read_text())["alpha"] == 0.5 and "alpha = 0.5" in (written / "README.md").read_text()
    assert merger.modules_match()


def test_non_float_tensors_come_from_the_fine_tuned_model(tiny_pair):
    import torch

    from backends.merge import WeightMerger

    base, tuned = tiny_pair
    merger = WeightMerger([tuned, base])
    template, states = merger._loaded
    states[0]["counter"], states[1]["counter"] = torch.tensor([7]), torch.tensor([3])  # an integer buffer
    assert merger.merged_state([0.25, 0.75])["counter"].item() == 7


def test_models_of_different_architectures_are_refused_in_one_line(tiny_pair, tmp_path):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer import modules
    from transformers import BertConfig, BertModel

    from backends.merge import WeightMerger

    base, _ = tiny_pair
    BertModel(BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, max_position_embeddings=128)).save_pretrained(tmp_path / "hf")
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        if (base / name).is_file():
            (tmp_path / "hf" / name).write_bytes((base / name).read_bytes())
    SentenceTransformer(modules=[modules.Transformer(str(tmp_path / "hf")), modules.Pooling(32, "mean")], device="cpu").save(str(tmp_path / "other"))
    with pytest.raises(ConfigError, match="cannot merge .* their weights differ in names") as caught:
        WeightMerger([tmp_path / "other", base]).write([0.5, 0.5], tmp_path / "out", {"name": "x"})
    assert "\n" not in str(caught.value) and not (tmp_path / "out").exists()
    with pytest.raises(ConfigError, match="sum to 1"):
        WeightMerger([base, base]).merged_state([0.5, 0.6])


KILLER = """
import os, signal, sys
from pathlib import Path
from sentence_transformers import SentenceTransformer
from backends.merge import WeightMerger

real = SentenceTransformer.save
def save(self, path, *args, **kwargs):  # the weights are on disk, the card is not: killed mid-merge
    real(self, path, *args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)
SentenceTransformer.save = save
WeightMerger([sys.argv[1], sys.argv[2]]).write([0.5, 0.5], Path(sys.argv[3]), {"name": "x"})
"""


def test_a_merge_killed_mid_write_leaves_nothing_a_rerun_trusts(merge_pair, tmp_path):
    from harness.training.merge import Interpolation, alpha_folder, read_source

    base, tuned, _ = merge_pair
    root = tmp_path / "models" / "wise-x"
    out = alpha_folder(root, 0.5)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    killed = subprocess.run([sys.executable, "-c", KILLER, str(tuned), str(base), str(out)], cwd=ROOT, env=env, capture_output=True, timeout=120)
    assert killed.returncode == -9, killed.stderr.decode()[-2000:]
    assert not out.exists() and [p.name for p in root.iterdir()] == [f".{out.name}.partial-{_pid(root)}"]
    interpolation = Interpolation(read_source(tuned), root, "wise")
    assert interpolation.model(0.5) == out  # merged afresh: the partial folder is not trusted, and is cleared
    assert (out / "tunebench.json").is_file() and [p.name for p in root.iterdir()] == [out.name]


def _pid(root: Path) -> str:
    return next(root.iterdir()).name.rsplit("-", 1)[1]


# -- the choice -----------------------------------------------------------------------------------------


def test_the_best_in_domain_alpha_within_the_tolerance_is_chosen():
    from harness.training.merge import choose_alpha

    curve = [{"alpha": a, "in_domain": d, "ood": {"ood/test": o}} for a, d, o in ((0.0, 0.5, 0.8), (0.5, 0.7, 0.795), (0.7, 0.7, 0.8), (1.0, 0.9, 0.6))]
    point, why = choose_alpha(curve, 0.01)
    assert point["alpha"] == 0.7  # ties on dev go to the smaller drop (0.0 against 0.005), not the smaller alpha
    assert "alpha = 1 scored higher in domain (0.9000) but dropped 0.2000 on ood/test" in why
    assert [p["within_tolerance"] for p in curve] == [True, True, True, False]
    point, why = choose_alpha([{"alpha": a, "in_domain": a, "ood": {}} for a in (0.0, 1.0)], 0.01)
    assert point["alpha"] == 1.0 and "could not be checked" in why


# -- the rung in a ladder -------------------------------------------------------------------------------


def test_the_rung_records_the_curve_and_keeps_the_best_alpha_within_the_ood_tolerance(tmp_path, merge_pair):
    base, tuned, _ = merge_pair
    outcomes = run(tmp_path, merge_pair, splits=("dev", "test"))
    record = outcomes[("main", "test", "wise")].record
    details = record.details
    assert details["alpha"] == 0.3 and details["selected_on"] == "main/dev" and details["ood_tolerance"] == 0.01
    assert "alpha = 0.9 scored higher in domain (1.0000) but dropped 0.3691 on other/test" in details["why"]
    curve = {p["alpha"]: p for p in details["curve"]}
    assert list(curve) == [i / 10 for i in range(11)]
    assert [round(curve[a]["in_domain"], 4) for a in (0.1, 0.3, 0.8, 0.9, 1.0)] == [0.6309, 0.8155, 0.8155, 1.0, 1.0]
    assert [curve[a]["ood"]["other/test"] for a in (0.5, 0.6)] == [1.0, 0.63093] and not curve[0.6]["within_tolerance"]
    assert curve[0.0]["model"] == str(base) and curve[1.0]["model"] == str(tuned.resolve())  # the unmerged ends: their own folders, their cached vectors
    chosen = Path(details["model"])
    card = json.loads((chosen / "tunebench.json").read_text())
    assert card["alpha"] == 0.3 and card["selection"]["curve"] == details["curve"] and card["round"] == 1
    assert details["round"] == 1 and details["overlap"] == 1 and details["on_leakage"] == "drop"
    assert record.counts.documents_encoded == 0  # the chosen alpha's vectors, copied under the published folder's fingerprint
    assert record.subsets["seen"].queries == ["t1"] and record.subsets["unseen"].queries == ["t2"]  # trained_documents.json carried over
    dev = outcomes[("main", "dev", "wise")]
    assert dev.action == "skipped" and "alpha was chosen on 'dev'" in dev.record.reason
    ood = outcomes[("other", "test", "wise")].record
    assert ood.details["model"] == details["model"] and ood.metrics["ndcg@10"] == 1.0
    assert not any((chosen.parent / f"alpha-{a:.4f}").exists() for a in (0.0, 1.0))


def test_a_rerun_finds_every_model_by_fingerprint_and_merges_nothing(tmp_path, merge_pair, monkeypatch):
    from backends.merge import WeightMerger

    first = run(tmp_path, merge_pair)[("main", "test", "wise")].record
    root = Path(first.details["model"]).parent
    folders = sorted(p.name for p in root.iterdir())
    assert len([f for f in folders if f.startswith("alpha-")]) == 9
    writes: list[Path] = []
    monkeypatch.setattr(WeightMerger, "write", lambda self, weights, out_dir, card, files=None: writes.append(out_dir))
    again = run(tmp_path, merge_pair, overwrite=True)[("main", "test", "wise")]
    assert again.action == "ran" and again.record.details["alpha"] == 0.3 and writes == []
    monkeypatch.undo()
    looser = run(tmp_path, merge_pair, extra="ood_tolerance = 0.5")[("main", "test", "wise")].record
    assert looser.details["alpha"] == 0.9 and looser.details["ood_tolerance"] == 0.5  # a new choice, from the same merged models
    assert sorted(p.name for p in root.iterdir()) == sorted([*folders, Path(looser.details["model"]).name])


def test_the_ladders_tolerance_applies_and_no_dev_split_falls_back_to_train(tmp_path, merge_pair):
    loose = run(tmp_path, merge_pair, decision="[decision]\nood_tolerance = 0.5\n")[("main", "test", "wise")].record
    assert loose.details["alpha"] == 0.9
    (merge_pair[2] / "qrels" / "dev.tsv").unlink()
    outcomes = run(tmp_path, merge_pair, splits=("train", "test"))
    details = outcomes[("main", "test", "wise")].record.details
    assert details["selected_on"] == "main/train" and "has no 'dev' split, so alpha was chosen on 'train'" in details["note"]
    assert outcomes[("main", "train", "wise")].action == "skipped"


def test_a_hostile_rung_name_stays_inside_the_models_folder(tmp_path, merge_pair):
    name = "../../Evil/merge"
    record = run(tmp_path, merge_pair, name=name)[("main", "test", name)].record
    folder = Path(record.details["model"])
    assert folder.resolve().is_relative_to((tmp_path / "models").resolve()) and "~" in folder.parent.name
    assert not (tmp_path.parent / "Evil").exists()


def test_of_names_a_finetune_rung_or_round(tmp_path, merge_pair):
    from harness.ladder.schema import load_ladder

    _, _, main = merge_pair
    head = f'goldsets = ["{main}"]\n[[rungs]]\nname = "base"\nkind = "bm25"\n[[rungs]]\nname = "ft"\nkind = "finetune"\ntrain = {{ mining = {{ rounds = 1 }} }}\n'
    path = tmp_path / "ladder.toml"
    path.write_text(head + '[[rungs]]\nname = "wise"\nkind = "merge"\nof = "ft"\n')
    ladder = load_ladder(path)
    assert ladder.rung("wise").of == "ft-r1" and ladder.select(["wise"])[-2].name == "ft-r1"
    for rung, message in (('of = "base"', "a bm25 rung; of must name a finetune rung"), ('of = "ft-r0"\nmodel = "x"', "exactly one of"),
                          ('of = "ft"\nselect_on = "test"', "never chosen on 'test'"), ('of = "ft"\nalphas = [0.5, 2]', r"\[0, 1\]")):
        path.write_text(head + f'[[rungs]]\nname = "wise"\nkind = "merge"\n{rung}\n')
        with pytest.raises(ConfigError, match=message):
            load_ladder(path)


def test_the_views_plot_the_curve_and_the_report_names_what_the_choice_rests_on(tmp_path, merge_pair):
    from harness.decide.report import build_report
    from harness.decide.views import panels, tuning_splits, write_views
    from harness.ladder.schema import load_ladder
    from harness.records import Leaderboard

    run(tmp_path, merge_pair, splits=("dev", "test"))
    records = Leaderboard(tmp_path / "lb").latest()
    assert "dev" in tuning_splits([r for r in records if r.goldset.name == "main"])  # alpha was chosen there: a tuning split
    write_views(records, tmp_path / "lb", ladder=[r.name for r in load_ladder(tmp_path / "ladder.toml").rungs])
    page = (tmp_path / "lb" / "index.html").read_text()
    assert page.count('data-plot="merge-wise"') == 1 and "ringed: the alpha kept (alpha = 0.3 scores best in domain" in page
    report = build_report(records, load_ladder(tmp_path / "ladder.toml"), "main", "test")
    assert any(p.startswith("wise: alpha 0.3 was chosen within the out-of-domain tolerance on other/test") for p in report.pitfalls)
    assert [p.split for p in panels(records) if p.goldset == "main" and p.evaluation] == ["test"]


def test_the_curve_shows_progress_in_a_log(tmp_path, merge_pair, monkeypatch, capsys):
    from harness import progress

    monkeypatch.setattr(progress, "mode", "lines")
    monkeypatch.setattr(progress, "LINE_EVERY", 0.0)  # every update is a line
    run(tmp_path, merge_pair, splits=("dev", "test"))
    lines = [line for line in capsys.readouterr().err.splitlines() if "wise: the alpha curve" in line]
    assert any("alpha 0.5: merging and scoring" in line for line in lines) and "at best" in lines[-1] and "\r" not in "".join(lines)


def test_alpha_zero_is_the_base_folder_it_was_trained_from_even_when_its_module_files_read_differently(tmp_path, merge_pair):
    """A base saved by an older sentence-transformers writes the same modules in other words: alpha 0
    is still the base's own folder (its cached vectors), not a merged copy that encodes the corpus again."""
    base, tuned, _ = merge_pair
    (base / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 256, "do_lower_case": False}))
    record = run(tmp_path, merge_pair, splits=("dev", "test"))[("main", "test", "wise")].record
    assert next(p for p in record.details["curve"] if p["alpha"] == 0)["model"] == str(base)
    assert not (Path(record.details["model"]).parent / "alpha-0.0000").exists()
