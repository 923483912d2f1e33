"""An on-disk embedding cache that wraps any :class:`~harness.protocols.Encoder`.

Vectors are keyed by (encoder fingerprint, input type, SHA-256 of the text), so a re-run encodes
nothing, an edited document is re-encoded alone, and two goldsets sharing texts share vectors.
Storage is SQLite in WAL mode with a commit after every encoded block: a crash or Ctrl-C loses at
most the block in flight, and concurrent runs can read while one writes. (mteb's cached wrapper keeps
a numpy file per task that is only complete at the end; a kill loses the whole task's vectors.)
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.errors import BenchError
from harness.protocols import Encoder, InputType

BLOCK = 256  # texts encoded between commits: small enough to lose little, large enough to batch well
_SQL_VARS = 500  # stay under SQLite's host-parameter limit


def default_cache_dir() -> Path:
    """``$TUNEBENCH_CACHE``, else ``$XDG_CACHE_HOME/tunebench``, else ``~/.cache/tunebench``."""
    if os.environ.get("TUNEBENCH_CACHE"):
        return Path(os.environ["TUNEBENCH_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tunebench"


def text_hash(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()[:16]


@dataclass
class CacheStats:
    hits: int = 0
    encoded: int = 0


class EmbeddingCache:
    """A SQLite table ``(fingerprint, input_type, text_hash) -> float32 vector``."""

    def __init__(self, directory: Path | str | None = None):
        self.directory = Path(directory) if directory else default_cache_dir()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.directory / "embeddings.sqlite", timeout=60)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS vectors (fingerprint TEXT, input_type TEXT, text_hash BLOB,"
                " vector BLOB, PRIMARY KEY (fingerprint, input_type, text_hash)) WITHOUT ROWID"
            )
        except (OSError, sqlite3.Error) as exc:
            raise BenchError(f"cannot use embedding cache folder '{self.directory}' ({exc}); pass a writable --cache-dir") from exc

    def get(self, fingerprint: str, input_type: str, hashes: Sequence[bytes]) -> dict[bytes, np.ndarray]:
        found: dict[bytes, np.ndarray] = {}
        for start in range(0, len(hashes), _SQL_VARS):
            block = list(hashes[start : start + _SQL_VARS])
            marks = ",".join("?" * len(block))
            rows = self._db.execute(
                f"SELECT text_hash, vector FROM vectors WHERE fingerprint=? AND input_type=? AND text_hash IN ({marks})",
                [fingerprint, input_type, *block],
            )
            for key, blob in rows:
                found[key] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put(self, fingerprint: str, input_type: str, hashes: Sequence[bytes], vectors: np.ndarray) -> None:
        rows = [(fingerprint, input_type, h, np.ascontiguousarray(v, dtype=np.float32).tobytes()) for h, v in zip(hashes, vectors)]
        with self._db:  # one transaction, committed on exit
            self._db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?, ?)", rows)

    def close(self) -> None:
        self._db.close()


class CachedEncoder:
    """An :class:`Encoder` that only calls the wrapped encoder for texts it has not seen."""

    def __init__(self, encoder: Encoder, cache: EmbeddingCache, on_progress: Callable[[int, int], None] | None = None):
        self.encoder = encoder
        self.cache = cache
        self.stats = CacheStats()
        self.on_progress = on_progress

    @property
    def fingerprint(self) -> str:
        return self.encoder.fingerprint

    def encode(self, texts: Sequence[str], *, input_type: InputType) -> np.ndarray:
        hashes = [text_hash(t) for t in texts]
        unique = dict(zip(hashes, texts))
        found = self.cache.get(self.fingerprint, input_type, list(unique))
        self.stats.hits += len(found)
        missing = [h for h in unique if h not in found]
        # Longest first, so every block pads to similar lengths and the first block shows the worst case.
        missing.sort(key=lambda h: len(unique[h]), reverse=True)
        if self.on_progress and missing:
            self.on_progress(0, len(missing))
        for start in range(0, len(missing), BLOCK):
            block = missing[start : start + BLOCK]
            vectors = np.asarray(self.encoder.encode([unique[h] for h in block], input_type=input_type), dtype=np.float32)
            self.cache.put(self.fingerprint, input_type, block, vectors)
            found.update(zip(block, vectors))
            self.stats.encoded += len(block)
            if self.on_progress:
                self.on_progress(start + len(block), len(missing))
        if not hashes:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([found[h] for h in hashes])
