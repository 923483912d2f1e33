"""Training pairs from what a team already has, written as pair files and as goldsets.

Every builder returns a :class:`PairSet`: the (query, positive[, negatives]) pairs, the same
judgements as a BEIR corpus, queries and qrels, and counts of what was kept and why.
:func:`write_pairs` writes a pair file :func:`harness.data.pair_files.read_pair_file` reads back;
:func:`write_goldset` splits the judgements into train/dev/test at the query level, so no query's
judgements are spread over two splits, and queries sharing a positive document stay together. Builders: :func:`from_labels` here, :func:`from_clicks` in
:mod:`harness.pairs.clicks`, :func:`from_structure` in :mod:`harness.pairs.structure`.

A builder keeps the corpus it was given: every document, judged or not, goes into the goldset, and
the counts say how many no query judges. Unjudged documents are the distractors a real search has to
rank past; a goldset of judged documents only scores higher than the same queries over the whole
corpus (a first user's 72 questions: nDCG@10 0.872 over their 97 judged documents, 0.773 over all 326).
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict

from harness.data.beir import Diagnostics, read_json_objects, read_jsonl_records
from harness.data.goldset import MANIFEST, Document
from harness.errors import ConfigError, GoldsetError, did_you_mean
from harness.protocols import Pair

DEFAULT_SPLITS = {"train": 0.7, "dev": 0.15, "test": 0.15}
Judgements = dict[str, dict[str, int]]  # query id -> document id -> grade (0: judged not relevant)


@dataclass
class PairSet:
    """What a builder made: pairs to train on, the same judgements as a goldset, and counts."""

    pairs: list[Pair]
    corpus: dict[str, Document]
    queries: dict[str, str]
    qrels: Judgements
    counts: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def unjudged(self) -> int:
        """Documents of the corpus that no kept query judges (they stay in the goldset as distractors)."""
        return len(unjudged_documents(self.corpus, self.qrels))


def unjudged_documents(corpus: Mapping[str, Document], qrels: Judgements) -> set[str]:
    """Ids of the corpus's documents that no query of ``qrels`` judges, at any grade."""
    return set(corpus) - {d for docs in qrels.values() for d in docs}


def text_id(prefix: str, text: str) -> str:
    """A stable id for a text that came without one (the same text always gets the same id)."""
    return prefix + hashlib.sha1(text.strip().encode()).hexdigest()[:12]


def document_text(doc: Document) -> str:
    """A document as a pair's positive: its title and text, joined as goldsets do by default."""
    return f"{doc.title} {doc.text}".strip() if doc.title.strip() else doc.text.strip()


def assemble(corpus: Mapping[str, Document], queries: Mapping[str, str], judged: Judgements, source: str, counts: dict[str, int]) -> PairSet:
    """Pairs and goldset parts from judgements: one pair per positive, with the query's grade-0
    documents as its negatives. Queries without a positive are counted and left out; the whole
    ``corpus`` is kept, and ``documents`` and ``unjudged_documents`` count it."""
    kept = {q: docs for q, docs in judged.items() if any(g > 0 for g in docs.values())}
    pairs = []
    for qid, docs in kept.items():
        negatives = [document_text(corpus[d]) for d, g in docs.items() if g <= 0]
        pairs += [Pair(queries[qid], document_text(corpus[d]), negatives, source=source, query_id=qid, positive_id=d) for d, g in docs.items() if g > 0]
    counts |= {
        "queries": len(kept),
        "queries_without_positive": len(judged) - len(kept),
        "positives": len(pairs),
        "negatives": sum(1 for docs in kept.values() for g in docs.values() if g <= 0),
        "documents": len(corpus),
        "unjudged_documents": len(unjudged_documents(corpus, kept)),
    }
    return PairSet(pairs, dict(corpus), {q: queries[q] for q in kept}, kept, counts)


