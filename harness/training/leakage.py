"""The leakage guard: training data that overlaps the evaluation, in two families that mean different things.

**Query leaks** let a model see the exam questions: a train query that repeats an evaluation query
(after :func:`normalise`), or one that nearly repeats it (cosine of character 3-5-gram vectors at or
above a threshold: a reworded or negated claim, a typo). Scores with them are optimistic for any
deployment; ``on_leakage`` stops the job, drops those pairs or allows them (counted).

**Document overlap** is training on the documents evaluation queries are judged on: a train positive
judged relevant for an evaluation query (matched by id, or by text when the pair has no id), or a
synthetic query written from such a document (a pair's ``generated_from`` ids, or the positive of a
pair whose ``source`` starts with "synthetic"). For a team that fine-tunes on its own corpus, that is
the deployment, not a leak: next month's queries hit the very documents it trained on. ``on_overlap``
keeps those pairs (the default) or drops them, and every fine-tuned record scores the queries about
documents it trained on ("seen") and the others ("unseen") apart (:mod:`harness.training.seen`).

:func:`guard` runs before every training job (``bench train``, the ``finetune`` rung, adapters);
``bench check-leakage`` reports the same findings with every offending id.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from harness.choices import LeakagePolicy, OverlapPolicy, values
from harness.data.goldset import Goldset
from harness.errors import ConfigError, GoldsetError
from harness.protocols import Pair

log = logging.getLogger(__name__)


def normalise(text: str) -> str:
    """Case-, accent- and punctuation-insensitive form of a query, for the leakage check."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return " ".join(re.findall(r"[a-z0-9]+", text))


NEAR_DUPLICATE = 0.85  # SciFact's negated and reworded claims score 0.8-1.0 (every such test/train pair cites the same document); 99.9% of its pairs score under 0.5
QUERY_KINDS = {
    "same_queries": "evaluation queries repeated in training",
    "near_queries": "evaluation queries nearly repeated in training",
}
DOCUMENT_KINDS = {
    "judged_positives": "documents judged for evaluation queries used as training positives",
    "synthetic_origins": "documents judged for evaluation queries that synthetic training queries were written from",
}
KINDS = QUERY_KINDS | DOCUMENT_KINDS


@dataclass(frozen=True)
class Evidence:
    """One offending overlap: which evaluation query or document, and the training data that hit it."""

    kind: str  # a key of KINDS
    eval_id: str  # an evaluation query id (query kinds) or a judged document id
    train: str  # the training query that repeats it, or the id (else the text) of the training query that uses it
    similarity: float = 1.0


@dataclass
class Leakage:
    """Training data that overlaps the evaluation: counts go into the record; ids are listed."""

    same_queries: list[str] = field(default_factory=list)  # eval query ids whose text a train query repeats
    near_queries: list[str] = field(default_factory=list)  # eval query ids a train query nearly repeats
    judged_positives: list[str] = field(default_factory=list)  # eval-judged doc ids used as train positives
    synthetic_origins: list[str] = field(default_factory=list)  # eval-judged doc ids synthetic train queries came from
    evidence: list[Evidence] = field(default_factory=list)

    @property
    def query_leaks(self) -> int:
        """Evaluation queries that training repeats or nearly repeats."""
        return sum(len(getattr(self, kind)) for kind in QUERY_KINDS)

    @property
    def overlap(self) -> int:
        """Evaluation-judged documents that training uses (as positives, or as synthetic queries' sources), each once."""
        return len(set(self.judged_positives) | set(self.synthetic_origins))

    def describe(self, kinds: dict[str, str] = KINDS) -> str:
        found = [(kind, getattr(self, kind)) for kind in kinds if getattr(self, kind)]
        return "; ".join(f"{len(ids)} {kinds[kind]} (e.g. {', '.join(ids[:3])})" for kind, ids in found)

    def as_dict(self) -> dict:
        return {kind: getattr(self, kind) for kind in KINDS} | {"query_leaks": self.query_leaks, "overlap": self.overlap, "evidence": [asdict(e) for e in self.evidence]}

    def counts(self, on_leakage: str, on_overlap: str) -> dict[str, int | str]:
        """What records and cards keep: both counts, each kind's, and the policies applied."""
        return {"query_leaks": self.query_leaks, "overlap": self.overlap, "on_leakage": on_leakage, "on_overlap": on_overlap} | {kind: len(getattr(self, kind)) for kind in KINDS}

    def add(self, kind: str, eval_id: str, train: str, similarity: float = 1.0) -> None:
        ids = getattr(self, kind)
        if eval_id not in ids:
            ids.append(eval_id)
        self.evidence.append(Evidence(kind, eval_id, train, round(float(similarity), 4)))


