"""The allocator setting the CLI makes for its process: freed large blocks are reused, not faulted in again."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest
from click.testing import CliRunner

from harness import environment
from harness.cli import main

glibc_only = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")

# Allocates, writes and frees a 64 MB block (over glibc's 32 MB mmap ceiling) 20 times through the C
# library, and counts the page faults after the first: a fresh mmap faults its 16,384 pages in again
# each time, a kept block none. (numpy would not do: it asks for huge pages.)
FAULTS = """
import ctypes, json, resource, sys
from harness.environment import keep_freed_memory
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


def _python(script: str, *args: str) -> dict:
    """What ``script`` prints (JSON), run in a fresh interpreter without the user's allocator settings."""
    clean = {k: v for k, v in os.environ.items() if k not in environment._ALLOCATOR_SETTINGS}
    return json.loads(subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, check=True, env=clean).stdout)


@glibc_only
def test_kept_blocks_are_reused_instead_of_faulted_in_again():
    plain, kept = _python(FAULTS, "plain"), _python(FAULTS, "keep")
    assert kept["kept"] is True
    assert plain["faults"] > 20 * 16_000  # glibc as it comes: every 64 MB block is paged in afresh
    assert kept["faults"] < plain["faults"] / 20


@glibc_only
@pytest.mark.parametrize("setting", [{"MALLOC_MMAP_THRESHOLD_": "131072"}, {"LD_PRELOAD": "libjemalloc.so.2"}])
def test_a_users_own_allocator_setting_wins(setting, monkeypatch):
    monkeypatch.setenv(*next(iter(setting.items())))
    assert environment.keep_freed_memory() is False


def test_the_cli_makes_the_setting_for_its_process(monkeypatch):
    calls = []
    monkeypatch.setattr(environment, "keep_freed_memory", lambda: calls.append(1) or True)
    assert CliRunner().invoke(main, ["validate", "--help"]).exit_code == 0
    assert calls == [1]


RELEASE = """
import ctypes, json
from harness.environment import keep_freed_memory, release_freed_memory
def rss_mb():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 >> 20
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
keep_freed_memory()
p = libc.malloc(1 << 28)
ctypes.memset(p, 1, 1 << 28)
libc.free(ctypes.c_void_p(p))
kept = rss_mb()
release_freed_memory()
print(json.dumps({"kept": kept, "released": rss_mb()}))
"""


@glibc_only
def test_released_blocks_leave_the_process():
    done = _python(RELEASE)
    assert done["kept"] - done["released"] > 200  # the freed 256 MB block was kept, then handed back