def write_pairs(path: Path | str, pairs: Iterable[Pair]) -> int:
    """Write a JSONL pair file (ids and provenance included when known); return the number of lines."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with path.open("w", encoding="utf-8") as f:
        for p in pairs:
            row = {"query": p.query, "positive": p.positive, "negatives": p.negatives, "source": p.source, "query_id": p.query_id, "positive_id": p.positive_id}
            if p.generated_from:
                row["generated_from"] = p.generated_from
            f.write(json.dumps({k: v for k, v in row.items() if v not in (None, "")}, ensure_ascii=False) + "\n")
            written += 1
    return written


def split_queries(qrels: Judgements, shares: Mapping[str, float], seed: int) -> dict[str, str]:
    """Assign each query with a positive to one split, about ``shares`` of the queries each, shuffled
    by ``seed``. Queries that share a positive document always land in the same split (else a train
    positive would be a judged test document, and no test query could be about unseen documents); each such group is placed whole, in shuffled
    order, into the split furthest below its share, and every split with a share gets a group first.

    Written here because scikit-learn's ``GroupShuffleSplit`` cuts in two only; this makes any
    number of splits in one deterministic pass."""
    groups = _positive_groups(qrels)
    wanted = {s: w for s, w in shares.items() if w > 0}
    if len(groups) < len(wanted):
        raise GoldsetError(
            f"{sum(map(len, groups))} queries with a positive ({len(groups)} group(s) sharing no positive document) cannot fill "
            f"{len(wanted)} splits ({', '.join(wanted)}); add data or drop a split"
        )
    total = sum(map(len, groups))
    targets = {s: total * w / sum(wanted.values()) for s, w in wanted.items()}
    filled = dict.fromkeys(wanted, 0)
    assignment = {}
    for index in np.random.default_rng(seed).permutation(len(groups)):
        empty = [s for s in wanted if not filled[s]]
        split = empty[0] if empty else max(wanted, key=lambda s: targets[s] - filled[s])
        filled[split] += len(groups[index])
        assignment |= dict.fromkeys(groups[index], split)
    return assignment


def _positive_groups(qrels: Judgements) -> list[list[str]]:
    """Queries with a positive, grouped by shared positive documents (connected components of the
    query-document graph, by scipy), each group sorted and the groups in order of their first query."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    queries = sorted(q for q, docs in qrels.items() if any(g > 0 for g in docs.values()))
    docs = {d: i for i, d in enumerate(sorted({d for q in queries for d, g in qrels[q].items() if g > 0}))}
    edges = [(i, len(queries) + docs[d]) for i, q in enumerate(queries) for d, g in qrels[q].items() if g > 0]
    size = len(queries) + len(docs)
    graph = coo_matrix(([1] * len(edges), ([a for a, _ in edges], [b for _, b in edges])), shape=(size, size))
    _, labels = connected_components(graph, directed=False)
    grouped: dict[int, list[str]] = {}
    for i, q in enumerate(queries):
        grouped.setdefault(labels[i], []).append(q)
    return list(grouped.values())


def write_goldset(
    folder: Path | str,
    corpus: Mapping[str, Document],
    queries: Mapping[str, str],
    qrels: Judgements,
    *,
    splits: Mapping[str, float] = DEFAULT_SPLITS,
    seed: int = 42,
    name: str | None = None,
    description: str = "",
    query_origin: str = "",
) -> dict[str, str]:
    """Write a BEIR goldset folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv, goldset.toml) with
    the judged queries split at the query level (:func:`split_queries`); return each query's split.
    ``query_origin`` (the manifest's: human, synthetic, structure) tells the go/no-go report who wrote
    the queries it is judged on. Every document of ``corpus`` is written, judged or not; the
    manifest's description ends with how many documents there are and how many no query judges. A
    goldset already in ``folder`` is replaced: its ``qrels/*.tsv`` go too, so no old split lingers."""
    folder = Path(folder)
    assignment = split_queries(qrels, splits, seed)
    description = f"{description} ({corpus_line(corpus, {q: qrels[q] for q in assignment})})".lstrip()
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    for stale in (folder / "qrels").glob("*.tsv"):
        stale.unlink()
    _write_jsonl(folder / "corpus.jsonl", ({"_id": d, "title": doc.title, "text": doc.text} for d, doc in corpus.items()))
    _write_jsonl(folder / "queries.jsonl", ({"_id": q, "text": queries[q]} for q in assignment))
    names = [s for s in splits if s in assignment.values()]
    for split in names:
        rows = [f"{q}\t{d}\t{g}" for q in assignment if assignment[q] == split for d, g in qrels[q].items()]
        (folder / "qrels" / f"{split}.tsv").write_text("\n".join(["query-id\tcorpus-id\tscore", *rows]) + "\n", encoding="utf-8")
    eval_splits = ["test"] if "test" in names else names[-1:]
    manifest = [f"name = {json.dumps(name or folder.name)}", f"description = {json.dumps(description)}", f"splits = {json.dumps(names)}", f"eval_splits = {json.dumps(eval_splits)}"]
    manifest += [f"query_origin = {json.dumps(query_origin)}"] if query_origin else []
    (folder / MANIFEST).write_text("\n".join(manifest) + "\n", encoding="utf-8")
    return assignment


