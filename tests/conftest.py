"""Shared fixtures: tiny goldsets written to disk, the bag-of-words encoder, isolated cache and leaderboard."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness import registry

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"

TINY_DOCS = {
    "d1": ("Varroa mites", "Oxalic acid treatment kills varroa mites in broodless colonies during winter."),
    "d2": ("Swarming", "Colonies swarm in spring when the queen leaves with half the workers to found a new nest."),
    "d3": ("Honey extraction", "An extractor spins uncapped frames so centrifugal force throws honey from the comb."),
    "d4": ("Wax moth", "Wax moth larvae tunnel through stored comb; freezing frames kills eggs and larvae."),
    "d5": ("Feeding", "Feed thick sugar syrup in autumn so the colony stores enough food for winter."),
    "d6": ("Queen rearing", "Grafting young larvae into queen cups lets a beekeeper raise new queens."),
}
TINY_QUERIES = {
    "q1": "oxalic acid varroa mites",
    "q2": "why did my queen swarm in spring",
    "q3": "extractor spins frames honey",
    "q4": "wax moth larvae in stored comb",
    "q5": "sugar syrup autumn winter stores",
    "q6": "grafting larvae queen cups",
}
TINY_QRELS = {
    "test": {"q1": {"d1": 2}, "q2": {"d2": 2}, "q3": {"d3": 2, "d4": 0}, "q4": {"d4": 1}},
    "train": {"q5": {"d5": 1}, "q6": {"d6": 2}},
}


def write_goldset(folder: Path, docs=None, queries=None, qrels=None, manifest: str | None = None) -> Path:
    """Write a BEIR goldset folder; arguments default to the tiny beekeeping set."""
    folder.mkdir(parents=True, exist_ok=True)
    docs = TINY_DOCS if docs is None else docs
    queries = TINY_QUERIES if queries is None else queries
    qrels = TINY_QRELS if qrels is None else qrels
    with open(folder / "corpus.jsonl", "w") as f:
        for doc_id, (title, text) in docs.items():
            f.write(json.dumps({"_id": doc_id, "title": title, "text": text}) + "\n")
    with open(folder / "queries.jsonl", "w") as f:
        for qid, text in queries.items():
            f.write(json.dumps({"_id": qid, "text": text}) + "\n")
    (folder / "qrels").mkdir(exist_ok=True)
    for split, judged in qrels.items():
        lines = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t{g}" for q, docs_ in judged.items() for d, g in docs_.items()]
        (folder / "qrels" / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    if manifest is not None:
        (folder / "goldset.toml").write_text(manifest)
    return folder


@pytest.fixture
def tiny_goldset(tmp_path) -> Path:
    return write_goldset(tmp_path / "tiny")


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path, monkeypatch):
    """Every test gets its own embedding cache and leaderboard, never the user's."""
    monkeypatch.setenv("TUNEBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TUNEBENCH_LEADERBOARD", str(tmp_path / "leaderboard"))


@pytest.fixture(autouse=True)
def test_process_malloc_untouched(monkeypatch):
    """The CLI tunes its own process's malloc (harness.allocator); CLI tests run in pytest's process,
    whose malloc stays as it is."""
    monkeypatch.setattr("harness.allocator.keep_freed_memory", lambda: False)


@pytest.fixture
def bow_backend(monkeypatch):
    """Register the test backends: encoders 'bow' and 'bow-paid' (billed per word), reranker 'overlap'."""
    monkeypatch.setitem(registry.BUILTIN["encoder"], "bow", "bow_encoder:BagOfWordsEncoder")
    monkeypatch.setitem(registry.BUILTIN["encoder"], "bow-paid", "bow_encoder:PaidBagOfWords")
    monkeypatch.setitem(registry.BUILTIN["reranker"], "overlap", "bow_encoder:OverlapReranker")
    return "bow"


BOW_LADDER = """
name = "bow"
goldsets = ["{goldset}"]
latency_queries = 3

[[rungs]]
name = "baseline"
kind = "dense"
encoder = {{ backend = "bow", model = "bow" }}

[[rungs]]
name = "bm25"
kind = "bm25"
"""


def write_ladder(folder: Path, goldset: Path, extra: str = "", template: str = BOW_LADDER) -> Path:
    """A ladder file over ``goldset`` (bag-of-words baseline + BM25, then ``extra`` TOML)."""
    path = folder / "ladder.toml"
    path.write_text(template.format(goldset=goldset) + extra)
    return path


def shared_dataset(name: str) -> Path:
    path = SHARED / name
    if not (path / "corpus.jsonl").is_file():
        pytest.skip(f"shared dataset {name} not found at {path}")
    return path


