"""Goldsets from elsewhere than a folder: MTEB retrieval tasks (``mteb:SciFact``).

mteb downloads the task's data from the Hugging Face hub on first use (then reads the local
``datasets`` cache). Offline with nothing cached, the user gets one line saying so and what to do.
"""

from __future__ import annotations

import logging

from harness.data.goldset import Document, Goldset, Manifest
from harness.errors import GoldsetError, did_you_mean, require

log = logging.getLogger(__name__)


def _get_task(mteb, name: str):
    try:
        return mteb.get_task(name)
    except (KeyError, ValueError) as exc:
        names = [t.metadata.name for t in mteb.get_tasks(task_types=["Retrieval"])]
        raise GoldsetError(f"'mteb:{name}' is not an MTEB task.{did_you_mean(name, names)}") from exc


def load_mteb_goldset(name: str) -> Goldset:
    """Load an MTEB retrieval task's eval splits as a :class:`Goldset` (needs the hub or a warm ``datasets`` cache)."""
    mteb = require("mteb", extra="mteb")
    from mteb.abstasks.retrieval import AbsTaskRetrieval

    task = _get_task(mteb, name)
    if not isinstance(task, AbsTaskRetrieval):
        raise GoldsetError(f"'mteb:{name}' is a {task.metadata.type} task, not a retrieval task; pick a Retrieval task")
    try:
        task.load_data()
    except (OSError, ConnectionError) as exc:
        raise GoldsetError(
            f"'mteb:{name}' needs its data from the Hugging Face hub ({task.metadata.dataset['path']}), which could not be "
            f"reached and is not cached ({type(exc).__name__}); run once with network access, or give a BEIR folder instead"
        ) from exc
    subsets = list(task.dataset)
    subset = "default" if "default" in subsets else subsets[0]
    if len(subsets) > 1:
        log.warning("mteb:%s has subsets %s; using '%s'", name, ", ".join(subsets), subset)
    return _to_goldset(name, task, task.dataset[subset])


def _to_goldset(name: str, task, splits: dict) -> Goldset:
    corpus: dict[str, Document] = {}
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, dict[str, int]]] = {}
    for split, data in splits.items():
        for row in data["corpus"]:
            corpus.setdefault(str(row["id"]), Document(row.get("title") or "", row.get("text") or ""))
        for row in data["queries"]:
            queries.setdefault(str(row["id"]), row["text"])
        qrels[split] = {str(q): {str(d): int(g) for d, g in docs.items()} for q, docs in data["relevant_docs"].items()}
    manifest = Manifest(
        name=name,
        description=task.metadata.description,
        domain=", ".join(task.metadata.domains or []),
        eval_splits=list(task.metadata.eval_splits),
    )
    return Goldset(name=name, source=f"mteb:{name}", manifest=manifest, corpus=corpus, queries=queries, qrels=qrels)
