"""``bench leaderboard``: the latest record of every goldset x split x rung."""

from __future__ import annotations

import json

import click

from harness.commands.options import GOLDSET_HELP, json_option, leaderboard_option, records_of


@click.command()
@click.option("--goldset", "-g", "goldsets", multiple=True, metavar="PATH_OR_NAME", help=f"{GOLDSET_HELP}; only these goldsets and their out-of-domain companions (repeatable).")
@click.option("--write", is_flag=True, help="Also write README.md, leaderboard.csv and index.html (with plots) into the leaderboard folder.")
@click.option("--ladder", "-l", "ladder_path", default=None, help="Ladder whose rung order the views follow (default: ./ladder.toml, else the shipped one).")
@leaderboard_option
@json_option
def leaderboard(goldsets, write, ladder_path, leaderboard_dir, as_json):
    """Show the latest records as a table (--write: also as Markdown, CSV and an HTML page with plots)."""
    from harness.decide.views import records_json, records_table, write_views
    from harness.errors import BenchError
    from harness.records import Leaderboard

    records = Leaderboard(leaderboard_dir).latest()
    if records:
        records = records_of(records, goldsets, leaderboard_dir)
    if not records:
        raise BenchError(f"no records in '{leaderboard_dir}/records'; run: bench run")
    order = _rung_order(ladder_path)
    if write:
        paths = write_views(records, leaderboard_dir, ladder=order)
        click.echo(f"wrote {', '.join(str(p) for p in paths)}", err=True)
    if as_json:
        click.echo(json.dumps(records_json(records), indent=1))
    else:
        records_table(records, title=f"leaderboard: {leaderboard_dir}", ladder=order)


def _rung_order(ladder_path: str | None) -> list[str]:
    """The ladder's rung names, for the views' row order; none (first appearance) when no ladder loads."""
    from harness.errors import BenchError
    from harness.ladder.schema import resolve_ladder

    try:
        return [r.name for r in resolve_ladder(ladder_path).rungs]
    except BenchError:
        if ladder_path:
            raise
        return []
