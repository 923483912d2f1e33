"""Seen and unseen documents: which evaluation queries are about documents a model trained on.

A fine-tuned model is usually deployed on the corpus it was trained on, so it should be judged twice:
on the evaluation queries whose relevant documents it saw in training (what a fixed corpus gets
tomorrow) and on those whose relevant documents it never saw (what new documents, a growing corpus,
get). A query is *seen* when any document judged relevant for it (grade > 0) was a training
positive, or the document a synthetic training query was written from; otherwise *unseen*.

Every trained folder (a fine-tuning round's model, an adapter) holds :data:`TRAINED_FILE`: the ids of
those documents and the fingerprint of the corpus they belong to. Any rung that evaluates such a
folder splits its queries with :func:`seen_subsets`; on another corpus (an out-of-domain companion)
every query is unseen. A model without the file (not trained by tunebench, or before it kept one)
gets no subsets: nobody can say which queries it saw.
"""

from __future__ import annotations

import json
from pathlib import Path

from harness.data.goldset import Goldset
from harness.protocols import Pair
from harness.records import write_atomic
from harness.training.leakage import origins
from harness.training.schema import TRAINED_FILE

SUBSETS = ("seen", "unseen")


def trained_documents(pairs: list[Pair], goldset: Goldset) -> set[str]:
    """Ids of the ``goldset`` documents ``pairs`` trained on: positives (by id, or by text when a pair
    has none) and the sources of synthetic queries. Mined negatives do not count."""
    by_text: dict[str, str] | None = None
    found: set[str] = set()
    for p in pairs:
        found.update(d for d in origins(p) if d in goldset.corpus)
        if p.positive_id in goldset.corpus:
            found.add(p.positive_id)
        elif not p.positive_id:
            if by_text is None:  # built once, only when a pair file has positives without ids
                by_text = {goldset.document_text(doc): d for d, doc in goldset.corpus.items()}
            if p.positive in by_text:
                found.add(by_text[p.positive])
    return found


def write_trained(folder: Path, pairs: list[Pair], goldset: Goldset | None) -> None:
    """Record in ``folder`` which of ``goldset``'s documents ``pairs`` trained on (atomically: a killed
    write leaves the old file or none). Nothing is written without a goldset (pair files alone)."""
    if goldset is None:
        return
    data = {"corpus_fingerprint": goldset.corpus_fingerprint, "goldset": goldset.name, "documents": sorted(trained_documents(pairs, goldset))}
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(folder / TRAINED_FILE, json.dumps(data, indent=0).encode())


def read_trained(folder: Path | str) -> dict | None:
    """The :data:`TRAINED_FILE` of a trained folder, or None (not a folder, or not trained by tunebench)."""
    path = Path(folder) / TRAINED_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (OSError, ValueError):
        return None  # unreadable: the record is kept without subsets rather than failing the rung


def seen_subsets(goldset: Goldset, split: str, folder: Path | str) -> dict[str, list[str]]:
    """``{"seen": [...], "unseen": [...]}``: the query ids of ``split`` whose relevant documents the
    model in ``folder`` did or did not train on (all unseen on another corpus); ``{}`` when ``folder``
    holds no record of what it trained on."""
    trained = read_trained(folder)
    if not trained:
        return {}
    documents = set(trained["documents"]) if trained.get("corpus_fingerprint") == goldset.corpus_fingerprint else set()
    qrels = goldset.scored_qrels(split)
    seen = sorted(q for q, docs in qrels.items() if any(grade > 0 and d in documents for d, grade in docs.items()))
    return {"seen": seen, "unseen": sorted(set(qrels) - set(seen))}
