"""The cost-benefit ladder: its file's schema, the rungs, the stage each rung runs, and the runner
that records every goldset x split x rung. Imports the kernel, ``data``, ``retrieval`` and ``training``."""
