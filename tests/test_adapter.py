"""Query adapters over a frozen base: they learn a mapping the base cannot see, pay for nothing twice,
are reproducible, start as the identity, and run as an ordinary dense rung."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

import bow_encoder
from backends.adapter import AdapterEncoder, apply_adapter
from conftest import write_goldset, write_ladder
from harness import registry
from harness.cache import Cache
from harness.data.goldset import Goldset, load_goldset
from harness.errors import ConfigError
from harness.ladder.plan import run_ladder
from harness.ladder.schema import load_ladder
from harness.metrics import evaluate
from harness.records import Leaderboard
from harness.retrieval.topk import to_run, top_k_dense
from harness.training.adapter import (
    AdapterOptions,
    batches_without_duplicates,
    fit_adapter,
    info_nce,
    mine_hard_negatives,
    new_adapter,
    train_adapter,
)

# Documents say "car", queries say "automobile": a bag of words scores every query 0 against its
# document, but the map from query words to document words is consistent, so a linear adapter can learn it.
SYNONYMS = [
    ("car", "automobile"), ("doctor", "physician"), ("house", "dwelling"), ("child", "youngster"), ("money", "currency"),
    ("fast", "rapid"), ("big", "enormous"), ("buy", "purchase"), ("start", "commence"), ("end", "terminate"),
    ("help", "assist"), ("show", "demonstrate"), ("answer", "response"), ("city", "metropolis"), ("boat", "vessel"),
    ("film", "movie"), ("shop", "store"), ("smart", "intelligent"), ("happy", "joyful"), ("sick", "ill"),
    ("job", "occupation"), ("talk", "converse"), ("river", "stream"), ("gift", "present"),
]
N_TRAIN, N_TEST = 64, 16
BASE = {"backend": "bow", "model": "bow"}
# Bag-of-words inputs are sparse (3 of 512 dimensions set), so each step moves a linear map little;
# a higher rate and smaller batches than the defaults (tuned for dense embeddings) learn it in ~0.3 s.
FAST = {"lr": 1e-2, "batch_size": 8, "epochs": 30}


def write_synonym_goldset(folder: Path, leak: bool = False, n_dev: int = 0) -> Path:
    """Each document holds three concepts' document words; its query, the same concepts' query words.
    Test documents are never a training positive, so the adapter must generalise the word mapping."""
    rng = random.Random(0)
    triples: list[tuple[int, ...]] = []
    while len(triples) < N_TRAIN + N_TEST:
        triple = tuple(sorted(rng.sample(range(len(SYNONYMS)), 3)))
        if triple not in triples:
            triples.append(triple)
    assert {c for t in triples[:N_TRAIN] for c in t} == set(range(len(SYNONYMS)))  # every test word is seen in training
    docs = {f"d{i}": ("", "notes on " + " ".join(SYNONYMS[c][0] for c in t)) for i, t in enumerate(triples)}
    queries = {f"q{i}": " ".join(SYNONYMS[c][1] for c in rng.sample(t, 3)) for i, t in enumerate(triples)}
    qrels = {
        "train": {f"q{i}": {f"d{i}": 1} for i in range(N_TRAIN)},
        "test": {f"q{i}": {f"d{i}": 1} for i in range(N_TRAIN, N_TRAIN + N_TEST)},
    }
    if leak:
        qrels["train"]["q0"][f"d{N_TRAIN}"] = 1
    if n_dev:  # the last training queries become a dev split
        qrels["dev"] = {q: qrels["train"].pop(q) for q in list(qrels["train"])[-n_dev:]}
    return write_goldset(folder, docs, queries, qrels)


@pytest.fixture
def adapter_backend(monkeypatch, bow_backend):
    monkeypatch.setitem(registry.BUILTIN["encoder"], "adapter", "backends.adapter:AdapterEncoder")


@pytest.fixture
def goldset(tmp_path) -> Goldset:
    return load_goldset(write_synonym_goldset(tmp_path / "synonyms"))


def held_out_scores(goldset: Goldset, encoder, split: str = "test") -> dict[str, float]:
    queries = goldset.split_queries(split)
    docs = encoder.encode([goldset.document_text(d) for d in goldset.corpus.values()], input_type="document")
    indices, scores = top_k_dense(encoder.encode(list(queries.values()), input_type="query"), docs, 10)
    run = to_run(list(queries), list(goldset.corpus), indices, scores)
    return evaluate({q: goldset.qrels[split][q] for q in queries}, run, ("ndcg@10", "recall@1")).mean


@pytest.mark.parametrize("kind", ["linear", "residual"])
def test_adapter_learns_what_the_frozen_base_cannot(goldset, tmp_path, adapter_backend, kind):
    cache = Cache(tmp_path / "cache")
    folder = fit_adapter(goldset, "train", BASE, cache, tmp_path / "adapter", kind=kind, **FAST)
    base = held_out_scores(goldset, bow_encoder.BagOfWordsEncoder())
    adapted = held_out_scores(goldset, AdapterEncoder(str(folder), cache=cache))
    assert base["ndcg@10"] < 0.1 and base["recall@1"] == 0.0
    assert adapted["ndcg@10"] > base["ndcg@10"] + 0.6 and adapted["recall@1"] >= 0.5
    card = json.loads((folder / "adapter.json").read_text())
    assert card["kind"] == kind and card["dim"] == 512 and card["base"]["backend"] == "bow" and card["base_fingerprint"] == "bow-512"
    assert card["training"]["split"] == "train" and card["training"]["pairs"] == N_TRAIN and card["training"]["fingerprint"] == goldset.split_fingerprint("train")
    assert len(card["history"]) == 30 and card["history"][-1]["loss"] < card["history"][0]["loss"]


def test_documents_are_embedded_once(goldset, tmp_path, adapter_backend, monkeypatch):
    cache = Cache(tmp_path / "cache")
    n_docs = len(goldset.corpus)
    first = fit_adapter(goldset, "train", BASE, cache, tmp_path / "a1", epochs=1)
    second = fit_adapter(goldset, "train", BASE, cache, tmp_path / "a2", epochs=1)
    first_cost = json.loads((first / "adapter.json").read_text())["training"]["embedding"]
    second_cost = json.loads((second / "adapter.json").read_text())["training"]["embedding"]
    assert first_cost["documents_encoded"] == n_docs and first_cost["queries_encoded"] == N_TRAIN
    assert second_cost["documents_encoded"] == 0 and second_cost["documents_cached"] == n_docs and second_cost["queries_encoded"] == 0

    calls: list[tuple[str, int]] = []
    real = bow_encoder.BagOfWordsEncoder.encode
    monkeypatch.setattr(bow_encoder.BagOfWordsEncoder, "encode", lambda self, texts, *, input_type: calls.append((input_type, len(texts))) or real(self, texts, input_type=input_type))
    encoder = AdapterEncoder(str(first), cache=cache)
    texts = [goldset.document_text(d) for d in goldset.corpus.values()]
    documents = encoder.encode(texts, input_type="document")
    assert calls == [] and encoder.base.stats.computed == 0  # the base's document vectors came from the cache
    np.testing.assert_array_equal(documents, real(bow_encoder.BagOfWordsEncoder(), texts, input_type="document"))  # unchanged
    encoder.encode(list(goldset.split_queries("test").values()), input_type="query")
    assert calls == [("query", N_TEST)]  # a local base's queries are encoded afresh: the query path a latency probe times


def test_a_paid_base_is_never_paid_twice(goldset, tmp_path, adapter_backend):
    cache = Cache(tmp_path / "cache")
    folder = fit_adapter(goldset, "train", {"backend": "bow-paid", "model": "bow"}, cache, tmp_path / "a", epochs=1)
    assert json.loads((folder / "adapter.json").read_text())["training"]["embedding"]["api_calls"] > 0
    encoder = AdapterEncoder(str(folder), cache=cache)
    encoder.encode([goldset.document_text(d) for d in goldset.corpus.values()], input_type="document")
    encoder.encode(list(goldset.split_queries("train").values()), input_type="query")
    assert encoder.base.stats.api_calls == 0 and encoder.base.stats.computed == 0


def test_same_seed_same_weights(goldset, tmp_path, adapter_backend):
    cache = Cache(tmp_path / "cache")
    folders = [fit_adapter(goldset, "train", BASE, cache, tmp_path / name, kind="residual", epochs=3, seed=seed) for name, seed in (("a", 7), ("b", 7), ("c", 8))]
    weights = [(f / "adapter.safetensors").read_bytes() for f in folders]
    assert weights[0] == weights[1] and weights[0] != weights[2]
    fingerprints = [AdapterEncoder(str(f), cache=cache).fingerprint for f in folders]
    assert fingerprints[0] == fingerprints[1] != fingerprints[2] and fingerprints[0].startswith("adapter-")


@pytest.mark.parametrize("kind", ["linear", "residual"])
def test_an_untrained_adapter_is_the_identity(kind):
    import torch

    from harness.training.adapter import QueryAdapter  # torch loads on first use only

    x = torch.randn(5, 16)
    adapter = new_adapter(16, AdapterOptions(kind=kind, hidden=8))
    assert isinstance(adapter, QueryAdapter)
    with torch.no_grad():
        torch.testing.assert_close(adapter(x), torch.nn.functional.normalize(x, dim=-1))
    weights = {k: v.numpy() for k, v in adapter.state_dict().items()}
    np.testing.assert_allclose(apply_adapter(weights, kind, x.numpy()), torch.nn.functional.normalize(x, dim=-1).numpy(), atol=1e-6)


@pytest.mark.parametrize("kind", ["linear", "residual"])
def test_numpy_serving_matches_the_trained_module(kind):
    import torch

    rng = np.random.default_rng(0)
    docs, queries = rng.normal(size=(20, 16)).astype(np.float32), rng.normal(size=(10, 16)).astype(np.float32)
    adapter, history = train_adapter([(i, 2 * i) for i in range(10)], docs, queries, kind=kind, hidden=8, epochs=5, batch_size=4, lr=1e-2)
    assert [h["epoch"] for h in history] == [1, 2, 3, 4, 5]
    with torch.no_grad():
        expected = adapter(torch.from_numpy(queries)).numpy()
    assert not np.allclose(expected, queries / np.linalg.norm(queries, axis=1, keepdims=True), atol=1e-3)  # it trained
    np.testing.assert_allclose(apply_adapter({k: v.numpy() for k, v in adapter.state_dict().items()}, kind, queries), expected, atol=1e-5)


def test_mined_negatives_skip_positives_and_likely_false_negatives():
    queries = np.array([[1.0, 0.0]], dtype=np.float32)
    scores = [1.0, 0.99, 0.97, 0.9, 0.5, 0.1]  # d0, d1 are judged relevant; d2 is above 95% of d0's score
    docs = np.array([[s, np.sqrt(1 - s * s)] for s in scores], dtype=np.float32)
    mined = mine_hard_negatives(np.array([[0, 0], [0, 1]]), queries, docs, 2, 0.95)
    assert mined.tolist() == [[3, 4], [3, 4]]  # never d1 (a positive) nor d2 (0.97 > 0.95 x 1.0)
    assert mine_hard_negatives(np.array([[0, 0]]), queries, docs, 8, 0.95).tolist() == [[3, 4, 5, -1, -1, -1, -1, -1]]


def test_batches_hold_each_document_once():
    doc_ids = np.array([0, 0, 0, 1, 1, 2, 3, 4])
    batches = batches_without_duplicates(doc_ids, 4, np.random.default_rng(0))
    assert sorted(i for b in batches for i in b) == list(range(8))
    assert all(len(set(doc_ids[b].tolist())) == len(b) <= 4 for b in batches)


def test_other_positives_in_the_batch_are_not_negatives():
    import torch

    same = torch.nn.functional.normalize(torch.ones(2, 4), dim=-1)  # two queries, each relevant to both documents
    no_mined, no_mask = torch.zeros(2, 0, 4), torch.zeros(2, 0, dtype=torch.bool)
    masked = info_nce(same, same, no_mined, no_mask, ~torch.eye(2, dtype=torch.bool), 0.05)
    unmasked = info_nce(same, same, no_mined, no_mask, torch.zeros(2, 2, dtype=torch.bool), 0.05)
    assert masked.item() == pytest.approx(0.0) and unmasked.item() == pytest.approx(np.log(2))


def test_bad_folders_are_config_errors(goldset, tmp_path, adapter_backend):
    with pytest.raises(ConfigError, match="adapter folder .*missing.* does not exist; give a folder written by") as missing:
        AdapterEncoder(str(tmp_path / "missing"))
    assert "\n" not in str(missing.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="has no adapter.json"):
        AdapterEncoder(str(tmp_path / "empty"))
    folder = fit_adapter(goldset, "train", BASE, Cache(tmp_path / "cache"), tmp_path / "adapter", epochs=1)
    card = (folder / "adapter.json").read_text()
    (folder / "adapter.json").write_text("{not json")
    with pytest.raises(ConfigError, match="adapter.json: not valid JSON"):
        AdapterEncoder(str(folder))
    (folder / "adapter.json").write_text(card.replace('"dim": 512', '"dim": 64'))
    with pytest.raises(ConfigError, match="do not fit a linear adapter of 64 dimensions"):
        AdapterEncoder(str(folder))
    (folder / "adapter.json").write_text(card.replace('"model": "bow"', '"model": "bow", "dim": 256'))
    with pytest.raises(ConfigError, match="its base encoder now gives 'bow-256'.*fit the adapter again"):
        AdapterEncoder(str(folder))


def test_options_are_checked(goldset, tmp_path, adapter_backend):
    cache = Cache(tmp_path / "cache")
    with pytest.raises(ConfigError, match="unknown key 'epoch'. Did you mean 'epochs'"):
        fit_adapter(goldset, "train", BASE, cache, tmp_path / "a", epoch=3)
    with pytest.raises(ConfigError, match="never be trained or selected on the test split"):
        fit_adapter(goldset, "test", BASE, cache, tmp_path / "a")
    with pytest.raises(ConfigError, match="never be trained or selected on the test split"):
        fit_adapter(goldset, "train", BASE, cache, tmp_path / "a", eval_split="test")
    with pytest.raises(ConfigError, match="has no 'dev' split to choose the adapter's epoch on"):
        fit_adapter(goldset, "train", BASE, cache, tmp_path / "a", eval_split="dev")
    folder = fit_adapter(goldset, "train", BASE, cache, tmp_path / "a", epochs=1)
    with pytest.raises(ConfigError, match="trained on base vectors with query_prompt=''"):
        AdapterEncoder(str(folder), query_prompt="query: ")
    assert AdapterEncoder(str(folder), batch_size=4, normalize=True).base_encoder is not None  # restating or batching is fine


def test_overlapping_documents_are_kept_unless_dropped_and_the_folder_says_which_it_trained_on(tmp_path, adapter_backend):
    from harness.training.seen import read_trained, seen_subsets

    leaky = load_goldset(write_synonym_goldset(tmp_path / "leaky", leak=True))  # q0 also judges d64, a test positive
    cache = Cache(tmp_path / "cache")
    for policy, pairs in (("keep", N_TRAIN + 1), ("drop", N_TRAIN)):
        folder = fit_adapter(leaky, "train", BASE, cache, tmp_path / policy, epochs=1, on_overlap=policy)
        training = json.loads((folder / "adapter.json").read_text())["training"]
        assert training["pairs"] == pairs and training["leakage"]["overlap"] == 1 and training["leakage"]["on_overlap"] == policy
        assert training["leakage"]["query_leaks"] == 0 and training["leakage"]["judged_positives"] == 1
        assert ("d64" in read_trained(folder)["documents"]) == (policy == "keep")
        subsets = seen_subsets(leaky, "test", folder)
        assert len(subsets["seen"]) + len(subsets["unseen"]) == N_TEST and (len(subsets["seen"]) >= 1) == (policy == "keep")


# The conftest ladder (bag-of-words baseline, BM25) and the adapter over the baseline. BM25 finds no
# query word in any document here, and scores 0.
ADAPTED = """
[[rungs]]
name = "adapted"
kind = "dense"
encoder = {{ backend = "adapter", model = "{adapter}" }}
"""


def test_an_adapter_is_a_dense_rung(goldset, tmp_path, adapter_backend):
    folder = fit_adapter(goldset, "train", BASE, Cache(tmp_path / "cache"), tmp_path / "adapter", **FAST)
    path = write_ladder(tmp_path, Path(goldset.source), ADAPTED.format(adapter=folder))
    ladder = load_ladder(path)  # checks the backend and its options
    outcomes = run_ladder(ladder, leaderboard=Leaderboard(tmp_path / "lb"), cache=Cache(tmp_path / "run-cache"))
    records = {o.record.rung.name: o.record for o in outcomes}
    adapted = records["adapted"]
    assert adapted.status == "ok" and adapted.rung.encoder_fingerprint.startswith("adapter-")
    assert adapted.goldset.split == "test" and adapted.goldset.n_queries == N_TEST and adapted.latency.n == 3
    assert adapted.metrics["ndcg@10"] > records["baseline"].metrics["ndcg@10"] + 0.6


def test_the_dev_split_picks_the_epoch(tmp_path, adapter_backend):
    goldset = load_goldset(write_synonym_goldset(tmp_path / "synonyms", n_dev=16))
    folder = fit_adapter(goldset, "train", BASE, Cache(tmp_path / "cache"), tmp_path / "a", eval_split="dev", **{**FAST, "epochs": 8})
    training, history = (lambda card: (card["training"], card["history"]))(json.loads((folder / "adapter.json").read_text()))
    assert [h["epoch"] for h in history] == list(range(9)) and history[0]["select"] < 0.2  # epoch 0: the untrained identity
    best = max(history, key=lambda h: h["select"])
    assert training["eval_split"] == "dev" and training["best_epoch"] == best["epoch"] > 0
    kept = held_out_scores(goldset, AdapterEncoder(str(folder), cache=Cache(tmp_path / "cache")), split="dev")
    assert kept["ndcg@10"] == pytest.approx(best["select"], abs=1e-6)  # the weights saved are the epoch chosen


def test_an_adapter_that_never_helps_stays_the_identity(goldset):
    docs = np.eye(8, dtype=np.float32)
    scores = iter([1.0, 0.5, 0.2])  # held-out score before training, then after each epoch: only worse
    adapter, history = train_adapter([(i, i) for i in range(8)], docs, docs, select=lambda _: next(scores), epochs=2, batch_size=4)
    assert [h["select"] for h in history] == [1.0, 0.5, 0.2]
    assert all(not v.any() for v in adapter.state_dict().values())  # the identity map (zero deviation)


ADAPTER_RUNG = """
[[rungs]]
name = "adapted"
kind = "adapter"
encoder = {{ backend = "{backend}", model = "bow" }}
adapter = {{ lr = 1e-2, batch_size = 8, epochs = 30 }}
"""


@pytest.mark.parametrize("backend", ["bow", "bow-paid"])
def test_the_adapter_rung_fits_once_and_scores_like_a_dense_rung(goldset, tmp_path, adapter_backend, backend):
    path = write_ladder(tmp_path, Path(goldset.source), ADAPTER_RUNG.format(backend=backend))
    lb, cache = Leaderboard(tmp_path / "lb"), Cache(tmp_path / "cache")
    records = {o.record.rung.name: o.record for o in run_ladder(load_ladder(path), leaderboard=lb, cache=cache)}
    adapted = records["adapted"]
    assert adapted.status == "ok" and adapted.metrics["ndcg@10"] > records["baseline"].metrics["ndcg@10"] + 0.6
    assert adapted.details["trained_on"] == f"{goldset.name}/train" and adapted.details["pairs"] == N_TRAIN and adapted.details["best_epoch"] is None
    assert adapted.subsets["seen"].queries == [] and len(adapted.subsets["unseen"].queries) == N_TEST  # no test document was trained on
    assert adapted.subsets["unseen"].metrics["ndcg@10"] == pytest.approx(adapted.metrics["ndcg@10"])
    assert records["baseline"].subsets == {} and adapted.details["overlap"] == 0 and adapted.details["on_overlap"] == "keep"
    folder = Path(adapted.details["adapter"])
    assert folder.parent == (tmp_path / "models").resolve() and adapted.latency.n == 3
    if backend == "bow-paid":  # the base's bill is the adapter rung's: every document and test query, one unit per word
        texts = [goldset.document_text(d) for d in goldset.corpus.values()] + list(goldset.split_queries("test").values())
        assert adapted.cost.usage == {"test:bow units": pytest.approx(sum(len(bow_encoder.WORD.findall(t.lower())) for t in texts))}
        assert adapted.latency.p50_ms is not None  # each sampled query timed once, when its base vector was bought
    fitted = (folder / "adapter.safetensors").stat().st_mtime_ns
    again = {o.record.rung.name: o for o in run_ladder(load_ladder(path), leaderboard=lb, cache=cache, overwrite=True)}
    assert again["adapted"].record.cost.usage == adapted.cost.usage and again["adapted"].record.cost.api_calls == 0
    assert (folder / "adapter.safetensors").stat().st_mtime_ns == fitted  # fitted once


def test_the_adapter_rung_never_touches_test_and_checks_its_options(goldset, tmp_path, adapter_backend):
    with pytest.raises(ConfigError, match="never fitted or selected on 'test'"):
        load_ladder(write_ladder(tmp_path, Path(goldset.source), ADAPTER_RUNG.format(backend="bow") + 'eval_split = "test"\n'))
    path = write_ladder(tmp_path, Path(goldset.source), ADAPTER_RUNG.format(backend="bow").replace("epochs = 30", "epoch = 30"))
    with pytest.raises(ConfigError, match="rung 'adapted' adapter: unknown key 'epoch'"):
        run_ladder(load_ladder(path), leaderboard=Leaderboard(tmp_path / "lb"), cache=Cache(tmp_path / "cache"))
