"""Options shared by several commands."""

from __future__ import annotations

import os

import click

leaderboard_option = click.option(
    "--leaderboard",
    "leaderboard_dir",
    type=click.Path(file_okay=False),
    default=lambda: os.environ.get("TUNEBENCH_LEADERBOARD", "leaderboard"),
    show_default="leaderboard or $TUNEBENCH_LEADERBOARD",
    help="Folder that holds run records.",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON instead of a table.")

GOLDSET_HELP = "Goldset: a folder, a bundled name or mteb:<Task>, as for bench run (a folder stands for the name its records carry)"


def records_of(records: list, sources, leaderboard_dir: str, *, with_companions: bool = True) -> list:
    """The records of the goldsets ``-g`` named (folders, bundled names or names; see
    :func:`harness.data.resolve.goldset_name`) and, ``with_companions``, of their out-of-domain
    companions; an error listing the goldsets that have records when one named has none."""
    from harness.data.resolve import goldset_name
    from harness.errors import BenchError, did_you_mean

    if not sources:
        return records
    have = sorted({r.goldset.name for r in records if with_companions or r.goldset.ood_of is None})
    names = {}
    for source in sources:
        name = goldset_name(source)
        if name not in have:
            called = f" (the folder '{source}' is goldset '{name}')" if name != source else ""
            close = did_you_mean(name, have)
            raise BenchError(
                f"no records of goldset '{name}'{called} in '{leaderboard_dir}/records'; goldsets with records there: {', '.join(have) or 'none'}."
                + (close or f" Pass one of those to -g, or run: bench run -g {source}")
            )
        names[name] = source
    return [r for r in records if r.goldset.name in names or (with_companions and r.goldset.ood_of in names)]
