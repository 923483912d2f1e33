"""Benchmark: the SciFact corpus (5,183 documents) encoded by all-MiniLM-L6-v2 on the local path and on
Ray Data with local workers (``[execution] engine = "ray"``), each into a fresh embedding cache.

Each engine runs ``bench run`` in a fresh process (imports, Ray's start-up, the model loads and the
encoding all count) over a one-rung ladder on SciFact test. Reported: the process's wall time, the
rung's indexing time (the document encode: on Ray it includes starting Ray and the workers and their
model loads), nDCG@10 from each record, and the largest absolute difference between the two caches'
document vectors. The local path uses torch's threads on every core; each Ray worker is one actor of
one CPU (Ray sets its torch to one thread), so ``--workers 2`` on a 2-core machine uses the same cores.

Usage: python benchmarks/ray_scifact.py [--data ../shared/datasets/scifact] [--workers 2] [--out benchmarks/_work/ray]
Writes a JSON summary beside the runs and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
LADDER = """
name = "ray-scifact"
goldsets = ["{data}"]
splits = ["test"]
ood = false
latency_queries = 0

[[rungs]]
name = "baseline"
kind = "dense"
encoder = {{ model = "sentence-transformers/all-MiniLM-L6-v2" }}

[execution]
workers = {workers}
"""


def run_engine(engine: str, ladder: Path, work: Path) -> dict:
    """``bench run --engine engine`` in a fresh process with a fresh cache: its wall time and record."""
    cache, board = work / engine / "cache", work / engine / "leaderboard"
    shutil.rmtree(work / engine, ignore_errors=True)
    env = {**os.environ, "TUNEBENCH_CACHE": str(cache), "TUNEBENCH_LEADERBOARD": str(board)}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "harness.cli", "run", "-l", str(ladder), "--engine", engine, "--json"], env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    record = json.loads(next(board.glob("records/*/test/*.json")).read_text())
    return {"engine": engine, "wall_s": round(wall, 1), "index_s": record["timings"]["index_s"], "ndcg@10": record["metrics"]["ndcg@10"],
            "documents_encoded": record["counts"]["documents_encoded"], "encoded_on": record["details"].get("encoded_on", "this process"), "cache": str(cache)}


def document_vectors(cache: str) -> dict[bytes, np.ndarray]:
    with sqlite3.connect(Path(cache) / "embeddings.sqlite") as db:
        rows = db.execute("SELECT text_hash, vector FROM vectors WHERE input_type = 'document'").fetchall()
    return {h: np.frombuffer(v, dtype=np.float32) for h, v in rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=HERE.parents[1] / "shared" / "datasets" / "scifact")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=HERE / "_work" / "ray")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    ladder = args.out / "ladder.toml"
    ladder.write_text(LADDER.format(data=args.data.resolve(), workers=args.workers))
    results = [run_engine(engine, ladder, args.out) for engine in ("local", "ray")]
    local, ray = (document_vectors(r["cache"]) for r in results)
    assert local.keys() == ray.keys(), "the two caches hold different documents"
    diff = max(float(np.abs(local[h] - ray[h]).max()) for h in local)
    summary = {"cpus": os.cpu_count(), "load_1min": os.getloadavg()[0], "documents": len(local), "max_abs_diff": diff, "runs": results}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(f"{len(local)} documents, {os.cpu_count()} CPUs; largest |local - ray| over every vector component: {diff:.2e}\n")
    print("| engine | encoded on | wall s (process) | index s (encode) | nDCG@10 |")
    print("|---|---|---:|---:|---:|")
    for r in results:
        print(f"| {r['engine']} | {r['encoded_on']} | {r['wall_s']} | {r['index_s']:.1f} | {r['ndcg@10']:.4f} |")


if __name__ == "__main__":
    main()
