"""``bench gate``: fail CI when a candidate regresses against a stored baseline record."""

from __future__ import annotations

import json
from pathlib import Path

import click

from harness.choices import PairedTest, values
from harness.commands.options import GOLDSET_HELP, json_option, leaderboard_option
from harness.commands.run_cmd import ladder_option


@click.command()
@click.argument("candidate", required=False, metavar="[RUNG_OR_RECORD]")
@click.option("--baseline", "-b", required=True, metavar="RUNG_OR_RECORD", help="The baseline: a record file, or a rung name in --baseline-leaderboard.")
@click.option("--baseline-leaderboard", type=click.Path(file_okay=False), default=None, help="Folder that holds the baseline's records (default: --leaderboard).")
@click.option("--model", "-m", default=None, help="Evaluate a dense rung with this model id or folder now (on the ladder's goldsets) and gate it.")
@click.option("--run", "run_now", is_flag=True, help="Evaluate the CANDIDATE rung of the ladder now (its up-to-date records in --candidate-leaderboard are reused), then gate it.")
@ladder_option
@click.option("--goldset", "-g", "goldsets", multiple=True, metavar="PATH_OR_NAME",
              help=f"{GOLDSET_HELP}; only these goldsets and their out-of-domain companions (repeatable; default: every one the baseline has); with --model or --run, evaluate on them (default: the ladder's).")
@click.option("--split", "-s", default=None, help="Only this split (default: each rule's, else every evaluation split the baseline has, not a split rungs were tuned on); with --model or --run, evaluate it.")
@click.option("--candidate-leaderboard", type=click.Path(file_okay=False), default=None,
              help="Where --model and --run write the candidate's records (default: <leaderboard>/../gate-candidates, never the leaderboard itself unless named here).")
@click.option("--metric", "-M", "metrics", multiple=True, help="Check these metrics (repeatable; replaces the ladder's [gate] rules, else the primary metric).")
@click.option("--max-drop", type=click.FloatRange(min=0), default=None, help="Largest absolute drop allowed, for every check (default: each rule's; 0.01).")
@click.option("--significant/--any-drop", default=None, help="Fail only when the drop is also significant / on any drop past --max-drop (default: each rule's).")
@click.option("--alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=None, help="Significance level (default: the [gate] table's; 0.05).")
@click.option("--test", type=click.Choice(values(PairedTest)), default=None, help="Paired test (default: the [gate] table's; fisher).")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None, help="Embedding cache folder for --model and --run.")
@leaderboard_option
@json_option
@click.pass_context
def gate(ctx, candidate, baseline, baseline_leaderboard, model, run_now, ladder_path, goldsets, split, candidate_leaderboard, metrics, max_drop, significant, alpha, test, cache_dir, leaderboard_dir, as_json):
    """Compare a candidate with a stored baseline, goldset by goldset and split by split.

    Exit 0 when every check passes, 1 on a regression, 2 on misuse (bad arguments, missing records,
    a goldset whose content changed since the baseline). Thresholds come from the ladder's [gate]
    table; the flags override them.
    """
    from harness.data.resolve import goldset_name
    from harness.decide.gate import evaluation_records, gate_summary, gate_table, load_records, only, run_gate
    from harness.decide.views import print_rich
    from harness.ladder.schema import resolve_ladder
    from harness.records import Leaderboard

    ladder = resolve_ladder(ladder_path)
    written_to = candidate_leaderboard or str(Path(leaderboard_dir).resolve().parent / "gate-candidates")
    names = {goldset_name(g) for g in goldsets}
    candidates = only(_candidates(ladder, candidate, model, run_now, goldsets, split, leaderboard_dir, written_to, cache_dir), names, "candidate")
    baselines = only(load_records(baseline, baseline_leaderboard or leaderboard_dir), names, "baseline")
    settings, rules = _gate_settings(ladder, metrics, split, max_drop, significant, alpha, test)
    if not any(rule.split for rule in rules):  # every evaluation split the baseline has, not those rungs were tuned on
        baselines = evaluation_records(baselines, Leaderboard(baseline_leaderboard or leaderboard_dir).latest())
    result = run_gate(candidates, baselines, settings, rules)
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=1))
    else:
        print_rich(gate_table(result, title=f"gate: candidate '{candidates[0].rung.name}' against baseline '{baselines[0].rung.name}'"))
        click.echo(gate_summary(result))
    ctx.exit(0 if result.passed else 1)


def _candidates(ladder, candidate, model, run_now, goldsets, split, leaderboard_dir, written_to, cache_dir):
    """The candidate's records: read from the leaderboard or a file, or evaluated now (recorded in ``written_to``)."""
    from harness.decide.gate import load_records
    from harness.errors import ConfigError

    if bool(candidate) == bool(model):
        raise ConfigError("name one candidate: a rung or a record file, or --model MODEL")
    if not (model or run_now):
        return load_records(candidate, leaderboard_dir)
    return _evaluate_now(ladder, candidate, model, goldsets, split, written_to, cache_dir)


def _evaluate_now(ladder, rung_name, model, goldsets, split, leaderboard_dir, cache_dir):
    """Evaluate the candidate; its records (and those of the rungs it builds on) go to ``leaderboard_dir``,
    a folder apart from the main leaderboard, so a trial never shows up in its views."""
    from harness.cache import Cache
    from harness.commands.run_cmd import fail_if_asked_for_nothing
    from harness.ladder.plan import model_ladder, run_ladder
    from harness.records import Leaderboard

    if model:
        ladder = model_ladder(ladder, model)
        rung_name = ladder.rungs[0].name
    outcomes = run_ladder(ladder, leaderboard=Leaderboard(leaderboard_dir), cache=Cache(cache_dir), goldsets=goldsets, splits=[split] if split else (), rungs=[rung_name])
    fail_if_asked_for_nothing(outcomes, {rung_name})
    return [o.record for o in outcomes if o.record.rung.name == rung_name and o.action != "skipped"]


def _gate_settings(ladder, metrics, split, max_drop, significant, alpha, test):
    """The ladder's [gate] table with the command line's overrides: (Gate, rules)."""
    from harness.config import validate
    from harness.decide.gate import effective_rules
    from harness.ladder.schema import GateRule

    rules = [validate(GateRule, {"metric": m}, f"--metric {m}") for m in metrics] if metrics else effective_rules(ladder.gate, ladder.primary_metric)
    overrides = {k: v for k, v in {"split": split, "max_drop": max_drop, "significant": significant}.items() if v is not None}
    rules = [validate(GateRule, {**rule.model_dump(), **overrides}, "bench gate") for rule in rules]
    settings = ladder.gate.model_copy(update={k: v for k, v in {"alpha": alpha, "test": test}.items() if v is not None})
    return settings, rules
