"""The go/no-go report: should this team fine-tune its embedding model? GO, NO-GO or NOT YET, with reasons.

It follows the ladder on one in-domain goldset split, using only records:

1. the baseline (the ladder's first rung) against the quality bar (``recall@10`` >= 0.80 by default);
2. what each cheaper rung bought over the baseline, at what cost and latency: paired tests on the
   per-query scores, Holm-corrected over the rungs compared;
3. whether the best fine-tuned round beats the best cheaper rung by ``finetune_margin``, significantly
   (Holm over the rounds), without losing more than ``ood_tolerance`` against the baseline on an
   out-of-domain companion (catastrophic forgetting shows there first);
4. the cheapest option that meets the bar, and the pitfalls the evidence shows.

A fine-tuned model is scored on all the evaluation queries, and apart on those about documents it
trained on ("seen") and the others ("unseen"), each paired with the cheaper rung on the same queries.
The goldset manifest's ``corpus`` says which the decision rests on: all queries for a ``fixed``
corpus (tomorrow's queries hit the documents trained on), the unseen ones for a ``growing`` corpus.

GO: fine-tuning wins by the margin, significantly, with no OOD loss. NO-GO: a cheaper rung is as good
(the 95% interval of the gain lies below the margin, or the gain is significant but below it), or
fine-tuning loses out of domain. NOT YET: not enough evidence (fine-tuning not run, or a gain that is
not significant while its interval still reaches the margin: too few queries to tell).
Thresholds come from the ladder's ``[decision]`` table (:class:`harness.ladder.schema.Decision`).
"""

from __future__ import annotations

import html
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from harness.decide.significance import Comparison, compare, holm
from harness.decide.views import (
    COLUMNS,
    Panel,
    builds_on,
    figures_html,
    html_page,
    html_table,
    markdown_line,
    markdown_table,
    markdown_text,
    panel_figures,
    panels,
    shown,
)
from harness.errors import BenchError
from harness.ladder.schema import Decision, Ladder
from harness.records import RunRecord, subset
from harness.training.schema import MODEL_CARD

VERDICTS = ("GO", "NO-GO", "NOT YET")
_ROUND = re.compile(r"-r(\d+)$")


def is_finetuned(record: RunRecord) -> bool:
    """Trained on the goldset's own data: a ``finetune`` round or an ``adapter`` rung, a rung named
    ``<job>-r<i>`` as ``bench train`` records them, or any rung whose model folder holds a tunebench model
    card (``bench run -m models/.../r0/model``)."""
    return record.rung.kind in ("finetune", "adapter", "merge") or bool(_ROUND.search(record.rung.name)) or bool(model_card(record))


def model_card(record: RunRecord) -> dict:
    """The ``tunebench.json`` card beside the record's model, when the model is a folder still on disk ({} otherwise)."""
    model = record.details.get("model") or record.rung.config.get("encoder", {}).get("model", "")
    path = Path(model) / MODEL_CARD if model else None
    return json.loads(path.read_text()) if path and path.is_file() else {}


SUBSET_LABELS = {None: "all queries", "seen": "seen documents", "unseen": "unseen documents"}
DECIDING = {"fixed": None, "growing": "unseen"}  # the corpus scenario -> the query subset the verdict rests on


@dataclass
class Row:
    """A rung compared with a reference (the baseline, or the best cheaper rung) on all queries or
    on one subset of them, Holm-adjusted."""

    record: RunRecord
    comparison: Comparison | None = None
    p_holm: float = math.nan
    subset: str | None = None
    reference: str = ""  # the rung compared with

    @property
    def significant(self) -> bool:
        return self.comparison is not None and self.p_holm < self.comparison.alpha


@dataclass
class Section:
    """A heading, plain-text lines (bullets) and an optional table: rendered to Markdown and HTML alike."""

    title: str
    lines: list[str] = field(default_factory=list)
    table: tuple[list[str], list[list[str]]] | None = None


@dataclass
class Report:
    verdict: str
    reasons: list[str]
    panel: Panel
    sections: list[Section]
    pitfalls: list[str]

    def markdown(self) -> str:
        return render_markdown(self)

    def html(self) -> str:
        return render_html(self)


# ---- evidence --------------------------------------------------------------------------------------


