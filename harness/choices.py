"""Every closed set of choices a user can name, defined once as a ``Literal`` and fed alike to
pydantic (config files) and ``click.Choice`` (flags) through :func:`values`, so the two never drift."""

from __future__ import annotations

import typing
from typing import Literal

LeakagePolicy = Literal["stop", "drop", "allow"]
"""What to do when training queries repeat or nearly repeat evaluation queries (query leaks): stop the
run, drop those pairs, or train anyway (counted)."""

OverlapPolicy = Literal["keep", "drop"]
"""What to do with training pairs about documents that evaluation queries are judged on (document
overlap): keep them (a team trains on its own corpus; records then score seen and unseen documents
apart) or drop them (train as if those documents were new)."""

CorpusScenario = Literal["fixed", "growing"]
"""Which queries a fine-tuning verdict rests on: all of them (a fixed corpus: tomorrow's queries hit the
documents trained on) or those about documents the model never trained on (a growing corpus)."""

AdapterKind = Literal["linear", "residual"]
"""Query adapters: a d x d linear map, or a residual bottleneck MLP (see harness.training.adapter)."""

PairedTest = Literal["fisher", "t-test"]
"""Paired significance tests: Fisher's randomisation test, or the paired Student's t-test."""


Runtime = Literal["torch", "onnx", "openvino"]
"""What serves a local sentence-transformers model: torch, or its export to ONNX Runtime or OpenVINO."""

QuerySubset = Literal["seen", "unseen"]
"""A fine-tuned model's evaluation queries whose relevant documents it did, or did not, train on."""


def values(choice: object) -> tuple[str, ...]:
    """The strings a ``Literal`` choice admits, in order (for ``click.Choice`` and error messages)."""
    return typing.get_args(choice)
