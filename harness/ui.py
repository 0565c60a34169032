"""`harness ui`: the MLflow UI over the tracking store (or, with --optuna, optuna-dashboard over the suite's
studies), bound to 127.0.0.1 unless --host says otherwise.

The server runs as a child process; once it answers, one link per experiment (its runs page) is printed,
then `harness ui` waits on it (Ctrl-C / SIGTERM stop it).  The MLflow server has no authentication: anyone
who can reach its port can read, change and delete runs.  A non-loopback host is therefore only used when
asked for, with a warning; job execution (MLFLOW_SERVER_ENABLE_JOB_EXECUTION) is off and there is a single
server worker."""

from __future__ import annotations

import argparse
import ipaddress
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

from harness.store import StoreLayout, default_uri

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5000
DASHBOARD_PORT = 8080
READY_TIMEOUT = 120.0  # seconds for the server to answer


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name other than localhost: it may resolve to any interface
        return False


def server_command(uri: str, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> tuple[list[str], dict[str, str]]:
    """(argv, extra environment) of the MLflow server over `uri`.  For a sqlite store, new
    experiments get the same artifact folder the harness uses (mlartifacts/ next to the database)."""
    argv = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri, "--host", host, "--port", str(port), "--workers", "1"]
    artifacts = StoreLayout.from_uri(uri).artifacts_dir
    if artifacts is not None:
        argv += ["--default-artifact-root", artifacts.as_uri()]
    env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}
    return argv, env


def dashboard_command(storage: str, host: str, port: int) -> list[str]:
    return [sys.executable, "-m", "harness.tune.dashboard", storage, host, str(port)]


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = READY_TIMEOUT) -> bool:
    """Poll `url` until it answers 200 (True), the server exits or `timeout` passes (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.3)
    return False


def experiment_links(uri: str, base: str) -> list[str]:
    """One line per experiment of the store: its name, run count and runs page (grouped by cell when the
    harness wrote its shared view)."""
    from harness.tags import CELLS_VIEW, Tag
    from harness.track import Tracker

    out = []
    for exp_id, name, tags, n in Tracker(uri).experiments():
        view = f"?viewStateShareKey={CELLS_VIEW}" if f"{Tag.SHARED_VIEW}{CELLS_VIEW}" in tags else ""
        out.append(f"  {name}: {base}/#/experiments/{exp_id}/runs{view}  ({n}{'+' if n == 1000 else ''} runs"
                   + (", grouped by cell" if view else "") + ")")
    return out


def serve(argv: list[str], env: dict[str, str], ready_url: str, lines) -> int:
    """Start the server, print `lines()` once it answers at `ready_url`, wait for it; Ctrl-C stops it."""
    proc = subprocess.Popen(argv, env={**os.environ, **env}, start_new_session=True)

    def stop(signum: int = signal.SIGTERM, frame: object = None) -> None:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        if not wait_ready(ready_url, proc):
            print(f"error: the server did not answer at {ready_url} (exit code {proc.poll()})", file=sys.stderr)
            stop()
            proc.wait(timeout=30)
            return 1
        for line in lines():
            print(line, file=sys.stderr)
        print("(Ctrl-C stops it)", file=sys.stderr)
        sys.stderr.flush()
        return proc.wait()
    except KeyboardInterrupt:
        stop()
        proc.wait(timeout=30)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)


def cmd_ui(args: argparse.Namespace) -> int:
    uri = args.tracking_uri or default_uri()
    if not is_loopback(args.host):
        print(f"warning: serving on {args.host}: it has no authentication, anyone who can reach "
              f"port {args.port} can read and delete runs", file=sys.stderr)
    if args.optuna:
        storage = args.storage or str(StoreLayout.from_uri(uri).journal)
        port = args.port or DASHBOARD_PORT
        base = f"http://{args.host}:{port}"
        return serve(dashboard_command(storage, args.host, port), {}, f"{base}/api/meta",
                     lambda: [f"optuna-dashboard over {storage}: {base}/dashboard"])
    port = args.port or DEFAULT_PORT
    argv, env = server_command(uri, args.host, port)
    base = f"http://{args.host}:{port}"
    return serve(argv, env, f"{base}/health", lambda: [f"MLflow UI on {base} over {uri}:", *experiment_links(uri, base)])


def add_parser(sub: argparse._SubParsersAction) -> None:
    u = sub.add_parser("ui", help=f"serve the MLflow UI over the tracking store, or optuna-dashboard over the studies (bound to {DEFAULT_HOST})")
    u.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default sqlite:///./mlflow.db)")
    u.add_argument("--host", default=DEFAULT_HOST, help=f"interface to bind (default {DEFAULT_HOST}; anything else is reachable from the network)")
    u.add_argument("--port", type=int, default=None, help=f"default {DEFAULT_PORT} (MLflow), {DASHBOARD_PORT} (--optuna)")
    u.add_argument("--optuna", action="store_true", help="serve optuna-dashboard over the suites' Optuna studies instead")
    u.add_argument("--storage", default=None, help="with --optuna: an Optuna storage URL or journal file (default: optuna-journal.log next to the MLflow store)")
    u.set_defaults(fn=cmd_ui)
