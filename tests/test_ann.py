"""Vector indexes (backends.faiss_index through harness.registry): flat shards against numpy's exact search,
HNSW and IVF recall measured against exact, a dense rung's ``ann`` table end to end on the demo goldset with
the bag-of-words encoder, ``bench validate`` on bad tables, mining through an index, and faiss missing."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from bow_encoder import BagOfWordsEncoder
from conftest import write_goldset
from harness.cache import Cache
from harness.cli import main
from harness.errors import ConfigError, MissingDependency
from harness.ladder.plan import run_ladder
from harness.ladder.schema import load_ladder
from harness.records import Leaderboard
from harness.registry import IndexConfig, build_index
from harness.retrieval.topk import recall_at, to_run, top_k_dense

DEMO = Path(__file__).resolve().parents[1] / "goldsets" / "demo"


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def clustered(n: int, dim: int = 48, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` unit vectors around 20 centres, and 60 queries that are noisy copies of some of them."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((20, dim))
    docs = unit(centres[rng.integers(0, 20, n)] + 0.6 * rng.standard_normal((n, dim)))
    return docs, unit(docs[rng.integers(0, n, 60)] + 0.3 * rng.standard_normal((60, dim)))


def searched(config: dict, docs: np.ndarray, queries: np.ndarray, k: int):
    index = build_index(IndexConfig(**config))
    index.build(docs)
    return index, *index.search(queries, k)


# -- the index itself ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("shard_size", [7, 333, 5000])
def test_flat_shards_merge_to_numpys_exact_search(shard_size):
    """One shard a vector, uneven shards, one shard: the same hits and scores as top_k_dense."""
    docs, queries = clustered(1000)
    exact_idx, exact_scores = top_k_dense(queries, docs, 50)
    index, indices, scores = searched({"kind": "flat", "shard_size": shard_size}, docs, queries, 50)
    assert np.array_equal(indices, exact_idx)
    np.testing.assert_allclose(scores, exact_scores, atol=1e-5)
    assert index.index_bytes() == docs.nbytes


def test_a_corpus_smaller_than_k_gives_every_document():
    docs, queries = clustered(7)
    _, indices, _ = searched({"kind": "flat"}, docs, queries, 100)
    assert indices.shape == (60, 7) and {tuple(sorted(row)) for row in indices} == {tuple(range(7))}


@pytest.mark.parametrize(("config", "least"), [({"kind": "hnsw"}, 0.95), ({"kind": "ivf"}, 0.9)])
def test_hnsw_and_ivf_at_their_defaults_find_nearly_all_of_the_exact_hits(config, least):
    docs, queries = clustered(4000)
    _, exact = top_k_dense(queries, docs, 100)
    _, indices, scores = searched(config, docs, queries, 100)
    assert recall_at(10, indices, scores, exact) >= least and recall_at(100, indices, scores, exact) >= least - 0.05


def test_recall_is_measured_not_assumed():
    """Starved of candidates (M 4, 8 candidates; one IVF list of 64), both miss hits, and recall says so."""
    docs, queries = clustered(4000)
    _, exact = top_k_dense(queries, docs, 100)
    for config in ({"kind": "hnsw", "M": 4, "ef_search": 8}, {"kind": "ivf", "nlist": 64, "nprobe": 1}):
        _, indices, scores = searched(config, docs, queries, 100)
        assert recall_at(100, indices, scores, exact) < 0.8, config


def test_recall_counts_ties_with_the_kth_score_and_no_empty_slots():
    exact = np.array([[0.9, 0.5, 0.5]], dtype=np.float32)
    assert recall_at(3, np.array([[4, 7, 8]]), np.array([[0.9, 0.5, 0.5]]), exact) == 1.0  # other documents tied at 0.5: as good
    assert recall_at(3, np.array([[4, 7, -1]]), np.array([[0.9, 0.5, -3e38]]), exact) == pytest.approx(2 / 3)
    assert recall_at(3, np.array([[4, 7, 8]]), np.array([[0.9, 0.5, 0.4]]), exact) == pytest.approx(2 / 3)
    assert to_run(["q"], ["a", "b"], np.array([[1, -1]]), np.array([[0.5, -3e38]])) == {"q": {"b": 0.5}}


@pytest.mark.parametrize("config", [{"kind": "hnsw", "M": 8}, {"kind": "ivf", "nlist": 16}, {"kind": "flat", "shard_size": 300}])
def test_index_bytes_are_what_faiss_would_write_less_its_headers(config):
    import faiss

    docs, _ = clustered(1000)
    index, _, _ = searched(config, docs, docs[:2], 5)
    if config["kind"] == "flat":
        written = sum(len(faiss.serialize_index(faiss.downcast_index(index._index.at(i)))) for i in range(index._index.count()))
    else:
        written = len(faiss.serialize_index(index._index))
    assert 0 <= written - index.index_bytes() < 2048


def test_ivf_reports_the_lists_it_chose_and_refuses_more_lists_than_vectors():
    docs, _ = clustered(2000)
    index, _, _ = searched({"kind": "ivf"}, docs, docs[:1], 5)
    assert index.describe() == {"backend": "faiss", "kind": "ivf", "params": {"nlist": 51, "nprobe": 32, "seed": 0}}  # 2000 // 39 < 4 sqrt(2000)
    with pytest.raises(ConfigError, match=r"nlist = 50 is more lists than the corpus has vectors \(20\); use at most 1"):
        searched({"kind": "ivf", "nlist": 50}, docs[:20], docs[:1], 5)


def test_without_faiss_the_index_names_the_pip_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)  # import faiss now raises ImportError
    with pytest.raises(MissingDependency) as caught:
        build_index(IndexConfig(kind="hnsw"))
    assert "pip install 'tunebench[faiss]'" in str(caught.value) and "\n" not in str(caught.value)


# -- a dense rung's ann table ----------------------------------------------------------------------------------

LADDER = """
name = "ann"
goldsets = ["{goldset}"]
latency_queries = 3