def choose_panel(records: list[RunRecord], goldset: str | None, split: str | None, ladder: Ladder | None = None) -> Panel:
    """The in-domain goldset and split the report is about (default: the first goldset, its test split),
    rows in the ladder's order."""
    found = panels(records, [r.name for r in ladder.rungs] if ladder else ())
    names = sorted({p.goldset for p in found})
    if goldset:
        found = [p for p in found if p.goldset == goldset]
        if not found:
            raise BenchError(f"no records of goldset '{goldset}' (goldsets with records: {', '.join(names) or 'none'}); run: bench run")
    if not found:
        raise BenchError("no in-domain records to report on; run: bench run")
    if split:
        chosen = [p for p in found if p.split == split]
        if not chosen:
            raise BenchError(f"no records of split '{split}' for goldset '{found[0].goldset}' (splits: {', '.join(p.split for p in found)})")
        return chosen[0]
    return next((p for p in found if p.split == "test"), found[0])


def ordered(records: list[RunRecord], ladder: Ladder) -> list[RunRecord]:
    """Ok records in ladder order (rungs the ladder does not list, such as ``bench train`` rounds, after)."""
    rank = {r.name: i for i, r in enumerate(ladder.rungs)}
    ok = [r for r in records if r.status == "ok"]
    return sorted(ok, key=lambda r: rank.get(r.rung.name, len(rank)))


def compare_all(records: list[RunRecord], reference: RunRecord | list[RunRecord], metric: str, decision: Decision, subset: str | None = None) -> list[Row]:
    """Each record against ``reference`` (given several, the best of them on the same queries), on the
    record's ``subset`` of queries when given (records without it, or with it empty, are left out),
    p-values Holm-adjusted over the records compared."""
    if subset is not None:
        records = [r for r in records if r.subsets.get(subset) and r.subsets[subset].queries]
    rows = []
    for r in records:
        queries = _queries(r, subset)
        best = reference if isinstance(reference, RunRecord) else best_on(reference, metric, queries)
        rows.append(Row(r, compare(r, best, metric, method=decision.test, alpha=decision.alpha, queries=queries), subset=subset, reference=best.rung.name))
    adjusted = holm({r.record.rung.name: r.comparison.p_value for r in rows})
    for row in rows:
        row.p_holm = adjusted[row.record.rung.name]
    return rows


def _queries(record: RunRecord, subset: str | None) -> list[str] | None:
    return None if subset is None else record.subsets[subset].queries


def best_on(records: list[RunRecord], metric: str, queries: list[str] | None = None) -> RunRecord:
    """The record with the highest mean ``metric`` on ``queries`` (all of its queries when None): on the
    unseen-document queries the strongest cheaper rung may not be the strongest overall."""
    return max(records, key=lambda r: subset(r.per_query, list(r.per_query) if queries is None else queries).metrics.get(metric, -math.inf))


def ood_rows(panel: Panel, candidate: RunRecord, baseline: RunRecord, metric: str, decision: Decision) -> list[Row]:
    """The candidate against the baseline on each out-of-domain companion both were scored on."""
    rows = []
    for records in panel.companions.values():
        by_rung = {r.rung.name: r for r in records if r.status == "ok"}
        if candidate.rung.name in by_rung and baseline.rung.name in by_rung:
            rows += compare_all([by_rung[candidate.rung.name]], by_rung[baseline.rung.name], metric, decision)
    return rows


def training_facts(record: RunRecord) -> dict:
    """What a fine-tuning round's record and model card say: leakage count and policy, round, pairs.

    FinetuneStage and AdapterStage records carry ``details`` (round or adapter, leakage, on_leakage);
    ``bench train`` records do not, so the model card (``tunebench.json`` beside the model, when it is
    still on disk) fills in.
    """
    card = model_card(record)
    config = card.get("config") or record.rung.config.get("train", {})
    round_ = record.details.get("round", card.get("round"))
    if round_ is None and _ROUND.search(record.rung.name):
        round_ = int(_ROUND.search(record.rung.name).group(1))
    card_counts = card.get("leakage")
    counts = card_counts if isinstance(card_counts, dict) else {} if card_counts is None else {"combined": card_counts}
    if "leakage" in record.details and "overlap" not in record.details:  # recorded before query leaks and document overlap were told apart
        counts = {"combined": record.details["leakage"]}
    return {
        "leakage": None if "combined" in counts else record.details.get("leakage", counts.get("query_leaks")),
        "overlap": record.details.get("overlap", counts.get("overlap")),
        "combined": counts.get("combined"),  # one count of both, from records and cards before the split
        "on_leakage": record.details.get("on_leakage", config.get("on_leakage")), "on_overlap": record.details.get("on_overlap", config.get("on_overlap")),
        "round": round_, "pairs": record.details.get("pairs", card.get("pairs")),
    }


