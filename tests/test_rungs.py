"""Every rung kind on the tiny goldset, through ladder files: fusion, tuning, reranking, chunking,
skipped and failed rungs, latency and cost in the records."""

from __future__ import annotations

import pytest

from conftest import write_goldset, write_ladder
from harness.cache import Cache
from harness.errors import ApiError, MissingCredentials, RunFailure
from harness.ladder.plan import run_ladder
from harness.ladder.schema import load_ladder
from harness.records import Leaderboard
from harness.retrieval import fusion

HYBRID = """
[[rungs]]
name = "hybrid"
kind = "hybrid"
inputs = ["bm25", "baseline"]
method = "rrf"
"""
TUNED = """
[[rungs]]
name = "tuned"
kind = "hybrid"
inputs = ["bm25", "baseline"]
method = "wsum"
tune_on = "train"
"""


def run(tmp_path, goldset, extra="", **kw):
    ladder = load_ladder(write_ladder(tmp_path, goldset, extra))
    outcomes = run_ladder(ladder, leaderboard=Leaderboard(tmp_path / "lb"), cache=Cache(tmp_path / "cache"), **kw)
    return {(o.record.goldset.name, o.record.rung.name): o for o in outcomes}


def test_hybrid_is_ranx_fusion_of_its_inputs_with_summed_latency(tmp_path, tiny_goldset, bow_backend):
    out = run(tmp_path, tiny_goldset, HYBRID)
    board = Leaderboard(tmp_path / "lb")
    bow, bm25, hybrid = (out[("tiny", n)].record for n in ("baseline", "bm25", "hybrid"))
    expected = fusion.fuse([board.load_run(bm25), board.load_run(bow)], method="rrf", norm="min-max", params={"k": 60}, top_k=100)
    assert board.load_run(hybrid) == expected
    assert hybrid.details["params"] == {"k": 60} and hybrid.details["tuned_on"] is None
    assert hybrid.metrics["ndcg@10"] >= max(bow.metrics["ndcg@10"], bm25.metrics["ndcg@10"]) - 1e-9
    for q, ms in hybrid.latency.per_query_ms.items():  # a pipeline: both inputs, then fusion
        assert ms >= bow.latency.per_query_ms[q] + bm25.latency.per_query_ms[q] - 0.01
    assert hybrid.latency.n == 3 and hybrid.latency.p95_ms >= hybrid.latency.p50_ms


def test_tuned_hybrid_is_tuned_on_train_and_keyed_on_its_inputs(tmp_path, tiny_goldset, bow_backend):
    first = run(tmp_path, tiny_goldset, TUNED)
    tuned = first[("tiny", "tuned")].record
    assert tuned.details["tuned_on"]["split"] == "train" and tuned.details["tuned_on"]["goldset"] == "tiny"
    assert sum(tuned.details["params"]["weights"]) == pytest.approx(1.0)
    splits = {p.parent.name for p in (tmp_path / "lb/records/tiny").glob("*/baseline.*.json")}
    assert splits == {"train", "test"}  # the inputs were scored on the tuning split too
    again = run(tmp_path, tiny_goldset, TUNED.replace('"wsum"', '"wmnz"'))
    assert again[("tiny", "baseline")].action == "unchanged" and again[("tiny", "tuned")].action == "ran"


def test_tuning_split_is_never_scored_by_the_tuned_rung(tmp_path, tiny_goldset, bow_backend):
    out = run(tmp_path, tiny_goldset, TUNED, splits=["train", "test"])
    assert out[("tiny", "tuned")].action in ("ran", "skipped")
    records = {(o.record.goldset.split, o.record.status) for o in run(tmp_path, tiny_goldset, TUNED, splits=["train"]).values() if o.record.rung.name == "tuned"}
    assert records == {("train", "skipped")}


