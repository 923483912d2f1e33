"""tunebench's core: goldsets, protocols, retrieval, metrics, records and the CLI.

The Python API behind every ``bench`` command::

    from harness.data.goldset import resolve_goldset
    from harness.ladder.rungs import DenseRung, BM25Rung
    from harness.ladder.runner import run_rungs
    from harness.records import Leaderboard

Heavy imports (torch, sentence-transformers, ranx, bm25s) happen inside the functions that need them.
"""

__version__ = "0.1.0"
