"""The regression gate CI runs: a candidate's records against a stored baseline's, rule by rule.

Records pair on (goldset, split); a baseline slot with no candidate record, or a goldset whose
content fingerprint changed since the baseline was recorded, is an error (exit 2), never a silent
comparison. Each ``[[gate.rules]]`` entry of the ladder file (see :class:`harness.ladder.schema.Gate`)
applies to every pair it selects; a rule that selects nothing is an error too, so a typo'd split
cannot turn the gate into a no-op.

When several rules ask for significance, their p-values are Holm-adjusted together: a gate that
checks five metrics should not cry wolf five times as often as one that checks one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.decide.significance import Comparison, check_same_split, compare, holm
from harness.errors import BenchError, did_you_mean
from harness.ladder.schema import Gate, GateRule
from harness.records import Leaderboard, RunRecord, read_record

_TOLERANCE = 1e-12  # a drop of exactly max_drop passes, whatever the float rounding of the mean


@dataclass(frozen=True)
class Check:
    """One rule applied to one (goldset, split) pair. ``p_holm`` is set when the rule asks for significance."""

    goldset: str
    split: str
    rule: GateRule
    baseline_rung: str
    candidate_rung: str
    comparison: Comparison
    p_holm: float | None

    @property
    def drop(self) -> float:
        return -self.comparison.delta

    @property
    def verdict(self) -> str:
        """``pass``, ``regression``, or ``not significant`` (dropped too far, but within the noise the rule forgives)."""
        if self.drop <= self.rule.max_drop + _TOLERANCE:
            return "pass"
        if self.p_holm is not None and self.p_holm >= self.comparison.alpha:
            return "not significant"
        return "regression"

    def as_dict(self) -> dict:
        return {
            "goldset": self.goldset,
            "split": self.split,
            "baseline_rung": self.baseline_rung,
            "candidate_rung": self.candidate_rung,
            "max_drop": self.rule.max_drop,
            "requires_significance": self.rule.significant,
            "subset": self.rule.subset,
            "p_holm": self.p_holm,
            "verdict": self.verdict,
            **self.comparison.as_dict(),
        }


@dataclass(frozen=True)
class GateResult:
    checks: list[Check]

    @property
    def regressions(self) -> list[Check]:
        return [c for c in self.checks if c.verdict == "regression"]

    @property
    def passed(self) -> bool:
        return not self.regressions

    def as_dict(self) -> dict:
        return {"passed": self.passed, "regressions": len(self.regressions), "checks": [c.as_dict() for c in self.checks]}


def load_records(spec: str, leaderboard: Path | str) -> list[RunRecord]:
    """A record file, or the latest ok records of the rung named ``spec`` in the leaderboard folder."""
    path = Path(spec)
    if path.is_file():
        return [read_record(path)]
    if spec.endswith(".json") or path.parent != Path("."):
        raise BenchError(f"record file '{spec}' not found")
    latest = [r for r in Leaderboard(leaderboard).latest() if r.rung.name == spec]
    records = [r for r in latest if r.status == "ok"]
    if records:
        return records
    if latest:
        raise BenchError(f"rung '{spec}' has only skipped records in '{leaderboard}' ({latest[0].reason})")
    rungs = sorted({r.rung.name for r in Leaderboard(leaderboard).latest()})
    raise BenchError(f"no record of rung '{spec}' in '{leaderboard}/records' (rungs there: {', '.join(rungs) or 'none'}).{did_you_mean(spec, rungs)}")


def only(records: list[RunRecord], goldsets: set[str], role: str) -> list[RunRecord]:
    """The records on ``goldsets`` (by name, with their out-of-domain companions; all when empty), or an
    error naming the goldsets there are. (Splits are the rules' business: ``-s`` sets every rule's.)"""
    kept = [r for r in records if not goldsets or r.goldset.name in goldsets or r.goldset.ood_of in goldsets]
    if not kept:
        have = ", ".join(f"{r.goldset.name}/{r.goldset.split}" for r in records) or "none"
        raise BenchError(f"the {role} has no record on goldset {' or '.join(repr(g) for g in sorted(goldsets))} ({role} records: {have}); pick from those with -g")
    return kept


def evaluation_records(baselines: list[RunRecord], leaderboard: list[RunRecord]) -> list[RunRecord]:
    """The baseline's records on evaluation splits: a split some rung of the same goldset was tuned or
    trained on (``tune_on = "dev"`` writes the baseline's dev records) is left out, as the views leave
    it out of their plots, unless the baseline has nothing else. ``-s`` still gates any split."""
    from harness.decide.views import tuning_splits

    def tuned(record: RunRecord) -> bool:
        return record.goldset.split in tuning_splits([r for r in leaderboard if r.goldset.name == record.goldset.name])

    return [r for r in baselines if not tuned(r)] or baselines


def run_gate(candidates: list[RunRecord], baselines: list[RunRecord], gate: Gate, rules: list[GateRule], *, n_permutations: int = 10000) -> GateResult:
    """Apply every rule to every baseline record it selects, against the candidate's record of the
    same goldset and split (each metric of each pair compared once)."""
    by_slot = {(r.goldset.name, r.goldset.split): r for r in candidates}
    comparisons: dict[tuple[str, str, str], Comparison] = {}
    selected = []  # (rule, candidate, baseline, comparison)
    for rule in rules:
        for baseline in _selected_by(rule, baselines):
            candidate = _partner(by_slot, baseline)
            key = (baseline.goldset.name, baseline.goldset.split, rule.metric, rule.subset)
            if key not in comparisons:
                queries = _subset(candidate, rule.subset) if rule.subset else None
                comparisons[key] = compare(candidate, baseline, rule.metric, method=gate.test, alpha=gate.alpha, n_permutations=n_permutations, queries=queries)
            selected.append((rule, candidate, baseline, comparisons[key]))
    adjusted = holm({k: comparison.p_value for k, (rule, _, _, comparison) in enumerate(selected) if rule.significant})
    return GateResult(
        [Check(b.goldset.name, b.goldset.split, rule, b.rung.name, c.rung.name, comparison, adjusted.get(k)) for k, (rule, c, b, comparison) in enumerate(selected)]
    )


def effective_rules(gate: Gate, primary_metric: str) -> list[GateRule]:
    """The [gate] table's rules, or by default: the primary metric may drop 0.01 anywhere."""
    return gate.rules or [GateRule(metric=primary_metric)]


def _selected_by(rule: GateRule, baselines: list[RunRecord]) -> list[RunRecord]:
    matches = [b for b in baselines if rule.split in (None, b.goldset.split) and rule.goldset in (None, b.goldset.name)]
    if not matches:
        have = ", ".join(f"{b.goldset.name}/{b.goldset.split}" for b in baselines)
        raise BenchError(f"gate rule for '{rule.metric}' (goldset {rule.goldset or 'any'}, split {rule.split or 'any'}) matches no baseline record (baseline records: {have})")
    return matches


def _subset(candidate: RunRecord, name: str) -> list[str]:
    """The candidate's queries of subset ``name``, or an error saying why a rule on it cannot be checked."""
    where = f"rung '{candidate.rung.name}' on {candidate.goldset.name}/{candidate.goldset.split}"
    if name not in candidate.subsets:
        raise BenchError(f"gate rule on the '{name}' queries: {where} has no such subset (only a model fine-tuned on this goldset's corpus has one; re-run it with this version)")
    if not candidate.subsets[name].queries:
        raise BenchError(f"gate rule on the '{name}' queries: {where} has none (every query is on the other side); drop the rule's subset or hold out documents from training")
    return candidate.subsets[name].queries


def _partner(by_slot: dict[tuple[str, str], RunRecord], baseline: RunRecord) -> RunRecord:
    """The candidate's record on the baseline's goldset and split, its goldset content checked unchanged."""
    slot = (baseline.goldset.name, baseline.goldset.split)
    if slot not in by_slot:
        have = ", ".join(f"{g}/{s}" for g, s in by_slot) or "none"
        raise BenchError(
            f"the candidate has no record on goldset '{slot[0]}' split '{slot[1]}', which the baseline has (candidate records: {have}); "
            "gate only what both have with -g GOLDSET and -s SPLIT, or evaluate the candidate there"
        )
    check_same_split(by_slot[slot], baseline, role="baseline")
    return by_slot[slot]


def gate_table(result: GateResult, title: str):
    """A rich table: one row per check."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for header in ("goldset", "split", "metric", "baseline", "candidate", "delta", "95% CI", "p", "MDD", "allowed drop", "verdict"):
        table.add_column(header, justify="left" if header in ("goldset", "split", "metric", "verdict") else "right")
    styles = {"pass": "green", "regression": "bold red", "not significant": "yellow"}
    for check in result.checks:
        c = check.comparison
        p = f"{c.p_value:.3g}" + (f" (Holm {check.p_holm:.3g})" if check.p_holm is not None and len(result.checks) > 1 else "")
        allowed = f"{check.rule.max_drop:.3f}" + (" if significant" if check.rule.significant else "")
        table.add_row(
            check.goldset, check.split + (f" ({check.rule.subset})" if check.rule.subset else ""), c.metric, f"{c.reference:.4f}", f"{c.candidate:.4f}", f"{c.delta:+.4f}",
            f"[{c.ci_low:+.4f}, {c.ci_high:+.4f}]", p, f"{c.mdd:.4f}", allowed, f"[{styles[check.verdict]}]{check.verdict}[/]",
        )
    return table


def gate_summary(result: GateResult) -> str:
    """One line: PASS, or FAIL with each regression."""
    if result.passed:
        return f"gate: PASS ({len(result.checks)} check{'s' if len(result.checks) != 1 else ''})"
    failures = "; ".join(f"{c.comparison.metric} on {c.goldset}/{c.split}{f' ({c.rule.subset} documents)' if c.rule.subset else ''} dropped {c.drop:.4f} (allowed {c.rule.max_drop:.4f}, p={c.comparison.p_value:.3g})" for c in result.regressions)
    return f"gate: FAIL: {failures}"
