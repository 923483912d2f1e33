"""``mteb:<Task>`` goldsets through mteb's real loading code, with only the hub calls replaced by local data."""

from __future__ import annotations

import json

import pytest

from conftest import TINY_DOCS, TINY_QRELS, TINY_QUERIES
from harness.data.resolve import resolve_goldset
from harness.errors import GoldsetError

loaders = pytest.importorskip("mteb.abstasks.retrieval_dataset_loaders")


@pytest.fixture
def local_hub(monkeypatch):
    """Serve the tiny goldset in the shape of mteb's hub datasets (configs corpus, queries, default=qrels)."""
    from datasets import Dataset

    tables = {
        "corpus": [{"_id": d, "title": t, "text": x} for d, (t, x) in TINY_DOCS.items()],
        "queries": [{"_id": q, "text": t} for q, t in TINY_QUERIES.items()],
        "default": [{"query-id": q, "corpus-id": d, "score": g} for q, docs in TINY_QRELS["test"].items() for d, g in docs.items()],
    }
    calls = []

    def load_dataset(repo, config, split, **kwargs):
        calls.append((repo, config, split))
        return Dataset.from_list(tables[config])

    monkeypatch.setattr(loaders, "get_dataset_config_names", lambda repo, revision=None: list(tables))
    monkeypatch.setattr(loaders, "get_dataset_split_names", lambda repo, revision=None, config_name=None: ["test"])
    monkeypatch.setattr(loaders, "load_dataset", load_dataset)
    return calls


def test_mteb_task_becomes_a_goldset(local_hub):
    gs = resolve_goldset("mteb:SciFact")
    assert local_hub and all(repo == "mteb/scifact" for repo, _, _ in local_hub)
    assert gs.name == "SciFact" and gs.source == "mteb:SciFact"
    assert gs.splits == ["test"]
    assert gs.qrels["test"] == TINY_QRELS["test"]
    assert gs.document_text(gs.corpus["d1"]) == "Varroa mites Oxalic acid treatment kills varroa mites in broodless colonies during winter."
    assert set(gs.queries) == set(TINY_QRELS["test"])  # mteb keeps only judged queries
    assert json.dumps(gs.manifest.eval_splits) == '["test"]'


def test_offline_hub_is_one_clear_error(monkeypatch):
    def offline(*args, **kwargs):
        raise ConnectionError("Name or service not known")

    monkeypatch.setattr(loaders, "get_dataset_config_names", offline)
    with pytest.raises(GoldsetError, match="needs its data from the Hugging Face hub .mteb/scifact.*BEIR folder"):
        resolve_goldset("mteb:SciFact")


def test_non_retrieval_task_is_refused():
    with pytest.raises(GoldsetError, match="not a retrieval task"):
        resolve_goldset("mteb:Banking77Classification")
