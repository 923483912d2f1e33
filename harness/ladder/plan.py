"""Small helpers that turn CLI-shaped choices into API objects (usable from a notebook too)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from harness.cache import Cache
from harness.data.goldset import MANIFEST, Goldset
from harness.data.mteb_task import HubUnreachable
from harness.data.resolve import find_goldset, goldset_name, resolve_goldset
from harness.errors import GoldsetError
from harness.ladder.runner import Outcome, Settings, Target, run_rungs
from harness.ladder.schema import Ladder
from harness.records import Leaderboard

log = logging.getLogger(__name__)


def plan_targets(sources: Sequence[str], splits: Sequence[str] = (), *, include_ood: bool = True, base: Path | None = None) -> list[Target]:
    """Load goldsets and their out-of-domain companions.

    ``splits`` applies to the named goldsets (default: each one's ``eval_splits``); companions are
    evaluated on their own ``eval_splits``. A companion reached twice is loaded once; an MTEB companion
    whose data cannot be had (offline, not cached) is left out with a warning. Relative
    folders are looked up under ``base`` (a ladder file's folder) first.
    """
    targets: list[Target] = []
    for source in sources:
        goldset = resolve_goldset(source, base)
        if _already(goldset, targets):
            continue
        chosen = tuple(splits) or tuple(s for s in goldset.manifest.eval_splits if s in goldset.qrels) or tuple(goldset.qrels)[-1:]
        targets.append(Target(goldset, chosen))
        folder = Path(goldset.source) if Path(goldset.source).is_dir() else None  # a manifest's paths are relative to its folder
        for companion_source in goldset.ood_sources() if include_ood else []:
            add_companion(targets, companion_source, folder, goldset.name)
    return targets


def add_companion(targets: list[Target], source: str, base: Path | None, of: str) -> None:
    """Append the out-of-domain companion ``source`` of goldset ``of`` to ``targets`` (on its own
    ``eval_splits``) unless it is there already; an MTEB companion whose data cannot be had (offline,
    not cached) is left out with one warning line, and the other goldsets still run."""
    try:
        companion = resolve_goldset(source, base)
    except HubUnreachable as exc:
        log.warning("out-of-domain companion of '%s' skipped: %s", of, exc)
        return
    if not _already(companion, targets):
        targets.append(Target(companion, tuple(s for s in companion.manifest.eval_splits if s in companion.qrels), ood_of=of))


def _already(goldset: Goldset, targets: list[Target]) -> bool:
    """Whether ``goldset`` is one of ``targets`` already (same name, same content: listed twice, or a
    companion reached twice). Two names for the same content are both kept, with a warning; one name
    for two contents is an error, since their records would share one place in the leaderboard."""
    for target in targets:
        other = target.goldset
        if other.name == goldset.name:
            if other.fingerprint == goldset.fingerprint:
                return True
            raise GoldsetError(
                f"two different goldsets are named '{goldset.name}' ({other.source} and {goldset.source}); "
                f"set name = '...' in one's {MANIFEST} so their records do not mix"
            )
        if other.fingerprint == goldset.fingerprint:
            log.warning("goldsets '%s' and '%s' have identical content (%s and %s); both are evaluated", other.name, goldset.name, other.source, goldset.source)
    return False


def model_ladder(ladder: Ladder, model: str) -> Ladder:
    """``ladder`` with its rungs replaced by one dense rung over ``model`` (a hub id or a folder), named ``dense:<last part>``."""
    from harness.ladder.rungs import DenseRung
    from harness.registry import EncoderConfig

    name = "dense:" + model.rstrip("/").split("/")[-1]
    return ladder.model_copy(update={"rungs": [DenseRung(name=name, encoder=EncoderConfig(model=model))]})


def run_ladder(
    ladder: Ladder,
    *,
    leaderboard: Leaderboard,
    cache: Cache,
    goldsets: Sequence[str] = (),
    splits: Sequence[str] = (),
    rungs: Sequence[str] = (),
    ood: bool | None = None,
    overwrite: bool = False,
    keep_skipped: bool = True,
) -> list[Outcome]:
    """Run a ladder; each argument left empty takes the ladder's value (goldsets named here are
    relative to the working directory, or the name of one of the ladder's goldsets; the ladder's are
    relative to its file's folder). ``keep_skipped`` False leaves no record of a rung that could not
    run (``bench run -m``: the error says it; a record would stay in the views)."""
    engine = ladder.execution.build()  # first: a missing package stops the run before any goldset loads
    targets = plan_targets(
        [_ladder_goldset(g, ladder) for g in goldsets] or ladder.goldsets,
        splits or ladder.splits,
        include_ood=ladder.ood if ood is None else ood,
        base=None if goldsets else ladder.base,
    )
    settings = Settings(
        metrics=ladder.metric_order, latency_queries=ladder.latency_queries, prices=ladder.price_table(), ood_tolerance=ladder.decision.ood_tolerance, engine=engine,
        runtime=ladder.execution.runtime,
    )
    return run_rungs(
        targets, ladder.select(rungs), leaderboard=leaderboard, cache=cache, overwrite=overwrite, settings=settings, files_base=ladder.base, keep_skipped=keep_skipped,
    )


def _ladder_goldset(source: str, ladder: Ladder) -> str:
    """``-g source`` as given when it names a goldset from here; else the ladder's goldset of that name
    (``-g pydocs`` for a ladder elsewhere that lists ``goldsets/pydocs``), as a path from here."""
    try:
        find_goldset(source)
        return source
    except GoldsetError:
        pass
    for listed in ladder.goldsets:
        if not listed.startswith("mteb:") and goldset_name(listed, ladder.base) == source:
            return str(find_goldset(listed, ladder.base))
    return source  # plan_targets says what exists
