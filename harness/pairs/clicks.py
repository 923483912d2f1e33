"""Pairs from search logs: satisfied clicks are positives, skipped results above them negatives.

A log is JSONL, one search session per line::

    {"session": "s1",                       # optional
     "query": "varroa treatment in winter",
     "results": ["d7", {"doc_id": "d3", "position": 2, "title": "...", "text": "..."}],
     "clicks": [{"doc_id": "d3", "dwell": 42.5}]}

``results`` are what was shown, in order (a plain id, or an object whose ``position`` overrides the
order and whose ``title``/``text`` give the document when no corpus is passed). A click's ``dwell``
is the seconds spent on the result. A click is a *satisfied* click, a positive, when its dwell is at
least ``min_dwell`` (30 s is the common cut for a satisfied click, Fox et al. 2005, "Evaluating
implicit measures to improve web search"); shorter clicks are dropped, as neither positive nor
negative. With ``skip_above``, results shown above a satisfied click and not clicked at all are
negatives for that query (Joachims 2002, "Optimizing search engines using clickthrough data").
Sessions of the same query (compared case-, accent- and punctuation-insensitively) are pooled: a
document that is a positive in any session is a positive, never a negative.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from harness.data.goldset import Document
from harness.errors import ConfigError
from harness.pairs.pairset import Judgements, PairSet, assemble, read_rows, text_id
from harness.training.leakage import normalise


@dataclass
class _Pool:
    """Everything the log says, pooled per query."""

    corpus: dict[str, Document]
    queries: dict[str, str] = field(default_factory=dict)  # query id -> first spelling seen
    positives: dict[str, set[str]] = field(default_factory=dict)
    skipped: dict[str, set[str]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(["sessions", "clicks", "short_dwell_clicks", "clicks_not_shown", "skipped_above"], 0))


def from_clicks(path: Path | str, *, corpus: Mapping[str, Document] | None = None, min_dwell: float = 30.0, skip_above: bool = True) -> PairSet:
    """Pairs and judgements from a click log (format above); counts say what was dropped and why.
    The corpus is kept whole (with the results' own texts added): documents no query judges stay as
    distractors, counted as ``unjudged_documents``."""
    pool = _Pool(dict(corpus or {}))
    for number, row in read_rows(path):
        _add_session(pool, row, min_dwell, skip_above, f"{path}:{number}")
    judged: Judgements = {}
    for qid in pool.queries:
        positives = pool.positives.get(qid, set())
        negatives = pool.skipped.get(qid, set()) - positives
        judged[qid] = {d: 1 for d in sorted(positives)} | {d: 0 for d in sorted(negatives)}
    unknown = {d for docs in judged.values() for d in docs if d not in pool.corpus}
    pool.counts["judgements_without_text"] = sum(1 for docs in judged.values() for d in docs if d in unknown)
    judged = {q: {d: g for d, g in docs.items() if d not in unknown} for q, docs in judged.items()}
    return assemble(pool.corpus, pool.queries, judged, str(path), pool.counts)


def _add_session(pool: _Pool, row: dict, min_dwell: float, skip_above: bool, where: str) -> None:
    query = row.get("query")
    if not isinstance(query, str) or not query.strip():
        raise ConfigError(f"{where}: a session needs a non-empty \"query\"")
    qid = text_id("q", normalise(query) or query)
    pool.queries.setdefault(qid, query.strip())
    pool.counts["sessions"] += 1
    shown = _shown(pool, row.get("results", []), where)
    satisfied = set()
    clicked = set()
    for click in _clicks(row.get("clicks", []), where):
        pool.counts["clicks"] += 1
        clicked.add(click["doc_id"])
        if click["doc_id"] not in shown:
            pool.counts["clicks_not_shown"] += 1
        elif click["dwell"] < min_dwell:
            pool.counts["short_dwell_clicks"] += 1
        else:
            satisfied.add(click["doc_id"])
    pool.positives.setdefault(qid, set()).update(satisfied)
    if skip_above and satisfied:
        lowest = max(shown[d] for d in satisfied)
        skipped = {d for d, position in shown.items() if position < lowest and d not in clicked}
        pool.counts["skipped_above"] += len(skipped)
        pool.skipped.setdefault(qid, set()).update(skipped)


def _shown(pool: _Pool, results: object, where: str) -> dict[str, int]:
    """``{doc_id: position}`` of a session's results; texts given inline join the corpus."""
    if not isinstance(results, list):
        raise ConfigError(f"{where}: \"results\" must be a list of document ids or objects")
    shown = {}
    for rank, result in enumerate(results, 1):
        item = {"doc_id": result} if isinstance(result, (str, int)) else result
        if not isinstance(item, dict) or item.get("doc_id") in (None, ""):
            raise ConfigError(f"{where}: result {rank} needs a \"doc_id\"")
        doc_id = str(item["doc_id"])
        shown[doc_id] = _number(item.get("position", rank), "position", where)
        if item.get("text") and doc_id not in pool.corpus:
            pool.corpus[doc_id] = Document(str(item.get("title") or ""), str(item["text"]))
    return shown


def _clicks(clicks: object, where: str) -> list[dict]:
    if not isinstance(clicks, list):
        raise ConfigError(f"{where}: \"clicks\" must be a list of {{\"doc_id\", \"dwell\"}} objects")
    out = []
    for click in clicks:
        if not isinstance(click, dict) or click.get("doc_id") in (None, "") or "dwell" not in click:
            raise ConfigError(f"{where}: each click needs \"doc_id\" and \"dwell\" (seconds on the result)")
        out.append({"doc_id": str(click["doc_id"]), "dwell": _number(click["dwell"], "dwell", where)})
    return out


def _number(value: object, name: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where}: \"{name}\" must be a number, got {value!r}")
    return value
