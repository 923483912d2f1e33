"""A real kill (SIGKILL, no chance to clean up) in the middle of encoding loses no cached embedding."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def cached_rows(cache: Path) -> int:
    db = cache / "embeddings.sqlite"
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=1) as conn:
            return conn.execute("SELECT COUNT(*) FROM vectors").fetchone()[0]
    except sqlite3.OperationalError:  # table not created yet
        return 0


def test_sigkill_mid_encoding_then_rerun_resumes(tmp_path):
    env = {**os.environ, "TUNEBENCH_CACHE": str(tmp_path / "cache"), "TUNEBENCH_LEADERBOARD": str(tmp_path / "lb")}
    bench = [sys.executable, "-m", "harness.cli"]
    cmd = bench + ["run", "-g", "demo", "-r", "baseline", "--no-ood", "--json"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while cached_rows(tmp_path / "cache") < 256 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    kept = cached_rows(tmp_path / "cache")
    assert 256 <= kept < 312, "the kill should land after the first block and before the last"
    assert not list((tmp_path / "lb").glob("records/*/*/*.json"))
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    assert json.loads(rerun.stdout)[0]["action"] == "ran"
    record = json.loads(next((tmp_path / "lb").glob("records/demo/test/*.json")).read_text())
    assert record["counts"]["documents_cached"] == kept
    assert record["counts"]["documents_encoded"] == 312 - kept
