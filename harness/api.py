"""Small helpers that turn CLI-shaped choices into API objects (usable from a notebook too)."""

from __future__ import annotations

from collections.abc import Sequence

from harness.errors import ConfigError, did_you_mean
from harness.goldset import resolve_goldset
from harness.runner import Target


def plan_targets(sources: Sequence[str], splits: Sequence[str] = (), *, include_ood: bool = True) -> list[Target]:
    """Load goldsets and their out-of-domain companions.

    ``splits`` applies to the named goldsets (default: each one's ``eval_splits``); companions are
    evaluated on their own ``eval_splits``. A companion reached twice is loaded once.
    """
    targets: list[Target] = []
    seen: set[str] = set()
    for source in sources:
        goldset = resolve_goldset(source)
        if goldset.fingerprint in seen:
            continue
        seen.add(goldset.fingerprint)
        chosen = tuple(splits) or tuple(s for s in goldset.manifest.eval_splits if s in goldset.qrels) or tuple(goldset.qrels)[-1:]
        targets.append(Target(goldset, chosen))
        for companion_source in goldset.ood_sources() if include_ood else []:
            companion = resolve_goldset(companion_source)
            if companion.fingerprint not in seen:
                seen.add(companion.fingerprint)
                targets.append(Target(companion, tuple(s for s in companion.manifest.eval_splits if s in companion.qrels), ood_of=goldset.name))
    return targets


def select_rungs(rungs: list, names: Sequence[str]) -> list:
    """The rungs named in ``names`` (all when empty), with a did-you-mean error for unknown names."""
    if not names:
        return rungs
    by_name = {r.name: r for r in rungs}
    for name in names:
        if name not in by_name:
            raise ConfigError(f"unknown rung '{name}' (rungs: {', '.join(by_name)}).{did_you_mean(name, by_name)}")
    return [by_name[n] for n in names]
