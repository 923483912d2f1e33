"""Run records: one versioned JSON file per goldset x split x rung, and the leaderboard folder that holds them.

Layout::

    leaderboard/records/<goldset>/<split>/<rung>.<key>.json      the RunRecord
    leaderboard/records/<goldset>/<split>/<rung>.<key>.run.json.gz  its run (top-k per query)

``key`` hashes the split's content fingerprint and the resolved rung (encoder fingerprint included),
so an unchanged rung on an unchanged goldset finds its record and is skipped. Files are written to a
temporary name and renamed, so a killed run never leaves a half-written record. Names become file
names only through :func:`safe_name` (model and adapter folders too), so none can leave its folder.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from harness.errors import BenchError
from harness.protocols import Run

SCHEMA_VERSION = 3


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GoldsetRef(_Record):
    name: str
    source: str
    split: str
    fingerprint: str
    split_fingerprint: str
    n_queries: int
    n_documents: int
    ood_of: str | None
    ignore_identical_ids: bool


class RungRef(_Record):
    name: str
    kind: str
    config: dict[str, Any]
    encoder_fingerprint: str | None


class Timings(_Record):
    index_s: float
    encode_queries_s: float
    search_s: float
    evaluate_s: float
    total_s: float


class Counts(_Record):
    documents_encoded: int
    documents_cached: int
    queries_encoded: int
    queries_cached: int


class Latency(_Record):
    """Per-query latency of the query path (query encoding + search, plus fusion or reranking), in ms.

    Measured on ``n`` queries timed one at a time (the ladder's ``latency_queries``); a composite rung
    adds its stages' times for the same queries, as a sequential pipeline would.
    """

    n: int
    p50_ms: float | None
    p95_ms: float | None
    per_query_ms: dict[str, float]
    load: float | None = Field(None, description="1-minute load average per CPU core when the timing ended (over 1: other work shared the cores)")


class Cost(_Record):
    """What the rung's evaluation costs at list prices, cached work included (it was paid once).

    ``usage`` maps ``"<price_key> <unit>"`` to billed units; ``api_calls`` are the calls this run
    made (0 when everything came from the cache); ``usd`` is None when a price is unknown.
    """

    api_calls: int
    usage: dict[str, float]
    usd: float | None


class Environment(_Record):
    tunebench: str
    python: str
    platform: str
    packages: dict[str, str]
    git_commit: str | None


class Subset(_Record):
    """Some of a record's queries (such as those about documents a fine-tuned model trained on) and the
    mean of each metric over them (empty when there are none)."""

    queries: list[str]
    metrics: dict[str, float]


class RunRecord(_Record):
    """Everything needed to trust, compare and reproduce one score. Every field is required."""

    schema_version: Literal[SCHEMA_VERSION]
    key: str
    created_at: str
    status: Literal["ok", "skipped"]
    reason: str | None
    goldset: GoldsetRef
    rung: RungRef
    primary_metric: str
    metrics: dict[str, float]
    per_query: dict[str, dict[str, float]]
    run_file: str | None
    timings: Timings
    counts: Counts
    latency: Latency | None
    cost: Cost
    details: dict[str, Any]
    subsets: dict[str, Subset]  # named query subsets: "seen" and "unseen" for a model trained on this corpus
    environment: Environment


def upgrade(data: dict[str, Any]) -> dict[str, Any]:
    """Bring an older record up to the current schema, one version at a time (v1 had no latency,
    cost or details; v2 no query subsets)."""
    if data.get("schema_version") == 1:
        data = {**data, "schema_version": 2, "latency": None, "cost": {"api_calls": 0, "usage": {}, "usd": 0.0}, "details": {}}
    if data.get("schema_version") == 2:
        data = {**data, "schema_version": 3, "subsets": {}}
    return data


def subset(per_query: dict[str, dict[str, float]], queries: list[str]) -> Subset:
    """The :class:`Subset` of ``queries`` (those scored) with each metric's mean over them."""
    scored = [q for q in queries if q in per_query]
    metrics = {m: sum(per_query[q][m] for q in scored) / len(scored) for m in per_query[scored[0]]} if scored else {}
    return Subset(queries=scored, metrics=metrics)


def record_key(split_fingerprint: str, rung_config: dict, encoder_fingerprint: str | None) -> str:
    blob = json.dumps([SCHEMA_VERSION, split_fingerprint, rung_config, encoder_fingerprint], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


_PLAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")
_KEPT = re.compile(r"[a-z0-9][a-z0-9._+-]{0,63}")


def is_plain_name(name: str) -> bool:
    """ASCII letters, digits, ``.``, ``_``, ``+`` and ``-``, starting with a letter or digit, at most 64
    characters: a name that can be a file name anywhere and never points elsewhere (``..``, ``a/b``)."""
    return bool(_PLAIN.fullmatch(name))


def safe_name(name: str) -> str:
    """The file or folder name that stands for a user-given name (a goldset, split, rung or training job).

    A plain lower-case name (:func:`is_plain_name`) is kept as it is. Any other name keeps its plain
    characters (others become ``_``; the first 40) and gains ``~`` and 10 hex digits of the
    SHA-256 of exactly what was given: so ``..``, ``a/b`` or ``/abs`` never leave the folder they are
    joined to, and two names never share a file (short of a 40-bit hash collision): a plain name holds no
    ``~``, and the hash tells apart names that differ only in case (one file on macOS and Windows), in
    Unicode normalisation, or in characters replaced here. Names with capitals are hashed for that reason.
    """
    if _KEPT.fullmatch(name):
        return name
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    readable = re.sub(r"[^A-Za-z0-9._+-]+", "_", name).lstrip(".-")[:40]
    return f"{readable or '_'}~{digest}"


def write_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary name, then rename: a reader sees the old file or the new one, and a failed
    write (a full disk) leaves no temporary file behind."""
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class Leaderboard:
    """The folder of records. ``Leaderboard("leaderboard").latest()`` is what ``bench leaderboard`` shows."""

    def __init__(self, root: Path | str = "leaderboard"):
        self.root = Path(root)
        self.records_dir = self.root / "records"

    def _stem(self, goldset: str, split: str, rung: str, key: str) -> Path:
        return self.records_dir / safe_name(goldset) / safe_name(split) / f"{safe_name(rung)}.{key}"

    def find(self, goldset: str, split: str, rung: str, key: str) -> RunRecord | None:
        stem = self._stem(goldset, split, rung, key)
        path = stem.with_name(stem.name + ".json")
        record = read_record(path) if path.is_file() else None
        return record if record and record.status == "ok" else None  # a skipped rung is retried every run

    def write(self, record: RunRecord, run: Run | None) -> RunRecord:
        """Write the run (if any) then the record; return the record as written (with ``run_file``)."""
        stem = self._stem(record.goldset.name, record.goldset.split, record.rung.name, record.key)
        try:
            stem.parent.mkdir(parents=True, exist_ok=True)
            if run is not None:
                run_path = stem.with_name(stem.name + ".run.json.gz")
                write_atomic(run_path, gzip.compress(json.dumps(run).encode(), mtime=0))
                record = record.model_copy(update={"run_file": run_path.name})
            path = stem.with_name(stem.name + ".json")
            write_atomic(path, record.model_dump_json(indent=1).encode())
        except OSError as exc:
            raise BenchError(f"cannot write records under '{self.records_dir}' ({exc.strerror}); pass a writable --leaderboard folder") from exc
        return record

    def records(self) -> list[RunRecord]:
        return [read_record(p) for p in sorted(self.records_dir.glob("*/*/*.json"))]

    def latest(self) -> list[RunRecord]:
        """The newest record per (goldset, split, rung), sorted by goldset, split, then rung order of creation.

        A rung skipped today (no network, no key) does not hide the result it had when it last ran.
        """
        newest: dict[tuple[str, str, str], RunRecord] = {}
        for rec in self.records():
            slot = (rec.goldset.name, rec.goldset.split, rec.rung.name)
            rank = (rec.status == "ok", rec.created_at)
            if slot not in newest or rank >= (newest[slot].status == "ok", newest[slot].created_at):
                newest[slot] = rec
        return sorted(newest.values(), key=lambda r: (r.goldset.ood_of or r.goldset.name, r.goldset.ood_of is not None, r.goldset.name, r.goldset.split, r.created_at))

    def load_run(self, record: RunRecord, directory: Path | None = None) -> Run:
        """The run stored beside a record."""
        if record.run_file is None:
            raise BenchError(f"record {record.key} of rung '{record.rung.name}' has no run file")
        if Path(record.run_file).name != record.run_file or record.run_file in ("", ".", ".."):
            raise BenchError(f"record {record.key} of rung '{record.rung.name}': run_file '{record.run_file}' is not a file name beside the record; re-run it with --overwrite")
        folder = directory or self._stem(record.goldset.name, record.goldset.split, record.rung.name, record.key).parent
        return json.loads(gzip.decompress((folder / record.run_file).read_bytes()))


def read_record(path: Path) -> RunRecord:
    """Load a record (of any schema version), with a one-line error naming the file if it is not valid."""
    try:
        return RunRecord.model_validate(upgrade(json.loads(path.read_bytes())))
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        raise BenchError(f"{path}: not a valid run record (key '{key}': {first['msg']}); delete it or re-run with --overwrite") from exc
    except ValueError as exc:
        raise BenchError(f"{path}: not a valid run record (not JSON: {exc}); delete it or re-run with --overwrite") from exc