ORIGINS = {"synthetic": "written by an LLM", "structure": "headings and titles taken from the documents"}


def _manifest(record: RunRecord):
    from harness.data.goldset import Manifest, read_manifest

    folder = Path(record.goldset.source)
    return read_manifest(folder) if (folder / "goldset.toml").is_file() else Manifest()


def query_origin(record: RunRecord) -> str:
    """Who wrote the evaluation queries, as the goldset manifest's ``query_origin`` says (``bench pairs``
    writes it: human for labels and click logs, synthetic, structure); "" when nothing records it."""
    return _manifest(record).query_origin


def corpus_scenario(record: RunRecord) -> str:
    """The goldset manifest's ``corpus``: "fixed" (the default) or "growing"."""
    return _manifest(record).corpus


# ---- the decision ----------------------------------------------------------------------------------


def verdict(best: Row | None, ood: list[Row], decision: Decision) -> tuple[str, str]:
    """GO / NO-GO / NOT YET and the one reason that decided it (see the module docstring)."""
    if best is None:
        return "NOT YET", "fine-tuning has not been run on this goldset: add a finetune rung to the ladder or run bench train"
    c, name, cheaper = best.comparison, best.record.rung.name, best.reference
    on = "" if best.subset is None else f" on the {c.n} queries about {SUBSET_LABELS[best.subset]}"
    drops = [row for row in ood if row.comparison.delta < -decision.ood_tolerance]
    if drops:
        worst = min(drops, key=lambda row: row.comparison.delta)
        return "NO-GO", f"{name} loses {-worst.comparison.delta:.3f} {c.metric} out of domain on {worst.record.goldset.name} (tolerance {decision.ood_tolerance})"
    gain = f"{name} {_signed(c.delta)} {c.metric} over {cheaper}{on} (95% CI {_signed(c.ci_low)} to {_signed(c.ci_high)}, p = {best.p_holm:.3g} after Holm)"
    if best.significant:
        if c.delta >= decision.finetune_margin:
            return "GO", f"{gain}: significant and at least the margin {decision.finetune_margin}"
        return "NO-GO", f"{gain}: {cheaper} is as good or better (the gain is below the margin {decision.finetune_margin})"
    if c.ci_high < decision.finetune_margin:  # the interval already rules out a gain worth having
        return "NO-GO", f"{gain}: not significant, and the interval excludes a gain of the margin {decision.finetune_margin}; {cheaper} is as good"
    few = "queries" if best.subset is None else f"queries about {SUBSET_LABELS[best.subset]}"
    return "NOT YET", f"{gain}: not significant, and too few {few} to decide: with {c.n} of them only differences of {c.mdd:.3f} or more are detectable (margin {decision.finetune_margin})"


def _no_subset_reason(finetuned: list[RunRecord], subset: str, scenario: str) -> str:
    """Why a ``growing`` corpus cannot be decided: no fine-tuned record has queries about unseen documents."""
    unknown = [r.rung.name for r in finetuned if subset not in r.subsets]
    everything = [r.rung.name for r in finetuned if subset in r.subsets]
    parts = []
    if everything:
        parts.append(f"{', '.join(everything)} trained on a relevant document of every evaluation query (hold out documents, with their queries, from training to measure it)")
    if unknown:
        parts.append(f"the records of {', '.join(unknown)} do not say which queries those are (a model not trained by tunebench, or recorded before it kept "
                     "the documents it trained on: re-run it)")
    return f"the corpus is {scenario}, so the verdict rests on queries about {SUBSET_LABELS[subset]}, but " + "; and ".join(parts)


