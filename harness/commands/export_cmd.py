"""``bench export``: the leaderboard's latest records in another tool's format (``--format mteb``: MTEB result files)."""

from __future__ import annotations

import click

from harness.commands.options import GOLDSET_HELP, leaderboard_option, records_of

FORMATS = ("mteb",)


@click.command()
@click.option("--format", "fmt", default="mteb", show_default=True, metavar="|".join(FORMATS),
              help="mteb: the MTEB results repository's files, <out>/<model>/<revision>/<Task>.json and model_meta.json.")
@click.option("--out", "-o", required=True, type=click.Path(), help="Folder to write (made if missing; refused when it holds files, unless --force).")
@click.option("--force", is_flag=True, help="Write into a folder that holds files (such as the MTEB results repository's results/): files of the same names are replaced, the others kept.")
@click.option("--rung", "-r", "rungs", multiple=True, help="Only this rung (repeatable; default: every rung with records).")
@click.option("--goldset", "-g", "goldsets", multiple=True, metavar="PATH_OR_NAME", help=f"{GOLDSET_HELP}; only these goldsets and their out-of-domain companions (repeatable).")
@leaderboard_option
def export(fmt, out, force, rungs, goldsets, leaderboard_dir):
    """Write the latest records as MTEB result JSON, to set them beside the MTEB leaderboard's (mteb.ResultCache reads them)."""
    from pathlib import Path

    from harness.decide.mteb_export import build_export, check_folder, write_export
    from harness.errors import BenchError, did_you_mean, require
    from harness.records import Leaderboard

    if fmt not in FORMATS:
        raise BenchError(f"unknown --format '{fmt}'; formats: {', '.join(FORMATS)}.{did_you_mean(fmt, FORMATS)}")
    check_folder(Path(out), force=force)
    records = [r for r in Leaderboard(leaderboard_dir).latest() if r.status == "ok"]
    if not records:
        raise BenchError(f"no scored records in '{leaderboard_dir}/records'; run: bench run")
    records = _of_rungs(records_of(records, goldsets, leaderboard_dir), rungs, leaderboard_dir)
    require("mteb", extra="mteb")
    result = build_export(records)
    write_export(result, Path(out), force=force)
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    models = {path.split("/")[0] for path in result.files}
    click.echo(f"wrote {len(result.files) - len(models)} MTEB result file(s) of {len(models)} model(s) under {out}")


def _of_rungs(records: list, rungs: tuple[str, ...], leaderboard_dir: str) -> list:
    """The records of the rungs ``-r`` named (all when none), or an error naming the rungs that have records."""
    from harness.errors import BenchError, did_you_mean

    have = list(dict.fromkeys(r.rung.name for r in records))
    for rung in rungs:
        if rung not in have:
            raise BenchError(f"no records of rung '{rung}' in '{leaderboard_dir}/records'; rungs with records: {', '.join(have)}.{did_you_mean(rung, have)}")
    return [r for r in records if not rungs or r.rung.name in rungs]
