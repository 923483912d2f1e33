"""``bench leaderboard``: the latest record of every goldset x split x rung."""

from __future__ import annotations

import json

import click

from harness.commands.options import json_option, leaderboard_option


@click.command()
@click.option("--goldset", "-g", "goldset_names", multiple=True, help="Only these goldsets (by name).")
@click.option("--write", is_flag=True, help="Also write README.md, leaderboard.csv and index.html (with plots) into the leaderboard folder.")
@leaderboard_option
@json_option
def leaderboard(goldset_names, write, leaderboard_dir, as_json):
    """Show the latest records as a table (--write: also as Markdown, CSV and an HTML page with plots)."""
    from harness.decide.views import records_json, records_table, write_views
    from harness.errors import BenchError
    from harness.records import Leaderboard

    records = Leaderboard(leaderboard_dir).latest()
    if goldset_names:
        records = [r for r in records if r.goldset.name in goldset_names or r.goldset.ood_of in goldset_names]
    if not records:
        raise BenchError(f"no records in '{leaderboard_dir}/records'; run: bench run")
    if write:
        paths = write_views(records, leaderboard_dir)
        click.echo(f"wrote {', '.join(str(p) for p in paths)}", err=True)
    if as_json:
        click.echo(json.dumps(records_json(records), indent=1))
    else:
        records_table(records, title=f"leaderboard: {leaderboard_dir}")