def pitfalls(panel: Panel, finetuned: list[RunRecord], best: Row | None, decision: Decision, scenario: str = "fixed") -> list[str]:
    """Problems visible in the evidence that weaken any decision taken on it."""
    first = panel.records[0]
    found = []
    if not any(r.status == "ok" for rs in panel.companions.values() for r in rs):
        found.append("no out-of-domain set: a fine-tuned model's losses outside this domain cannot be seen (add ood = [...] to the goldset manifest)")
    origin = query_origin(first)
    if origin and origin != "human":
        found.append(f"the evaluation queries are {ORIGINS[origin]}, not written by users: scores may flatter a model trained on the same kind of queries")
    elif not origin:
        found.append("where the evaluation queries came from is not recorded (people or a generator); synthetic-only evaluation cannot be ruled out")
    if first.goldset.n_queries < decision.min_queries:
        found.append(f"only {first.goldset.n_queries} evaluation queries (fewer than {decision.min_queries}): differences are hard to tell apart")
    if best is not None and best.comparison.mdd > decision.finetune_margin:
        found.append(f"too few queries to tell: the minimum detectable difference is {best.comparison.mdd:.3f} against a margin of {decision.finetune_margin}")
    found += _training_pitfalls(finetuned, scenario)
    found += latency_pitfalls([r for r in panel.records if r.status == "ok"])
    found += changed_goldset(first)
    return found


def changed_goldset(record: RunRecord) -> list[str]:
    """The goldset folder the records were scored on, when it now holds other content (rebuilt, edited):
    every number here describes the old one."""
    from harness.data.goldset import load_goldset
    from harness.errors import BenchError

    folder = Path(record.goldset.source)
    if not folder.is_dir():
        return []
    try:
        now = load_goldset(folder).split_fingerprint(record.goldset.split)
    except (BenchError, KeyError):  # unreadable now, or the split is gone
        return [f"the goldset folder {folder} no longer loads with split '{record.goldset.split}': these records describe what it held when they were scored"]
    if now == record.goldset.split_fingerprint:
        return []
    return [f"the goldset folder {folder} has changed since these records were scored (split {record.goldset.split}: fingerprint "
            f"{record.goldset.split_fingerprint[:12]} then, {now[:12]} now): the numbers describe the old goldset; re-run (bench run -g {folder})"]


BUSY = 1.0  # load average per core above which other work shared the cores while a rung was timed


def latency_pitfalls(records: list[RunRecord]) -> list[str]:
    """Latencies not to compare as they stand: timed while the machine was busy, or a pipeline's that
    adds an input's query time from an earlier run of that input (the input was re-run since)."""
    found = []
    busy = [r for r in records if r.latency and (r.latency.load or 0) > BUSY]
    if busy:
        worst = max(r.latency.load for r in busy)
        found.append(f"the latencies of {', '.join(r.rung.name for r in busy)} were timed while other work shared the cores (load up to {worst:.1f} per core): "
                     "compare latencies after re-running on a quiet machine (bench run --overwrite)")
    newer = {r.rung.name: r for r in records}
    for r in records:
        stale = [name for name in builds_on(r) if name in newer and newer[name].created_at > r.created_at]
        if stale and r.latency:
            found.append(f"{r.rung.name}'s latency adds the query time of an earlier run of {', '.join(stale)}, re-run since: re-run it too (bench run -r {r.rung.name} --overwrite)")
    return found


def _training_pitfalls(finetuned: list[RunRecord], scenario: str) -> list[str]:
    facts = [training_facts(r) for r in finetuned]
    found = []
    for record, fact in zip(finetuned, facts):
        if fact["leakage"] and fact["on_leakage"] != "drop":
            found.append(f"{record.rung.name}: {fact['leakage']} evaluation queries are repeated in its training data (on_leakage = {fact['on_leakage'] or 'unknown'}): its scores are inflated")
        if fact["combined"] and fact["on_leakage"] != "drop":
            found.append(f"{record.rung.name}: {fact['combined']} repeated evaluation queries and evaluation-judged documents together in its training data "
                         f"(on_leakage = {fact['on_leakage'] or 'unknown'}; recorded before the two were counted apart): re-run it to see how many queries leak")
        if fact["overlap"] and fact["on_overlap"] == "drop" and scenario == "fixed":
            found.append(f"{record.rung.name}: trained without {fact['overlap']} documents that evaluation queries are judged on (on_overlap = drop): "
                         "on a fixed corpus, where queries hit the documents trained on, it would do better than scored")
        if not record.subsets:
            found.append(f"{record.rung.name}: its record does not say which queries are about documents it trained on (a model not trained by tunebench, "
                         "or recorded before it kept the documents it trained on): seen and unseen cannot be told apart")
    rounds = [f["round"] for r, f in zip(finetuned, facts) if r.rung.kind != "adapter"]
    if rounds and not any((r or 0) >= 1 for r in rounds):
        found.append("fine-tuning used only in-batch (easy) negatives: no hard-negative mining round (r1) was recorded")
    return found + _mining_pitfalls(finetuned, facts) + _merge_pitfalls(finetuned)


