"""`harness ui`: the MLflow UI over the tracking store, bound to 127.0.0.1 unless --host says otherwise.

The MLflow server has no authentication: anyone who can reach its port can read, change and delete
runs.  A non-loopback host is therefore only used when asked for, with a warning; job execution
(MLFLOW_SERVER_ENABLE_JOB_EXECUTION) is off and there is a single server worker."""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from typing import NoReturn

from harness.store import StoreLayout, default_uri

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5000


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


def cmd_ui(args: argparse.Namespace) -> NoReturn:
    argv, env = server_command(args.tracking_uri or default_uri(), args.host, args.port)
    if not is_loopback(args.host):
        print(f"warning: serving the MLflow UI on {args.host}: it has no authentication, anyone who can reach "
              f"port {args.port} can read and delete runs", file=sys.stderr)
    print(f"MLflow UI on http://{args.host}:{args.port} (Ctrl-C stops it)", file=sys.stderr)
    sys.stderr.flush()
    os.execve(argv[0], argv, {**os.environ, **env})  # the server replaces this process: Ctrl-C reaches it directly


def add_parser(sub: argparse._SubParsersAction) -> None:
    u = sub.add_parser("ui", help=f"serve the MLflow UI over the tracking store (bound to {DEFAULT_HOST})")
    u.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default sqlite:///./mlflow.db)")
    u.add_argument("--host", default=DEFAULT_HOST, help=f"interface to bind (default {DEFAULT_HOST}; anything else is reachable from the network)")
    u.add_argument("--port", type=int, default=DEFAULT_PORT)
    u.set_defaults(fn=cmd_ui)
