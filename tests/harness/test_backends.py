"""Backend choice (local / ray) without starting Ray, and the MLflow UI command (bound to localhost)."""

import importlib.util
import sys
import time

import pytest

from harness import cli
from harness.backends import BackendUnavailable, check_backend, make_pool
from harness.backends.local import LocalBackend
from harness.spec import SpecError, load_and_expand
from harness.spec.models import SchedulerSpec
from harness.ui import is_loopback, server_command


def test_local_backend_is_the_default_pool():
    spec = SchedulerSpec()
    assert spec.backend == "local" and spec.ray_address is None
    pool = make_pool(spec, workers=2)
    assert isinstance(pool.backend, LocalBackend) and [s.index for s in pool.backend.slots] == [0, 1]
    with pytest.raises(BackendUnavailable, match="unknown backend 'dask'"):
        check_backend("dask")


def test_scheduler_backend_is_validated(root):
    loaded, _ = load_and_expand(str(root / "suites" / "smoke.yaml"), ["scheduler.backend=ray", "scheduler.ray_address=auto"])
    assert loaded.spec.scheduler.backend == "ray" and loaded.spec.scheduler.ray_address == "auto"
    with pytest.raises(SpecError, match="scheduler.backend"):
        load_and_expand(str(root / "suites" / "smoke.yaml"), ["scheduler.backend=dask"])


def test_ray_backend_without_ray_is_a_one_line_error(root, tmp_path, monkeypatch, capsys):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real_find_spec(name, *a))
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    rc = cli.main(["run", str(root / "suites" / "smoke.yaml"), "--backend", "ray", "--tracking-uri", uri, "--reports-dir", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert err == "error: --backend: scheduler.backend: backend 'ray' needs the ray package: run `make install-scale`"
    rc = cli.main(["run", str(root / "suites" / "smoke.yaml"), "scheduler.backend=ray", "--tracking-uri", uri, "--reports-dir", str(tmp_path)])
    assert rc == 2 and "smoke.yaml: scheduler.backend: backend 'ray' needs the ray package" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # nothing written: no store, no report


def test_ui_server_binds_localhost_by_default(tmp_path):
    argv, env = server_command(f"sqlite:///{tmp_path}/mlflow.db")
    assert argv[:4] == [sys.executable, "-m", "mlflow", "server"]
    assert argv[argv.index("--host") + 1] == "127.0.0.1"
    assert argv[argv.index("--workers") + 1] == "1"
    assert argv[argv.index("--backend-store-uri") + 1] == f"sqlite:///{tmp_path}/mlflow.db"
    assert argv[argv.index("--default-artifact-root") + 1] == (tmp_path / "mlartifacts").as_uri()
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    args = cli.build_parser().parse_args(["ui"])
    assert (args.host, args.port, args.optuna, args.fn.__name__) == ("127.0.0.1", None, False, "cmd_ui")  # port: 5000, or 8080 with --optuna
    argv, _ = server_command("postgresql://db/mlflow", host="0.0.0.0", port=8080)
    assert argv[argv.index("--host") + 1] == "0.0.0.0" and "--default-artifact-root" not in argv


def test_non_loopback_hosts_are_told_apart():
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1") and is_loopback("127.0.0.2")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4") and not is_loopback("myhost")


class _Exec(Exception):
    pass


@pytest.mark.parametrize("host, warned", [("127.0.0.1", False), ("0.0.0.0", True)])
@pytest.mark.parametrize("optuna", [False, True])
def test_ui_command_warns_on_a_network_host(host, warned, optuna, tmp_path, monkeypatch, capsys):
    calls = []

    def fake_popen(argv, env, start_new_session):
        calls.append((argv, env))
        raise _Exec

    monkeypatch.setattr("subprocess.Popen", fake_popen)
    with pytest.raises(_Exec):
        cli.main(["ui", "--host", host, "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db", *(["--optuna"] if optuna else [])])
    argv, env = calls[0]
    assert argv[argv.index("--host") + 1 if not optuna else -2] == host
    if optuna:  # optuna-dashboard over the store's journal, on its own port
        assert argv[1:3] == ["-m", "harness.tune.dashboard"] and argv[3] == str(tmp_path / "optuna-journal.log") and argv[-1] == "8080"
    else:
        assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false" and argv[argv.index("--port") + 1] == "5000"
    assert ("warning: serving on 0.0.0.0: it has no authentication" in capsys.readouterr().err) == warned


def test_ui_waits_for_the_server_then_prints_one_link_per_experiment(tmp_path, capsys):
    """A stand-in server (python's http.server) that answers after a delay: the links come only once it answers."""
    from harness import ui
    from harness.track import Tracker

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    t = Tracker(uri)
    t.setup()
    t.experiment("alpha")
    port = _free_port()
    slow = [sys.executable, "-c", "import time, http.server as h\ntime.sleep(1.5)\n"  # answers 1.5 s late, serves 3 s, exits
            f"s = h.HTTPServer(('127.0.0.1', {port}), h.SimpleHTTPRequestHandler)\ns.timeout = 0.2\nend = time.time() + 3\n"
            "while time.time() < end:\n    s.handle_request()\n"]
    stamp = time.monotonic()

    def printed():
        return [f"up after {time.monotonic() - stamp:.1f} s", *ui.experiment_links(uri, f"http://127.0.0.1:{port}")]

    rc = ui.serve(slow, {}, f"http://127.0.0.1:{port}/", printed)
    err = capsys.readouterr().err
    assert rc == 0 and float(err.split("up after ")[1].split()[0]) >= 1.5
    assert f"  alpha: http://127.0.0.1:{port}/#/experiments/1/runs  (0 runs)" in err


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_ray_address_fails_fast(root, tmp_path, monkeypatch, capsys):
    import socket

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name == "ray" else real_find_spec(name, *a))
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rc = cli.main(["run", str(root / "suites" / "smoke.yaml"), "--backend", "ray", f"scheduler.ray_address=127.0.0.1:{port}",
                   "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db", "--reports-dir", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err
    assert err.startswith(f"error: {root / 'suites' / 'smoke.yaml'}: scheduler.ray_address: cannot reach the Ray cluster at 127.0.0.1:{port}")
    assert list(tmp_path.iterdir()) == []
