"""The leakage guard: training data that would make the evaluation optimistic.

A train query that repeats an evaluation query, or a train positive that is a document judged for an
evaluation query, lets a model memorise the test. :func:`check_leakage` runs before every training
job (``bench train``, the ``finetune`` rung, adapters) and stops it unless the policy allows.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from harness.errors import GoldsetError
from harness.goldset import Goldset
from harness.training import Pair


def normalise(text: str) -> str:
    """Case-, accent- and punctuation-insensitive form of a query, for the leakage check."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return " ".join(re.findall(r"[a-z0-9]+", text))


@dataclass
class Leakage:
    """Training data that overlaps the evaluation: counts go into the record; ids are listed."""

    same_queries: list[str] = field(default_factory=list)  # eval query ids whose text a train query repeats
    judged_positives: list[str] = field(default_factory=list)  # eval-judged doc ids used as train positives

    @property
    def count(self) -> int:
        return len(self.same_queries) + len(self.judged_positives)

    def describe(self) -> str:
        parts = []
        if self.same_queries:
            parts.append(f"{len(self.same_queries)} evaluation queries repeated in training (e.g. {', '.join(self.same_queries[:3])})")
        if self.judged_positives:
            parts.append(f"{len(self.judged_positives)} documents judged for evaluation queries used as training positives (e.g. {', '.join(self.judged_positives[:3])})")
        return "; ".join(parts)


def leakage(pairs: list[Pair], goldset: Goldset, eval_splits: list[str]) -> Leakage:
    """Train queries equal (after :func:`normalise`) to an eval query, and train positives that are
    judged-relevant documents of an eval query."""
    train_queries = {normalise(p.query) for p in pairs}
    train_positive_ids = {p.positive_id for p in pairs if p.positive_id}
    train_positive_texts = {p.positive for p in pairs if not p.positive_id}
    found = Leakage()
    for split in eval_splits:
        for qid, docs in goldset.split_qrels(split).items():
            if normalise(goldset.queries[qid]) in train_queries:
                found.same_queries.append(qid)
            for d, grade in docs.items():
                if grade > 0 and (d in train_positive_ids or goldset.document_text(goldset.corpus[d]) in train_positive_texts):
                    found.judged_positives.append(d)
    found.judged_positives = sorted(set(found.judged_positives))
    return found


def check_leakage(pairs: list[Pair], goldset: Goldset, eval_splits: list[str], policy: str) -> Leakage:
    """:func:`leakage`, raising a :class:`GoldsetError` when any is found and ``policy`` is "stop"."""
    found = leakage(pairs, goldset, [s for s in eval_splits if s in goldset.qrels])
    if found.count and policy == "stop":
        raise GoldsetError(
            f"training data leaks into evaluation on '{goldset.name}': {found.describe()}; remove them, "
            "or set on_leakage = \"drop\" (train without those pairs) or \"allow\" (train anyway; the count is recorded)"
        )
    return found


def without_leaks(pairs: list[Pair], goldset: Goldset, found: Leakage) -> list[Pair]:
    """The pairs that neither repeat an eval query nor use an eval-judged document as their positive."""
    bad_queries = {normalise(goldset.queries[q]) for q in found.same_queries}
    bad_docs = set(found.judged_positives)
    bad_texts = {goldset.document_text(goldset.corpus[d]) for d in bad_docs}
    return [p for p in pairs if normalise(p.query) not in bad_queries and p.positive_id not in bad_docs and p.positive not in bad_texts]