def corpus_line(corpus: Mapping[str, Document], qrels: Judgements) -> str:
    """``"326 documents, 229 judged by no query"``: what a goldset's corpus holds."""
    return f"{len(corpus)} documents, {len(unjudged_documents(corpus, qrels))} judged by no query"


def _write_jsonl(path: Path, rows: Iterable[dict]) -> None:
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def read_corpus(path: Path | str) -> dict[str, Document]:
    """A BEIR ``corpus.jsonl`` (documents that labels or logs refer to by id)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"corpus file '{path}' does not exist; give a BEIR corpus.jsonl with --corpus")
    diag = Diagnostics()
    records = read_jsonl_records(path, ("title", "text"), diag, "document")
    if diag.errors:
        raise ConfigError(str(diag.errors[0]))
    return {d: Document(r["title"], r["text"]) for d, r in records.items()}


def read_rows(path: Path | str) -> list[tuple[int, dict]]:
    """``(line number, row)`` of a CSV file with a header or a JSONL file; errors name the line."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"'{path}' does not exist")
    if path.suffix.lower() in (".csv", ".tsv"):
        with path.open(encoding="utf-8", newline="") as f:
            return list(enumerate(csv.DictReader(f, dialect="excel-tab" if path.suffix.lower() == ".tsv" else "excel"), 2))
    return read_json_objects(path, "one JSON object")


class LabelColumns(BaseModel):
    """Column (or JSON field) names of a labels file. A row names its document by ``doc_id`` (looked
    up in a corpus) or gives its text in ``document``; without a ``label`` column every row is positive."""

    model_config = ConfigDict(extra="forbid")

    query: str = "query"
    query_id: str = "query_id"
    document: str = "document"
    doc_id: str = "doc_id"
    label: str = "label"


def from_labels(path: Path | str, *, corpus: Mapping[str, Document] | None = None, columns: LabelColumns = LabelColumns(), min_label: float | None = None) -> PairSet:
    """Pairs from labelled (query, document) rows. A label above 0 (and at least ``min_label`` when
    given) makes a positive, graded in the goldset when labels are whole numbers; any other label
    is a negative for that query. A pair judged twice keeps its highest label. Every document of
    ``corpus`` is kept, judged or not; a column the rows hold and ``columns`` does not name is a
    warning (:func:`unused_columns`)."""
    docs: dict[str, Document] = dict(corpus or {})
    queries: dict[str, str] = {}
    judged: Judgements = {}
    rows = read_rows(path)
    for number, row in rows:
        where = f"{path}:{number}"
        qid, query = _labelled_query(row, columns, where)
        doc_id = _labelled_document(row, columns, corpus, docs, where)
        grade = _grade(row.get(columns.label), min_label, where)
        queries.setdefault(qid, query)
        judged.setdefault(qid, {})
        judged[qid][doc_id] = max(grade, judged[qid].get(doc_id, grade))
    counts = {"rows": len(rows), "duplicate_rows": len(rows) - sum(len(d) for d in judged.values())}
    built = assemble(docs, queries, judged, str(path), counts)
    built.warnings = unused_columns(Path(path).name, [row for _, row in rows], columns)
    return built


