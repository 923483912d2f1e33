"""``bench run``: evaluate the ladder's rungs on goldsets and record the results."""

from __future__ import annotations

import json

import click

from harness.commands.options import json_option, leaderboard_option


@click.command()
@click.option("--goldset", "-g", "goldsets", multiple=True, metavar="PATH_OR_NAME", help="Goldset folder, bundled name or mteb:<Task> (repeatable; default: demo).")
@click.option("--split", "-s", "splits", multiple=True, help="Splits to evaluate (repeatable; default: the goldset's eval_splits, usually test).")
@click.option("--rung", "-r", "rung_names", multiple=True, help="Only these rungs (repeatable; default: all).")
@click.option("--model", "-m", default=None, help="Model id or folder for the dense rung (default: packaged all-MiniLM-L6-v2).")
@click.option("--ood/--no-ood", default=True, show_default=True, help="Also evaluate each goldset's out-of-domain companions.")
@click.option("--overwrite", is_flag=True, help="Re-run rungs whose records are up to date.")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None, help="Embedding cache folder (default: $TUNEBENCH_CACHE or ~/.cache/tunebench).")
@leaderboard_option
@json_option
def run(goldsets, splits, rung_names, model, ood, overwrite, cache_dir, leaderboard_dir, as_json):
    """Run the ladder (baseline embedder, BM25) on goldsets and write one record per goldset x split x rung."""
    from harness.api import plan_targets, select_rungs
    from harness.cache import Cache
    from harness.records import Leaderboard
    from harness.rungs import default_rungs
    from harness.runner import run_rungs
    from harness.views import outcomes_json, outcomes_table

    targets = plan_targets(goldsets or ("demo",), splits, include_ood=ood)
    rungs = select_rungs(default_rungs(model), rung_names)
    outcomes = run_rungs(targets, rungs, leaderboard=Leaderboard(leaderboard_dir), cache=Cache(cache_dir), overwrite=overwrite)
    if as_json:
        click.echo(json.dumps(outcomes_json(outcomes), indent=1))
    else:
        outcomes_table(outcomes, title=f"records in {leaderboard_dir}/records")