def leakage(pairs: list[Pair], goldset: Goldset, eval_splits: list[str], *, near: float | None = NEAR_DUPLICATE) -> Leakage:
    """Every overlap of ``pairs`` with the judgements of ``eval_splits`` (near-duplicates only when ``near`` is set)."""
    found = Leakage()
    eval_queries = {qid: goldset.queries[qid] for split in eval_splits for qid in goldset.split_qrels(split)}
    _query_leaks(pairs, eval_queries, near, found)
    judged = {d for split in eval_splits for docs in goldset.split_qrels(split).values() for d, grade in docs.items() if grade > 0}
    _document_leaks(pairs, goldset, judged, found)
    found.judged_positives.sort()
    found.synthetic_origins.sort()
    return found


def _query_leaks(pairs: list[Pair], eval_queries: dict[str, str], near: float | None, found: Leakage) -> None:
    train = {normalise(p.query): p.query for p in pairs}
    for qid, text in eval_queries.items():
        if normalise(text) in train:
            found.add("same_queries", qid, train[normalise(text)])
    if near is None:
        return
    rest = [q for q in eval_queries if q not in found.same_queries]
    candidates = list(train.values())
    for i, j, similarity in near_duplicates([eval_queries[q] for q in rest], candidates, near):
        found.add("near_queries", rest[i], candidates[j], similarity)


def _document_leaks(pairs: list[Pair], goldset: Goldset, judged: set[str], found: Leakage) -> None:
    by_text = {goldset.document_text(goldset.corpus[d]): d for d in judged}
    for p in pairs:
        who = p.query_id or p.query
        for origin in origins(p):
            if origin in judged:
                found.add("synthetic_origins", origin, who)
        doc = p.positive_id if p.positive_id else by_text.get(p.positive)
        if doc in judged and doc not in origins(p):
            found.add("judged_positives", doc, who)


def origins(pair: Pair) -> list[str]:
    """Ids of the documents a synthetic pair's query was written from (none for other pairs)."""
    if pair.generated_from:
        return pair.generated_from
    return [pair.positive_id] if pair.positive_id and pair.source.startswith("synthetic") else []


