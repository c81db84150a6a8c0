"""The results layer: the leaderboard and every judgement made over it.

Owns the leaderboard's schema (``schema``); its reads (``reader``: filtered scans that skip bad
files, one row per cell) and its Parquet store, the only Parquet writer (``leaderboard``);
ranking and folding of variants (``ranking``); the statistics (``stats``: seed intervals,
Diebold-Mariano, Holm, skill scores); verdicts in words (``verdicts``); and the nightly
regression check (``nightly``). All but the reader and the store are pure functions over frames.

May import: spec, data, forecasters.
"""
