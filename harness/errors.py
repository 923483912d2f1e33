"""One exception family for everything a user can cause.

The CLI turns a :class:`BenchError` into a single ``error: ...`` line and exit code 2
(:class:`RunFailure` exits 1); a traceback is shown only with ``--debug``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class BenchError(Exception):
    """Bad input: a goldset, a config, a model name, a path. Exit code 2."""

    exit_code = 2


class GoldsetError(BenchError):
    """A goldset that cannot be loaded or fails validation."""


class ConfigError(BenchError):
    """A rung, ladder or CLI option that is not valid."""


class RungUnavailable(BenchError):
    """A rung cannot run on this machine (no network for a hub model, no API key, a missing package).

    ``bench run`` records such a rung as skipped with this message as its reason and goes on.
    """


class ModelUnavailable(RungUnavailable):
    """A model that cannot be found locally and cannot be downloaded."""


class MissingDependency(RungUnavailable):
    """An optional package is not installed; the message carries the pip line."""


class MissingCredentials(RungUnavailable):
    """An API key is not set in the environment; the message names the variable (never its value)."""


class RunFailure(BenchError):
    """Something failed while running (not the user's input). Exit code 1."""

    exit_code = 1


class ApiError(RunFailure):
    """A paid API failed for good: bad credentials (401/403), retries exhausted, or a malformed response.

    Messages name the service, the status and the fix, never the key.
    """


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return ``" Did you mean 'x'?"`` for the closest choice, or ``""``."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f" Did you mean '{close[0]}'?" if close else ""


def require(module: str, extra: str | None = None, package: str | None = None):
    """Import an optional module or raise :class:`MissingDependency` with the install line
    (``tunebench[extra]`` when an extra provides it, else ``package`` or the module's name)."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        package = f"tunebench[{extra}]" if extra else (package or module.split(".")[0])
        raise MissingDependency(
            f"the '{module}' package is needed here but not installed ({exc}); run: pip install '{package}'"
        ) from exc
