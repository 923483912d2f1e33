"""The on-disk cache of everything a run computes or pays for: embeddings and reranker scores.

Vectors are keyed by (encoder fingerprint, input type, SHA-256 of the text), so a re-run encodes
nothing, an edited document is re-encoded alone, and two goldsets sharing texts share vectors.
Reranker scores are keyed by (reranker fingerprint, query, document). Beside each result the cache
keeps what it cost: the seconds of a single-item call (a latency probe, one query's rerank) and the
billed API units apportioned to it, so a re-run can report latency and cost without paying again.

Storage is SQLite in WAL mode, committed after every call (a block of texts for a local model, one
API request for a paid one): a crash, Ctrl-C or SIGKILL loses at most the calls in flight, and
concurrent runs can read while one writes. (mteb's cached wrapper keeps a numpy file per task that is
only complete at the end; a kill loses the whole task's vectors.) A corpus encoded elsewhere (an
:class:`~harness.protocols.EncodeEngine`: Ray workers) is committed here too, one block as each returns.

Nothing reaches the file unchecked: every answer must be a finite matrix with one row per text and
the width the cache already holds for that encoder, or the run stops with a :class:`CacheError` /
:class:`~harness.errors.ApiError` and the answer is dropped. A storage failure (a damaged file, a
full disk) is a :class:`CacheError` naming the file and the way out, never a SQLite traceback.

Runs sharing one cache never buy the same text twice: before a paid request, a run *claims* the texts
it is about to buy (a ``claims`` row per text, written in the same transaction that checks none is
cached or claimed by a live run). A run that finds texts claimed by another waits for their vectors,
and takes the claims over if that run dies. A run is alive while it holds an ``flock`` on its own file
under ``claims/``; the kernel drops that lock when the process dies, even by SIGKILL, so a killed run
never blocks the next.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import re
import sqlite3
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.errors import ApiError, BenchError, RunFailure
from harness.protocols import Batched, Concurrent, EncodeEngine, Encoder, InputType, PaidEncoder, PaidReranker, Reranker

try:
    import fcntl
except ImportError:  # Windows: no flock, so concurrent runs are not coordinated (each still commits per call)
    fcntl = None

log = logging.getLogger(__name__)

BLOCK = 256  # texts per local-model call between commits: small enough to lose little, large enough to batch well
_SQL_VARS = 500  # stay under SQLite's host-parameter limit
POLL = 0.2  # seconds between looks at texts another run is buying
_OWNER = re.compile(r"[0-9a-f]{32}")

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS vectors (fingerprint TEXT, input_type TEXT, text_hash BLOB,"
    " vector BLOB, PRIMARY KEY (fingerprint, input_type, text_hash)) WITHOUT ROWID",
    # kind: an encoder input type, or "rerank" (item = one query with its candidate list)
    "CREATE TABLE IF NOT EXISTS usage (fingerprint TEXT, kind TEXT, item_hash BLOB, seconds REAL, units REAL,"
    " PRIMARY KEY (fingerprint, kind, item_hash)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS scores (fingerprint TEXT, query_hash BLOB, doc_hash BLOB, score REAL,"
    " PRIMARY KEY (fingerprint, query_hash, doc_hash)) WITHOUT ROWID",
    # one LLM answer per (generator, prompt), with the tokens it was billed for and its seconds
    "CREATE TABLE IF NOT EXISTS generations (fingerprint TEXT, prompt_hash BLOB, text TEXT, input_tokens INTEGER,"
    " output_tokens INTEGER, seconds REAL, PRIMARY KEY (fingerprint, prompt_hash)) WITHOUT ROWID",
    # a text a running process is buying right now (owner: its file under claims/)
    "CREATE TABLE IF NOT EXISTS claims (fingerprint TEXT, input_type TEXT, text_hash BLOB, owner TEXT,"
    " PRIMARY KEY (fingerprint, input_type, text_hash)) WITHOUT ROWID",
)


class CacheError(RunFailure):
    """The cache file cannot be read or written, or holds vectors that cannot be used. Exit code 1."""


def default_cache_dir() -> Path:
    """``$TUNEBENCH_CACHE``, else ``$XDG_CACHE_HOME/tunebench``, else ``~/.cache/tunebench``."""
    if os.environ.get("TUNEBENCH_CACHE"):
        return Path(os.environ["TUNEBENCH_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tunebench"


def text_hash(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()[:16]


def apportion(units: float | None, texts: Sequence[str]) -> list[float | None]:
    """Split a call's billed units over its texts in proportion to their UTF-8 length."""
    if units is None:
        return [None] * len(texts)
    sizes = [max(len(t.encode("utf-8")), 1) for t in texts]
    total = sum(sizes)
    return [units * s / total for s in sizes]


