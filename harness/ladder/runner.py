"""Running a ladder's rungs over goldsets and splits, and keeping each result as a :class:`RunRecord`.

``run_rungs`` is what ``bench run`` calls. Rungs run in ladder order; each is built once (one model
load) and runs over every goldset. For each (goldset, split) a rung whose record is up to date is
reused (unless ``overwrite``); otherwise it runs and its record is written at once, so an
interrupted run keeps everything it finished. A rung that cannot run here (no network for a hub
model, no API key, a model id or folder that cannot be loaded) is recorded as skipped with the
reason, and so are the rungs built on it; a rung that fails at run time (an API down for good) is
reported at the end, after the others have run. A stored run that a later rung reads is checked when
its record is reused: one that cannot be read (a corrupt ``.run.json.gz``) is re-computed.
"""

from __future__ import annotations

import glob
import logging
import os
import statistics
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from harness import progress
from harness.allocator import release_freed_memory
from harness.cache import Cache
from harness.data.goldset import Goldset
from harness.environment import environment
from harness.errors import BenchError, ConfigError, RunFailure, RungUnavailable
from harness.ladder.build import build_stage
from harness.ladder.rungs import AnyRung, depends_on
from harness.ladder.stages import SkipSplit, SplitResult
from harness.metrics import DEFAULT_METRICS, evaluate
from harness.prices import DEFAULT_PRICES, Price
from harness.protocols import EncodeEngine, Run
from harness.records import (
    SCHEMA_VERSION,
    Cost,
    Counts,
    GoldsetRef,
    Latency,
    Leaderboard,
    RungRef,
    RunRecord,
    Timings,
    now_iso,
    record_key,
    subset,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Target:
    """One goldset and the splits to evaluate on it; ``ood_of`` names the goldset it is out-of-domain for."""

    goldset: Goldset
    splits: tuple[str, ...]
    ood_of: str | None = None


@dataclass(frozen=True)
class Outcome:
    record: RunRecord
    action: Literal["ran", "unchanged", "skipped"]


@dataclass
class Settings:
    """Ladder-wide settings that shape every record (and so are part of its key)."""

    metrics: tuple[str, ...] = DEFAULT_METRICS
    latency_queries: int = 50
    prices: dict[str, Price] = field(default_factory=lambda: dict(DEFAULT_PRICES))
    ood_tolerance: float = 0.01  # the ladder's [decision] ood_tolerance: how far a merge rung's alpha may lower out-of-domain scores
    engine: EncodeEngine | None = None  # the [execution] engine documents are encoded on (not in the key: the vectors are the same)
    runtime: str = "torch"  # the [execution] runtime local models are served on (not in the key: fp32 exports are checked to give the same vectors)


def drop_identical_ids(run: Run, top_k: int) -> Run:
    """Remove a document whose id equals its query's id (BEIR's ``ignore_identical_ids``)."""
    return {q: dict([(d, s) for d, s in hits.items() if d != q][:top_k]) for q, hits in run.items()}


def run_rungs(
    targets: list[Target],
    rungs: list[AnyRung],
    *,
    leaderboard: Leaderboard,
    cache: Cache,
    overwrite: bool = False,
    settings: Settings | None = None,
    files_base: Path | None = None,
    keep_skipped: bool = True,
) -> list[Outcome]:
    """Evaluate every rung on every target split; return one outcome per (target, split, rung),
    grouped by target in ladder order. Paths inside rungs (a finetune rung's pair files and output
    folder) resolve from ``files_base``, the folder of the ladder file that names them. Raises
    :class:`RunFailure` after the run if a rung failed."""
    for target in targets:  # fail on a missing split before any work is done
        for split in target.splits:
            target.goldset.split_qrels(split)
    runner = _LadderRun(targets, rungs, leaderboard, cache, overwrite, settings or Settings(), files_base, keep_skipped)
    outcomes = runner.run()
    if runner.failures:
        raise LadderFailure("; ".join(runner.failures) + ". Finished records and paid results are kept: run the same command to resume", outcomes)
    if runner.refused:
        rest = "the other rungs' records are written" if any(o.action != "skipped" for o in outcomes) else "nothing was measured"
        raise LadderRefused("; ".join(runner.refused) + f". Fix the ladder; {rest}", outcomes)
    return outcomes


class LadderFailure(RunFailure):
    """A rung failed at run time; ``outcomes`` are those of the rungs that finished (their records are written)."""

    def __init__(self, message: str, outcomes: list[Outcome]):
        super().__init__(message)
        self.outcomes = outcomes


class LadderRefused(ConfigError):
    """A rung can never run as written (a model id the hub does not have, a malformed id, a missing
    folder): bad input, exit 2, after the other rungs ran; ``outcomes`` are all the run's outcomes."""

    def __init__(self, message: str, outcomes: list[Outcome]):
        super().__init__(message)
        self.outcomes = outcomes


class _LadderRun:
    def __init__(self, targets, rungs, leaderboard, cache, overwrite, settings: Settings, files_base: Path | None = None, keep_skipped: bool = True):
        self.targets, self.rungs, self.leaderboard, self.cache = targets, rungs, leaderboard, cache
        self.overwrite, self.settings, self.files_base = overwrite, settings, files_base
        self.models_root = leaderboard.root.resolve().parent / "models"  # fine-tuned models, beside the leaderboard
        self.records: dict[tuple[int, str, str], RunRecord] = {}
        self.runs: dict[tuple[int, str, str], Run] = {}
        self.down: dict[str, str] = {}  # rung -> why it produced nothing
        self.why: dict[tuple[int, str, str], str] = {}  # (target, split, rung) -> why it has no result
        self.unreadable: dict[tuple[int, str, str], str] = {}  # (target, split, rung) -> its stored run's problem
        self.failures: list[str] = []
        self.refused: list[str] = []  # rungs skipped for bad input (a ConfigError), not for this machine
        self.keep_skipped = keep_skipped  # record a rung that cannot run (False: bench run -m, whose error says it)
        self.needed = self._needed_splits()
        self.consumed = {name for rung in rungs for name in depends_on(rung)}  # rungs whose runs later rungs read

    # -- the Context that stages use ---------------------------------------------------------------
    @property
    def latency_queries(self) -> int:
        return self.settings.latency_queries

    def goldset(self, target: int) -> Goldset:
        return self.targets[target].goldset

    def tuning_target(self, target: int) -> int:
        """Parameters tuned for a goldset are reused for its out-of-domain companions."""
        ood_of = self.targets[target].ood_of
        for i, other in enumerate(self.targets):
            if ood_of and other.goldset.name == ood_of and other.ood_of is None:
                return i
        return target

    def metric(self, name: str | None) -> str:
        return name or self.settings.metrics[0]

    @property
    def ood_tolerance(self) -> float:
        return self.settings.ood_tolerance

    @property
    def engine(self) -> EncodeEngine | None:
        return self.settings.engine

    @property
    def runtime(self) -> str:
        return self.settings.runtime

    def companions(self, target: int) -> list[tuple[int, tuple[str, ...]]]:
        """The out-of-domain companions of ``target``'s goldset in this run, each with its splits."""
        name = self.goldset(target).name
        return [(i, t.splits) for i, t in enumerate(self.targets) if t.ood_of == name]

    def input_record(self, target: int, split: str, rung: str) -> RunRecord:
        slot = (target, split, rung)
        found = self.records.get(slot)
        if found is None:
            why = self.why.get(slot, "has no result")
            if slot in self.unreadable:
                why += f"; {self.unreadable[slot]}: delete that file and run again where rung '{rung}' can run"
            raise SkipSplit(f"needs rung '{rung}' on {self.goldset(target).name}/{split}, which {why}")
        return found

    def input_run(self, target: int, split: str, rung: str) -> Run:
        slot = (target, split, rung)
        if slot not in self.runs:
            record = self.input_record(target, split, rung)
            run, problem = self._read_run(record)
            if problem:
                raise SkipSplit(f"needs rung '{rung}' on {self.goldset(target).name}/{split}, but {problem}: delete that file and run again")
            self.runs[slot] = run
        return self.runs[slot]

    def _read_run(self, record: RunRecord) -> tuple[Run, str | None]:
        """The run stored beside ``record``, or why it cannot be read (naming the file)."""
        try:
            run = self.leaderboard.load_run(record)
            if isinstance(run, dict) and all(isinstance(hits, dict) for hits in run.values()):
                return run, None
            problem = "not a run: expected {query id: {document id: score}}"
        except (OSError, EOFError, ValueError, zlib.error, BenchError) as exc:  # BadGzipFile is an OSError
            problem = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no detail'}"
        plain = record.run_file and Path(record.run_file).name == record.run_file
        path = next(self.leaderboard.records_dir.glob(f"*/*/{glob.escape(record.run_file)}"), record.run_file) if plain else record.run_file
        return {}, f"its stored run {path} cannot be read ({problem})"

    def _reusable(self, i: int, split: str, rung: AnyRung, key: str) -> RunRecord | None:
        """The up-to-date record of this slot, if one exists and (when a later rung reads it) its run can
        be read; a record or run that cannot be read is logged and re-computed."""
        goldset = self.goldset(i)
        try:
            found = self.leaderboard.find(goldset.name, split, rung.name, key)
        except BenchError as exc:  # a corrupt record file: re-computing writes a good one over it
            log.warning("%s; re-computing it", exc)
            return None
        if found is None or rung.name not in self.consumed:
            return found
        run, problem = self._read_run(found)
        if problem:
            log.warning("%s / %s / %s: %s; re-computing it", goldset.name, split, rung.name, problem)
            self.unreadable[(i, split, rung.name)] = problem
            return None
        self.runs[(i, split, rung.name)] = run
        return found

    # -- planning ----------------------------------------------------------------------------------
    def _needed_splits(self) -> dict[tuple[str, int], list[str]]:
        """Splits each rung must produce per target: the requested ones, plus what later rungs consume
        (a tuned hybrid needs its inputs on the tuning split of the in-domain goldset)."""
        need = {(r.name, i): list(t.splits) for r in self.rungs for i, t in enumerate(self.targets)}
        for rung in reversed(self.rungs):
            for i in range(len(self.targets)):
                extra = [(i, s) for s in need[(rung.name, i)]]
                tune_on = getattr(rung, "tune_on", None)
                tuner = self.tuning_target(i)
                if tune_on and tune_on in self.goldset(tuner).qrels:
                    extra.append((tuner, tune_on))
                for dep in depends_on(rung):
                    for j, split in extra:
                        if split not in need[(dep, j)]:
                            need[(dep, j)].append(split)
        return need

    # -- running -----------------------------------------------------------------------------------
    def run(self) -> list[Outcome]:
        # Build every stage first (no model is loaded yet): a configuration error stops the run before
        # any work, and a rung that cannot run here is known before the others spend time.
        stages: dict[str, object] = {}
        for rung in self.rungs:
            try:
                stages[rung.name] = build_stage(rung, self.cache)
            except RungUnavailable as exc:  # no network, no key, a model id or folder that cannot be loaded
                stages[rung.name] = exc
        by_target: list[list[Outcome]] = [[] for _ in self.targets]
        for rung in self.rungs:
            for i, outcomes in enumerate(self._run_rung(rung, stages[rung.name])):
                by_target[i] += [o for o in outcomes if o.record.goldset.split in self.targets[i].splits]
            release_freed_memory()  # what this rung's batches kept would add to the next rung's peak
        return [o for outcomes in by_target for o in outcomes]

    def _run_rung(self, rung: AnyRung, stage) -> list[list[Outcome]]:
        blocked = [d for d in depends_on(rung) if d in self.down]
        if blocked:
            return self._skip_everywhere(rung, f"needs rung '{blocked[0]}', which {self.down[blocked[0]]}")
        if isinstance(stage, RungUnavailable):
            self._refuse_if_bad_input(rung, stage)
            return self._skip_everywhere(rung, str(stage))
        results = []
        try:
            for i in range(len(self.targets)):
                results.append(self._run_target(stage, rung, i))
        except RunFailure as exc:
            self.down[rung.name] = "failed"
            self.failures.append(f"rung '{rung.name}' failed: {exc}")
            results += [[] for _ in range(len(self.targets) - len(results))]
        except _Unavailable as exc:  # its model failed to load at first use: skipped from here on, like one unavailable at build
            self._refuse_if_bad_input(rung, exc.__cause__)
            results.append(exc.outcomes)
            for j in range(len(results), len(self.targets)):
                results.append([self._skip(rung, j, s, exc.reason) for s in self.needed[(rung.name, j)]])
        return results

    def _refuse_if_bad_input(self, rung: AnyRung, exc: BaseException | None) -> None:
        """A rung skipped because what it names can never work (a ConfigError such as "no such
        model") is still recorded as skipped, and fails the run as bad input once the rest has run."""
        if isinstance(exc, ConfigError):
            self.refused.append(f"rung '{rung.name}' cannot run: {exc}")

    def _config(self, rung: AnyRung) -> dict:
        return {"rung": rung.model_dump(mode="json"), "metrics": list(self.settings.metrics), "latency_queries": self.latency_queries}

    def _run_target(self, stage, rung: AnyRung, i: int) -> list[Outcome]:
        goldset = self.goldset(i)
        outcomes, keys, todo = [], {}, []
        for split in self.needed[(rung.name, i)]:
            try:
                dependency = stage.dependency(self, i, split)
            except SkipSplit as exc:
                outcomes.append(self._skip(rung, i, split, str(exc)))
                continue
            keys[split] = record_key(goldset.split_fingerprint(split), self._config(rung), dependency)
            existing = None if self.overwrite else self._reusable(i, split, rung, keys[split])
            if existing:
                log.info("%s / %s / %s unchanged, skipped (use --overwrite to re-run)", goldset.name, split, rung.name)
                self.records[(i, split, rung.name)] = existing
                outcomes.append(Outcome(existing, "unchanged"))
            else:
                todo.append(split)
        if todo:
            progress.note(f"{rung.name} on {goldset.name} ({', '.join(todo)})")
        done: set[str] = set()
        try:
            for split, result in stage.run(self, i, todo) if todo else ():
                done.add(split)
                if isinstance(result, SkipSplit):
                    outcomes.append(self._skip(rung, i, split, str(result)))
                else:
                    outcomes.append(self._record(rung, i, split, keys[split], stage, result))
        except SkipSplit as exc:  # an input the stage reads mid-run (a stored run) cannot be used
            outcomes += [self._skip(rung, i, s, str(exc)) for s in todo if s not in done]
        except RungUnavailable as exc:
            outcomes += [self._skip(rung, i, s, str(exc)) for s in todo if s not in done]
            raise _Unavailable(str(exc), outcomes) from exc
        return outcomes

    def _record(self, rung, i, split, key, stage, result: SplitResult) -> Outcome:
        goldset = self.goldset(i)
        run = result.run
        if goldset.manifest.ignore_identical_ids:
            run = drop_identical_ids(run, rung.top_k)
        start = time.perf_counter()
        scores = evaluate(goldset.scored_qrels(split), run, self.settings.metrics)
        evaluate_s = time.perf_counter() - start
        timings = Timings(
            index_s=round(result.index_s, 4),
            encode_queries_s=round(result.encode_queries_s, 4),
            search_s=round(result.search_s, 4),
            evaluate_s=round(evaluate_s, 4),
            total_s=round(result.index_s + result.encode_queries_s + result.search_s + evaluate_s, 4),
        )
        record = self._base_record(rung, i, split, key, stage.fingerprint).model_copy(
            update={
                "metrics": scores.mean,
                "per_query": scores.per_query,
                "timings": timings,
                "counts": result.counts,
                "latency": _latency(result.latency),
                "cost": self._cost(result),
                "details": result.details,
                "subsets": {name: subset(scores.per_query, queries) for name, queries in result.subsets.items()},
            }
        )
        record = self.leaderboard.write(record, run)
        self.records[(i, split, rung.name)] = record
        self.runs[(i, split, rung.name)] = run
        return Outcome(record, "ran")

    def _cost(self, result: SplitResult) -> Cost:
        usage: dict[str, float] = {}
        usd: float | None = 0.0
        calls = result.api_calls
        for parent in result.inherited:
            for name, units in parent.cost.usage.items():
                usage[name] = usage.get(name, 0.0) + units
            usd = None if usd is None or parent.cost.usd is None else usd + parent.cost.usd
        for price_key, units in result.usage.items():
            price = self.settings.prices.get(price_key)
            label = f"{price_key} {price.unit if price else 'units'}"
            usage[label] = usage.get(label, 0.0) + units
            usd = None if usd is None or price is None else usd + price.dollars(units)
        return Cost(api_calls=calls, usage={k: round(v, 3) for k, v in usage.items()}, usd=None if usd is None else round(usd, 6))

    def _base_record(self, rung: AnyRung, i: int, split: str, key: str, encoder_fp: str | None) -> RunRecord:
        target, goldset = self.targets[i], self.goldset(i)
        return RunRecord(
            schema_version=SCHEMA_VERSION,
            key=key,
            created_at=now_iso(),
            status="ok",
            reason=None,
            goldset=GoldsetRef(
                name=goldset.name,
                source=goldset.source,
                split=split,
                fingerprint=goldset.fingerprint,
                split_fingerprint=goldset.split_fingerprint(split),
                n_queries=len(goldset.split_queries(split)),
                n_documents=len(goldset.corpus),
                ood_of=target.ood_of,
                ignore_identical_ids=goldset.manifest.ignore_identical_ids,
            ),
            rung=RungRef(name=rung.name, kind=rung.kind, config=rung.model_dump(mode="json"), encoder_fingerprint=encoder_fp),
            primary_metric=self.settings.metrics[0],
            metrics={},
            per_query={},
            run_file=None,
            timings=Timings(index_s=0, encode_queries_s=0, search_s=0, evaluate_s=0, total_s=0),
            counts=Counts(documents_encoded=0, documents_cached=0, queries_encoded=0, queries_cached=0),
            latency=None,
            cost=Cost(api_calls=0, usage={}, usd=0.0),
            details={},
            subsets={},
            environment=environment(),
        )

    def _skip(self, rung: AnyRung, i: int, split: str, reason: str) -> Outcome:
        self.why[(i, split, rung.name)] = f"was skipped ({reason})"
        key = record_key(self.goldset(i).split_fingerprint(split), self._config(rung), None)
        record = self._base_record(rung, i, split, key, None).model_copy(update={"status": "skipped", "reason": reason})
        if not self.keep_skipped:
            return Outcome(record, "skipped")
        log.warning("%s / %s / %s skipped: %s", self.goldset(i).name, split, rung.name, reason)
        return Outcome(self.leaderboard.write(record, None), "skipped")

    def _skip_everywhere(self, rung: AnyRung, reason: str) -> list[list[Outcome]]:
        self.down[rung.name] = f"was skipped ({reason})" if not reason.startswith("needs rung") else "was skipped"
        return [[self._skip(rung, i, s, reason) for s in self.needed[(rung.name, i)]] for i in range(len(self.targets))]


class _Unavailable(Exception):
    """A rung became unavailable while running one target (its model failed to load): the outcomes it
    recorded there, and the reason the rest is skipped."""

    def __init__(self, reason: str, outcomes: list[Outcome]):
        super().__init__(reason)
        self.reason, self.outcomes = reason, outcomes


def _latency(seconds: dict[str, float]) -> Latency | None:
    if not seconds:
        return None
    ms = sorted(s * 1000 for s in seconds.values())
    cuts = statistics.quantiles(ms, n=100, method="inclusive") if len(ms) > 1 else [ms[0]] * 99
    return Latency(
        n=len(ms), p50_ms=round(statistics.median(ms), 3), p95_ms=round(cuts[94], 3), per_query_ms={q: round(s * 1000, 3) for q, s in seconds.items()}, load=_load(),
    )


def _load() -> float | None:
    """The 1-minute load average per core (None where the platform has none, e.g. Windows)."""
    try:
        return round(os.getloadavg()[0] / (os.cpu_count() or 1), 2)
    except (AttributeError, OSError):
        return None
