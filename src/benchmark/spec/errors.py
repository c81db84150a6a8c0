"""Errors a user can act on.

Every error raised on purpose by tlbench derives from :class:`TlbenchError`; the CLI prints its
message (what was wrong, where, how to fix it) without a traceback. Anything else is a bug.
"""

from __future__ import annotations


class TlbenchError(Exception):
    """An error caused by input or configuration, with a message that says how to fix it."""


class SpecError(TlbenchError):
    """A grid spec with one or more problems, each prefixed by its YAML path.

    ``groups``: the problems by file (the spec, each data file), when they come from several;
    ``spec``: the spec built without the offending keys, when one could be (so that the checks
    after the keys still run and every problem is reported in one pass)."""

    def __init__(self, problems: list[str], source: str = "grid spec",
                 groups: dict[str, list[str]] | None = None, spec=None):
        self.problems = list(problems)
        self.source = source
        self.groups = groups
        self.spec = spec
        if groups and (len(groups) > 1 or source not in groups):
            lines = "\n".join(f"  {where}:\n" + "\n".join(f"    - {p}" for p in found)
                              for where, found in groups.items())
            super().__init__(f"{source}: {len(self.problems)} problem(s) in {len(groups)} file(s); "
                             f"nothing was trained:\n{lines}")
        else:
            lines = "\n".join(f"  - {p}" for p in self.problems)
            super().__init__(f"{source} has {len(self.problems)} problem(s):\n{lines}")


class DataError(TlbenchError):
    """Input data that is missing, malformed or too short for what was asked. ``file``: the file
    it is about, when there is one; ``problems``: every problem found in it, when there are several."""

    def __init__(self, message: str, file: str | None = None, problems: list[str] | None = None):
        super().__init__(message)
        self.file = file
        self.problems = problems or [message]


class GridProblems(SpecError, DataError):
    """Every problem of a grid found before anything trains, from its spec and its data at once,
    grouped by file (:func:`benchmark.run.plan.plan_grid`); both a spec and a data error."""

    def __init__(self, problems: list[str], source: str = "grid spec",
                 groups: dict[str, list[str]] | None = None, spec=None):
        SpecError.__init__(self, problems, source, groups, spec)
        self.file = None


class UnknownNameError(TlbenchError):
    """A name that is not in a registry; the message lists the known names."""


class CellFailed(TlbenchError):
    """A cell that could not finish (non-finite loss, time limit); the grid goes on without it."""
