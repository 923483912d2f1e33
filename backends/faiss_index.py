"""Vector indexes through faiss (the ``index`` backend ``faiss``, a :class:`harness.protocols.VectorIndex`),
for corpora that exact numpy search cannot search fast enough.

- ``flat``: exact inner product, ``IndexFlatIP`` shards of at most ``shard_size`` vectors in an
  ``IndexShards``, which searches each shard and merges their hits exactly (ids offset by the shards
  before, the best k kept). Each shard is one allocation of its own size, read from the corpus in one
  block: a single index grows its storage by doubling as blocks are added, holding the old and the new
  copy at once.
- ``hnsw``: ``IndexHNSWFlat`` over inner product (Malkov & Yashunin 2018). faiss does not raise
  ``ef_search`` to k (hnswlib does): M 8 with 16 candidates for 100 hits found 56% of the exact 100 on
  2,000 random vectors here. Built by several threads, the graph (so the hits) can differ slightly from
  run to run; the core measures its recall each time.
- ``ivf``: ``IndexIVFFlat`` over inner product (spherical k-means, faiss's default for this metric),
  trained on a seeded sample of at most 64 vectors a list: within faiss's 39 to 256, a quarter of the
  k-means work of its own 256.

All three keep the float vectors and return their exact inner products. The corpus is read in blocks
of rows, so a memory-mapped corpus is never read whole at once. Measured at 1M x 384 on 2 busy cores
(``benchmarks/scale.py``): flat searched 1.7x as fast as numpy's exact tiles, with the same hits; HNSW
and IVF at the defaults 26x and 38x, finding 97% and 95% of the exact top 10, after builds of 9 and 4
minutes; every index held the vectors plus at most 0.92 GB at its peak.
"""

from __future__ import annotations

import math
import os

import numpy as np

from harness.errors import ConfigError, require
from harness.registry import IndexConfig

BLOCK = 65_536  # rows read and added at a time (faiss's IVF adds in blocks of this size too)
TRAIN_PER_LIST = 64


def _faiss():
    """faiss, with an OpenMP team of the CPUs this process may use: its affinity mask, which taskset and
    container cpusets narrow (``os.cpu_count()`` counts the host's)."""
    faiss = require("faiss", extra="faiss")
    cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)
    faiss.omp_set_num_threads(len(cpus))
    return faiss


def _rows(vectors, start: int, stop: int) -> np.ndarray:
    return np.ascontiguousarray(vectors[start:stop], dtype=np.float32)


class FaissIndex:
    """One faiss index of the kind and options ``config`` names; :meth:`build` once per corpus."""

    def __init__(self, config: IndexConfig):
        self.config = config
        self._faiss = _faiss()
        self._index = None
        self._n = 0

    def build(self, vectors) -> None:
        self._n, dim = len(vectors), vectors.shape[1]
        self._index = {"flat": self._flat, "hnsw": self._hnsw, "ivf": self._ivf}[self.config.kind](vectors, dim)

    def _flat(self, vectors, dim: int):
        shards = self._faiss.IndexShards(dim, False, True)  # not threaded: each shard's search runs the OpenMP team; successive ids
        for start in range(0, self._n, self.config.shard_size):
            shard = self._faiss.IndexFlatIP(dim)
            shard.add(_rows(vectors, start, start + self.config.shard_size))
            shards.add_shard(shard)  # faiss's Python wrapper keeps the shard alive with the IndexShards
        return shards

    def _hnsw(self, vectors, dim: int):
        index = self._faiss.IndexHNSWFlat(dim, self.config.M, self._faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = self.config.ef_construction
        index.hnsw.efSearch = self.config.ef_search
        self._add(index, vectors)
        return index

    def _ivf(self, vectors, dim: int):
        nlist = self.nlist()
        if nlist > self._n:
            raise ConfigError(f"nlist = {nlist} is more lists than the corpus has vectors ({self._n}); use at most {max(1, self._n // 39)} (39 vectors a list)")
        index = self._faiss.IndexIVFFlat(self._faiss.IndexFlatIP(dim), dim, nlist, self._faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = self.config.seed
        if nlist == 1:  # a corpus under 39 vectors: one list, whose centroid needs no sample size warned about
            index.cp.min_points_per_centroid = 1
        rng = np.random.default_rng(self.config.seed)
        sample = np.sort(rng.choice(self._n, size=min(self._n, TRAIN_PER_LIST * nlist), replace=False))
        index.train(np.ascontiguousarray(vectors[sample], dtype=np.float32))
        index.nprobe = self.config.nprobe
        self._add(index, vectors)
        return index

    def _add(self, index, vectors) -> None:
        for start in range(0, self._n, BLOCK):
            index.add(_rows(vectors, start, start + BLOCK))

    def nlist(self) -> int:
        """The IVF lists: as configured, else 4 x sqrt(n), at most n / 39 (never fewer than 1)."""
        return self.config.nlist or max(1, min(int(4 * math.sqrt(self._n)), self._n // 39))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if self._index is None:
            raise RuntimeError("call build() before search()")
        scores, indices = self._index.search(np.ascontiguousarray(queries, dtype=np.float32), min(k, self._n))
        return indices, scores

    def describe(self) -> dict:
        params = self.config.params() | ({"nlist": self.nlist()} if self.config.kind == "ivf" else {})
        return {"backend": "faiss", "kind": self.config.kind, "params": params}

    def index_bytes(self) -> int:
        """Counted from the index's own arrays: ``faiss.serialize_index`` would give the same within a
        header, but copies the whole index (gigabytes at a million vectors) to do it."""
        index, faiss = self._index, self._faiss
        if index is None:
            return 0
        if self.config.kind == "flat":
            return sum(faiss.downcast_index(index.at(i)).codes.size() for i in range(index.count()))
        if self.config.kind == "hnsw":
            graph = index.hnsw
            links = 4 * (graph.neighbors.size() + graph.levels.size()) + 8 * graph.offsets.size()
            return faiss.downcast_index(index.storage).codes.size() + links
        lists = index.invlists.compute_ntotal() * (index.code_size + 8)  # each vector's code and its 64-bit id
        return lists + faiss.downcast_index(index.quantizer).codes.size()
