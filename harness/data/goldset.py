"""Goldsets: a corpus, queries and graded relevance judgements per split, in BEIR layout.

A goldset is a folder::

    corpus.jsonl      {"_id", "title", "text"}
    queries.jsonl     {"_id", "text"}
    qrels/<split>.tsv query-id <TAB> corpus-id <TAB> score
    goldset.toml      optional manifest (see :class:`Manifest`)

:func:`load_goldset` reads and validates one; :func:`harness.data.resolve.resolve_goldset` also
accepts a bundled name (``demo``) or an MTEB task (``mteb:SciFact``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from harness.choices import CorpusScenario
from harness.data.beir import Diagnostics, read_jsonl_records, read_qrels
from harness.errors import GoldsetError
from harness.records import is_plain_name

MANIFEST = "goldset.toml"


class Manifest(BaseModel):
    """The optional ``goldset.toml``: what the goldset is and how to read it."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    description: str = ""
    domain: str = ""
    include_title: bool = Field(True, description="prefix the title to the document text")
    title_separator: str = Field(" ", description="joins title and text; MTEB and BEIR use a space")
    splits: list[str] | None = Field(None, description="splits to load; default: every qrels/*.tsv")
    eval_splits: list[str] = Field(["test"], description="splits `bench run` evaluates by default")
    ood: list[str] = Field([], description="out-of-domain companion goldsets (paths relative to this folder, or names)")
    query_origin: Literal["", "human", "synthetic", "structure"] = Field(
        "", description="who wrote the queries: human (users' searches, annotators), synthetic (an LLM), structure (headings and titles); '' unknown"
    )
    corpus: CorpusScenario = Field(
        "fixed", description="fixed: tomorrow's queries hit the documents a model trains on (a fine-tuning verdict rests on all queries); "
        "growing: new documents keep coming (it rests on the queries about documents the model never trained on)"
    )
    ignore_identical_ids: bool = Field(
        False, description="drop a retrieved document whose id equals the query id (BEIR's default; needed for e.g. ArguAna, Quora)"
    )

    @field_validator("splits", "eval_splits")
    @classmethod
    def _plain_split_names(cls, names: list[str] | None) -> list[str] | None:
        """A split names ``qrels/<split>.tsv`` inside the goldset, never a path (``../../x`` would read elsewhere)."""
        for name in names or []:
            if not is_plain_name(name):
                raise ValueError(f"split {name!r} is not a plain name (letters, digits, '.', '_', '+', '-'; at most 64); "
                                 "name a file qrels/<split>.tsv in this folder")
        return names


@dataclass(frozen=True)
class Document:
    title: str
    text: str
    metadata: dict[str, str] = field(default_factory=dict)  # BEIR's optional "metadata" object, scalar values as text


@dataclass(frozen=True)
class Goldset:
    """A loaded goldset. ``qrels[split][query_id][doc_id] = grade``."""

    name: str
    source: str
    manifest: Manifest
    corpus: dict[str, Document]
    queries: dict[str, str]
    qrels: dict[str, dict[str, dict[str, int]]]
    warnings: list[str] = field(default_factory=list, compare=False)

    @property
    def splits(self) -> list[str]:
        return list(self.qrels)

    def document_text(self, doc: Document) -> str:
        """The text an encoder or BM25 sees for a document (title joined to text per the manifest)."""
        if self.manifest.include_title and doc.title.strip():
            return f"{doc.title}{self.manifest.title_separator}{doc.text}".strip()
        return doc.text.strip()

    def split_qrels(self, split: str) -> dict[str, dict[str, int]]:
        """Judgements of one split, or a :class:`GoldsetError` naming the splits that exist."""
        if split not in self.qrels:
            have = ", ".join(self.qrels) or "none"
            raise GoldsetError(f"goldset '{self.name}' has no split '{split}' (it has: {have}); pick one of those")
        return self.qrels[split]

    def split_queries(self, split: str) -> dict[str, str]:
        """Queries of ``split`` with at least one positive judgement (the ones that are scored)."""
        return {qid: self.queries[qid] for qid, docs in self.split_qrels(split).items() if any(g > 0 for g in docs.values())}

    def scored_qrels(self, split: str) -> dict[str, dict[str, int]]:
        """Judgements of the queries of ``split`` that are scored (those of :meth:`split_queries`)."""
        judged = self.split_qrels(split)
        return {qid: judged[qid] for qid in self.split_queries(split)}

    @cached_property
    def corpus_fingerprint(self) -> str:
        h = hashlib.sha256()
        for doc_id in sorted(self.corpus):
            doc = self.corpus[doc_id]
            h.update(json.dumps([doc_id, self.document_text(doc)] + ([doc.metadata] if doc.metadata else [])).encode())
        return h.hexdigest()

    def split_fingerprint(self, split: str) -> str:
        """Content hash of everything that decides a split's scores: the texts as encoded, the
        split's queries and judgements, and the identical-id rule. Titles, file layout and line
        endings that do not change what is encoded do not change it."""
        h = hashlib.sha256(self.corpus_fingerprint.encode())
        for qid, judged in sorted(self.split_qrels(split).items()):
            h.update(json.dumps([qid, self.queries[qid], sorted(judged.items())]).encode())
        h.update(str(self.manifest.ignore_identical_ids).encode())
        return h.hexdigest()

    @cached_property
    def fingerprint(self) -> str:
        """Content hash of the whole goldset (every split)."""
        h = hashlib.sha256()
        for split in sorted(self.qrels):
            h.update(self.split_fingerprint(split).encode())
        return h.hexdigest()

    def ood_sources(self) -> list[str]:
        """Out-of-domain companions as sources :func:`resolve_goldset` accepts."""
        base = Path(self.source)
        out = []
        for entry in self.manifest.ood:
            candidate = (base / entry) if base.is_dir() else Path(entry)
            out.append(str(candidate.resolve()) if candidate.is_dir() else entry)
        return out


