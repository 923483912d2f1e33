"""Which stage runs each kind of rung (:func:`build_stage`): the stages of :mod:`harness.ladder.stages`
and :mod:`harness.ladder.tuned`, and the compress rung's, which builds on them (:mod:`harness.ladder.compress`)."""

from __future__ import annotations

from harness.cache import Cache
from harness.ladder.compress import CompressStage
from harness.ladder.rungs import AdapterRung, AnyRung, CompressRung, FinetuneRung, HybridRung, MergeRung, RerankRung
from harness.ladder.stages import HybridStage, RerankStage, RetrieverStage, Stage
from harness.ladder.tuned import AdapterStage, FinetuneStage, MergeStage


def build_stage(rung: AnyRung, cache: Cache) -> Stage:
    """The stage for ``rung``; raises :class:`~harness.errors.RungUnavailable` if it cannot run here."""
    if isinstance(rung, CompressRung):
        return CompressStage(rung, cache)
    if isinstance(rung, MergeRung):
        return MergeStage(rung, cache)
    if isinstance(rung, AdapterRung):
        return AdapterStage(rung, cache)
    if isinstance(rung, FinetuneRung):
        return FinetuneStage(rung, cache)
    if isinstance(rung, HybridRung):
        return HybridStage(rung)
    if isinstance(rung, RerankRung):
        return RerankStage(rung, cache)
    return RetrieverStage(rung, cache)
