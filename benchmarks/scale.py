"""Benchmark: search and hard-negative mining over 1,000,000 documents, exact numpy against faiss (flat
shards, HNSW, IVF), with each method's peak memory.

Vectors, not a model, so it runs on a laptop: ``--docs`` seeded unit vectors of ``--dim`` dimensions
from overlapping topics (:func:`corpus`; at 1M documents a query's 10th best document scores 0.59 and
its 100th 0.53: a crowded neighbourhood, not a few obvious matches). They are
generated in blocks of 65,536 rows into a float32 file under ``--work`` (kept for the next run), and read
back in tiles, each mapped, copied out and unmapped (:class:`Tiles`): one map of the whole file would
count every page read in the process's peak RSS. Queries are noisy copies (cosine ~0.9) of chosen
documents: 10,000 to search, 10,000 training queries to mine for (their document is the positive).

Each method runs in a fresh process (``--worker``), so its peak RSS (:func:`peak_rss`) is its own:

- ``exact``: :func:`harness.retrieval.topk.top_k_dense` over the file's tiles (the harness's defaults:
  256 queries x 65,536 documents a tile). Its hits are the reference, saved for the others.
- ``flat``, ``hnsw``, ``ivf``: :func:`harness.registry.build_index` at a dense rung's ``ann`` defaults
  (the faiss backend), built from the same tiles, the index resident.

Search: the top 100 of each query; seconds per 1,000 queries; recall@10 and recall@100 against exact
(:func:`~harness.retrieval.topk.recall_at`: a hit tied with the k-th best counts). Mining: the top 100 of
each training query, then the negative ``mine()`` keeps (candidates scoring at least 95% of the
positive's score dropped, the positive dropped, the first left): seconds per 1,000 queries, the share
of training queries given the same negative as exact mining (or one tied with it), and the mean score of
the negatives (how hard they are).

Peak RSS bound, stated before measuring (V = the vectors, docs x dim x 4 bytes; 1.54 GB at 1M x 384):
exact search reads tiles and holds none of the corpus: at most 1 GB whatever the corpus. An index holds
the vectors (faiss keeps the floats in all three kinds) plus its graph or lists, and grows its storage by
doubling while blocks are added: at most 2 x V + 0.5 GB.

Usage: python benchmarks/scale.py [--docs 1000000] [--dim 384] [--queries 10000] [--work /tmp/tunebench-scale]
[--methods exact flat hnsw ivf] [--ef-search N] [--nprobe N]
(the exact method first: the others read its hits from ``--work``)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.retrieval.topk import TIE, recall_at, top_k_dense  # noqa: E402

METHODS = ("exact", "flat", "hnsw", "ivf")
TILE = 65_536
LATENT = 32
K = 100
MAX_RELATIVE = 0.95  # mine()'s default: candidates at 95% of the positive's score or above are likely false negatives
GB = 1e9


class Tiles:
    """The corpus file as a read-only array of rows for ``top_k_dense`` and an index's ``build``: a row
    range or a sorted list of rows, read through a map of just the tiles it touches, copied, unmapped."""

    def __init__(self, path: Path, n: int, dim: int):
        self.path, self.shape, self.dtype = path, (n, dim), np.dtype(np.float32)

    def __len__(self) -> int:
        return self.shape[0]

    def _read(self, start: int, stop: int) -> np.ndarray:
        mapped = np.memmap(self.path, np.float32, "r", offset=start * self.shape[1] * 4, shape=(stop - start, self.shape[1]))
        rows = np.array(mapped)
        del mapped  # unmapped: its pages leave this process's resident set
        return rows

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, slice):
            start, stop, _ = key.indices(len(self))
            return self._read(start, stop)
        rows = np.asarray(key)
        parts = [self._read(t, min(t + TILE, len(self)))[rows[(rows >= t) & (rows < t + TILE)] - t] for t in range(0, len(self), TILE)]
        return np.concatenate(parts)


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def corpus(work: Path, n: int, dim: int, seed: int = 0) -> Tiles:
    """The documents, generated block by block (block b from seed [seed, b]: the same file on any machine):
    ``n / 1000`` topics in a 32-dimensional latent space, each document its topic plus as much latent
    spread again (topics overlap), placed in ``dim`` dimensions by a random orthonormal basis, plus
    isotropic noise. A corpus of tight, far-apart clusters (tried first) gave IVF recall 1.0 at 100,000
    documents: its lists were the clusters."""
    path = work / f"corpus-{n}x{dim}-s{seed}.f32"
    if not path.is_file() or path.stat().st_size != n * dim * 4:
        rng = np.random.default_rng([seed])
        basis = np.linalg.qr(rng.standard_normal((dim, LATENT)))[0]
        topics = rng.standard_normal((max(1, n // 1000), LATENT)) / np.sqrt(LATENT)
        with open(path.with_suffix(".tmp"), "wb") as out:
            for b, start in enumerate(range(0, n, TILE)):
                rng = np.random.default_rng([seed, b + 1])
                rows = min(TILE, n - start)
                latent = topics[rng.integers(0, len(topics), rows)] + rng.standard_normal((rows, LATENT)) / np.sqrt(LATENT)
                out.write(unit(latent @ basis.T + 0.5 * rng.standard_normal((rows, dim)) / np.sqrt(dim)).tobytes())
        path.with_suffix(".tmp").replace(path)
    return Tiles(path, n, dim)


def queries(docs: Tiles, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` noisy copies of chosen documents (cosine ~0.9), and the documents."""
    rng = np.random.default_rng([seed, 0])
    sources = np.sort(rng.choice(len(docs), size=count, replace=False))
    vectors = docs[sources] + 0.5 * rng.standard_normal((count, docs.shape[1])) / np.sqrt(docs.shape[1])
    order = rng.permutation(count)
    return unit(vectors)[order], sources[order]


