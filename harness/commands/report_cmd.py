"""``bench report``: the go/no-go decision on fine-tuning, from the leaderboard's records."""

from __future__ import annotations

import click

from harness.choices import CorpusScenario, values
from harness.commands.options import GOLDSET_HELP, leaderboard_option, records_of


@click.command()
@click.option("--ladder", "-l", "ladder_path", default=None, help="Ladder file (rung order and the [decision] thresholds; default: ./ladder.toml, else the shipped one).")
@click.option("--goldset", "-g", default=None, metavar="PATH_OR_NAME", help=f"{GOLDSET_HELP}; the in-domain goldset to decide on (default: the first with records).")
@click.option("--split", "-s", default=None, help="Split to decide on (default: test).")
@click.option("--corpus", type=click.Choice(values(CorpusScenario)), default=None,
              help="Which queries the verdict rests on: all (fixed) or those about documents never trained on (growing); default: the goldset manifest's corpus.")
@click.option("--format", "fmt", type=click.Choice(["md", "html"]), default="md", show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None, help="Write here instead of printing.")
@leaderboard_option
def report(ladder_path, goldset, split, corpus, fmt, output, leaderboard_dir):
    """GO / NO-GO / NOT YET on fine-tuning, with reasons, following the ladder."""
    from pathlib import Path

    from harness.decide.report import build_report
    from harness.errors import BenchError
    from harness.ladder.schema import resolve_ladder
    from harness.records import Leaderboard

    ladder = resolve_ladder(ladder_path)
    records = Leaderboard(leaderboard_dir).latest()
    if not records:
        raise BenchError(f"no records in '{leaderboard_dir}/records'; run: bench run")
    name = None
    if goldset:  # a folder stands for its goldset's name; a name with no records lists those that have some
        name = records_of(records, [goldset], leaderboard_dir, with_companions=False)[0].goldset.name
    result = build_report(records, ladder, name, split, corpus=corpus)
    text = result.html() if fmt == "html" else result.markdown()
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        Path(output).write_text(text, encoding="utf-8", newline="\n")
    except OSError as exc:
        raise BenchError(f"cannot write the report to '{output}' ({exc.strerror}); pass a writable -o path") from exc
    click.echo(f"{result.verdict}: report written to {output}")
