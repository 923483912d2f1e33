"""Every closed set of choices a user can name, defined once as a ``Literal`` and fed alike to
pydantic (config files) and ``click.Choice`` (flags) through :func:`values`, so the two never drift."""

from __future__ import annotations

import typing
from typing import Literal

LeakagePolicy = Literal["stop", "drop", "allow"]
"""What to do when training data overlaps the evaluation: stop the run, drop those pairs, or train anyway (counted)."""

AdapterKind = Literal["linear", "residual"]
"""Query adapters: a d x d linear map, or a residual bottleneck MLP (see harness.training.adapter)."""

PairedTest = Literal["fisher", "t-test"]
"""Paired significance tests: Fisher's randomisation test, or the paired Student's t-test."""


def values(choice: object) -> tuple[str, ...]:
    """The strings a ``Literal`` choice admits, in order (for ``click.Choice`` and error messages)."""
    return typing.get_args(choice)
