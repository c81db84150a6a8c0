"""One run of a grid at a time per results location: the grid's lease file, taken before anything
starts and given back when the run ends, however it ends.

Where: ``<results>/leases/<grid id>.json`` (:meth:`Settings.local_dir`), in the results folder that
every machine of a team writes, so two machines sharing that folder (NFS, SMB) see one lease. The
grid id is the plan's spec hash (:class:`benchmark.run.plan.GridPlan`), so different grids on one
results location hold different leases and run side by side.

Taking it: the holder's facts (grid, host, pid, user, command, start, heartbeat, a random token)
are written to a temporary file that is then *hard-linked* to the lease's name: ``link`` fails when
the name exists, atomically, also over NFS, and the lease is never seen half-written. A second
run of the grid reads the holder and stops with :class:`GridAlreadyRunning` (who, where, since
when, what to do).

Keeping it: a daemon thread rewrites the heartbeat every ``Settings.heartbeat_seconds`` (60 s).
Giving it back: :meth:`GridLease.release`, in a ``finally`` (an exception, Ctrl-C), removes the
file if it still holds this run's token.

A holder that died is never kept forever: its lease is taken over, with a warning, when its pid
is gone on this host (a crash, SIGTERM, SIGKILL here: at once) or when its heartbeat is older than
``Settings.stale_grid_seconds`` (900 s, the bound after which a silent grid's MLflow run is
closed too: a holder SIGKILLed on another machine). A takeover holds ``<lease>.takeover``
(create-exclusive, held for milliseconds) and checks under it that the lease is still the stale
one it judged, so two runs taking over one stale lease at once do not both win.

With the results on an object store (``s3://...``), which has no exclusive create here, the lease
lives beside the MLflow store (:meth:`Settings.local_dir`) and so only keeps one machine's runs
apart.
"""

from __future__ import annotations

import json
import logging
import os
import pwd
import socket
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from benchmark.spec.errors import TlbenchError
from benchmark.spec.files import atomic_write
from benchmark.spec.settings import Settings

log = logging.getLogger(__name__)

#: How long a takeover guard (``<lease>.takeover``) may stand before it counts as left by a dead
#: process: it is held for the milliseconds of one unlink and one link.
GUARD_STALE_S = 30.0


class GridAlreadyRunning(TlbenchError):
    """The grid is running on this results location already; the message says who runs it."""

    def __init__(self, message: str, holder: "Holder | None" = None, path: Path | None = None):
        super().__init__(message)
        self.holder = holder
        self.path = path