def char_ngram_vectors(texts: Sequence[str]):
    """Unit-length sparse vectors of word-boundary character 3-5-grams of :func:`normalise`'d text,
    sublinear counts and no IDF (so one text's vector does not depend on the others): the similarity
    behind every near-duplicate check (here, and in :mod:`harness.pairs.filters`)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), preprocessor=normalise, sublinear_tf=True, use_idf=False).fit_transform(texts)


def near_duplicates(queries: Sequence[str], candidates: Sequence[str], threshold: float, block: int = 512) -> list[tuple[int, int, float]]:
    """``(query index, candidate index, cosine)`` of every pair at or above ``threshold`` (every one, not
    only each query's closest, so a train set without them is free of near duplicates): cosine of
    character 3-5-gram vectors (word-boundary grams of :func:`normalise`'d text, sublinear counts),
    robust to rewording, typos and inflection. No IDF weighting, so a pair's score does not depend on
    the other queries in the sets and one threshold fits small and large sets alike. Compared in blocks of ``block`` queries so memory stays bounded on large sets."""
    if not queries or not candidates:
        return []
    vectors = char_ngram_vectors([*queries, *candidates])
    left, right = vectors[: len(queries)], vectors[len(queries) :].T.tocsc()
    out = []
    for start in range(0, len(queries), block):
        sims = (left[start : start + block] @ right).toarray()
        rows, cols = np.nonzero(sims >= threshold)
        out += [(start + int(i), int(j), float(sims[i, j])) for i, j in zip(rows, cols)]
    return out


def check_leakage(pairs: list[Pair], goldset: Goldset, eval_splits: list[str], policy: str, *, near: float | None = NEAR_DUPLICATE) -> Leakage:
    """:func:`leakage`, raising a :class:`GoldsetError` when a query leaks and ``policy`` is "stop"."""
    found = leakage(pairs, goldset, [s for s in eval_splits if s in goldset.qrels], near=near)
    if found.query_leaks and policy == "stop":
        raise GoldsetError(
            f"training queries leak into evaluation on '{goldset.name}': {found.describe(QUERY_KINDS)}; remove them (bench check-leakage lists every one), "
            "or set on_leakage = \"drop\" (train without those pairs) or \"allow\" (train anyway; the count is recorded)"
        )
    return found


def without(pairs: list[Pair], goldset: Goldset, found: Leakage, *, queries: bool, documents: bool) -> list[Pair]:
    """The pairs that cause none of ``found``'s query leaks (``queries``) and document overlap
    (``documents``): no repeated or nearly repeated eval query; no eval-judged document as positive
    or as a synthetic query's origin."""
    bad_queries = {normalise(e.train) for e in found.evidence if e.kind in QUERY_KINDS} if queries else set()
    bad_docs = set(found.judged_positives) | set(found.synthetic_origins) if documents else set()
    bad_texts = {goldset.document_text(goldset.corpus[d]) for d in bad_docs}

    def clean(p: Pair) -> bool:
        positive_overlaps = p.positive_id in bad_docs or p.positive in bad_texts
        return normalise(p.query) not in bad_queries and not positive_overlaps and not bad_docs.intersection(origins(p))

    return [p for p in pairs if clean(p)]


def guard(
    datasets: dict[str, list[Pair]], goldset: Goldset, eval_splits: list[str], policy: str, overlap: str = "keep"
) -> tuple[dict[str, list[Pair]], Leakage]:
    """Training data (pairs per source) after the leakage check against ``eval_splits``. Query leaks
    by ``policy``: "stop" raises a :class:`GoldsetError`, "drop" trains without those pairs, "allow"
    keeps them. Document overlap by ``overlap``: "keep" or "drop". The findings are returned either
    way, for the record. The one path every training job takes: ``bench train``, the ``finetune``
    rung and adapters."""
    for key, value, choice in (("on_leakage", policy, LeakagePolicy), ("on_overlap", overlap, OverlapPolicy)):
        if value not in values(choice):
            raise ConfigError(f"{key} must be one of {', '.join(values(choice))}, not '{value}'")
    found = check_leakage([p for ps in datasets.values() for p in ps], goldset, eval_splits, policy)
    drop_queries, drop_documents = bool(found.query_leaks) and policy == "drop", bool(found.overlap) and overlap == "drop"
    if drop_queries or drop_documents:
        datasets = {name: without(ps, goldset, found, queries=drop_queries, documents=drop_documents) for name, ps in datasets.items()}
    if drop_queries:
        log.warning("dropped pairs whose queries leak: %s", found.describe(QUERY_KINDS))
    if drop_documents:
        log.warning("dropped pairs about evaluation-judged documents (on_overlap = \"drop\"): %s", found.describe(DOCUMENT_KINDS))
    elif found.overlap:
        log.info("kept pairs about evaluation-judged documents (on_overlap = \"keep\"): %s; records score seen and unseen documents apart", found.describe(DOCUMENT_KINDS))
    return datasets, found
