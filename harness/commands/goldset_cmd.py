"""``bench goldset validate|stats``: check a goldset and describe it."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.group()
def goldset():
    """Check and describe goldsets."""


@goldset.command()
@click.argument("path", type=click.Path())
def validate(path):
    """Check a goldset folder; list every problem with its file and line. Exit 2 if there are errors."""
    from harness.data.goldset import scan_goldset

    found, diag = scan_goldset(Path(path))
    for issue in diag.issues:
        click.echo(f"{issue.severity}: {issue}", err=issue.severity == "error")
    if diag.errors:
        click.echo(f"error: {len(diag.errors)} error(s), {len(diag.warnings)} warning(s) in {path}", err=True)
        raise SystemExit(2)
    splits = ", ".join(f"{s} ({len(found.split_queries(s))} queries)" for s in found.splits)
    click.echo(f"ok: {found.name}: {len(found.corpus)} documents, {len(found.queries)} queries; splits: {splits}; {len(diag.warnings)} warning(s)")


@goldset.command()
@click.argument("source")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def stats(source, as_json):
    """Describe a goldset (folder, bundled name or mteb:<Task>): sizes, lengths, judgements per split."""
    from harness.data.resolve import resolve_goldset
    from harness.data.summary import goldset_stats, print_stats

    info = goldset_stats(resolve_goldset(source))
    if as_json:
        click.echo(json.dumps(info, indent=1))
    else:
        print_stats(info)
