"""Reading BEIR files with line-level diagnostics.

BEIR's own loader (and ``datasets``) stop at the first bad line with a bare ``JSONDecodeError``;
a goldset author needs every problem at once, each with its file and line. So the readers here
collect :class:`Issue` objects instead of raising, and :mod:`harness.data.goldset` decides what is fatal.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from harness.errors import ConfigError

Severity = Literal["error", "warning"]
BOM = b"\xef\xbb\xbf"
MAX_GRADE = 1000
"""Largest relevance grade, either sign. Real scales run 0 to 4 (TREC uses -2 for spam); ranx keeps
grades as C integers (a grade past 2**63 overflowed there) and nDCG-Burges's gain 2**grade - 1 is
finite in float64 only up to 1023."""


@dataclass(frozen=True)
class Issue:
    """One problem found in a goldset file."""

    severity: Severity
    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.message}"


@dataclass
class Diagnostics:
    """Issues collected while reading; errors make a goldset unusable, warnings do not."""

    issues: list[Issue] = field(default_factory=list)

    def error(self, file: Path | str, line: int | None, message: str) -> None:
        self.issues.append(Issue("error", str(file), line, message))

    def warn(self, file: Path | str, line: int | None, message: str) -> None:
        self.issues.append(Issue("warning", str(file), line, message))

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "error"]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "warning"]


def read_lines(path: Path, diag: Diagnostics) -> list[tuple[int, str]]:
    """Return ``(line_number, text)`` for the non-blank lines of a UTF-8 text file.

    A BOM and CRLF endings are tolerated (and reported as warnings, since other tools choke on
    them); bytes that are not UTF-8 are an error on their line.
    """
    raw = path.read_bytes()
    if raw.startswith(BOM):
        diag.warn(path, 1, "file starts with a UTF-8 byte-order mark (BOM); it is ignored, but save the file as UTF-8 without BOM")
        raw = raw[len(BOM):]
    crlf_line = None
    out = []
    for number, chunk in enumerate(raw.split(b"\n"), start=1):
        if chunk.endswith(b"\r"):
            crlf_line = crlf_line or number
            chunk = chunk[:-1]
        try:
            text = chunk.decode("utf-8")
        except UnicodeDecodeError as exc:
            diag.error(path, number, f"bytes that are not UTF-8 at column {exc.start + 1}; re-encode the file as UTF-8")
            continue
        if text.strip():
            out.append((number, text))
    if crlf_line:
        diag.warn(path, crlf_line, "Windows (CRLF) line endings; they are read correctly, but LF is the BEIR convention")
    return out


def _string_id(value: object) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (str, int)):
        return str(value)
    return None


def read_json_objects(path: Path, shape: str, diag: Diagnostics | None = None) -> list[tuple[int, dict]]:
    """``(line number, object)`` for each non-blank line of a JSONL file: the one JSONL reader (goldsets,
    pair files, label and click logs). Problems go to ``diag`` with their line, or without one, the
    first is raised as a :class:`~harness.errors.ConfigError`; messages say what each line should
    look like (``shape``)."""
    found = diag if diag is not None else Diagnostics()
    rows = []
    for number, line in read_lines(path, found):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            found.error(path, number, f"malformed JSON ({exc.msg} at column {exc.colno}); each line is {shape}")
            continue
        if not isinstance(obj, dict):
            found.error(path, number, f"not a JSON object; each line is {shape}")
            continue
        rows.append((number, obj))
    if diag is None and found.errors:
        raise ConfigError(str(found.errors[0]))
    return rows


def read_jsonl_records(path: Path, fields: tuple[str, ...], diag: Diagnostics, kind: str) -> dict[str, dict]:
    """Read a BEIR ``corpus.jsonl`` or ``queries.jsonl`` into ``{id: {field: str}}``."""
    records: dict[str, dict] = {}
    first_line: dict[str, int] = {}
    for number, obj in read_json_objects(path, '{"_id": ..., ...}', diag):
        doc_id = _string_id(obj.get("_id"))
        if doc_id is None or not doc_id.strip():
            diag.error(path, number, f"missing or invalid \"_id\" (a non-empty string) for this {kind}")
            continue
        if doc_id in records:
            diag.error(path, number, f"duplicate {kind} id '{doc_id}' (first on line {first_line[doc_id]}); ids must be unique")
            continue
        values = {}
        for name in fields:
            value = obj.get(name, "")
            if not isinstance(value, str):
                diag.error(path, number, f"field \"{name}\" of {kind} '{doc_id}' must be a string, got {type(value).__name__}")
                value = ""
            values[name] = value
        if not any(v.strip() for v in values.values()):
            (diag.error if kind == "query" else diag.warn)(
                path, number, f"{kind} '{doc_id}' has empty text" + ("; it can never be matched on content" if kind == "document" else "; give it text or remove it")
            )
        if kind == "document" and isinstance(obj.get("metadata"), dict):  # BEIR's optional per-document metadata
            values["metadata"] = {str(k): str(v) for k, v in obj["metadata"].items() if isinstance(v, (str, int, float, bool))}
        records[doc_id] = values
        first_line[doc_id] = number
    return records


def read_qrels(path: Path, queries: dict, corpus: dict, diag: Diagnostics) -> dict[str, dict[str, int]]:
    """Read a BEIR qrels TSV (``query-id  corpus-id  score``, header optional) into ``{qid: {doc_id: grade}}``.

    TREC-style four-column rows (``qid 0 doc_id grade``) are accepted too.
    """
    qrels: dict[str, dict[str, int]] = {}
    for number, line in read_lines(path, diag):
        cells = line.split("\t") if "\t" in line else line.split()
        if number == 1 and cells[-1].strip().lower() in {"score", "relevance", "label", "grade"}:
            continue  # header
        if len(cells) == 4:
            cells = [cells[0], cells[2], cells[3]]
        if len(cells) != 3:
            diag.error(path, number, f"expected 3 tab-separated columns (query-id, corpus-id, score), found {len(cells)}")
            continue
        qid, doc_id, grade_text = (c.strip() for c in cells)
        try:
            grade = int(grade_text)
        except ValueError:
            diag.error(path, number, f"relevance grade '{grade_text}' is not an integer; use graded integers such as 0, 1, 2")
            continue
        if abs(grade) > MAX_GRADE:
            diag.error(path, number, f"relevance grade {grade_text} is out of range (-{MAX_GRADE} to {MAX_GRADE}); use small graded integers such as 0, 1, 2")
            continue
        if qid not in queries:
            diag.error(path, number, f"query id '{qid}' is not in queries.jsonl")
            continue
        if doc_id not in corpus:
            diag.error(path, number, f"document id '{doc_id}' is not in corpus.jsonl")
            continue
        judged = qrels.setdefault(qid, {})
        if doc_id in judged and judged[doc_id] != grade:
            diag.error(path, number, f"pair ({qid}, {doc_id}) is judged twice with different grades ({judged[doc_id]} and {grade})")
            continue
        judged[doc_id] = grade
    return qrels
