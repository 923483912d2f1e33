"""Training pairs: (query, positive, negatives) from a goldset split or a pair file, and their fingerprint.

A pair file is JSONL (as :func:`harness.pairs.pairset.write_pairs` writes it) or CSV; every
error names the file and line.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from harness.data.beir import read_json_objects
from harness.data.goldset import Goldset
from harness.errors import ConfigError
from harness.protocols import Pair


def goldset_pairs(goldset: Goldset, split: str) -> list[Pair]:
    """One pair per (query, judged-relevant document) of ``split``."""
    judged = goldset.split_qrels(split)
    return [
        Pair(goldset.queries[q], goldset.document_text(goldset.corpus[d]), source=f"{goldset.name}/{split}", query_id=q, positive_id=d)
        for q, docs in judged.items()
        for d, grade in docs.items()
        if grade > 0
    ]


def read_pair_file(path: Path) -> list[Pair]:
    """JSONL (``{"query", "positive", "negatives"?}``; also ``anchor``/``text``; optional ``query_id``,
    ``positive_id``, ``source`` and ``generated_from``, as :func:`harness.pairs.pairset.write_pairs` writes them)
    or CSV with a header (``query,positive[,negative...]``). Errors name the file and line."""
    if not path.is_file():
        raise ConfigError(f"pair file '{path}' does not exist")
    if path.suffix.lower() == ".csv":
        return _read_csv_pairs(path)
    pairs = []
    for number, row in read_json_objects(path, '{"query": ..., "positive": ...}'):
        query, positive = row.get("query", row.get("anchor")), row.get("positive", row.get("text"))
        if not isinstance(query, str) or not isinstance(positive, str) or not query.strip() or not positive.strip():
            raise ConfigError(f"{path}:{number}: needs non-empty string fields \"query\" and \"positive\"")
        negatives = row.get("negatives", [])
        if not isinstance(negatives, list) or not all(isinstance(n, str) for n in negatives):
            raise ConfigError(f"{path}:{number}: \"negatives\" must be a list of strings")
        pairs.append(Pair(query, positive, negatives, **_provenance(row, path, number)))
    return pairs


def _provenance(row: dict, path: Path, number: int) -> dict:
    """The optional id fields of a JSONL pair (the leakage check matches on them)."""
    found = {"source": row.get("source") or str(path), "query_id": row.get("query_id"), "positive_id": row.get("positive_id")}
    if not all(v is None or isinstance(v, str) for v in found.values()):
        raise ConfigError(f"{path}:{number}: \"source\", \"query_id\" and \"positive_id\" must be strings")
    generated_from = row.get("generated_from", [])
    if not isinstance(generated_from, list) or not all(isinstance(d, str) for d in generated_from):
        raise ConfigError(f"{path}:{number}: \"generated_from\" must be a list of document ids")
    return found | {"generated_from": generated_from}


def _read_csv_pairs(path: Path) -> list[Pair]:
    import csv

    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    if not rows or [c.strip().lower() for c in rows[0][:2]] != ["query", "positive"]:
        raise ConfigError(f"{path}:1: the header must start with query,positive (then optional negative columns)")
    pairs = []
    for number, row in enumerate(rows[1:], 2):
        if len(row) < 2 or not row[0].strip() or not row[1].strip():
            raise ConfigError(f"{path}:{number}: needs a query and a positive")
        pairs.append(Pair(row[0], row[1], [c for c in row[2:] if c.strip()], source=str(path)))
    return pairs


def data_fingerprint(pairs: list[Pair]) -> str:
    h = hashlib.sha256()
    for p in pairs:
        h.update(json.dumps([p.query, p.positive, p.negatives, p.source]).encode())
    return h.hexdigest()[:16]
