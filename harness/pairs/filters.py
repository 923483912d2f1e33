"""Filters for generated queries, each dropping a query with a reason the report counts.

In order (cheap first; a dropped query is not looked at again): length in words, copying (the longest
run of words shared with the passage, found by :class:`difflib.SequenceMatcher`), pointing at the
passage ("What is the main finding of the passage?", "according to the text": small models write
these, and no searcher types them, since they have no passage in front of them), exact duplicates
(case, accents and punctuation aside; a paraphrase equal to its original counts), near duplicates
(cosine of character 3-5-gram vectors, as the leakage guard measures it), and round-trip consistency.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

WORD = re.compile(r"\w+")
PASSAGE_REFERENCE = re.compile(
    r"\b(?:(?:the|this|that|above|given|following)\s+(?:passage|text|excerpt|paragraph|article|abstract)|(?:next|last|previous|above)\s+question)\b",
    re.IGNORECASE,
)
REASONS = ("too_short", "too_long", "copies_passage", "refers_to_passage", "exact_duplicate", "near_duplicate", "round_trip")


@dataclass
class Candidate:
    """One generated query, where it came from, and why it was dropped (None: kept)."""

    query: str
    style: str
    sources: tuple[int, ...]  # chunk indices it should find
    passage: str
    original: str | None = None  # the query a paraphrase rewrites
    reason: str | None = None


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def longest_copied_run(query: str, passage: str) -> int:
    """Words in the longest run the query shares, word for word, with the passage."""
    q, p = words(query), words(passage)
    return difflib.SequenceMatcher(None, q, p, autojunk=False).find_longest_match(0, len(q), 0, len(p)).size


def near_duplicates(texts: list[str], threshold: float) -> list[int]:
    """Indices of texts whose cosine with an earlier kept text is >= ``threshold``: a later copy is
    dropped, the first of each group kept. The similarity is the leakage guard's
    (:func:`harness.training.leakage.char_ngram_vectors`), so a query kept here is judged the same way there."""
    from sklearn.neighbors import NearestNeighbors

    from harness.training.leakage import char_ngram_vectors

    if len(texts) < 2:
        return []
    vectors = char_ngram_vectors(texts)
    neighbours = NearestNeighbors(radius=1.0 - threshold + 1e-9, metric="cosine", algorithm="brute").fit(vectors).radius_neighbors(vectors, return_distance=False)
    dropped: set[int] = set()
    for i, near in enumerate(neighbours):
        if any(j < i and j not in dropped for j in near):
            dropped.add(i)
    return sorted(dropped)


def _drop(candidates: list[Candidate], reason: str, test) -> None:
    for c in candidates:
        if c.reason is None and test(c):
            c.reason = reason


def apply_filters(candidates: list[Candidate], config, round_trip=None) -> None:
    """Set each dropped candidate's ``reason``. ``config`` gives the thresholds (a SyntheticConfig);
    ``round_trip`` has ``top_k(queries, k)`` giving each query's top chunk indices (None: no round trip)."""
    from harness.training.leakage import normalise

    _drop(candidates, "too_short", lambda c: len(words(c.query)) < config.min_words)
    _drop(candidates, "too_long", lambda c: len(words(c.query)) > config.max_words)
    _drop(candidates, "copies_passage", lambda c: longest_copied_run(c.query, c.passage) >= config.max_copy_words)
    if not config.passage_references:
        _drop(candidates, "refers_to_passage", lambda c: PASSAGE_REFERENCE.search(c.query) is not None)
    seen = {normalise(c.original) for c in candidates if c.original}
    for c in candidates:
        if c.reason is None:
            key = normalise(c.query)
            c.reason = "exact_duplicate" if key in seen else None
            seen.add(key)
    alive = [c for c in candidates if c.reason is None]
    for i in near_duplicates([c.query for c in alive], config.near_duplicate) if config.near_duplicate < 1 else []:
        alive[i].reason = "near_duplicate"
    if round_trip is not None:
        alive = [c for c in alive if c.reason is None]
        top = round_trip.top_k([c.query for c in alive], config.round_trip_k)
        for c, row in zip(alive, top):
            if not set(c.sources) & set(row.tolist()):
                c.reason = "round_trip"