def test_ood_companion_reuses_the_in_domain_tuned_parameters(tmp_path, bow_backend):
    from conftest import TINY_DOCS

    write_goldset(tmp_path / "other", docs={**TINY_DOCS, "d7": ("Mice", "Mouse guards keep mice out in winter.")})
    main = write_goldset(tmp_path / "main", manifest='ood = ["../other"]\n')
    out = run(tmp_path, main, TUNED)
    mine, theirs = out[("main", "tuned")].record, out[("other", "tuned")].record
    assert theirs.goldset.ood_of == "main"
    assert theirs.details["tuned_on"]["goldset"] == "main" and theirs.details["params"] == mine.details["params"]


RERANK = """
[[rungs]]
name = "bm25>overlap"
kind = "rerank"
first_stage = "bm25"
depth = 3
reranker = { backend = "overlap" }
"""


def test_rerank_rescores_candidates_once_and_caches_pairs(tmp_path, tiny_goldset, bow_backend):
    out = run(tmp_path, tiny_goldset, RERANK)
    record = out[("tiny", "bm25>overlap")].record
    assert record.metrics["recall@1"] == 1.0
    assert record.details["pairs_scored"] > 0 and record.details["pairs_cached"] == 0
    run_file = Leaderboard(tmp_path / "lb").load_run(record)
    assert all(len(hits) <= 3 for hits in run_file.values())
    assert record.latency is not None and record.latency.n == 3
    again = run(tmp_path, tiny_goldset, RERANK, overwrite=True)[("tiny", "bm25>overlap")].record
    assert again.details["pairs_scored"] == 0 and again.details["pairs_cached"] == record.details["pairs_scored"]
    assert again.metrics == record.metrics and again.latency.per_query_ms.keys() == record.latency.per_query_ms.keys()


CHUNKED = """
[[rungs]]
name = "chunked"
kind = "chunked"
encoder = {{ backend = "bow", model = "bow" }}
chunk_size = 8
overlap = 2
aggregate = "{aggregate}"
"""


