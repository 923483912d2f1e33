"""Exact dense search in bounded memory equals a full score matrix."""

from __future__ import annotations

import numpy as np
import pytest

from harness.ladder.runner import drop_identical_ids
from harness.retrieval.topk import break_ties, to_run, top_k_chunked, top_k_dense


@pytest.mark.parametrize(("query_block", "doc_block"), [(1, 7), (3, 50), (256, 65_536)])
def test_blocked_search_equals_full_matrix(query_block, doc_block):
    rng = np.random.default_rng(0)
    queries = rng.normal(size=(11, 16)).astype(np.float32)
    docs = rng.normal(size=(203, 16)).astype(np.float32)
    idx, scores = top_k_dense(queries, docs, 10, query_block=query_block, doc_block=doc_block)
    full = queries @ docs.T
    expected = np.argsort(-full, axis=1)[:, :10]
    np.testing.assert_array_equal(idx, expected)
    np.testing.assert_allclose(scores, np.take_along_axis(full, expected, axis=1), rtol=1e-6)


def test_k_larger_than_corpus_returns_everything_sorted():
    docs = np.eye(3, dtype=np.float32)
    idx, scores = top_k_dense(np.array([[0.1, 0.9, 0.5]], dtype=np.float32), docs, 100, doc_block=2)
    assert idx.tolist() == [[1, 2, 0]]
    assert scores.shape == (1, 3)


def test_drop_identical_ids_keeps_top_k_others():
    run = {"a": {"a": 0.9, "b": 0.8, "c": 0.7}, "b": {"a": 0.5, "c": 0.4}}
    assert drop_identical_ids(run, 2) == {"a": {"b": 0.8, "c": 0.7}, "b": {"a": 0.5, "c": 0.4}}
    assert to_run(["a"], ["x", "y"], np.array([[1, 0]]), np.array([[0.5, 0.25]])) == {"a": {"y": 0.5, "x": 0.25}}


@pytest.mark.parametrize("aggregate", ["max", "sum", "first"])
@pytest.mark.parametrize("chunk_block", [5, 64, 65_536])
def test_chunked_search_equals_per_document_aggregate(aggregate, chunk_block):
    rng = np.random.default_rng(1)
    sizes = rng.integers(1, 6, size=40)  # chunks per document
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    chunks = rng.normal(size=(int(sizes.sum()), 8)).astype(np.float32)
    queries = rng.normal(size=(7, 8)).astype(np.float32)
    idx, scores = top_k_chunked(queries, chunks, starts, 10, aggregate=aggregate, query_block=3, chunk_block=chunk_block)
    full = queries @ chunks.T
    reduce = {"max": np.max, "sum": np.sum, "first": lambda a, axis: a[:, 0]}[aggregate]
    per_doc = np.stack([reduce(full[:, s : s + n], axis=1) for s, n in zip(starts, sizes)], axis=1)
    expected = np.argsort(-per_doc, axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(idx, expected)
    np.testing.assert_allclose(scores, np.take_along_axis(per_doc, expected, axis=1), rtol=1e-5)


def test_break_ties_keeps_the_ranking_and_orders_ties_by_id():
    hits = {"c": 0.5, "a": 0.5, "b": 0.5, "z": 0.9, "d": 0.1, "e": 0.1}
    broken = break_ties(hits)
    assert list(broken) == ["z", "a", "b", "c", "d", "e"]
    assert len(set(broken.values())) == len(hits)
    assert all(x > y for x, y in zip(broken.values(), list(broken.values())[1:]))
    assert broken["z"] == 0.9 and 0.1 < broken["c"] < broken["a"] == 0.5 and broken["d"] == 0.1
    assert break_ties({}) == {}
