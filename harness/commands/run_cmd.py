"""``bench run`` and ``bench validate``: check a ladder file, evaluate its rungs and record the results."""

from __future__ import annotations

import json
from pathlib import Path

import click

from harness.choices import Runtime, values
from harness.commands.options import json_option, leaderboard_option

ladder_option = click.option(
    "--ladder", "-l", "ladder_path", default=None, metavar="FILE", help="Ladder file (default: ./ladder.toml, else the default ladder shipped with tunebench)."
)


@click.command()
@ladder_option
@click.option("--goldset", "-g", "goldsets", multiple=True, metavar="PATH_OR_NAME", help="Goldset folder, bundled name or mteb:<Task> (repeatable; default: the ladder's).")
@click.option("--split", "-s", "splits", multiple=True, help="Splits to evaluate (repeatable; default: the ladder's, else each goldset's eval_splits).")
@click.option("--rung", "-r", "rung_names", multiple=True, help="Only these rungs and the rungs they build on (repeatable; default: all).")
@click.option("--model", "-m", default=None, help="Instead of the ladder's rungs, evaluate one dense rung with this model id or folder.")
@click.option("--ood/--no-ood", default=None, help="Also evaluate each goldset's out-of-domain companions (default: the ladder's, on).")
@click.option("--overwrite", is_flag=True, help="Re-run rungs whose records are up to date.")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None, help="Embedding cache folder (default: $TUNEBENCH_CACHE or ~/.cache/tunebench).")
@click.option(
    "--engine", default=None, metavar="NAME",
    help="Where documents are encoded: local, or ray (Ray Data; workers and address from the ladder's [execution] table). Default: the ladder's, else local.",
)
@click.option(
    "--runtime", type=click.Choice(values(Runtime)), default=None,
    help="What serves local sentence-transformers models: torch, or their fp32 export to onnx or openvino (checked against torch; same vectors). Default: the ladder's, else torch.",
)
@leaderboard_option
@json_option
def run(ladder_path, goldsets, splits, rung_names, model, ood, overwrite, cache_dir, engine, runtime, leaderboard_dir, as_json):
    """Run the ladder's rungs on its goldsets; write one record per goldset x split x rung.

    Rungs that cannot run here (a hub model offline, an API key not set) are recorded as skipped,
    with the reason, and the others run.
    """
    from harness.cache import Cache
    from harness.ladder.plan import model_ladder, run_ladder
    from harness.ladder.runner import LadderFailure, LadderRefused
    from harness.ladder.schema import resolve_ladder, with_engine, with_runtime
    from harness.records import Leaderboard

    ladder = resolve_ladder(ladder_path)
    if engine:
        ladder = with_engine(ladder, engine)
    if runtime:
        ladder = with_runtime(ladder, runtime)
    if model:
        ladder = model_ladder(ladder, model)
        rung_names = ()
    title = f"ladder '{ladder.name}': records in {Path(leaderboard_dir).resolve() / 'records'}"  # absolute: the leaderboard is the working directory's
    try:
        outcomes = run_ladder(
            ladder, leaderboard=Leaderboard(leaderboard_dir), cache=Cache(cache_dir), goldsets=goldsets, splits=splits, rungs=rung_names, ood=ood, overwrite=overwrite,
            keep_skipped=not model,
        )
    except (LadderFailure, LadderRefused) as exc:  # the rungs that finished are still worth a look
        if any(o.action != "skipped" for o in exc.outcomes):
            show_outcomes(exc.outcomes, as_json, title)
        raise
    fail_if_asked_for_nothing(outcomes, {r.name for r in ladder.rungs} if model else set(rung_names))
    fail_if_nothing_ran(outcomes)
    show_outcomes(outcomes, as_json, title)


def show_outcomes(outcomes, as_json: bool, title: str) -> None:
    """The outcomes as JSON on stdout, or as a table."""
    from harness.decide.views import outcomes_json, outcomes_table

    if as_json:
        click.echo(json.dumps(outcomes_json(outcomes), indent=1))
    else:
        outcomes_table(outcomes, title=title)


def fail_if_asked_for_nothing(outcomes, asked: set[str]) -> None:
    """A rung named on the command line that could not run at all is an error, not a quiet skip."""
    from harness.errors import RungUnavailable

    for name in asked:
        mine = [o for o in outcomes if o.record.rung.name == name]
        if mine and all(o.action == "skipped" for o in mine):
            raise RungUnavailable(f"rung '{name}' cannot run here: {mine[0].record.reason}")


def fail_if_nothing_ran(outcomes) -> None:
    """A run in which every rung was skipped measured nothing: an error (exit 2), not a green run."""
    from harness.errors import RungUnavailable

    if outcomes and all(o.action == "skipped" for o in outcomes):
        names = list(dict.fromkeys(o.record.rung.name for o in outcomes))
        raise RungUnavailable(f"no rung could run here ({', '.join(names)} skipped: {outcomes[0].record.reason}); nothing was measured")


@click.command()
@click.argument("ladder_path", required=False, metavar="[FILE]")
@click.option("--offline", is_flag=True, help="Do not ask the Hugging Face hub whether the models named exist (HF_HUB_OFFLINE=1 does the same).")
def validate(ladder_path, offline):
    """Check a ladder file (default: ./ladder.toml, else the shipped default) without loading any model.

    Model ids that are not local are checked with the Hugging Face hub when it can be reached: a
    typo is an error here, not a skipped rung after the run.
    """
    from collections import Counter

    from harness.data.resolve import find_goldset
    from harness.ladder.schema import check_online, resolve_ladder

    ladder = resolve_ladder(ladder_path)
    for source in ladder.goldsets:
        if not source.startswith("mteb:"):
            find_goldset(source, ladder.base)
    unasked = [] if offline else check_online(ladder)
    kinds = ", ".join(f"{n} {k}" for k, n in Counter(r.kind for r in ladder.rungs).items())
    click.echo(f"{ladder.source}: ok: ladder '{ladder.name}', {len(ladder.rungs)} rungs ({kinds}), goldsets {', '.join(ladder.goldsets)}")
    if unasked:
        click.echo(f"note: the Hugging Face hub cannot be reached to tell whether {', '.join(unasked)} exist (offline); bench run will say, or skip them")