def negatives(indices: np.ndarray, scores: np.ndarray, positives: np.ndarray, ceilings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each training query's mined negative as ``mine()`` picks it (index -1: none left), and its score."""
    keep = (indices >= 0) & (indices != positives[:, None]) & (scores < ceilings[:, None])
    first = np.argmax(keep, axis=1)
    found = keep[np.arange(len(keep)), first]
    rows = np.arange(len(keep))
    return np.where(found, indices[rows, first], -1), np.where(found, scores[rows, first], np.nan)


def worker(method: str, work: Path, docs: Tiles, n_queries: int, options: dict) -> dict:
    """One method: build (faiss), search, mine; the exact method saves its hits as the reference."""
    search_q, _ = queries(docs, n_queries, seed=1)
    train_q, positives = queries(docs, n_queries, seed=2)
    out: dict = {"method": method}
    start = time.perf_counter()
    if method == "exact":
        def search(q: np.ndarray, k: int):
            return top_k_dense(q, docs, k)
    else:
        from harness.registry import IndexConfig, build_index

        index = build_index(IndexConfig(kind=method, **options.get(method, {})))
        index.build(docs)
        search = index.search
        out |= {"params": index.describe()["params"], "index_gb": round(index.index_bytes() / GB, 3)}
    out["build_s"] = round(time.perf_counter() - start, 1)
    results = {}
    for name, q in (("search", search_q), ("mine", train_q)):
        start = time.perf_counter()
        results[name] = search(q, K)
        out[f"{name}_s_per_1000"] = round((time.perf_counter() - start) / len(q) * 1000, 2)
    rows = np.sort(positives)
    ceilings = MAX_RELATIVE * np.einsum("qd,qd->q", train_q, docs[rows][np.searchsorted(rows, positives)])
    if method == "exact":
        for name, (indices, scores) in results.items():
            np.save(work / f"exact-{name}-indices.npy", indices)
            np.save(work / f"exact-{name}-scores.npy", scores)
    exact = {name: (np.load(work / f"exact-{name}-indices.npy"), np.load(work / f"exact-{name}-scores.npy")) for name in results}
    indices, scores = results["search"]
    out |= {f"recall@{k}": round(recall_at(k, indices, scores, exact["search"][1]), 4) for k in (10, K)}
    mined, mined_scores = negatives(*results["mine"], positives, ceilings)
    reference, reference_scores = negatives(*exact["mine"], positives, ceilings)
    same = (mined == reference) | (np.abs(mined_scores - reference_scores) <= TIE)
    out |= {"mining_recall@100": round(recall_at(K, *results["mine"], exact["mine"][1]), 4), "same_negative": round(float(same.mean()), 4),
            "negative_score": round(float(np.nanmean(mined_scores)), 4)}
    out["peak_rss_gb"] = round(peak_rss() / GB, 3)
    return out


def peak_rss() -> int:
    """This process's peak resident set in bytes: ``VmHWM``, its memory's high-water mark. Not
    ``ru_maxrss``, which Linux carries across ``exec`` from the parent: every worker read the 0.74 GB the
    parent had reached writing the corpus."""
    line = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def bounds(n: int, dim: int) -> dict[str, float]:
    vectors = n * dim * 4 / GB
    return {"exact": 1.0} | {m: 2 * vectors + 0.5 for m in METHODS[1:]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--work", type=Path, default=Path("/tmp/tunebench-scale"))
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--ef-search", type=int, help="hnsw's ef_search (default: the ann table's)")
    parser.add_argument("--nprobe", type=int, help="ivf's nprobe (default: the ann table's)")
    parser.add_argument("--worker", choices=METHODS)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    docs = corpus(args.work, args.docs, args.dim)
    options = {"hnsw": {"ef_search": args.ef_search} if args.ef_search else {}, "ivf": {"nprobe": args.nprobe} if args.nprobe else {}}
    if args.worker:
        return print(json.dumps(worker(args.worker, args.work, docs, args.queries, options)))
    limit = bounds(args.docs, args.dim)
    print(f"{args.docs:,} documents x {args.dim} (V = {args.docs * args.dim * 4 / GB:.2f} GB), {args.queries:,} queries; {platform.processor() or platform.machine()}, "
          f"{len(os.sched_getaffinity(0))} CPUs; peak RSS bounds: " + ", ".join(f"{m} {limit[m]:.2f} GB" for m in args.methods), file=sys.stderr)
    rows = []
    for method in args.methods:
        cmd = [sys.executable, __file__, "--worker", method, "--docs", str(args.docs), "--dim", str(args.dim), "--queries", str(args.queries), "--work", str(args.work)]
        cmd += [flag for name, value in (("--ef-search", args.ef_search), ("--nprobe", args.nprobe)) if value for flag in (name, str(value))]
        line = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        print(line, file=sys.stderr)
        rows.append(json.loads(line))
    print("| method | params | build s | search s / 1k q | recall@10 | recall@100 | mining s / 1k q | mining recall@100 | same negative | negative score | index GB | peak RSS GB | bound GB |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        params = ", ".join(f"{k} {v}" for k, v in r.get("params", {}).items()) or "tiles of 65,536"
        met = "met" if r["peak_rss_gb"] <= limit[r["method"]] else "**not met**"
        print(f"| {r['method']} | {params} | {r['build_s']} | {r['search_s_per_1000']} | {r['recall@10']} | {r['recall@100']} | {r['mine_s_per_1000']} | "
              f"{r['mining_recall@100']} | {r['same_negative']} | {r['negative_score']} | {r.get('index_gb', '-')} | {r['peak_rss_gb']} | {limit[r['method']]:.2f} ({met}) |")


if __name__ == "__main__":
    main()