# What an unused column's name suggests it holds, tried in order (ids before texts: "query_id" is no query).
_COLUMN_HINTS = {
    "query_id": re.compile(r"^(q|query|question|topic)[\W_]?id$|^qid$", re.IGNORECASE),
    "doc_id": re.compile(r"^(d|doc|document|corpus|passage|p|para|paragraph)[\W_]?id$|^(pid|did|docno)$", re.IGNORECASE),
    "label": re.compile(r"grade|label|rel|score|judg|rating|relevan|qrel|gain|target", re.IGNORECASE),
    "query": re.compile(r"query|question|^q$|search", re.IGNORECASE),
    "document": re.compile(r"doc|passage|text|answer|content|body|para", re.IGNORECASE),
}
_COLUMN_WORDS = {"label": "graded labels", "query_id": "query ids", "doc_id": "document ids", "query": "the queries", "document": "the documents' text"}


def column_flag(field_name: str) -> str:
    """The ``bench pairs from-labels`` option that names a :class:`LabelColumns` field."""
    return f"--{field_name.replace('_', '-')}-column"


def unused_columns(name: str, rows: list[dict], columns: LabelColumns) -> list[str]:
    """A warning for each column the rows hold that ``columns`` does not name, with the option that
    would read it. Without the label column every row is a positive (grade 1), which a forgotten
    ``--label-column`` would otherwise hide."""
    present = list(dict.fromkeys(k for row in rows for k in row if isinstance(k, str) and k.strip()))
    named = set(columns.model_dump().values())
    return [_unused_column_warning(name, column, columns, present) for column in present if column not in named]


def _unused_column_warning(name: str, column: str, columns: LabelColumns, present: list[str]) -> str:
    field_name = next((f for f, pattern in _COLUMN_HINTS.items() if pattern.search(column)), None)
    if field_name is None:
        return f"{name}: column '{column}' is not used (the columns read are {_read_columns(columns)})"
    what, current, flag = _COLUMN_WORDS[field_name], getattr(columns, field_name), column_flag(field_name)
    if field_name == "label" and current not in present:
        return f"{name}: column '{column}' is not used, and with no '{current}' column every row counts as a positive (grade 1); to read grades from '{column}', pass {flag} {column}"
    return f"{name}: column '{column}' is not used ({what} come from '{current}'); if it holds {what}, pass {flag} {column}"


def _read_columns(columns: LabelColumns) -> str:
    return ", ".join(f"{column_flag(f)} '{v}'" for f, v in columns.model_dump().items())


def _cell(row: dict, column: str) -> str:
    value = row.get(column)
    return "" if value is None else str(value).strip()


def _labelled_query(row: dict, columns: LabelColumns, where: str) -> tuple[str, str]:
    query = _cell(row, columns.query)
    if not query:
        present = "" if columns.query in row else f"; the columns are: {', '.join(row)}{did_you_mean(columns.query, list(row))}"
        raise ConfigError(f"{where}: no query in column '{columns.query}' (set another with --query-column){present}")
    return _cell(row, columns.query_id) or text_id("q", query), query


def _labelled_document(row: dict, columns: LabelColumns, corpus: Mapping[str, Document] | None, docs: dict[str, Document], where: str) -> str:
    """The row's document id, adding the document to ``docs`` (from the corpus, or its own text)."""
    doc_id, text = _cell(row, columns.doc_id), _cell(row, columns.document)
    if doc_id:
        if corpus is None:
            raise ConfigError(f"{where}: documents are given by id ('{columns.doc_id}'); pass the corpus with --corpus corpus.jsonl")
        if doc_id not in corpus:
            raise ConfigError(f"{where}: document id '{doc_id}' is not in the corpus")
        docs[doc_id] = corpus[doc_id]
        return doc_id
    if not text:
        present = "" if {columns.document, columns.doc_id} & set(row) else f"; the columns are: {', '.join(row)}"
        raise ConfigError(f"{where}: no document: give its text in column '{columns.document}' or its id in '{columns.doc_id}'{present}")
    doc_id = text_id("d", text)
    docs[doc_id] = Document("", text)
    return doc_id


def _grade(value: object, min_label: float | None, where: str) -> int:
    """A label as a qrels grade: 0 for a negative; the label itself when it is a whole number, else 1."""
    if value is None or str(value).strip() == "":
        return 1
    try:
        label = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: label '{value}' is not a number") from None
    if label <= 0 or (min_label is not None and label < min_label):
        return 0
    return int(label) if label.is_integer() else 1
