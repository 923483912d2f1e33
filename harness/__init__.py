"""tunebench's core. A small kernel here (errors, choices, protocols, config, registry, cache,
records, metrics, prices, progress, environment, allocator) and packages that each import only downwards:
``data`` -> ``retrieval`` -> ``training`` -> ``ladder`` | ``pairs`` -> ``decide`` -> the CLI.

The Python API behind every ``bench`` command::

    from harness.data.resolve import resolve_goldset
    from harness.ladder.rungs import DenseRung, BM25Rung
    from harness.ladder.runner import run_rungs
    from harness.records import Leaderboard

Heavy imports (torch, sentence-transformers, ranx, bm25s) happen inside the functions that need them.
"""

__version__ = "0.1.0"
