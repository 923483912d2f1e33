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
