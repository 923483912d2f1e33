"""Benchmark: the cheap rungs of the ladder on SciFact test, quality next to cost and latency.

Runs one ladder (written to ``--out`` with the local model paths filled in) through ``bench run``:
all-MiniLM-L6-v2 (the baseline), all-mpnet-base-v2 (a stronger general embedder, prepared offline
from PyPI by ``prepare_models.py``), BM25, RRF fusion of BM25 and each embedder, a weighted sum tuned
on the train split (never on test), the chunked baseline, and BM25's top 100 re-scored by MiniLM.
Every rung runs in the same process on the same machine, so latencies compare as ratios.

Usage: python benchmarks/ladder_scifact.py [--data ../shared/datasets/scifact] [--out benchmarks/_work/ladder]
Prints a Markdown table for benchmarks/RESULTS.md and writes it beside the ladder.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from prepare_models import mpnet_path  # noqa: E402  (benchmarks/ is not a package)

LADDER = """
name = "scifact-cheap-rungs"
goldsets = ["{data}"]
splits = ["test"]
ood = false
latency_queries = 100

[[rungs]]
name = "baseline"
kind = "dense"
encoder = {{ model = "sentence-transformers/all-MiniLM-L6-v2" }}

[[rungs]]
name = "bm25"
kind = "bm25"

[[rungs]]
name = "hybrid"
kind = "hybrid"
inputs = ["bm25", "baseline"]
method = "rrf"

[[rungs]]
name = "hybrid-tuned"
kind = "hybrid"
inputs = ["bm25", "baseline"]
method = "wsum"
norm = "min-max"
tune_on = "train"

[[rungs]]
name = "bm25>minilm"
kind = "rerank"
first_stage = "bm25"
reranker = {{ backend = "bi-encoder", model = "sentence-transformers/all-MiniLM-L6-v2" }}

[[rungs]]
name = "chunked"
kind = "chunked"
encoder = {{ model = "sentence-transformers/all-MiniLM-L6-v2" }}
chunk_size = 128
overlap = 32

[[rungs]]
name = "mpnet"
kind = "dense"
encoder = {{ model = "{mpnet}" }}

[[rungs]]
name = "hybrid-mpnet"
kind = "hybrid"
inputs = ["bm25", "mpnet"]
method = "rrf"

[[rungs]]
name = "hybrid-mpnet-tuned"
kind = "hybrid"
inputs = ["bm25", "mpnet"]
method = "wsum"
norm = "min-max"
tune_on = "train"
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "datasets" / "scifact")
    parser.add_argument("--out", type=Path, default=HERE / "_work" / "ladder")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    ladder = args.out / "ladder.toml"
    ladder.write_text(LADDER.format(data=args.data.resolve(), mpnet=mpnet_path()))
    # --overwrite: re-measure every rung now (embeddings and reranker scores come from the cache)
    command = [sys.executable, "-m", "harness.cli", "run", "-l", str(ladder), "--leaderboard", str(args.out / "leaderboard"), "--json", "--overwrite"]
    rows = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
    table = markdown(rows)
    (args.out / "table.md").write_text(table)
    print(table)


def markdown(rows: list[dict]) -> str:
    lines = ["| rung | nDCG@10 | R@10 | R@100 | MRR@10 | p50 ms | p95 ms | cost $ |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        m = r["metrics"]
        lines.append(
            f"| {r['rung']} | {m['ndcg@10']:.3f} | {m['recall@10']:.3f} | {m['recall@100']:.3f} | {m['mrr@10']:.3f} "
            f"| {r['latency_p50_ms']:.1f} | {r['latency_p95_ms']:.1f} | {r['cost_usd']:.2f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