@pytest.mark.parametrize("aggregate", ["max", "sum", "first"])
def test_chunked_rung_counts_chunks_and_finds_documents(tmp_path, tiny_goldset, bow_backend, aggregate):
    record = run(tmp_path, tiny_goldset, CHUNKED.format(aggregate=aggregate))[("tiny", "chunked")].record
    words = [10, 17, 13, 12, 12, 10]  # words per tiny document body; windows of 8 advance by 6
    assert record.details["chunks"] == sum(1 + max(0, -(-(n - 8) // 6)) for n in words)
    assert record.details["unit"] == "words" and record.details["aggregate"] == aggregate
    assert record.metrics["recall@3"] == 1.0


class NeedsKey:
    def __init__(self, model, **options):
        raise MissingCredentials("Example needs an API key: set EXAMPLE_API_KEY (the rung is skipped without it)")


class DownApi:
    fingerprint = "down-1"

    def __init__(self, model, **options):
        pass

    def encode(self, texts, *, input_type):
        raise ApiError("Example embed: 7 attempts failed (last: HTTP 500)")


def test_unavailable_rung_is_skipped_with_dependents_and_the_rest_runs(tmp_path, tiny_goldset, bow_backend, monkeypatch):
    from harness import registry

    monkeypatch.setitem(registry.BUILTIN["encoder"], "needs-key", f"{__name__}:NeedsKey")
    extra = '[[rungs]]\nname = "api"\nkind = "dense"\nencoder = { backend = "needs-key" }\n' + HYBRID.replace('"baseline"]', '"api"]')
    out = run(tmp_path, tiny_goldset, extra)
    assert out[("tiny", "api")].action == "skipped" and "EXAMPLE_API_KEY" in out[("tiny", "api")].record.reason
    assert out[("tiny", "hybrid")].action == "skipped" and "needs rung 'api', which was skipped" in out[("tiny", "hybrid")].record.reason
    assert out[("tiny", "baseline")].action == "ran" and out[("tiny", "bm25")].action == "ran"
    assert run(tmp_path, tiny_goldset, extra)[("tiny", "api")].action == "skipped"  # retried, not reused


def test_failing_rung_is_reported_after_the_others_ran(tmp_path, tiny_goldset, bow_backend, monkeypatch):
    from harness import registry

    monkeypatch.setitem(registry.BUILTIN["encoder"], "down", f"{__name__}:DownApi")
    extra = '[[rungs]]\nname = "api"\nkind = "dense"\nencoder = { backend = "down" }\n' + RERANK
    with pytest.raises(RunFailure, match=r"rung 'api' failed: Example embed: 7 attempts failed.*run the same command to resume"):
        run(tmp_path, tiny_goldset, extra)
    names = {p.name.split(".")[0] for p in (tmp_path / "lb/records/tiny/test").glob("*.json")}
    assert names == {"baseline", "bm25", "bm25_overlap~6bf2531aa2"}  # "bm25>overlap" is not a plain name: hashed, so it cannot collide


PAID = """
[prices."test:bow"]
per_million_tokens = 2.0

[[rungs]]
name = "paid"
kind = "dense"
encoder = { backend = "bow-paid", model = "bow" }
"""


def test_paid_rung_records_tokens_and_dollars_and_never_pays_twice(tmp_path, tiny_goldset, bow_backend):
    from bow_encoder import WORD
    from conftest import TINY_DOCS, TINY_QRELS, TINY_QUERIES

    words = sum(len(WORD.findall(f"{t} {x}".lower())) for t, x in TINY_DOCS.values())
    words += sum(len(WORD.findall(TINY_QUERIES[q].lower())) for q in TINY_QRELS["test"])
    record = run(tmp_path, tiny_goldset, PAID)[("tiny", "paid")].record
    assert record.cost.usage == {"test:bow tokens": pytest.approx(words)}
    assert record.cost.usd == pytest.approx(words * 2.0 / 1e6) and record.cost.api_calls > 0
    again = run(tmp_path, tiny_goldset, PAID, overwrite=True)[("tiny", "paid")].record
    assert again.cost.api_calls == 0 and again.cost.usd == pytest.approx(record.cost.usd)
    assert again.latency.per_query_ms.keys() == record.latency.per_query_ms.keys()  # probes timed when paid, reused


def test_bi_encoder_reranker_scores_are_cosines_over_cached_document_vectors(tmp_path, bow_backend):
    from bow_encoder import BagOfWordsEncoder
    from conftest import TINY_DOCS, TINY_QUERIES
    from harness.retrieval.retrievers import EncoderReranker

    cache = Cache(tmp_path)
    reranker = EncoderReranker("bow", cache=cache, encoder_backend="bow")
    docs = [f"{t} {x}" for t, x in TINY_DOCS.values()]
    scores = reranker.rerank(TINY_QUERIES["q3"], docs)
    bow = BagOfWordsEncoder()
    expected = bow.encode(docs, input_type="document") @ bow.encode([TINY_QUERIES["q3"]], input_type="query")[0]
    assert scores == pytest.approx(expected.tolist()) and max(range(6), key=scores.__getitem__) == 2
    reranker.rerank(TINY_QUERIES["q1"], docs)
    assert reranker.encoder.stats.computed == 6 and reranker.encoder.stats.hits == 6  # documents embedded once
    assert reranker.fingerprint == "bi-bow-512"


def test_a_bad_backend_option_stops_the_run_before_any_work(tmp_path, tiny_goldset, bow_backend):
    from harness.errors import ConfigError

    extra = '[[rungs]]\nname = "voyage"\nkind = "dense"\nencoder = { backend = "voyage", max_length = 512 }\n'
    with pytest.raises(ConfigError, match="the voyage encoder has no max_length option"):
        run(tmp_path, tiny_goldset, extra)
    assert not (tmp_path / "lb").exists()
