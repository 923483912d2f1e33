"""Run records: one versioned JSON file per goldset x split x rung, and the leaderboard folder that holds them.

Layout::

    leaderboard/records/<goldset>/<split>/<rung>.<key>.json      the RunRecord
    leaderboard/records/<goldset>/<split>/<rung>.<key>.run.json.gz  its run (top-k per query)

``key`` hashes the split's content fingerprint and the resolved rung (encoder fingerprint included),
so an unchanged rung on an unchanged goldset finds its record and is skipped. Files are written to a
temporary name and renamed, so a killed run never leaves a half-written record.
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

from pydantic import BaseModel, ConfigDict, ValidationError

from harness.errors import BenchError
from harness.protocols import Run

SCHEMA_VERSION = 1


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


class Environment(_Record):
    tunebench: str
    python: str
    platform: str
    packages: dict[str, str]
    git_commit: str | None


class RunRecord(_Record):
    """Everything needed to trust, compare and reproduce one score. Every field is required."""

    schema_version: Literal[1]
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
    environment: Environment


def record_key(split_fingerprint: str, rung_config: dict, encoder_fingerprint: str | None) -> str:
    blob = json.dumps([SCHEMA_VERSION, split_fingerprint, rung_config, encoder_fingerprint], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class Leaderboard:
    """The folder of records. ``Leaderboard("leaderboard").latest()`` is what ``bench leaderboard`` shows."""

    def __init__(self, root: Path | str = "leaderboard"):
        self.root = Path(root)
        self.records_dir = self.root / "records"

    def _stem(self, goldset: str, split: str, rung: str, key: str) -> Path:
        return self.records_dir / _safe(goldset) / _safe(split) / f"{_safe(rung)}.{key}"

    def find(self, goldset: str, split: str, rung: str, key: str) -> RunRecord | None:
        stem = self._stem(goldset, split, rung, key)
        path = stem.with_name(stem.name + ".json")
        return read_record(path) if path.is_file() else None

    def write(self, record: RunRecord, run: Run | None) -> RunRecord:
        """Write the run (if any) then the record; return the record as written (with ``run_file``)."""
        stem = self._stem(record.goldset.name, record.goldset.split, record.rung.name, record.key)
        try:
            stem.parent.mkdir(parents=True, exist_ok=True)
            if run is not None:
                run_path = stem.with_name(stem.name + ".run.json.gz")
                _write_atomic(run_path, gzip.compress(json.dumps(run).encode(), mtime=0))
                record = record.model_copy(update={"run_file": run_path.name})
            path = stem.with_name(stem.name + ".json")
            _write_atomic(path, record.model_dump_json(indent=1).encode())
        except OSError as exc:
            raise BenchError(f"cannot write records under '{self.records_dir}' ({exc.strerror}); pass a writable --leaderboard folder") from exc
        return record

    def records(self) -> list[RunRecord]:
        return [read_record(p) for p in sorted(self.records_dir.glob("*/*/*.json"))]

    def latest(self) -> list[RunRecord]:
        """The newest record per (goldset, split, rung), sorted by goldset, split, then rung order of creation."""
        newest: dict[tuple[str, str, str], RunRecord] = {}
        for rec in self.records():
            slot = (rec.goldset.name, rec.goldset.split, rec.rung.name)
            if slot not in newest or rec.created_at >= newest[slot].created_at:
                newest[slot] = rec
        return sorted(newest.values(), key=lambda r: (r.goldset.ood_of or r.goldset.name, r.goldset.ood_of is not None, r.goldset.name, r.goldset.split, r.created_at))

    def load_run(self, record: RunRecord, directory: Path | None = None) -> Run:
        """The run stored beside a record."""
        if record.run_file is None:
            raise BenchError(f"record {record.key} of rung '{record.rung.name}' has no run file")
        folder = directory or self._stem(record.goldset.name, record.goldset.split, record.rung.name, record.key).parent
        return json.loads(gzip.decompress((folder / record.run_file).read_bytes()))


def read_record(path: Path) -> RunRecord:
    """Load a record, with a one-line error naming the file if it is not a valid record."""
    try:
        return RunRecord.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        raise BenchError(f"{path}: not a valid run record (key '{key}': {first['msg']}); delete it or re-run with --overwrite") from exc
