"""The C allocator's handling of large blocks, which the CLI sets for its own process.

glibc's malloc gives every block over 32 MB its own mmap and unmaps it when it is freed, so the
activations of each transformer layer (50-100 MB at 32 texts of 256 tokens) come back as fresh zeroed
pages on every batch. In the main job that was 14.7 million page faults and 60-120 s of kernel time
(benchmarks/RESULTS.md, issue 13). :func:`keep_freed_memory` has malloc keep such blocks for the next
batch; :func:`release_freed_memory` hands them back where a stage of work ends, so one stage's kept
blocks do not add to the next stage's peak.
"""

from __future__ import annotations

import ctypes
import os
import platform
from functools import lru_cache

# glibc's mallopt(3) parameters (malloc.h), and how large a freed block is kept for reuse
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
KEPT_BLOCK_BYTES = 1 << 30

_kept = False  # whether keep_freed_memory changed this process's malloc


def keep_freed_memory() -> bool:
    """Have glibc's malloc keep freed blocks of up to 1 GiB for reuse instead of unmapping each one.

    Encoding demo's 312 documents took 1.53 million page faults, 4 s of kernel time and 17.2-18.5 s
    before, 16 thousand faults, 0.04 s and 14.3-14.9 s with the blocks kept. The setting applies to
    the main thread's heap; other threads' arenas (64 MB heaps) still map larger blocks as before.

    The process's owner makes this choice, so the CLI calls it and the library does not. A user's own
    choice wins: a ``MALLOC_*_`` variable, a ``glibc.malloc.`` tunable, or a malloc other than glibc's
    (jemalloc or tcmalloc, preloaded or linked in). Returns whether the setting was made: False there,
    off glibc, and where glibc refuses a threshold this large (older releases cap it at 32 MB),
    which leaves malloc as it was: the trim threshold is only set once the mmap threshold is, since
    setting either one turns off glibc's own adjustment of both."""
    global _kept
    libc = _glibc_malloc()
    if libc is None or _users_own_setting():
        return False
    _kept = libc.mallopt(_M_MMAP_THRESHOLD, KEPT_BLOCK_BYTES) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, KEPT_BLOCK_BYTES) == 1
    return _kept


def release_freed_memory() -> None:
    """Hand the blocks malloc keeps back to the system (glibc's ``malloc_trim``) where one stage of
    work ends and the next will allocate differently: a rung, a training round. Without it, blocks
    kept from one stage added to the next one's peak (3.85 GB against 3.51 GB in the main job). Does
    nothing unless :func:`keep_freed_memory` changed this process's malloc."""
    if _kept:
        _glibc_malloc().malloc_trim(0)


def _users_own_setting() -> bool:
    variables = any(name.startswith("MALLOC_") and name.endswith("_") for name in os.environ)
    return variables or "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", "")


@lru_cache(maxsize=1)
def _glibc_malloc() -> ctypes.CDLL | None:
    """The process's C library, where it is glibc and its malloc is the one the process uses (not a
    jemalloc or tcmalloc put in front of it); else None."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        process, glibc = ctypes.CDLL(None), ctypes.CDLL("libc.so.6")
    except OSError:  # a glibc under another name: leave malloc alone rather than stop every command
        return None
    return glibc if _malloc_address(process) == _malloc_address(glibc) else None


def _malloc_address(library: ctypes.CDLL) -> int | None:
    return ctypes.cast(library.malloc, ctypes.c_void_p).value