@dataclass(frozen=True)
class Holder:
    """Who holds a grid's lease: what the lease file says (JSON)."""

    grid: str
    grid_id: str
    host: str
    pid: int
    user: str
    command: str
    started: float  # epoch seconds
    heartbeat: float  # epoch seconds, refreshed while the grid runs
    token: str
    owner: str = ""  # what runs the grid, set by its caller (a Prefect flow run: its id), see GridLease.own

    @classmethod
    def read(cls, path: Path) -> "Holder | None":
        """The holder in ``path``; ``None`` when the file is gone. A file that is not a lease
        (damaged by hand) reads as an unknown holder whose heartbeat is the file's mtime."""
        try:
            text, mtime = path.read_text(encoding="utf-8"), path.stat().st_mtime
        except FileNotFoundError:
            return None
        try:
            return cls(**json.loads(text))
        except (ValueError, TypeError):
            return cls("?", "?", "?", 0, "?", f"unreadable lease file: {text[:80]!r}", mtime, mtime, "")

    def json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    def describe(self, now: float) -> str:
        since = datetime.fromtimestamp(self.started, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        return (f"since {since} ({now - self.started:.0f} s ago, last heartbeat {now - self.heartbeat:.0f} s "
                f"ago), started by {self.user} on host {self.host}, pid {self.pid} ({self.command})")


def lease_path(settings: Settings, grid_id: str) -> Path:
    """The lease file of a grid on the settings' results location."""
    return settings.local_dir("leases", f"{grid_id}.json")


def stale_reason(holder: Holder, now: float, stale_after_s: float, host: str,
                 is_alive: Callable[[int], bool]) -> str | None:
    """Why ``holder`` is dead (its lease may be taken over), or ``None`` while it may be alive."""
    if holder.host == host and holder.pid > 0 and not is_alive(holder.pid):
        return f"its process {holder.pid} on {host} is gone"
    if now - holder.heartbeat > stale_after_s:
        return f"no heartbeat for {now - holder.heartbeat:.0f} s (> {stale_after_s:.0f} s: stale_grid_seconds)"
    return None


class GridLease:
    """A held lease: refreshes its heartbeat in a daemon thread until :meth:`release`. A context
    manager (``with acquire(...) as lease:``) that releases on any exit. ``taken_over``: the dead
    holder this lease was taken from (``None`` for a fresh lease) and ``why`` it was judged dead,
    so the caller can close what that run left open elsewhere (its Prefect runs: ``flows/lost.py``)."""

    def __init__(self, path: Path, holder: Holder, heartbeat_s: float, taken_over: Holder | None = None,
                 why: str = ""):
        self.path, self.holder, self.taken_over, self.why = path, holder, taken_over, why
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat_every, args=(max(0.05, heartbeat_s),), daemon=True,
                                        name="tlbench-lease")
        self._thread.start()

    def _beat_every(self, seconds: float) -> None:
        while not self._stop.wait(seconds):
            try:
                self.beat()
            except Exception:  # noqa: BLE001 - a missed beat (a shared disk's hiccup) is retried
                log.warning("could not refresh the heartbeat of %s", self.path, exc_info=True)

    def beat(self) -> bool:
        """Refresh the heartbeat; ``False`` (and a warning) when the lease is no longer ours."""
        current = Holder.read(self.path)
        if current is None or current.token != self.holder.token:
            log.warning("grid %s: the lease %s was taken over (%s) while this run was silent for more than "
                        "stale_grid_seconds; another run of this grid may be running too",
                        self.holder.grid, self.path,
                        current.describe(time.time()) if current else "the file is gone")
            self._stop.set()
            return False
        atomic_write(self.path, Holder(**{**asdict(self.holder), "heartbeat": time.time()}).json())
        return True

    def own(self, owner: str) -> None:
        """Record what runs the grid (e.g. ``prefect-flow-run:<id>``) in the lease, so that a run
        that takes it over after this one died knows what to close."""
        self.holder = Holder(**{**asdict(self.holder), "owner": owner})
        atomic_write(self.path, self.holder.json())

    def release(self) -> None:
        """Stop the heartbeat and remove the lease file if it is still this run's."""
        self._stop.set()
        self._thread.join()
        current = Holder.read(self.path)
        if current is not None and current.token == self.holder.token:
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> "GridLease":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def acquire(settings: Settings, grid: str, grid_id: str, is_alive: Callable[[int], bool] | None = None,
            host: str | None = None) -> GridLease:
    """Take the lease of grid ``grid_id`` (named ``grid``) on the settings' results location
    (:func:`lease_path`), or raise :class:`GridAlreadyRunning`.

    ``settings``: the results location (named in the message), the heartbeat interval
    (``heartbeat_seconds``) and the bound after which a silent holder is dead
    (``stale_grid_seconds``); ``is_alive(pid)`` and ``host`` default to this machine's."""
    is_alive, host = is_alive or pid_alive, host or socket.gethostname()
    path = lease_path(settings, grid_id)
    now = time.time()
    mine = Holder(grid, grid_id, host, os.getpid(), _user(), settings.redact(" ".join(sys.argv))[:300],
                  now, now, uuid.uuid4().hex)
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + GUARD_STALE_S + 5  # a guard left by a dead run is removed by then
    while time.monotonic() < deadline:
        if _create(path, mine):
            return GridLease(path, mine, settings.heartbeat_seconds)
        holder = Holder.read(path)
        if holder is None:  # released between our link and our read: try again
            continue
        reason = stale_reason(holder, time.time(), settings.stale_grid_seconds, host, is_alive)
        if reason is None:
            raise GridAlreadyRunning(
                f"grid {grid!r} (id {grid_id}) is already running on this results folder "
                f"({settings.redact(settings.results)}) "
                f"{holder.describe(time.time())}. Wait for it to finish (a run of the same command then "
                f"skips every cell it finished), or stop that process: a lease whose process is gone "
                f"(same host) or silent for more than {settings.stale_grid_seconds} s (stale_grid_seconds) "
                f"is taken over automatically. Lease file: {path}", holder, path)
        if _take_over(path, holder, mine):
            log.warning("grid %s: took over the lease %s of a run that died (%s; it ran %s)", grid, path,
                        reason, holder.describe(time.time()))
            return GridLease(path, mine, settings.heartbeat_seconds, taken_over=holder,
                             why=reason)
        time.sleep(0.05)
    raise TlbenchError(f"could not take the lease {path} of grid {grid!r}: other runs kept taking it over; "
                       "run the command again")


def _create(path: Path, holder: Holder) -> bool:
    """Create the lease file holding ``holder``, only if it does not exist (atomic)."""
    temporary = path.with_name(f".{path.name}.{holder.token}")
    temporary.write_text(holder.json(), encoding="utf-8")
    try:
        os.link(temporary, path)
        return True
    except FileExistsError:
        return False
    finally:
        temporary.unlink(missing_ok=True)


def _take_over(path: Path, stale: Holder, mine: Holder) -> bool:
    """Replace the ``stale`` lease by ``mine`` under the takeover guard; ``False`` when another
    run holds the guard or changed the lease first."""
    guard = path.with_name(path.name + ".takeover")
    try:
        os.close(os.open(guard, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        try:
            if time.time() - guard.stat().st_mtime > GUARD_STALE_S:  # left by a run that died in it
                guard.unlink(missing_ok=True)
        except FileNotFoundError:
            pass
        return False
    try:
        current = Holder.read(path)
        if current is not None and current != stale:
            return False
        path.unlink(missing_ok=True)
        return _create(path, mine)
    finally:
        guard.unlink(missing_ok=True)


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _user() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:  # a container's uid without a passwd entry
        return f"uid {os.getuid()}"
