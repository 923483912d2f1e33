"""Benchmark: RRF fusion one query at a time (the hybrid rung's latency path), this tree's fusion.py
against an earlier revision's, in one process, alternating per query, on the stored BM25 and baseline
runs of a leaderboard.

Usage: python benchmarks/fusion_latency.py RECORDS_DIR [--rev 80bf14d] [--queries 100]
(RECORDS_DIR: <leaderboard>/records/<goldset>/<split>, holding bm25.*.run.json.gz and baseline.*.run.json.gz)
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def module(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("records", type=Path)
    parser.add_argument("--rev", default="80bf14d", help="the earlier revision to compare with")
    parser.add_argument("--queries", type=int, default=100)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    with tempfile.TemporaryDirectory() as tmp:
        old_path = Path(tmp) / "fusion_old.py"
        old_path.write_text(subprocess.run(["git", "-C", str(ROOT), "show", f"{args.rev}:harness/retrieval/fusion.py"], check=True, capture_output=True, text=True).stdout)
        versions = {args.rev: module(old_path, "fusion_old"), "this tree": module(ROOT / "harness/retrieval/fusion.py", "fusion_new")}
    runs = [json.loads(gzip.decompress(next(args.records.glob(f"{rung}.*.run.json.gz")).read_bytes())) for rung in ("bm25", "baseline")]
    queries = sorted(runs[0])[: args.queries]
    params = versions["this tree"].params_for("rrf", None, 60, 2)
    times = {name: [] for name in versions}
    for fusion in versions.values():  # one untimed warm-up each, as the latency path does
        fusion.fuse([{queries[0]: r[queries[0]]} for r in runs], method="rrf", norm=None, params=params, top_k=100)
    for q in queries:
        for name, fusion in versions.items():
            start = time.perf_counter()
            fusion.fuse([{q: r[q]} for r in runs], method="rrf", norm=None, params=params, top_k=100)
            times[name].append((time.perf_counter() - start) * 1000)
    print("| fusion.py | p50 ms | p95 ms | max ms |\n|---|---:|---:|---:|")
    for name, ms in times.items():
        ms.sort()
        print(f"| {name} | {statistics.median(ms):.1f} | {ms[int(0.95 * len(ms)) - 1]:.1f} | {ms[-1]:.1f} |")
    fused = [fusion.fuse(runs, method="rrf", norm=None, params=params, top_k=100) for fusion in versions.values()]
    print(f"\nsame rankings: {all(list(fused[0][q]) == list(fused[1][q]) for q in fused[0])}")


if __name__ == "__main__":
    main()