[[rungs]]
name = "exact"
kind = "dense"
encoder = {{ backend = "bow", model = "bow", dim = 384 }}
"""
ANN = """
[[rungs]]
name = "{name}"
kind = "dense"
encoder = {{ backend = "bow", model = "bow", dim = 384 }}
ann = {ann}
"""


def run(tmp_path, goldset, *rungs: tuple[str, str]):
    path = tmp_path / "ladder.toml"
    path.write_text(LADDER.format(goldset=goldset) + "".join(ANN.format(name=name, ann=ann) for name, ann in rungs))
    outcomes = run_ladder(load_ladder(path), leaderboard=Leaderboard(tmp_path / "lb"), cache=Cache(tmp_path / "cache"), splits=["test"], ood=False)
    return {o.record.rung.name: o.record for o in outcomes}


def test_dense_rungs_search_through_the_index_and_record_it_with_its_recall(tmp_path, bow_backend):
    records = run(tmp_path, DEMO, ("flat", '{ kind = "flat", shard_size = 50 }'), ("starved", '{ kind = "hnsw", M = 4, ef_search = 8 }'))
    board = Leaderboard(tmp_path / "lb")
    exact, flat, starved = records["exact"], records["flat"], records["starved"]
    assert "ann" not in exact.details and "ann" not in exact.rung.config  # an exact rung's config (and key) as before ann existed
    assert flat.details["ann"] | {"build_s": 0} == {
        "backend": "faiss", "kind": "flat", "params": {"shard_size": 50}, "index_bytes": 312 * 384 * 4, "build_s": 0,
        "recall": [{"k": 10, "recall": 1.0}, {"k": 100, "recall": 1.0}],
    }
    assert flat.metrics == exact.metrics and board.load_run(flat).keys() == board.load_run(exact).keys()
    assert flat.details["index_mb"] == exact.details["index_mb"] and flat.latency.n == 3
    recall = {r["k"]: r["recall"] for r in starved.details["ann"]["recall"]}
    assert recall[100] < 0.9 and starved.metrics["ndcg@10"] < exact.metrics["ndcg@10"]  # the graph missed hits, and the record says how many
    assert starved.details["ann"]["index_bytes"] > 312 * 384 * 4  # vectors and the graph's links
    assert starved.rung.config["ann"] == {"backend": "faiss", "kind": "hnsw", "M": 4, "ef_construction": 40, "ef_search": 8}


def test_an_ivf_rung_that_finds_fewer_than_top_k_records_what_it_found(tmp_path, bow_backend):
    """Six documents in six lists, one list scanned: hits are missing (faiss's -1), not invented."""
    records = run(tmp_path, write_goldset(tmp_path / "tiny"), ("ivf", '{ kind = "ivf", nlist = 6, nprobe = 1 }'))
    hits = Leaderboard(tmp_path / "lb").load_run(records["ivf"])
    assert all(1 <= len(docs) < 6 for docs in hits.values()) and sum(map(len, hits.values())) == 4  # one document a query
    recall = {r["k"]: r["recall"] for r in records["ivf"].details["ann"]["recall"]}
    assert recall == {6: pytest.approx(1 / 6, abs=1e-6)} and records["ivf"].details["ann"]["params"] == {"nlist": 6, "nprobe": 1, "seed": 0}


@pytest.mark.parametrize(("ann", "fragments"), [
    ('{ kind = "hnsw", efsearch = 64 }', ["'rungs[1].ann.efsearch' (rung 'fast')", "Did you mean 'ef_search'?"]),
    ('{ kind = "hnsw", nprobe = 8 }', ["'nprobe' is an option of kind 'ivf', not 'hnsw'"]),
    ('{ kind = "hsnw" }', ["'rungs[1].ann.kind' (rung 'fast')", "'flat', 'hnsw' or 'ivf'"]),
    ('{ kind = "flat", backend = "fiass" }', ["unknown index backend 'fiass'", "Did you mean 'faiss'?"]),
])
def test_validate_rejects_a_bad_ann_table_in_one_line(tmp_path, tiny_goldset, bow_backend, ann, fragments):
    path = tmp_path / "ladder.toml"
    path.write_text(LADDER.format(goldset=tiny_goldset) + ANN.format(name="fast", ann=ann))
    result = CliRunner().invoke(main, ["validate", str(path), "--offline"])
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: "), result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_without_faiss_an_ann_rung_is_skipped_with_the_pip_line_and_the_rest_runs(tmp_path, bow_backend, monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)
    records = run(tmp_path, write_goldset(tmp_path / "tiny"), ("fast", '{ kind = "hnsw" }'))
    assert records["exact"].status == "ok"
    assert records["fast"].status == "skipped" and "pip install 'tunebench[faiss]'" in records["fast"].reason


# -- mining through an index ---------------------------------------------------------------------------------


def mined(tmp_path, index: str):
    from harness.training.job import mine, plan_job
    from harness.training.schema import TrainConfig

    config = TrainConfig(goldset=str(DEMO), eval_split="", mining={"index": index, "negatives": 3})
    return mine(plan_job(config, models_root=tmp_path / "models"), Path("bow"), Cache(tmp_path / "cache"))


def test_mining_through_a_flat_index_finds_the_exact_negatives(tmp_path, monkeypatch):
    from harness import registry

    monkeypatch.setitem(registry.BUILTIN["encoder"], "sentence-transformers", "bow_encoder:BagOfWordsEncoder")
    encoder = BagOfWordsEncoder()

    def scored(pairs):  # documents tied with a negative are as hard: each pair's negatives by their scores
        return [(p.query, p.positive, (encoder.encode(p.negatives, input_type="document") @ encoder.encode([p.query], input_type="query")[0]).round(5).tolist()) for p in pairs]

    (exact, k), (flat, k_flat) = mined(tmp_path, "exact"), mined(tmp_path, "flat")
    assert k == k_flat == 3 and list(flat) == list(exact) == ["demo/train"] and len(exact["demo/train"]) > 300
    assert scored(flat["demo/train"]) == scored(exact["demo/train"])
    assert sum(f.negatives == e.negatives for f, e in zip(flat["demo/train"], exact["demo/train"])) >= len(exact["demo/train"]) - 3


def test_the_mining_index_is_in_the_training_fingerprint_only_when_not_exact():
    """Exact mining dumps as before the key existed: models trained then keep their folders."""
    from harness.training.schema import TrainConfig

    assert "index" not in TrainConfig().model_dump()["mining"]
    assert TrainConfig(mining={"index": "hnsw"}).fingerprint("data") != TrainConfig().fingerprint("data")
