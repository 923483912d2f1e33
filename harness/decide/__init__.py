"""Decisions from records: paired significance tests, the leaderboard views and plots, the
go/no-go report and the regression gate. Imports the kernel, ``data`` and ``ladder``."""
