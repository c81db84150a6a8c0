"""Errors a user can act on.

Every error raised on purpose by tlbench derives from :class:`TlbenchError`; the CLI prints its
message (what was wrong, where, how to fix it) without a traceback. Anything else is a bug.
"""

from __future__ import annotations


class TlbenchError(Exception):
    """An error caused by input or configuration, with a message that says how to fix it."""


class SpecError(TlbenchError):
    """A grid spec with one or more problems, each prefixed by its YAML path."""

    def __init__(self, problems: list[str], source: str = "grid spec"):
        self.problems = list(problems)
        self.source = source
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{source} has {len(self.problems)} problem(s):\n{lines}")


class DataError(TlbenchError):
    """Input data that is missing, malformed or too short for what was asked."""


class UnknownNameError(TlbenchError):
    """A name that is not in a registry; the message lists the known names."""


class CellFailed(TlbenchError):
    """A cell that could not finish (non-finite loss, time limit); the grid goes on without it."""
