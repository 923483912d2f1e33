"""Benchmark: what the ``openai`` embeddings backend sends and what a run records, against the local
OpenAI-compatible fake server of the tests (tests/fake_api.py ``FakeOpenAI``: OpenAI's caps of 2,048
inputs and 300,000 tokens a request, tokens counted as words + 1, usage returned as OpenAI does).

``bench run`` of one dense rung (``text-embedding-3-large``, billed at its list price through ``price_key``: a ``base_url`` server is free otherwise) on the demo goldset and
demo-ood, in a fresh cache, then again: the first run buys every text once, the second finds them all in
the cache and buys nothing. Prints, per run, the requests the server saw, the texts and tokens billed,
and the records' API calls and cost.

Usage: python benchmarks/openai_fake.py [--goldset goldsets/demo]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # the fake server the tests use

from fake_api import KEY, FakeOpenAI, fake_tokens  # noqa: E402

LADDER = """
name = "openai-fake"
goldsets = ["{goldset}"]
latency_queries = 0

[[rungs]]
name = "openai-3-large"
kind = "dense"
encoder = {{ backend = "openai", model = "text-embedding-3-large", base_url = "{url}/v1", price_key = "openai:text-embedding-3-large" }}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--goldset", type=Path, default=HERE.parent / "goldsets" / "demo")
    args = parser.parse_args()
    print("| run | requests | texts billed | tokens billed | records' API calls | records' cost (USD, the evaluation's, cached or not) | nDCG@10 |\n|---|---:|---:|---:|---:|---:|---|")
    with FakeOpenAI() as server, tempfile.TemporaryDirectory() as work:
        ladder = Path(work) / "ladder.toml"
        ladder.write_text(LADDER.format(goldset=args.goldset.resolve(), url=server.url))
        env = {**os.environ, "OPENAI_API_KEY": KEY, "TUNEBENCH_CACHE": f"{work}/cache", "HF_HUB_OFFLINE": "1"}
        for run in ("cold cache", "again (cached)"):
            before = len(server.requests)
            out = subprocess.run([sys.executable, "-m", "harness.cli", "run", "-l", str(ladder), "--leaderboard", f"{work}/board", "--json", "--overwrite"],
                                 env=env, capture_output=True, text=True, check=True).stdout
            records = [r for r in json.loads(out) if r["status"] == "ok"]
            requests = server.requests[before:]
            texts = [t for r in requests for t in r.texts]
            scores = ", ".join(f"{r['goldset']} {r['metrics']['ndcg@10']:.3f}" for r in records)
            print(f"| {run} | {len(requests)} | {len(texts)} | {sum(fake_tokens(t) for t in texts)} | {sum(r['api_calls'] for r in records)} | "
                  f"{sum(r['cost_usd'] or 0 for r in records):.6f} | {scores} |")


if __name__ == "__main__":
    main()
