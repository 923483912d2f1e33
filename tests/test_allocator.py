"""The allocator setting the CLI makes for its process: freed large blocks are reused, not faulted in
again, and handed back after each rung and training round; a user's own allocator choice wins."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest
from click.testing import CliRunner

from conftest import write_ladder
from harness import allocator
from harness.allocator import keep_freed_memory  # the real one: conftest stubs the module's for in-process CLI runs
from harness.cli import main

glibc_only = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")

# Allocates, writes and frees a 64 MB block (over glibc's 32 MB mmap ceiling) 20 times through the C
# library and counts the page faults after the first: a fresh mapping faults in again each time (at
# least once, whatever the page size), a kept block not at all. (numpy would not do: it asks for huge pages.)
FAULTS = """
import ctypes, json, resource, sys
from harness.allocator import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else False
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
def block():
    p = libc.malloc(1 << 26)
    ctypes.memset(p, 1, 1 << 26)
    libc.free(ctypes.c_void_p(p))
block()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    block()
print(json.dumps({"kept": kept, "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before}))
"""

# Frees a written 256 MB block, then releases: resident memory before and after the release.
RELEASE = """
import ctypes, json, os
from harness.allocator import keep_freed_memory, release_freed_memory
def resident_mb():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") >> 20
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
kept = keep_freed_memory()
p = libc.malloc(1 << 28)
ctypes.memset(p, 1, 1 << 28)
libc.free(ctypes.c_void_p(p))
held = resident_mb()
release_freed_memory()
print(json.dumps({"kept": kept, "held": held, "released": resident_mb()}))
"""

KEEP = """
import json
from harness.allocator import keep_freed_memory
print(json.dumps({"kept": keep_freed_memory()}))
"""


def _python(script: str, *args: str, env: dict | None = None) -> dict:
    """What ``script`` prints (JSON), run in a fresh interpreter without the user's malloc settings."""
    clean = {k: v for k, v in os.environ.items() if not (k.startswith("MALLOC_") or k == "GLIBC_TUNABLES")}
    return json.loads(subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, check=True, env=clean | (env or {})).stdout)


def _kept_or_skip(result: dict) -> dict:
    if not result["kept"]:
        pytest.skip("this glibc refuses a 1 GiB mmap threshold (older releases cap it at 32 MB)")
    return result


@glibc_only
def test_kept_blocks_are_reused_instead_of_faulted_in_again():
    kept, plain = _kept_or_skip(_python(FAULTS, "keep")), _python(FAULTS, "plain")
    assert plain["faults"] >= 20  # glibc as it comes: every 64 MB block is a fresh mapping
    assert kept["faults"] < plain["faults"] / 20


@glibc_only
def test_released_blocks_leave_the_process():
    done = _kept_or_skip(_python(RELEASE))
    assert done["held"] - done["released"] > 200  # the freed 256 MB block was kept, then handed back


@glibc_only
@pytest.mark.parametrize(("env", "kept"), [({"MALLOC_TOP_PAD_": "0"}, False), ({"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=131072"}, False),
                                           ({"GLIBC_TUNABLES": "glibc.cpu.x86_ibt=on"}, True), ({"MALLOC_ARENA_MAX": "2"}, True)])
def test_a_users_own_malloc_setting_wins(env, kept):
    baseline = _kept_or_skip(_python(KEEP))
    assert _python(KEEP, env=env)["kept"] is (kept and baseline["kept"])


class FakeLibc:
    """glibc's two entry points, recording calls; ``refuse`` is the mallopt parameter it refuses."""

    def __init__(self, refuse: int | None = None):
        self.refuse, self.calls = refuse, []

    def mallopt(self, parameter: int, value: int) -> int:
        self.calls.append(("mallopt", parameter, value))
        return 0 if parameter == self.refuse else 1

    def malloc_trim(self, pad: int) -> int:
        self.calls.append(("malloc_trim", pad))
        return 1


def test_a_refused_threshold_leaves_malloc_as_it_was(monkeypatch):
    """Setting the trim threshold alone would turn off glibc's own threshold adjustment: it is only set
    once the mmap threshold took, and nothing is released that was not kept."""
    libc = FakeLibc(refuse=allocator._M_MMAP_THRESHOLD)
    monkeypatch.setattr(allocator, "_glibc_malloc", lambda: libc)
    monkeypatch.setattr(allocator, "_kept", False)
    assert keep_freed_memory() is False
    allocator.release_freed_memory()
    assert libc.calls == [("mallopt", allocator._M_MMAP_THRESHOLD, allocator.KEPT_BLOCK_BYTES)]


def test_kept_then_released(monkeypatch):
    libc = FakeLibc()
    monkeypatch.setattr(allocator, "_glibc_malloc", lambda: libc)
    monkeypatch.setattr(allocator, "_kept", False)
    assert keep_freed_memory() is True
    allocator.release_freed_memory()
    assert [c[:2] for c in libc.calls] == [("mallopt", allocator._M_MMAP_THRESHOLD), ("mallopt", allocator._M_TRIM_THRESHOLD), ("malloc_trim", 0)]


@glibc_only
def test_another_malloc_in_front_of_glibcs_is_left_alone(monkeypatch):
    """jemalloc or tcmalloc, preloaded or linked in: the process's malloc is not libc.so.6's."""
    addresses = iter([1, 2])
    monkeypatch.setattr(allocator, "_malloc_address", lambda library: next(addresses))
    allocator._glibc_malloc.cache_clear()
    try:
        assert allocator._glibc_malloc() is None
    finally:
        allocator._glibc_malloc.cache_clear()


@glibc_only
def test_a_c_library_that_cannot_be_opened_leaves_malloc_alone(monkeypatch):
    """Every command calls keep_freed_memory: a libc.so.6 that will not load must not stop one."""
    real = allocator.ctypes.CDLL

    def cdll(name, *args, **kwargs):
        if name == "libc.so.6":
            raise OSError("libc.so.6: cannot open shared object file")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(allocator.ctypes, "CDLL", cdll)
    allocator._glibc_malloc.cache_clear()
    try:
        assert allocator._glibc_malloc() is None
    finally:
        allocator._glibc_malloc.cache_clear()


def test_the_cli_makes_the_setting_and_the_ladder_releases_after_each_rung(monkeypatch, bow_backend, tiny_goldset, tmp_path):
    made, released = [], []
    monkeypatch.setattr(allocator, "keep_freed_memory", lambda: made.append(1) or True)
    monkeypatch.setattr("harness.ladder.runner.release_freed_memory", lambda: released.append(1))
    result = CliRunner().invoke(main, ["run", "-l", str(write_ladder(tmp_path, tiny_goldset)), "--json"])
    assert result.exit_code == 0, result.output
    rungs = {r["rung"] for r in json.loads(result.stdout)}
    assert made == [1] and len(released) == len(rungs) >= 2