def read_manifest(folder: Path) -> Manifest:
    from harness.config import read_toml, validate

    path = folder / MANIFEST
    if not path.exists():
        return Manifest()
    return validate(Manifest, read_toml(path, GoldsetError), str(path), GoldsetError)


def scan_goldset(folder: Path) -> tuple[Goldset | None, Diagnostics]:
    """Read and check a goldset folder, collecting every problem instead of stopping at the first."""
    diag = Diagnostics()
    folder = Path(folder)
    if not folder.is_dir():
        raise GoldsetError(f"goldset folder '{folder}' does not exist; give a folder with corpus.jsonl, queries.jsonl and qrels/")
    manifest = read_manifest(folder)
    for required in ("corpus.jsonl", "queries.jsonl"):
        if not (folder / required).is_file():
            diag.error(folder / required, None, "file is missing; a goldset needs corpus.jsonl, queries.jsonl and qrels/<split>.tsv")
    if diag.errors:
        return None, diag
    corpus = read_jsonl_records(folder / "corpus.jsonl", ("title", "text"), diag, "document")
    queries = read_jsonl_records(folder / "queries.jsonl", ("text",), diag, "query")
    qrels = _read_splits(folder, manifest, queries, corpus, diag)
    _check_coverage(folder, queries, qrels, diag)
    goldset = Goldset(
        name=manifest.name or folder.name,
        source=str(folder.resolve()),
        manifest=manifest,
        corpus={i: Document(r["title"], r["text"], r.get("metadata", {})) for i, r in corpus.items()},
        queries={i: r["text"] for i, r in queries.items()},
        qrels=qrels,
        warnings=[str(w) for w in diag.warnings],
    )
    return goldset, diag


def _read_splits(folder: Path, manifest: Manifest, queries: dict, corpus: dict, diag: Diagnostics) -> dict:
    qrels_dir = folder / "qrels"
    found = sorted(p.stem for p in qrels_dir.glob("*.tsv")) if qrels_dir.is_dir() else []
    splits = manifest.splits if manifest.splits is not None else found
    if not splits:
        diag.error(qrels_dir, None, "no qrels/<split>.tsv files; add at least qrels/test.tsv")
    qrels = {}
    for split in splits:
        path = qrels_dir / f"{split}.tsv"
        if not path.is_file():
            diag.error(path, None, f"split '{split}' is listed in {MANIFEST} but its qrels file is missing")
            continue
        judged = read_qrels(path, queries, corpus, diag)
        if not any(grade > 0 for docs in judged.values() for grade in docs.values()):
            diag.error(path, None, f"split '{split}' has no query with a positive judgement; it cannot be scored")
        qrels[split] = judged
    return qrels


def _check_coverage(folder: Path, queries: dict, qrels: dict, diag: Diagnostics) -> None:
    seen: dict[str, str] = {}
    for split, judged in qrels.items():
        for qid in judged:
            if qid in seen and seen[qid] != split:
                diag.warn(folder / "qrels", None, f"query '{qid}' is judged in both '{seen[qid]}' and '{split}'; a query belongs in one split")
            seen.setdefault(qid, split)
    unjudged = [qid for qid in queries if qid not in seen]
    if unjudged:
        sample = ", ".join(unjudged[:5]) + (" ..." if len(unjudged) > 5 else "")
        diag.warn(folder / "queries.jsonl", None, f"{len(unjudged)} queries have no judgement in any split and are not evaluated ({sample})")


def load_goldset(folder: Path | str) -> Goldset:
    """Load a goldset folder; raise :class:`GoldsetError` naming the first error if it is invalid."""
    goldset, diag = scan_goldset(Path(folder))
    if diag.errors:
        more = len(diag.errors) - 1
        tail = f" (and {more} more; run: bench goldset validate {folder})" if more else ""
        raise GoldsetError(f"{diag.errors[0]}{tail}")
    assert goldset is not None
    return goldset
