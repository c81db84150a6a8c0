"""A tracking server that does not answer: waited for up to a bound, then one clear error.

MLflow's own client retries each request (its policy: ``Settings.mlflow_*``, capped by
:meth:`Settings.effective_mlflow_retries` so that one request gives up within a quarter of the
bound). Every call a :class:`benchmark.tracking.tracker.Tracker` makes goes through
:class:`Guarded`, which goes on retrying a request that could not reach the server until the
server has been unreachable for ``Settings.tracking_wait_seconds`` (``TLBENCH_TRACKING_WAIT_S``,
120 s by default), counted from the first request that failed. Then it raises
:class:`TrackingUnavailable`, one line: which server, for how long, the last cause, what to do.
From then on every call of this process to that server fails at once with the same error (no
second wait: a grid stops within the bound, not once per request), until :func:`forget_outage`
(a new run of a grid calls it when it starts).

Only errors that say the server was not reached or did not answer are retried here (connection
refused or reset, timeouts, "Max retries exceeded"); an error the server answered with (a bad
request, a missing run) is raised as it is.
"""

from __future__ import annotations

import re
import threading
import time
from typing import Any

from benchmark.spec.errors import TlbenchError
from benchmark.spec.settings import Settings, redact

#: What an MLflow or ``requests`` error says when the server was not reached or did not answer.
UNREACHABLE = re.compile(r"Max retries exceeded|Connection refused|Failed to establish a new connection|"
                         r"Connection aborted|Connection reset|RemoteDisconnected|Read timed out|"
                         r"ConnectTimeout|Name or service not known", re.I)
_PAUSE_S = 5.0  # between two tries of a request, while the bound is not reached

_lock = threading.Lock()
_down_since: dict[str, float] = {}  # tracking URI -> when its first failed request started
_gone: dict[str, str] = {}  # tracking URI -> the error every later call raises at once


class TrackingUnavailable(TlbenchError):
    """The tracking server did not answer within ``Settings.tracking_wait_seconds``."""


def unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` says the server was not reached or did not answer (worth waiting for)."""
    return isinstance(exc, (ConnectionError, TimeoutError)) or bool(UNREACHABLE.search(str(exc)))


def forget_outage(tracking_uri: str) -> None:
    """Start afresh: the next call to ``tracking_uri`` tries the server again."""
    with _lock:
        _down_since.pop(tracking_uri, None)
        _gone.pop(tracking_uri, None)


def store_gone(tracking_uri: str) -> bool:
    """Whether this process has given up on ``tracking_uri`` (see :class:`TrackingUnavailable`)."""
    return tracking_uri in _gone


class Guarded:
    """An ``MlflowClient`` whose every method call is waited out as the module says."""

    def __init__(self, client: Any, settings: Settings):
        self._client, self._settings = client, settings
        self._uri = settings.tracking_uri

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute

        def call(*args, **kwargs):
            return self._call(attribute, args, kwargs)

        return call

    def _call(self, method, args, kwargs):
        started = time.monotonic()
        while True:
            if self._uri in _gone:
                raise TrackingUnavailable(_gone[self._uri])
            try:
                result = method(*args, **kwargs)
            except Exception as exc:
                if not unreachable(exc):
                    raise
                self._wait_or_give_up(started, exc)
                continue
            with _lock:
                _down_since.pop(self._uri, None)
            return result

    def _wait_or_give_up(self, started: float, exc: Exception) -> None:
        bound = self._settings.tracking_wait_seconds
        with _lock:
            since = _down_since.setdefault(self._uri, started)
        waited = time.monotonic() - since
        if waited < bound:
            time.sleep(min(_PAUSE_S, bound - waited))
            return
        message = gone_message(self._settings, waited, exc)
        with _lock:
            _gone.setdefault(self._uri, message)
        raise TrackingUnavailable(_gone[self._uri]) from None


def gone_message(settings: Settings, waited: float, exc: BaseException) -> str:
    """The one line for a tracking server given up on: which, how long, the cause, what to do."""
    cause = UNREACHABLE.search(str(exc))
    server = redact(settings.tracking_uri, settings.secret_values)
    return (f"the MLflow tracking server {server} did not answer for {waited:.0f} s "
            f"({cause.group(0) if cause else type(exc).__name__}; TLBENCH_TRACKING_WAIT_S="
            f"{settings.tracking_wait_seconds:.0f}). Start it again (or point MLFLOW_TRACKING_URI / "
            "--tracking-uri at a live one), then run the same command: finished cells are kept, the "
            "others run again, and this run's MLflow run is closed then.")