def _merge_pitfalls(finetuned: list[RunRecord]) -> list[str]:
    """What a merge rung's choice of alpha rests on: the out-of-domain splits it read are the ones its
    out-of-domain records score, and alpha = 1 means merging kept nothing of the base."""
    found = []
    for r in (r for r in finetuned if r.rung.kind == "merge" and r.details.get("curve")):
        d = r.details
        places = sorted({k for p in d["curve"] for k in p["ood"]})
        if places:
            found.append(f"{r.rung.name}: alpha {d['alpha']:g} was chosen within the out-of-domain tolerance on {', '.join(places)}, the splits its "
                         "out-of-domain records score: those records are not independent of the choice")
        if d["alpha"] == 1:
            found.append(f"{r.rung.name}: alpha 1 was kept, the fine-tuned model itself: interpolating with the base bought nothing on {d['selected_on']}")
    return found


def _mining_pitfalls(finetuned: list[RunRecord], facts: list[dict]) -> list[str]:
    """A mining round that did not beat the round before it on dev (its model cards' best dev scores)
    has not earned its cost."""
    dev = {}
    for record, fact in zip(finetuned, facts):
        card = model_card(record)
        score = card.get("trained_dev_metric") if card.get("kept_start") else card.get("best_dev_metric")
        if fact["round"] is not None and score is not None:
            dev[(_ROUND.sub("", record.rung.name), fact["round"])] = (record.rung.name, score, card.get("best_dev_metric"), bool(card.get("kept_start")))
    found = []
    for (job, round_), (name, score, _best, kept_start) in sorted(dev.items()):
        before = dev.get((job, round_ - 1))
        if round_ >= 1 and before and (kept_start or score <= before[2]):
            kept_line = f"; it stopped early and keeps {before[0]}'s weights" if kept_start else ""
            found.append(f"{name}: mining did not beat {before[0]} on dev ({score:.3f} against {before[2]:.3f}){kept_line}: "
                         "the mined negatives have not earned their cost here")
    return found


def cheapest_meeting_bar(records: list[RunRecord], decision: Decision) -> RunRecord | None:
    """The rung at or above the bar with the lowest cost, then latency, then index size; rungs that need no
    training first. A compress rung's forms take part like any rung (their cost is their ``of`` rung's)."""
    meeting = [r for r in records if r.metrics.get(decision.recall_metric, 0.0) >= decision.recall_bar]
    return min(meeting, key=lambda r: (math.inf if r.cost.usd is None else r.cost.usd, is_finetuned(r), _p50(r), _index_bytes(r)), default=None)


def _index_bytes(record: RunRecord) -> float:
    size = record.details.get("index_bytes_per_doc")
    return size if isinstance(size, int | float) else math.inf


def build_report(records: list[RunRecord], ladder: Ladder, goldset: str | None = None, split: str | None = None, *, corpus: str | None = None) -> Report:
    """The report on ``goldset``/``split`` from the leaderboard's latest ``records``, with the ladder's
    thresholds, deciding for the ``corpus`` scenario (default: the goldset manifest's)."""
    decision, panel = ladder.decision, choose_panel(records, goldset, split, ladder)
    metric = panel.metric
    ok = ordered(panel.records, ladder)
    if not ok:
        raise BenchError(f"every rung on {panel.goldset}/{panel.split} was skipped; nothing to decide on (run: bench run)")
    names = [r.rung.name for r in ok]
    untrained = [r for r in ok if not is_finetuned(r)]
    baseline = ok[names.index(ladder.rungs[0].name)] if ladder.rungs[0].name in names else (untrained or ok)[0]  # e.g. bench train's <job>-base
    cheaper = [r for r in ok if not is_finetuned(r)]
    finetuned = [r for r in ok if is_finetuned(r)]
    steps = compare_all([r for r in cheaper if r is not baseline], baseline, metric, decision)
    best_cheaper = best_on(cheaper or [baseline], metric)
    by_subset = {subset: compare_all(finetuned, cheaper or [baseline], metric, decision, subset) for subset in SUBSET_LABELS}
    scenario = corpus or corpus_scenario(baseline)
    deciding = by_subset[DECIDING[scenario]]
    best = max(deciding, key=lambda row: row.comparison.delta, default=None)
    ood = ood_rows(panel, best.record, baseline, metric, decision) if best else []
    if finetuned and best is None:
        decided, reason = "NOT YET", _no_subset_reason(finetuned, DECIDING[scenario], scenario)
    else:
        decided, reason = verdict(best, ood, decision)
    reasons = [_bar_line(baseline, decision), reason]
    if finetuned:
        reasons.append(_scenario_line(scenario, finetuned, by_subset))
    sections = _sections(baseline, steps, by_subset, ood, best_cheaper, cheapest_meeting_bar(ok, decision), decision, metric)
    return Report(decided, reasons, panel, sections, pitfalls(panel, finetuned, best, decision, scenario))


