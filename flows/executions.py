"""The executions ``benchmark_grid`` may run a grid on, by name: a registry, and the one factory.

``local``: every stage as task runs of the grid's own flow run (:class:`flows.engine.PrefectEngine`);
``pool``: cells as child flow runs on a work pool (:class:`flows.pool.PoolEngine`); ``served``: cells
as task runs on long-lived cell workers (:class:`flows.served.ServedEngine`).
"""

from __future__ import annotations

from dataclasses import dataclass

from benchmark.spec.registry import Registry
from flows.engine import PrefectEngine
from flows.pool import PoolEngine
from flows.remote import LOST_AFTER_S
from flows.served import ServedEngine


@dataclass(frozen=True)
class EngineOptions:
    """What ``benchmark_grid``'s parameters say about where the cells run."""

    concurrency: int = 1
    batch_size: int = 4
    timeout_s: float = 24 * 3600
    poll_s: float = 5.0
    lost_after_s: float = LOST_AFTER_S  # Settings.lost_worker_seconds (TLBENCH_LOST_WORKER_S)


EXECUTIONS: Registry = Registry("execution")
EXECUTIONS.add("local", lambda o: PrefectEngine(o.concurrency))
EXECUTIONS.add("pool", lambda o: PoolEngine(o.batch_size, timeout_s=o.timeout_s, poll_s=o.poll_s,
                                            concurrency=o.concurrency, lost_after_s=o.lost_after_s))
EXECUTIONS.add("served", lambda o: ServedEngine(PrefectEngine(o.concurrency), timeout_s=o.timeout_s,
                                                lost_after_s=o.lost_after_s))


def make_engine(execution: str, concurrency: int = 1, batch_size: int = 4,
                timeout_s: float = 24 * 3600, poll_s: float = 5.0, lost_after_s: float = LOST_AFTER_S):
    """The engine for ``benchmark_grid``'s ``execution`` parameter (an unknown name lists the known ones)."""
    return EXECUTIONS.get(execution)(EngineOptions(concurrency, batch_size, timeout_s, poll_s, lost_after_s))
