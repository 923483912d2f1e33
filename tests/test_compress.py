"""The compress rung: each vector form's search against hand-computed scores (harness.retrieval.compression),
the rung's expansion into one rung per form and its records (harness.ladder.compress), and the views and
report that read them. The ladder tests use the 384-wide bag-of-words encoder, so index sizes are MiniLM's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import write_goldset, write_ladder
from harness.errors import ConfigError
from harness.retrieval.compression import Form, form_problem
from harness.retrieval.topk import top_k_dense

LADDER = """
name = "compress"
goldsets = ["{goldset}"]
latency_queries = 3

[[rungs]]
name = "baseline"
kind = "dense"
encoder = {{ backend = "bow", model = "bow", dim = 384 }}

[[rungs]]
name = "bm25"
kind = "bm25"
"""

COMPRESS = """
[[rungs]]
name = "{name}"
kind = "compress"
of = "{of}"
{extra}
"""


def run(tmp_path: Path, *, name="small", of="baseline", extra="", overwrite=False, lb="lb"):
    from harness.cache import Cache
    from harness.ladder.plan import run_ladder
    from harness.ladder.schema import load_ladder
    from harness.records import Leaderboard

    goldset = tmp_path / "tiny" if (tmp_path / "tiny").is_dir() else write_goldset(tmp_path / "tiny")
    ladder = load_ladder(write_ladder(tmp_path, goldset, COMPRESS.format(name=name, of=of, extra=extra), template=LADDER))
    outcomes = run_ladder(ladder, leaderboard=Leaderboard(tmp_path / lb), cache=Cache(tmp_path / "cache"), overwrite=overwrite)
    return {o.record.rung.name: o.record for o in outcomes}


# -- each form, by hand --------------------------------------------------------------------------------


def test_int8_scores_the_float_query_against_the_codes_dequantized():
    """Ranges from the corpus: 0..255 in both dimensions (step 1), so a value's code is itself minus 128,
    and dequantized it is itself again."""
    docs = np.array([[255, 0], [0, 255], [100, 200]], dtype=np.float32)
    form = Form("int8")
    form.index(docs)
    assert form._codes.tolist() == [[127, -128], [-128, 127], [-28, 72]]
    indices, scores = form.search(np.array([[1, 2]], dtype=np.float32), 3)
    assert indices.tolist() == [[1, 2, 0]] and scores.tolist() == [[510, 500, 255]]  # 2 * 255, 100 + 2 * 200, 255


def test_int8_buckets_keep_their_lower_edge():
    """Step 2 (0..510): 3 falls in the bucket of 2, so documents 3 and 2 score alike against a query of 1."""
    docs = np.array([[0.0], [510.0], [3.0], [2.0]], dtype=np.float32)
    form = Form("int8")
    form.index(docs)
    _, scores = form.search(np.array([[1.0]], dtype=np.float32), 4)
    assert scores.tolist() == [[510, 2, 2, 0]]


def test_binary_scores_count_the_agreeing_bits_of_unpadded_dimensions():
    """10 dimensions: two bytes, six padding bits that never count."""
    query = np.array([[1, 1, 1, 1, -1, -1, -1, -1, 1, -1]], dtype=np.float32)
    docs = np.vstack([query[0], query[0] * np.r_[np.ones(9), -1], -query[0]]).astype(np.float32)
    form = Form("binary")
    form.index(docs)
    indices, scores = form.search(query, 3)
    assert indices.tolist() == [[0, 1, 2]] and scores.tolist() == [[10, 9, 0]]
    assert form.bytes_per_doc == 2 and form.ties


def _spread(n: int, dim: int, seed: int = 0) -> np.ndarray:
    vectors = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_rescoring_recovers_the_float_ranking_that_binary_loses():
    docs, queries = _spread(200, 64), _spread(20, 64, seed=1)
    exact, exact_scores = top_k_dense(queries, docs, 10)
    binary = Form("binary")
    binary.index(docs)
    assert (binary.search(queries, 10)[0] != exact).any()  # signs alone misorder these
    rescored = Form("binary-rescore", rescore_multiplier=20, rescore_with="float")  # 200 candidates: every document
    rescored.index(docs)
    indices, scores = rescored.search(queries, 10)
    assert (indices == exact).all() and np.allclose(scores, exact_scores, atol=1e-6)


def test_int8_rescoring_scores_the_float_query_against_dequantized_codes():
    docs = np.array([[255, 0], [0, 255], [100, 200]], dtype=np.float32)
    form = Form("binary-rescore", rescore_multiplier=3)
    form.index(docs)
    indices, scores = form.search(np.array([[1.0, 2.0]], dtype=np.float32), 1)
    # codes are back at their bucket's lower edge (step 1): 255, 0 / 0, 255 / 100, 200 exactly
    assert indices.tolist() == [[1]] and scores.tolist() == [[510.0]]
    assert form.bytes_per_doc == 1 + 2 and form.search_bytes_per_doc == 1


def test_matryoshka_truncates_and_renormalises():
    docs = np.array([[3, 4, 100], [4, 3, -100]], dtype=np.float32)
    form = Form("mrl-2")
    form.index(docs)
    indices, scores = form.search(np.array([[6, 8, -1]], dtype=np.float32), 2)
    assert form.dim == 2 and form.bytes_per_doc == 8
    assert indices.tolist() == [[0, 1]] and np.allclose(scores, [[1.0, 0.96]])
    with pytest.raises(ConfigError, match="keeps 3 dimensions, but the encoder's vectors have 3; pick fewer"):
        Form("mrl-3").index(docs)


def test_a_bad_form_name_is_one_line_with_the_closest():
    assert "Did you mean 'binary'?" in form_problem("binray")
    assert form_problem("mrl-0") and form_problem("mrl-64") is None


# -- the rung in a ladder --------------------------------------------------------------------------------


def test_forms_expand_into_named_rungs_reading_the_of_rungs_vectors(tmp_path, bow_backend):
    records = run(tmp_path)
    forms = ["int8", "binary", "binary-rescore", "mrl-256", "mrl-128"]
    assert list(records) == ["baseline", "bm25", *(f"small-{f}" for f in forms)]
    for form in forms:
        record = records[f"small-{form}"]
        assert record.status == "ok" and record.rung.kind == "compress" and record.rung.config["form"] == form and record.rung.config["forms"] == [form]
        assert record.counts.documents_encoded == 0 and record.counts.documents_cached == 6  # the of rung's cached vectors
        assert record.rung.encoder_fingerprint == records["baseline"].rung.encoder_fingerprint
        assert record.details["of"] == "baseline" and record.latency.n == 3 and record.cost.usd == 0
        assert record.details["encode_docs_per_s"] == records["baseline"].details["encode_docs_per_s"] > 0
        assert record.details["encode_measured"] == "rung 'baseline' (this form reuses its vectors)"


def test_index_bytes_per_document_of_each_form_at_384_dimensions(tmp_path, bow_backend):
    records = run(tmp_path)
    sizes = {name: r.details["index_bytes_per_doc"] for name, r in records.items() if "index_bytes_per_doc" in r.details}
    assert sizes == {"baseline": 1536, "small-int8": 384, "small-binary": 48, "small-binary-rescore": 48 + 384, "small-mrl-256": 1024, "small-mrl-128": 512}
    assert records["small-mrl-256"].details["dim"] == 256 and records["baseline"].details["dim"] == 384
    assert records["small-binary"].details["index_mb"] == round(48 * 6 / 1e6, 3) and records["small-binary"].details["compression"] == 32


def test_rescoring_wins_back_what_binary_loses_on_the_goldset(tmp_path, bow_backend):
    records = run(tmp_path)
    metric = "ndcg@10"
    assert records["small-binary"].metrics[metric] < records["baseline"].metrics[metric]
    assert records["small-binary-rescore"].metrics[metric] == records["baseline"].metrics[metric]


def test_a_form_wider_than_the_model_is_skipped_with_the_reason(tmp_path, bow_backend):
    records = run(tmp_path, extra='forms = ["mrl-512", "int8"]')
    assert records["small-mrl-512"].status == "skipped" and "keeps 512 dimensions, but the encoder's vectors have 384" in records["small-mrl-512"].reason
    assert records["small-int8"].status == "ok"


def test_a_rerun_reports_the_throughput_of_the_run_that_encoded(tmp_path, bow_backend):
    first = run(tmp_path)["baseline"].details
    again = run(tmp_path, overwrite=True)["baseline"]
    assert again.counts.documents_encoded == 0 and again.details["encode_measured"] == "an earlier run (vectors cached)"
    assert again.details["encode_docs_per_s"] == first["encode_docs_per_s"]


@pytest.mark.parametrize(
    ("extra", "of", "message"),
    [
        ('forms = ["int8", "binray"]', "baseline", "unknown form 'binray'. Did you mean 'binary'?"),
        ('forms = ["int8", "int8"]', "baseline", "'int8' is listed twice"),
        ("", "bm25", "compresses rung 'bm25', a bm25 rung; of must name a dense, finetune, merge rung"),
        ("", "baselin", "does not exist"),
    ],
)
def test_bad_compress_rungs_are_one_line_errors(tmp_path, bow_backend, extra, of, message):
    from harness.ladder.schema import load_ladder

    path = write_ladder(tmp_path, write_goldset(tmp_path / "tiny"), COMPRESS.format(name="small", of=of, extra=extra), template=LADDER)
    with pytest.raises(ConfigError, match=message) as caught:
        load_ladder(path)
    assert "\n" not in str(caught.value)


def test_of_a_finetune_rung_means_its_last_round(tmp_path, bow_backend):
    from harness.ladder.schema import load_ladder

    extra = '\n[[rungs]]\nname = "ft"\nkind = "finetune"\ntrain = { mining = { rounds = 1 } }\n' + COMPRESS.format(name="small", of="ft", extra='forms = ["binary"]')
    ladder = load_ladder(write_ladder(tmp_path, write_goldset(tmp_path / "tiny"), extra, template=LADDER))
    assert [r.name for r in ladder.rungs][-3:] == ["ft-r0", "ft-r1", "small-binary"] and ladder.rungs[-1].of == "ft-r1"


def test_a_hostile_rung_name_stays_inside_the_records_folder(tmp_path, bow_backend):
    records = run(tmp_path, name="../../evil", extra='forms = ["int8"]')
    assert records["../../evil-int8"].status == "ok"
    root = (tmp_path / "lb" / "records").resolve()
    files = list(root.rglob("*evil*"))
    assert files and all(root in f.resolve().parents for f in files)
    assert not list(tmp_path.glob("*evil*")) and not list((tmp_path / "lb").glob("*evil*"))


def test_a_finetuned_rounds_encoder_is_rebuilt_from_its_card(tmp_path):
    """A fine-tuned round records its model folder; the form encodes as the card says (prompts, length)."""
    import json
    from types import SimpleNamespace

    from harness.ladder.compress import of_encoder

    folder = tmp_path / "ft"
    folder.mkdir()
    (folder / "tunebench.json").write_text(json.dumps({"base_model": "base", "config": {"query_prompt": "query: ", "max_length": 32}}))
    record = SimpleNamespace(rung=SimpleNamespace(kind="finetune", name="ft-r1"), details={"model": str(folder)})
    config = of_encoder(record)
    assert (config.model, config.query_prompt, config.max_length) == (str(folder), "query: ", 32)
    with pytest.raises(ConfigError, match="records no model folder"):
        of_encoder(SimpleNamespace(rung=SimpleNamespace(kind="merge", name="m"), details={}))


# -- views and report ---------------------------------------------------------------------------------------


def test_the_views_plot_quality_against_index_size(tmp_path, bow_backend):
    from harness.decide.views import panel_figures, panels
    from harness.records import Leaderboard

    run(tmp_path)
    panel = panels(Leaderboard(tmp_path / "lb").latest(), ["baseline", "bm25"])[0]
    figures = {name: (caption, svg) for name, caption, svg in panel_figures(panel)}
    assert "index" in figures and "bytes per document" in figures["index"][0]
    assert all(f"small-{form}" in figures["index"][1] for form in ("int8", "binary", "mrl-128"))
    assert "bm25" not in figures["index"][1]  # no vectors, no index size: not drawn


def test_the_report_can_name_a_compressed_form_as_the_cheapest(tmp_path, bow_backend):
    from harness.decide.report import cheapest_meeting_bar
    from harness.ladder.schema import Decision
    from harness.records import Latency

    records = run(tmp_path)
    fast = Latency(n=1, p50_ms=0.01, p95_ms=0.01, per_query_ms={"q1": 0.01})
    candidates = [r.model_copy(update={"latency": fast}) if r.rung.name in ("baseline", "small-binary", "small-int8") else r for r in records.values()]
    chosen = cheapest_meeting_bar(candidates, Decision(recall_bar=0.5))
    assert chosen.rung.name == "small-binary"  # cost and p50 tie: the smaller index wins