def _scenario_line(scenario: str, finetuned: list[RunRecord], by_subset: dict[str | None, list[Row]]) -> str:
    """Which queries decided, and how many fall on each side."""
    n_all = max((row.comparison.n for row in by_subset[None]), default=0)
    if scenario == "growing":
        head = "corpus = growing: the verdict rests on the queries about documents the fine-tuned model never trained on"
    else:
        head = f"corpus = fixed: the verdict rests on all {n_all} queries, as tomorrow's queries hit the documents trained on"
    split = [r for r in finetuned if r.subsets]
    if not split:
        return f"{head}; which queries are about documents it trained on is not recorded"
    sizes = ", ".join(f"{r.rung.name} {len(r.subsets['seen'].queries)} seen / {len(r.subsets['unseen'].queries)} unseen" for r in split)
    return f"{head}; queries about seen and unseen documents: {sizes} (each row is below)"


# ---- sections and rendering -----------------------------------------------------------------------


def _signed(value: float) -> str:
    return f"{value:+.3f}"


def _p50(record: RunRecord) -> float:
    return record.latency.p50_ms if record.latency and record.latency.p50_ms is not None else math.inf


def _label(metric: str) -> str:
    return dict(COLUMNS).get(metric, metric)


def _bar_line(baseline: RunRecord, decision: Decision) -> str:
    from harness.decide.views import interval

    value, (low, high) = baseline.metrics[decision.recall_metric], interval(baseline, decision.recall_metric)
    side = "meets" if value >= decision.recall_bar else "is below"
    name = "the baseline" if baseline.rung.name == "baseline" else f"the baseline, {baseline.rung.name}"  # not "the baseline, baseline"
    return f"{name}: {decision.recall_metric} {value:.3f} (95% CI {low:.3f} to {high:.3f}) {side} the bar of {decision.recall_bar:.2f}"


def _comparison_cells(row: Row) -> list[str]:
    c = row.comparison
    return [f"{c.candidate:.3f}", _signed(c.delta), f"{_signed(c.ci_low)} to {_signed(c.ci_high)}", f"{row.p_holm:.3g}", "yes" if row.significant else "no"]


def _step_table(baseline: RunRecord, steps: list[Row], metric: str, decision: Decision) -> tuple[list[str], list[list[str]]]:
    from harness.decide.views import cells

    headers = ["rung", "kind", _label(metric), "delta", "95% CI of delta (unadjusted)", "p (Holm)", "significant", decision.recall_metric, "meets bar", "p50 ms", "cost $"]
    rows = []
    for row in [Row(baseline), *steps]:
        r = row.record
        stats = _comparison_cells(row) if row.comparison else [f"{r.metrics[metric]:.3f}", "(reference)", "", "", ""]
        recall = r.metrics.get(decision.recall_metric, 0.0)
        rows.append([r.rung.name, r.rung.kind, *stats, f"{recall:.3f}", "yes" if recall >= decision.recall_bar else "no", *cells(r)[-3:-2], cells(r)[-1]])
    return headers, rows


def _round_table(by_subset: dict[str | None, list[Row]], metric: str) -> tuple[list[str], list[list[str]]]:
    """One row per round and query subset (all, seen documents, unseen documents), rounds together."""
    headers = ["round", "queries", "n", "against", _label(metric), "delta", "95% CI of delta (unadjusted)", "p (Holm)", "significant", "detectable (MDD)",
               "training pairs", "query leaks", "overlapping documents"]
    order = {row.record.rung.name: i for i, row in enumerate(by_subset[None])}
    rows = []
    for row in sorted((row for rows in by_subset.values() for row in rows), key=lambda row: (order.get(row.record.rung.name, 0), list(SUBSET_LABELS).index(row.subset))):
        facts = training_facts(row.record)
        known = [str(facts[k]) if facts[k] is not None else "?" for k in ("pairs", "leakage", "overlap")]
        rows.append([row.record.rung.name, SUBSET_LABELS[row.subset], str(row.comparison.n), row.reference, *_comparison_cells(row), f"{row.comparison.mdd:.3f}", *known])
    return headers, rows


