"""Backends: BM25 through bm25s, and the sentence-transformers encoder (model resolution fast, encoding slow)."""

from __future__ import annotations

import numpy as np
import pytest

from backends import sentence_transformers as st_backend
from backends.bm25 import BM25Retriever
from conftest import TINY_DOCS, TINY_QUERIES
from harness.errors import ConfigError, ModelUnavailable

CORPUS = {d: f"{t} {x}" for d, (t, x) in TINY_DOCS.items()}


def test_bm25_ranks_the_matching_document_first():
    bm25 = BM25Retriever()
    bm25.index(CORPUS)
    run = bm25.search(TINY_QUERIES, top_k=3)
    assert {q: max(hits, key=hits.get) for q, hits in run.items()} == {f"q{i}": f"d{i}" for i in range(1, 7)}
    assert all(len(h) <= 3 for h in run.values())


def test_bm25_stems_and_drops_zero_score_padding():
    bm25 = BM25Retriever()
    bm25.index(CORPUS)
    run = bm25.search({"a": "swarming colonies", "b": "zzz unknownword"}, top_k=5)
    assert next(iter(run["a"])) == "d2"  # "swarming" stems to the document's "swarm"
    assert run["b"] == {}
    assert BM25Retriever(stemmer=None, stopwords=None)


def test_bm25_unknown_stemmer_lists_choices():
    with pytest.raises(ConfigError, match="unknown stemmer language 'klingon'.*english"):
        BM25Retriever(stemmer="klingon")


def test_resolve_model_paths_and_errors(tmp_path):
    assert st_backend.resolve_model("sentence-transformers/all-MiniLM-L6-v2") == st_backend.packaged_minilm()
    with pytest.raises(ConfigError, match="does not exist"):
        st_backend.resolve_model(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="has no modules.json or config.json"):
        st_backend.resolve_model(str(tmp_path / "empty"))


def test_hub_ids_go_through_snapshot_download(monkeypatch, tmp_path):
    seen = []
    monkeypatch.setattr("huggingface_hub.snapshot_download", lambda model_id: seen.append(model_id) or str(tmp_path))
    assert st_backend.resolve_model("BAAI/bge-small-en-v1.5") == tmp_path
    assert seen == ["BAAI/bge-small-en-v1.5"]


def test_offline_hub_model_is_one_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelUnavailable, match="not in the local Hugging Face cache and the hub cannot be reached"):
        st_backend.resolve_model("some-org/some-uncached-model")


def test_fingerprint_follows_weights_and_options(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "weights.bin").write_bytes(b"abc")
    a = st_backend.SentenceTransformerEncoder(str(folder)).fingerprint
    assert a == st_backend.SentenceTransformerEncoder(str(folder)).fingerprint
    assert a != st_backend.SentenceTransformerEncoder(str(folder), query_prompt="query: ").fingerprint
    assert a == st_backend.SentenceTransformerEncoder(str(folder), batch_size=7).fingerprint  # speed, not vectors
    (folder / "weights.bin").write_bytes(b"abd")
    assert a != st_backend.SentenceTransformerEncoder(str(folder)).fingerprint


@pytest.mark.slow
def test_minilm_encodes_with_prompts_length_and_normalisation():
    enc = st_backend.SentenceTransformerEncoder(query_prompt="query: ", max_length=16)
    q = enc.encode(["how do I treat varroa mites"], input_type="query")
    d = enc.encode(["how do I treat varroa mites"], input_type="document")
    assert q.shape == (1, 384) and q.dtype == np.float32
    assert np.linalg.norm(q) == pytest.approx(1.0, abs=1e-5)
    assert not np.allclose(q, d)  # the query prompt changed the input
    assert enc.model.max_seq_length == 16


@pytest.mark.slow
def test_minilm_token_spans_slice_the_original_text():
    enc = st_backend.SentenceTransformerEncoder()
    text = "Oxalic acid kills varroa mites in broodless colonies."
    spans = enc.token_spans([text])[0]
    assert len(spans) >= 9 and spans == sorted(spans)
    assert "".join(text[a:b] for a, b in spans).lower() == text.replace(" ", "").lower()


@pytest.mark.slow
def test_cross_encoder_reranker_scores_each_pair_in_order():
    """Offline there is no trained cross-encoder: a MiniLM folder gets a fresh (untrained) head,
    which still exercises loading, batching and order."""
    reranker = st_backend.CrossEncoderReranker(str(st_backend.packaged_minilm()), batch_size=2)
    docs = [CORPUS[d] for d in ("d1", "d2", "d3")]
    scores = reranker.rerank(TINY_QUERIES["q1"], docs)
    assert len(scores) == 3 and all(isinstance(s, float) for s in scores)
    assert reranker.rerank(TINY_QUERIES["q1"], docs[::-1]) == pytest.approx(scores[::-1], abs=1e-5)
    assert reranker.rerank("q", []) == [] and reranker.fingerprint.startswith("ce-")


def test_offline_cross_encoder_hub_id_is_unavailable_not_a_crash(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelUnavailable, match="cross-encoder/ms-marco-MiniLM-L6-v2"):
        st_backend.CrossEncoderReranker()


def test_missing_optional_package_names_the_pip_line():
    from harness.errors import MissingDependency, require

    with pytest.raises(MissingDependency, match=r"pip install 'PyStemmer'"):
        require("Stemmer_not_installed_here", package="PyStemmer")
    with pytest.raises(MissingDependency, match=r"pip install 'tunebench\[mteb\]'"):
        require("mteb_not_installed_here", extra="mteb")