class Cache:
    """The SQLite file ``embeddings.sqlite`` in a cache folder."""

    def __init__(self, directory: Path | str | None = None):
        self.directory = Path(directory) if directory else default_cache_dir()
        self.path = self.directory / "embeddings.sqlite"
        self.owner = uuid.uuid4().hex  # this run's name in the claims table
        self._owner_fd: int | None = None
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=60)
            self._db.execute("PRAGMA journal_mode=WAL")
            for statement in _SCHEMA:
                self._db.execute(statement)
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) and "unable to open" in str(exc):
                raise BenchError(f"cannot use embedding cache folder '{self.directory}' ({exc}); pass a writable --cache-dir") from exc
            raise CacheError(self._explain(exc)) from exc
        except (OSError, sqlite3.Error) as exc:
            raise BenchError(f"cannot use embedding cache folder '{self.directory}' ({exc}); pass a writable --cache-dir") from exc

    @contextmanager
    def _storage(self) -> Iterator[None]:
        """Turn a SQLite or file-system failure into one :class:`CacheError` line naming the file and the way out."""
        try:
            yield
        except (sqlite3.ProgrammingError, sqlite3.InterfaceError):
            raise  # a bug here, not the file
        except (sqlite3.Error, OSError) as exc:
            raise CacheError(self._explain(exc)) from exc

    def _explain(self, exc: BaseException) -> str:
        text = str(exc) or type(exc).__name__
        aside = f"move '{self.path}' and its -wal and -shm files aside and run again (vectors already paid for are then bought again)"
        if getattr(exc, "errno", None) == errno.ENOSPC or "full" in text:
            how = "free disk space and run again: everything committed before is kept"
        elif "locked" in text or "busy" in text:
            how = "another run has held it for over a minute: wait for that run, or pass another --cache-dir"
        elif "malformed" in text or "not a database" in text or "corrupt" in text:
            how = f"the file is damaged: {aside}"
        else:
            how = f"check that the folder is writable, or pass another --cache-dir; if the file is damaged, {aside}"
        return f"embedding cache '{self.path}' failed ({text}); {how}"

    def _select(self, sql: str, head: list, keys: Sequence) -> Iterable[tuple]:
        for start in range(0, len(keys), _SQL_VARS):
            block = list(keys[start : start + _SQL_VARS])
            yield from self._db.execute(sql.format(marks=",".join("?" * len(block))), [*head, *block])

    def get(self, fingerprint: str, input_type: str, hashes: Sequence[bytes]) -> dict[bytes, np.ndarray]:
        sql = "SELECT text_hash, vector FROM vectors WHERE fingerprint=? AND input_type=? AND text_hash IN ({marks})"
        with self._storage():
            return {key: np.frombuffer(blob, dtype=np.float32) for key, blob in self._select(sql, [fingerprint, input_type], hashes)}

    def dimension(self, fingerprint: str) -> int | None:
        """The width of the vectors cached for ``fingerprint`` (any input type); None while it has none."""
        with self._storage():
            row = self._db.execute("SELECT length(vector) FROM vectors WHERE fingerprint=? LIMIT 1", (fingerprint,)).fetchone()
        return row[0] // 4 if row else None

    def put(self, fingerprint: str, input_type: str, hashes: Sequence[bytes], vectors: np.ndarray, units: Sequence[float | None] = (), seconds: float | None = None) -> None:
        """Store vectors (and, for a paid call or a timed probe, what they cost) in one transaction;
        the texts' claims go in the same transaction."""
        rows = [(fingerprint, input_type, h, np.ascontiguousarray(v, dtype=np.float32).tobytes()) for h, v in zip(hashes, vectors)]
        with self._storage(), self._db:  # one transaction, committed on exit
            self._db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?, ?)", rows)
            self._put_usage(fingerprint, input_type, [(h, seconds, u) for h, u in zip(hashes, units or [None] * len(hashes))])
            self._db.executemany("DELETE FROM claims WHERE fingerprint=? AND input_type=? AND text_hash=?", [r[:3] for r in rows])

    def claim(self, fingerprint: str, input_type: str, hashes: Sequence[bytes]) -> tuple[dict[bytes, np.ndarray], list[bytes], list[bytes]]:
        """Claim the texts about to be bought: ``(vectors cached meanwhile, texts now claimed by this run,
        texts another live run is buying)``. Claims of a dead run are taken over."""
        if fcntl is None:
            found = self.get(fingerprint, input_type, hashes)
            return found, [h for h in hashes if h not in found], []
        with self._storage():
            self._hold_owner_lock()
            self._db.execute("BEGIN IMMEDIATE")  # no other run claims between this look and the insert
            try:
                found = self.get(fingerprint, input_type, hashes)
                rest = [h for h in hashes if h not in found]
                sql = "SELECT text_hash, owner FROM claims WHERE fingerprint=? AND input_type=? AND text_hash IN ({marks})"
                holders = dict(self._select(sql, [fingerprint, input_type], rest))
                live = {o for o in set(holders.values()) if o != self.owner and self._alive(o)}
                mine = [h for h in rest if holders.get(h) not in live]
                self._db.executemany("INSERT OR REPLACE INTO claims VALUES (?, ?, ?, ?)", [(fingerprint, input_type, h, self.owner) for h in mine])
                self._db.commit()
            except BaseException:
                self._db.rollback()
                raise
        return found, mine, [h for h in rest if holders.get(h) in live]

    def release(self, fingerprint: str, input_type: str) -> None:
        """Drop this run's claims that were not bought (a failed or cancelled call), for another run to take."""
        if self._owner_fd is not None:
            with self._storage(), self._db:
                self._db.execute("DELETE FROM claims WHERE fingerprint=? AND input_type=? AND owner=?", (fingerprint, input_type, self.owner))

    def _hold_owner_lock(self) -> None:
        """Lock this run's file under ``claims/`` for as long as the cache is open: the sign that it lives."""
        if self._owner_fd is None:
            (self.directory / "claims").mkdir(exist_ok=True)
            fd = os.open(self.directory / "claims" / f"{self.owner}.lock", os.O_CREAT | os.O_RDWR, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self._owner_fd = fd

    def _alive(self, owner: str) -> bool:
        """Whether the run ``owner`` still holds the lock on its file (the kernel drops it when a process dies)."""
        path = self.directory / "claims" / f"{owner}.lock"
        try:
            fd = os.open(path, os.O_RDWR) if _OWNER.fullmatch(owner) else None
        except FileNotFoundError:
            return False
        if fd is None:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        else:
            path.unlink(missing_ok=True)  # a dead run's file: tidy up
            return False
        finally:
            os.close(fd)

    def usage(self, fingerprint: str, kind: str, hashes: Sequence[bytes]) -> dict[bytes, tuple[float | None, float | None]]:
        """``{item_hash: (seconds, units)}`` for the items that have a cost on record."""
        sql = "SELECT item_hash, seconds, units FROM usage WHERE fingerprint=? AND kind=? AND item_hash IN ({marks})"
        with self._storage():
            return {key: (seconds, units) for key, seconds, units in self._select(sql, [fingerprint, kind], hashes)}

    def _put_usage(self, fingerprint: str, kind: str, rows: Sequence[tuple[bytes, float | None, float | None]]) -> None:
        rows = [(fingerprint, kind, h, s, u) for h, s, u in rows if s is not None or u is not None]
        self._db.executemany(
            "INSERT INTO usage VALUES (?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET"
            " seconds=coalesce(excluded.seconds, seconds), units=coalesce(excluded.units, units)",
            rows,
        )

    def encode_rate(self, fingerprint: str, corpus: str) -> tuple[float, int] | None:
        """``(seconds, documents)`` of the largest encoding of ``corpus``'s documents (a goldset
        fingerprint) by ``fingerprint`` on record, so a run that finds every vector cached still reports
        the throughput of the run that encoded them."""
        found = self.usage(fingerprint, "encode-rate", [text_hash(corpus)])
        seconds, documents = next(iter(found.values()), (None, None))
        return None if seconds is None or not documents else (seconds, int(documents))

    def put_encode_rate(self, fingerprint: str, corpus: str, seconds: float, documents: int) -> None:
        """Keep this encoding's time when it encoded at least as many documents as the one on record
        (the larger sample is the steadier rate)."""
        known = self.encode_rate(fingerprint, corpus)
        if documents > 0 and (known is None or documents >= known[1]):
            with self._storage(), self._db:
                self._db.execute("INSERT OR REPLACE INTO usage VALUES (?, ?, ?, ?, ?)", (fingerprint, "encode-rate", text_hash(corpus), seconds, float(documents)))

    def scores(self, fingerprint: str, query_hash: bytes, doc_hashes: Sequence[bytes]) -> dict[bytes, float]:
        sql = "SELECT doc_hash, score FROM scores WHERE fingerprint=? AND query_hash=? AND doc_hash IN ({marks})"
        with self._storage():
            return dict(self._select(sql, [fingerprint, query_hash], doc_hashes))

    def put_scores(self, fingerprint: str, query_hash: bytes, scores: dict[bytes, float], item: tuple[bytes, float | None, float | None]) -> None:
        with self._storage(), self._db:
            self._db.executemany("INSERT OR REPLACE INTO scores VALUES (?, ?, ?, ?)", [(fingerprint, query_hash, d, s) for d, s in scores.items()])
            self._put_usage(fingerprint, "rerank", [item])

    def generations(self, fingerprint: str, hashes: Sequence[bytes]) -> dict[bytes, tuple[str, int | None, int | None, float]]:
        """``{prompt_hash: (text, input_tokens, output_tokens, seconds)}`` for the prompts already answered."""
        sql = "SELECT prompt_hash, text, input_tokens, output_tokens, seconds FROM generations WHERE fingerprint=? AND prompt_hash IN ({marks})"
        with self._storage():
            return {key: tuple(row) for key, *row in self._select(sql, [fingerprint], hashes)}

    def put_generation(self, fingerprint: str, prompt_hash: bytes, text: str, input_tokens: int | None, output_tokens: int | None, seconds: float) -> None:
        with self._storage(), self._db:  # committed at once: an answer is never paid for twice
            self._db.execute("INSERT OR REPLACE INTO generations VALUES (?, ?, ?, ?, ?, ?)", (fingerprint, prompt_hash, text, input_tokens, output_tokens, seconds))

    def mixed_widths(self, fingerprint: str, name: str, widths: Counter) -> CacheError:
        """The error for vectors of several widths under one fingerprint, with the statement that keeps the common ones."""
        common = widths.most_common(1)[0][0]
        fix = f"DELETE FROM vectors WHERE fingerprint='{fingerprint}' AND length(vector)<>{common * 4}"
        return CacheError(
            f"embedding cache '{self.path}' holds vectors of {len(widths)} widths ({', '.join(f'{n} x {w}-dim' for w, n in widths.most_common())})"
            f" for {name}; drop the odd ones with: sqlite3 '{self.path}' \"{fix}\" (they are bought again on the next run), or move the file aside"
        )

    def close(self) -> None:
        with self._storage():
            if self._owner_fd is not None:
                with self._db:
                    self._db.execute("DELETE FROM claims WHERE owner=?", (self.owner,))
                (self.directory / "claims" / f"{self.owner}.lock").unlink(missing_ok=True)
                os.close(self._owner_fd)
                self._owner_fd = None
            self._db.close()


@dataclass
class CacheStats:
    hits: int = 0  # items served from the cache
    computed: int = 0  # items computed (texts encoded, query-document pairs scored)
    api_calls: int = 0  # calls to a paid API made by this process
    units: float = 0.0  # billed units of every item served, cached or not (for the cost of the whole evaluation)
    engine: str | None = None  # the label of the engine that computed the texts (None: this process)


def concurrency(backend: object) -> int:
    """Requests a backend may have in flight: its own ``concurrency`` (an API), else one."""
    return backend.concurrency if isinstance(backend, Concurrent) else 1


def run_calls(calls: list, call: Callable, commit: Callable, workers: int) -> None:
    """Run ``call(item)`` for each item with at most ``workers`` in flight; ``commit(item, result)``
    runs in this thread as each finishes. On Ctrl-C, calls already in flight are awaited and committed
    (they are paid for), the rest cancelled."""
    if workers <= 1:
        for item in calls:
            commit(item, call(item))
        return
    pool = ThreadPoolExecutor(max_workers=workers)
    pending: dict[Future, object] = {}
    queue = iter(calls)
    try:
        for item in queue:
            pending[pool.submit(call, item)] = item
            if len(pending) >= workers:
                _commit_done(pending, commit, FIRST_COMPLETED)
        while pending:
            _commit_done(pending, commit, FIRST_COMPLETED)
    except BaseException:  # Ctrl-C, or one call failing for good: keep what the others bought
        log.warning("stopping: saving %d call(s) in flight", len(pending))
        _commit_done(pending, commit, "ALL_COMPLETED", quiet=True)
        raise
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _commit_done(pending: dict, commit: Callable, when: str, quiet: bool = False) -> None:
    done, _ = wait(list(pending), return_when=when)
    for future in done:
        item = pending.pop(future)
        if not quiet:
            commit(item, future.result())
        elif future.exception() is None:
            try:  # already stopping: a second failure must not cost the answers still to be kept
                commit(item, future.result())
            except Exception as exc:
                log.warning("one answer in flight was not kept: %s", exc)


class _Cached:
    """What both cached wrappers share: the wrapped backend, the cache, counters and a progress hook."""

    def __init__(self, inner, cache: Cache, on_progress: Callable[[int, int], None] | None = None):
        self.inner = inner
        self.cache = cache
        self.stats = CacheStats()
        self.on_progress = on_progress

    @property
    def fingerprint(self) -> str:
        return self.inner.fingerprint

    @property
    def price_key(self) -> str | None:
        """The wrapped backend's price-table key; None for a local model."""
        return self.inner.price_key if isinstance(self.inner, (PaidEncoder, PaidReranker)) else None

    def take_stats(self) -> CacheStats:
        """The counters since the last call, which start again from zero."""
        stats, self.stats = self.stats, CacheStats()
        return stats


@dataclass(frozen=True)
class Offload:
    """Where a large document encode goes instead of this process: an :class:`EncodeEngine`, and the
    encoder's :class:`~harness.registry.EncoderConfig` as a plain dict, which the engine's workers
    rebuild the encoder from (a model object does not travel; its configuration does)."""

    engine: EncodeEngine
    encoder: dict


class CachedEncoder(_Cached):
    """An :class:`Encoder` that only calls the wrapped encoder for texts it has not seen.

    Optional encoder attributes shape the calls: ``batches(texts)`` groups texts into API requests
    (token and size caps), ``concurrency`` bounds requests in flight, ``encode_with_usage`` returns
    billed units with the vectors. Every answer is checked before it is stored (:meth:`_checked`), and
    a paid encoder's texts are claimed before they are bought (:meth:`Cache.claim`). With an
    :attr:`offload`, the missing texts of a large document encode go to its engine instead (:meth:`_offloads`).
    """

    def __init__(self, inner, cache: Cache, on_progress: Callable[[int, int], None] | None = None):
        super().__init__(inner, cache, on_progress)
        self._width: int | None = None  # the vector width every answer must have, once one is known
        self.offload: Offload | None = None

    @property
    def encoder(self) -> Encoder:
        return self.inner

    @property
    def name(self) -> str:
        """The encoder in messages: its class and model name (an API encoder's repr never holds the key)."""
        model = getattr(self.inner, "model", None)
        return type(self.inner).__name__ + (f" model '{model}'" if isinstance(model, str) else f" ({self.fingerprint})")

    def _call(self, texts: list[str], input_type: InputType) -> tuple[object, float | None]:
        if isinstance(self.encoder, PaidEncoder):
            vectors, units = self.encoder.encode_with_usage(texts, input_type=input_type)
            self.stats.api_calls += 1
        else:
            vectors, units = self.encoder.encode(texts, input_type=input_type), None
        return vectors, units

    def _checked(self, vectors: object, n: int) -> np.ndarray:
        """The answer for ``n`` texts as float32, if it may be cached: ``n`` finite rows as wide as the
        vectors already cached for this encoder. Otherwise nothing is stored and the run stops."""
        try:
            matrix = np.asarray(vectors, dtype=np.float32)
        except (TypeError, ValueError):
            matrix = None
        if self._width is None:
            self._width = self.cache.dimension(self.fingerprint)
        hint = ""
        if matrix is None or matrix.ndim != 2:
            problem = "vectors that are not one numeric matrix" if matrix is None else f"an array of shape {matrix.shape}"
        elif matrix.shape[0] != n:
            problem = f"{matrix.shape[0]} vectors"
        elif matrix.shape[1] == 0 or (self._width is not None and matrix.shape[1] != self._width):
            problem = f"{matrix.shape[1]}-dimensional vectors" + (f" where {self._width}-dimensional ones are cached" if self._width else "")
            hint = f"; if the cached ones are wrong, drop them: sqlite3 '{self.cache.path}' \"DELETE FROM vectors WHERE fingerprint='{self.fingerprint}'\""
        elif not np.isfinite(matrix).all():
            problem = f"NaN or infinite values in {int((~np.isfinite(matrix)).any(axis=1).sum())} vectors"
        else:
            self._width = matrix.shape[1]
            return matrix
        advice = "the model and output_dimension options and that the base URL serves this model" if self.paid else "the model"
        raise (ApiError if self.paid else RunFailure)(
            f"{self.name} returned {problem} for {n} texts; that answer was not cached (answers before it are kept): check {advice}{hint}"
        )

    def _groups(self, texts: list[str]) -> list[list[int]]:
        if isinstance(self.encoder, Batched):
            return self.encoder.batches(texts)
        return [list(range(s, min(s + BLOCK, len(texts)))) for s in range(0, len(texts), BLOCK)]

    def encode(self, texts: Sequence[str], *, input_type: InputType) -> np.ndarray:
        hashes = [text_hash(t) for t in texts]
        unique = dict(zip(hashes, texts))
        found = self.cache.get(self.fingerprint, input_type, list(unique))
        self.stats.hits += len(found)
        missing = [h for h in unique if h not in found]
        done = [0]

        def advance(count: int) -> None:
            done[0] += count
            if self.on_progress and missing:
                self.on_progress(done[0], len(missing))

        advance(0)
        if self.paid:
            self._buy(missing, unique, input_type, found, advance)
        else:
            self._compute(missing, unique, input_type, found, advance)
        self.stats.units += sum(u or 0.0 for _, u in self.cache.usage(self.fingerprint, input_type, list(unique)).values())
        if not hashes:
            return np.zeros((0, 0), dtype=np.float32)
        widths = Counter(v.shape[0] for v in found.values())
        if len(widths) > 1:
            raise self.cache.mixed_widths(self.fingerprint, self.name, widths)
        return np.stack([found[h] for h in hashes])

    def _buy(self, owed: list[bytes], unique: dict[bytes, str], input_type: InputType, found: dict, advance: Callable[[int], None]) -> None:
        """Buy the texts no other run is buying; wait for the vectors of those another run is (and take
        them over if it dies or gives up), so two runs on one cache never pay for a text twice."""
        try:
            while owed:
                cached, mine, theirs = self.cache.claim(self.fingerprint, input_type, owed)
                found.update(cached)
                self.stats.hits += len(cached)
                advance(len(cached))
                if mine:
                    self._compute(mine, unique, input_type, found, advance)
                elif theirs:
                    log.info("waiting for another run buying %d of these texts", len(theirs))
                    time.sleep(POLL)
                owed = theirs
        finally:
            try:
                self.cache.release(self.fingerprint, input_type)
            except CacheError as exc:  # never hide the error that brought us here; a dead run's claims are taken over anyway
                log.warning("%s", exc)

    def _compute(self, missing: list[bytes], unique: dict[bytes, str], input_type: InputType, found: dict, advance: Callable[[int], None]) -> None:
        # Longest first, so every block pads to similar lengths and the first block shows the worst case.
        missing = sorted(missing, key=lambda h: len(unique[h]), reverse=True)
        missing_texts = [unique[h] for h in missing]

        def commit(group: list[int], result: tuple[object, float | None]) -> None:
            block = [missing[i] for i in group]
            vectors = self._checked(result[0], len(block))
            self.cache.put(self.fingerprint, input_type, block, vectors, apportion(result[1], [missing_texts[i] for i in group]))
            found.update(zip(block, vectors))
            self.stats.computed += len(block)
            advance(len(block))

        if self._offloads(input_type, len(missing)):
            engine = self.offload.engine
            for positions, vectors in engine.encode_blocks(self.offload.encoder, self.fingerprint, missing_texts, input_type=input_type):
                commit([int(p) for p in positions], (vectors, None))  # at once: a killed run keeps every block it received
            self.stats.engine = engine.label
            return
        run_calls(self._groups(missing_texts), lambda g: self._call([missing_texts[i] for i in g], input_type), commit, concurrency(self.encoder))

    def _offloads(self, input_type: InputType, missing: int) -> bool:
        """Whether these texts go to the :attr:`offload` engine: documents only, at least a block of them,
        and never a paid API's. Queries are few and wanted at once; under a block, starting workers that
        each load the model (seconds) costs more than the encode; an API's requests are already in flight
        together, and its claims (:meth:`Cache.claim`) stay with this process."""
        return self.offload is not None and input_type == "document" and missing >= BLOCK and not self.paid

    @property
    def paid(self) -> bool:
        return isinstance(self.inner, PaidEncoder)

    def probe(self, texts: Sequence[str], *, input_type: InputType) -> list[float | None]:
        """Seconds a paid API takes to encode each text alone, timed once, when the vector is bought.

        A text timed before reuses its time; a vector already bought is never bought again just to
        time it (its latency is then unknown, None). Local models are timed afresh instead, by the
        retriever (:meth:`harness.retrieval.retrievers.DenseRetriever.latency`).
        """
        hashes = [text_hash(t) for t in texts]
        known = self.cache.usage(self.fingerprint, input_type, hashes)
        todo = [(h, t) for h, t in zip(hashes, texts) if known.get(h, (None, None))[0] is None]
        bought = self.cache.get(self.fingerprint, input_type, [h for h, _ in todo])
        for h, text in [(h, t) for h, t in todo if h not in bought]:
            start = time.perf_counter()
            vectors, units = self._call([text], input_type)
            seconds = time.perf_counter() - start
            self.cache.put(self.fingerprint, input_type, [h], self._checked(vectors, 1), [units], seconds=seconds)
            known[h] = (seconds, units)
            self.stats.computed += 1
        return [known.get(h, (None, None))[0] for h in hashes]


def timed(call: Callable[[object], object], items: Sequence) -> list[float]:
    """Seconds of ``call(item)`` for each item, after one untimed warm-up call."""
    if items:
        call(items[0])
    out = []
    for item in items:
        start = time.perf_counter()
        call(item)
        out.append(time.perf_counter() - start)
    return out


class CachedReranker(_Cached):
    """A :class:`Reranker` whose scores are kept per (query, document) pair, one commit per query.

    Optional reranker attributes: ``concurrency`` (queries in flight) and ``rerank_with_usage``
    (billed units with the scores). Each query's call is timed: that is its rerank latency.
    """

    @property
    def reranker(self) -> Reranker:
        return self.inner

    def _call(self, query: str, documents: list[str]) -> tuple[list[float], float | None, float]:
        start = time.perf_counter()
        if isinstance(self.reranker, PaidReranker):
            scores, units = self.reranker.rerank_with_usage(query, documents)
            self.stats.api_calls += 1
        else:
            scores, units = self.reranker.rerank(query, documents), None
        return [float(s) for s in scores], units, time.perf_counter() - start

    def probe(self, items: dict[str, tuple[str, list[str]]]) -> dict[str, float]:
        """Seconds to rerank each query's candidates alone: timed afresh for a local model, and for
        a paid API the time of the call that bought the scores (never a second call just to time it)."""
        if not isinstance(self.inner, PaidReranker):
            return dict(zip(items, timed(lambda item: self.inner.rerank(*item), list(items.values()))))
        keys = {qid: _item_hash(text_hash(q), [text_hash(d) for d in docs]) for qid, (q, docs) in items.items()}
        usage = self.cache.usage(self.fingerprint, "rerank", list(keys.values()))
        return {qid: usage[k][0] for qid, k in keys.items() if k in usage and usage[k][0] is not None}

    def rerank(self, items: dict[str, tuple[str, list[str]]]) -> dict[str, list[float]]:
        """Score ``{qid: (query, candidate texts)}``: ``{qid: scores}`` in the candidates' order. A query
        whose whole list is scored in one call keeps that call's seconds (see :meth:`probe`)."""
        plan, scores = {}, {}
        for qid, (query, docs) in items.items():
            qh, dhs = text_hash(query), [text_hash(d) for d in docs]
            cached = self.cache.scores(self.fingerprint, qh, dhs)
            self.stats.hits += len(cached)
            plan[qid] = (qh, dhs, _item_hash(qh, dhs), cached)
        todo = [qid for qid, (_, dhs, _, cached) in plan.items() if len(cached) < len(set(dhs))]
        done = [0]
        if self.on_progress and todo:
            self.on_progress(0, len(todo))

        def call(qid: str):
            qh, dhs, _, cached = plan[qid]
            query, docs = items[qid]
            missing = list(dict.fromkeys(d for d, h in zip(docs, dhs) if h not in cached))
            return missing, self._call(query, missing)

        def commit(qid: str, result) -> None:
            missing, (new_scores, units, seconds) = result
            qh, dhs, item, cached = plan[qid]
            fresh = {text_hash(d): s for d, s in zip(missing, new_scores)}
            self.cache.put_scores(self.fingerprint, qh, fresh, (item, seconds if not cached else None, units))
            cached.update(fresh)
            self.stats.computed += len(fresh)
            done[0] += 1
            if self.on_progress:
                self.on_progress(done[0], len(todo))

        run_calls(todo, call, commit, concurrency(self.reranker))
        usage = self.cache.usage(self.fingerprint, "rerank", [p[2] for p in plan.values()])
        for qid, (qh, dhs, item, cached) in plan.items():
            scores[qid] = [cached[h] for h in dhs]
            self.stats.units += usage.get(item, (None, 0.0))[1] or 0.0
        return scores


def _item_hash(query_hash: bytes, doc_hashes: Sequence[bytes]) -> bytes:
    return hashlib.sha256(query_hash + b"".join(doc_hashes)).digest()[:16]