def pytest_addoption(parser):
    parser.addoption("--slow", action="store_true", help="also run tests marked slow (real models, shared datasets)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--slow"):
        return
    selected = [item for item in items if "slow" not in item.keywords]
    deselected = [item for item in items if "slow" in item.keywords]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = selected


def pytrec_eval_reference(qrels: dict, run: dict) -> dict[str, dict[str, float]]:
    """The independent implementation: trec_eval's measures via pytrec_eval, under our metric names.

    trec_eval has no MRR@10, so reciprocal rank is computed on the run cut to its top 10.
    """
    pytrec_eval = pytest.importorskip("pytrec_eval")
    names = {"ndcg_cut_10": "ndcg@10", "map_cut_100": "map@100", "P_10": "precision@10"} | {f"recall_{k}": f"recall@{k}" for k in (1, 3, 5, 10, 20, 100)}
    ref = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.1,3,5,10,20,100", "map_cut.100", "P.10"}).evaluate(run)
    top10 = {q: dict(sorted(hits.items(), key=lambda x: -x[1])[:10]) for q, hits in run.items()}
    mrr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(top10)
    return {q: {ours: ref[q][theirs] for theirs, ours in names.items()} | {"mrr@10": mrr[q]["recip_rank"]} for q in ref}


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A 2-layer, 32-wide BERT sentence-transformer with MiniLM's tokenizer, built from a config
    (no download, random weights, trains in seconds)."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer import modules as models
    from transformers import AutoTokenizer, BertConfig, BertModel

    from backends.sentence_transformers import packaged_minilm

    folder = tmp_path_factory.mktemp("tiny-model")
    tokenizer = AutoTokenizer.from_pretrained(str(packaged_minilm()))
    torch.manual_seed(0)
    bert = BertModel(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, max_position_embeddings=128))
    bert.save_pretrained(folder / "hf")
    tokenizer.save_pretrained(folder / "hf")
    transformer = models.Transformer(str(folder / "hf"), max_seq_length=64)
    model = SentenceTransformer(modules=[transformer, models.Pooling(32, "mean"), models.Normalize()], device="cpu")
    model.save(str(folder / "st"))
    return folder / "st"


@pytest.fixture(scope="session")
def tiny_decoder(tmp_path_factory) -> Path:
    """A 2-layer, 32-wide Llama decoder (a plain transformers folder, random weights) with MiniLM's
    tokenizer: enough to exercise the decoder-embedder path (last-token pooling, LoRA) offline."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaModel

    from backends.sentence_transformers import packaged_minilm

    folder = tmp_path_factory.mktemp("tiny-decoder")
    tokenizer = AutoTokenizer.from_pretrained(str(packaged_minilm()))
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=128, pad_token_id=tokenizer.pad_token_id)
    LlamaModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


VIEWS_LADDER_EXTRA = """
[[rungs]]
name = "hybrid"
kind = "hybrid"
inputs = ["bm25", "baseline"]

[[rungs]]
name = "voyage"
kind = "dense"
encoder = { backend = "voyage", model = "voyage-3-large" }
"""


@pytest.fixture
def views_leaderboard(tmp_path, bow_backend, monkeypatch):
    """A leaderboard of real records for views and reports: the tiny goldset with an out-of-domain
    companion, rungs baseline (bag of words), bm25, hybrid, and voyage (skipped: no key)."""
    from harness.cache import Cache
    from harness.ladder.plan import run_ladder
    from harness.ladder.schema import load_ladder
    from harness.records import Leaderboard

    monkeypatch.delenv("VOYAGE_API_KEY", raising=False)
    write_goldset(tmp_path / "ood", qrels={"test": TINY_QRELS["test"]})
    goldset = write_goldset(tmp_path / "tiny", manifest='ood = ["../ood"]\n')
    ladder = load_ladder(write_ladder(tmp_path, goldset, VIEWS_LADDER_EXTRA))
    run_ladder(ladder, leaderboard=Leaderboard(tmp_path / "lb"), cache=Cache(tmp_path / "cache"))
    return tmp_path / "lb"


@pytest.fixture
def sleeps(monkeypatch) -> list[float]:
    """Backoff delays the HTTP retry loop asked for, recorded instead of waited (modules that test
    API backends use it for every test: ``pytestmark = pytest.mark.usefixtures("sleeps")``)."""
    from backends import http_retry

    slept: list[float] = []
    monkeypatch.setattr(http_retry, "sleep", slept.append)
    return slept
