"""Tracking calls to a server that is down for a while: retried with exponential backoff until a deadline.

MLflow's own HTTP retries (urllib3, `MLFLOW_HTTP_REQUEST_MAX_RETRIES` / `_BACKOFF_FACTOR` / `_TIMEOUT`) are
kept short (a few seconds per call: the defaults harness.track sets, any value in the environment wins);
this layer retries a call that still failed on a transient error (connection refused or reset, a timeout,
a 5xx answer such as the server's database being down) with backoff 0.5 s doubling up to 10 s, until
`$HARNESS_TRACKING_DEADLINE_S` (default 600 s) after the first failure for a run's worker, three times that
for the orchestrator (it still has its runs' outcomes to record once the server is back); then it raises
TrackingUnavailable.  Errors the server meant (a run that does not exist, a bad parameter) are not retried.
The caller keeps what it had not written yet (RunLog's buffered metrics leave the buffer only once written)."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any

from mlflow.exceptions import MlflowException
from requests.exceptions import ConnectionError as RequestsConnectionError
from requests.exceptions import Timeout

DEADLINE_ENV = "HARNESS_TRACKING_DEADLINE_S"
DEADLINE_S = 600.0
ORCHESTRATOR_FACTOR = 3.0  # the orchestrator waits this many times a worker's deadline
MLFLOW_HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                        "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}
TRANSIENT = ("Max retries exceeded", "Connection refused", "Connection aborted", "Connection reset", "RemoteDisconnected",
             "timed out", "timeout exception", "OperationalError", "server closed the connection", "TEMPORARILY_UNAVAILABLE")


class TrackingUnavailable(RuntimeError):
    """The tracking server stayed unreachable past the deadline."""


def deadline_s() -> float:
    return float(os.environ.get(DEADLINE_ENV, DEADLINE_S))


def transient(e: BaseException) -> bool:
    """A failure worth retrying: the server (or its database) unreachable, not an answer it meant."""
    if isinstance(e, RequestsConnectionError | Timeout | ConnectionError):
        return True
    return isinstance(e, MlflowException) and any(marker in str(e) for marker in TRANSIENT)


def call_with_retries(fn: Callable[..., Any], *args: Any, uri: str = "", deadline: float | None = None, **kwargs: Any) -> Any:
    limit = deadline_s() if deadline is None else deadline
    first_failure, delay = None, 0.5
    while True:
        try:
            result = fn(*args, **kwargs)
            if first_failure is not None:
                print(f"[tracking] {uri} reachable again after {time.monotonic() - first_failure:.1f} s", file=sys.stderr, flush=True)
            return result
        except Exception as e:
            if not transient(e):
                raise
            now = time.monotonic()
            if first_failure is None:
                first_failure = now
                print(f"[tracking] {uri} unreachable ({type(e).__name__}); retrying for up to {limit:.0f} s", file=sys.stderr, flush=True)
            left = first_failure + limit - now
            if left <= 0:
                raise TrackingUnavailable(f"tracking server {uri} unreachable for {limit:.0f} s "
                                          f"(${DEADLINE_ENV}); last error: {str(e)[:300]}") from e
            time.sleep(min(delay, left))
            delay = min(delay * 2, 10.0)


class RetryingClient:
    """An MlflowClient whose public methods retry transient failures (module docstring) for `factor` times
    the deadline."""

    def __init__(self, client: Any, uri: str, factor: float = 1.0) -> None:
        self._client, self._uri, self._factor = client, uri, factor

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if name.startswith("_") or not callable(attr):
            return attr

        def retried(*args: Any, **kwargs: Any) -> Any:
            return call_with_retries(attr, *args, uri=self._uri, deadline=deadline_s() * self._factor, **kwargs)

        return retried