def _sections(baseline, steps, by_subset, ood, best_cheaper, cheapest, decision: Decision, metric: str) -> list[Section]:
    test = (f"paired {decision.test} test on per-query {metric}, Holm-corrected over {{n}} comparisons, alpha {decision.alpha}; "
            "the 95% intervals are each comparison's own bootstrap, not Holm-adjusted, so one can exclude 0 while the adjusted p is not significant")
    sections = [Section("What each cheaper rung bought", [f"against {baseline.rung.name}; " + test.format(n=len(steps))], _step_table(baseline, steps, metric, decision))]
    rounds = by_subset[None]
    if rounds:
        lines = [f"against the best cheaper rung on the same queries (on all of them: {best_cheaper.rung.name}, {best_cheaper.metrics[metric]:.3f}); "
                 + test.format(n=len(rounds)) + " within each set of queries" + f"; margin {decision.finetune_margin}",
                 "seen documents: the queries with a relevant document the round trained on (what a fixed corpus gets); "
                 "unseen documents: the others (what new documents get)"]
        lines += [f"out of domain, {row.record.rung.name} on {row.record.goldset.name}: {_signed(row.comparison.delta)} {metric} against {baseline.rung.name} "
                  f"(p = {row.p_holm:.3g}; tolerance {decision.ood_tolerance})" for row in ood]
        sections.append(Section("Fine-tuning against the best cheaper rung", lines, _round_table(by_subset, metric)))
    else:
        sections.append(Section("Fine-tuning against the best cheaper rung", ["not run: no fine-tuned round is recorded on this goldset"]))
    bar = f"{decision.recall_metric} >= {decision.recall_bar:.2f}"
    option = (f"{cheapest.rung.name} ({cheapest.rung.kind}): {decision.recall_metric} {cheapest.metrics[decision.recall_metric]:.3f}, "
              f"{metric} {cheapest.metrics[metric]:.3f}, cost ${cheapest.cost.usd if cheapest.cost.usd is not None else '?'}, p50 {_p50(cheapest):.1f} ms"
              + (f", index {_index_bytes(cheapest):g} bytes per document" if _index_bytes(cheapest) < math.inf else "")
              if cheapest else "none: no rung reaches the bar")
    sections.append(Section(f"Cheapest option that meets the bar ({bar})", [option]))
    sections.append(Section("Thresholds (the ladder's [decision] table)", [", ".join(f"{k} = {v}" for k, v in decision.model_dump().items())]))
    return sections


def render_markdown(report: Report) -> str:
    panel = report.panel
    parts = [f"# Go/no-go: {markdown_text(panel.goldset)} / {markdown_text(panel.split)}", "", f"**Decision: {report.verdict}**", "",
             *(f"- {markdown_line(r)}" for r in report.reasons)]
    for section in [*report.sections, Section("Pitfalls", report.pitfalls or ["none seen in the records"])]:
        parts += ["", f"## {markdown_text(section.title)}", "", *(f"- {markdown_line(line)}" for line in section.lines)]
        if section.table:
            parts += ["", markdown_table(*section.table)]
    return "\n".join(parts) + "\n"


def render_html(report: Report) -> str:
    panel = report.panel
    body = [f"<h1>Go/no-go: {html.escape(shown(panel.goldset))} / {html.escape(shown(panel.split))}</h1>",
            f'<p class="verdict {report.verdict.replace(" ", "-")}"><strong>Decision: {report.verdict}</strong></p>', _ul(report.reasons)]
    for section in [*report.sections, Section("Pitfalls", report.pitfalls or ["none seen in the records"])]:
        body.append(f"<h2>{html.escape(section.title)}</h2>{_ul(section.lines)}{html_table(*section.table) if section.table else ''}")
    body.append(f"<h2>Plots</h2>{figures_html(panel_figures(panel))}")
    return html_page(f"go/no-go: {shown(panel.goldset)}", "\n".join(body))


def _ul(lines: list[str]) -> str:
    return "<ul>" + "".join(f"<li>{html.escape(shown(line))}</li>" for line in lines) + "</ul>"
