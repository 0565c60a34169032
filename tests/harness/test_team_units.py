"""Fast checks of the team-scale pieces: the suite lease (on a sqlite database: the same SQL as on
PostgreSQL), the server-store layout, tracking retries and their deadline, the SLURM backend's sbatch options."""

import threading
import time

import pytest
from mlflow.exceptions import MlflowException

from harness.backends.base import ship_files, unship
from harness.spec.models import SlurmSpec
from harness.state import LeaseLock, SuiteBusy, SuiteLock, suite_lock
from harness.store import StoreLayout, redact
from harness.track.retry import RetryingClient, TrackingUnavailable, call_with_retries, transient


def test_a_lease_excludes_a_second_holder_names_the_first_and_is_free_after_release(tmp_path):
    url = f"sqlite:///{tmp_path}/leases.db"
    with LeaseLock(url, "s", ttl_s=30) as first:
        with pytest.raises(SuiteBusy, match=rf"^suite s is already being run by {first.holder} \(lease in sqlite:///"):
            with LeaseLock(url, "s", ttl_s=30):
                pass
        with LeaseLock(url, "other", ttl_s=30):  # another suite: its own lease
            pass
    with LeaseLock(url, "s", ttl_s=30):
        pass


def test_a_dead_holders_lease_expires_and_a_live_one_is_renewed(tmp_path):
    url = f"sqlite:///{tmp_path}/leases.db"
    dead = LeaseLock(url, "s", ttl_s=1.0)
    dead.__enter__()
    dead._stop.set()  # its process "died": no more heartbeats, no release
    dead._thread.join()
    with pytest.raises(SuiteBusy):
        LeaseLock(url, "s", ttl_s=1.0).__enter__()
    time.sleep(1.2)
    lost = threading.Event()
    with LeaseLock(url, "s", ttl_s=0.6, on_lost=lost.set) as live:  # taken over after expiry
        time.sleep(1.5)  # > ttl: only the heartbeat keeps it
        with pytest.raises(SuiteBusy):
            LeaseLock(url, "s", ttl_s=0.6).__enter__()
        assert live.renew() and not lost.is_set()
    assert not dead.renew()  # the dead holder's token is gone


def test_a_holder_whose_lease_was_taken_over_is_told(tmp_path):
    url = f"sqlite:///{tmp_path}/leases.db"
    lost = threading.Event()
    frozen = LeaseLock(url, "s", ttl_s=0.6, on_lost=lost.set)
    frozen.__enter__()
    frozen._stop.set()  # frozen past its ttl (a suspended machine): no heartbeats
    frozen._thread.join()
    time.sleep(0.8)
    with LeaseLock(url, "s", ttl_s=30):  # taken over by another orchestrator
        frozen._stop.clear()
        beat = threading.Thread(target=frozen._beat)
        beat.start()  # the frozen one wakes up: its next heartbeat finds the lease gone
        assert lost.wait(5)
        beat.join()


def test_the_lock_of_a_store(tmp_path, monkeypatch):
    monkeypatch.delenv("HARNESS_DATABASE_URL", raising=False)
    assert isinstance(suite_lock(StoreLayout.from_uri(f"sqlite:///{tmp_path}/m.db"), "s"), SuiteLock)
    assert isinstance(suite_lock(StoreLayout.from_uri("http://127.0.0.1:5000"), "s"), SuiteLock)  # no database: local
    monkeypatch.setenv("HARNESS_DATABASE_URL", f"sqlite:///{tmp_path}/l.db")
    assert isinstance(suite_lock(StoreLayout.from_uri("http://127.0.0.1:5000"), "s"), LeaseLock)
    assert isinstance(suite_lock(StoreLayout.from_uri(f"sqlite:///{tmp_path}/m.db"), "s"), SuiteLock)  # sqlite: the flock


def test_server_store_layout(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HARNESS_DATABASE_URL", "postgresql://harness@db:5432/harness_optuna")
    server, sqlite = StoreLayout.from_uri("http://127.0.0.1:5000"), StoreLayout.from_uri(f"sqlite:///{tmp_path}/m.db")
    assert (server.is_server, server.checkpoints_in_store, server.shared_db) == (True, True, "postgresql://harness@db:5432/harness_optuna")
    assert server.optuna_storage == "postgresql://harness@db:5432/harness_optuna" and server.state_dir == tmp_path / ".harness"
    assert (sqlite.is_server, sqlite.checkpoints_in_store, sqlite.shared_db) == (False, False, None)
    assert sqlite.optuna_storage == str(tmp_path / "optuna-journal.log")
    monkeypatch.delenv("HARNESS_DATABASE_URL")
    assert StoreLayout.from_uri("http://127.0.0.1:5000").optuna_storage == str(tmp_path / ".harness" / "optuna-journal.log")
    assert redact("postgresql://u:s3cret@h:5432/d") == "postgresql://u:***@h:5432/d" and redact("http://h:1/x") == "http://h:1/x"


def test_tracking_calls_retry_transient_failures_until_a_deadline(monkeypatch, capsys):
    calls = []

    def flaky(x):
        calls.append(x)
        if len(calls) < 3:
            raise MlflowException("API request to http://h/api failed with exception HTTPConnectionPool: Max retries exceeded")
        return x * 2

    assert call_with_retries(flaky, 21, uri="http://h", deadline=10) == 42 and len(calls) == 3
    assert "unreachable" in capsys.readouterr().err

    def down():
        raise MlflowException("API request to http://h/api failed with exception Connection refused")

    t0 = time.monotonic()
    with pytest.raises(TrackingUnavailable, match=r"^tracking server http://h unreachable for 1 s"):
        call_with_retries(down, uri="http://h", deadline=1.0)
    assert 0.9 < time.monotonic() - t0 < 3

    def meant():
        raise MlflowException("Run 'x' not found", error_code="RESOURCE_DOES_NOT_EXIST")

    with pytest.raises(MlflowException, match="not found"):  # an answer the server meant: not retried
        call_with_retries(meant, uri="http://h", deadline=10)
    assert not transient(ValueError("x")) and transient(ConnectionRefusedError())

    class Client:
        attr = 5

        def get(self):
            return flaky(1)

    calls.clear()
    wrapped = RetryingClient(Client(), "http://h")
    assert wrapped.attr == 5 and wrapped.get() == 2 and len(calls) == 3


def test_sbatch_options_from_the_scheduler_block():
    from harness.backends.slurm import sbatch_parameters

    p = sbatch_parameters(SlurmSpec(partition="gpu", time_min=30, account="lab", qos="high", mem_gb=2, gpus=True,
                                    sbatch={"constraint": "a100"}), slots_per_gpu=4, job_name="harness-x")
    assert (p["partition"], p["time"], p["account"], p["qos"], p["mem"], p["gres"]) == ("gpu", 30, "lab", "high", "2048MB", "shard:1")
    assert p["additional_parameters"] == {"requeue": True, "constraint": "a100"} and p["cpus_per_task"] == 1
    whole = sbatch_parameters(SlurmSpec(gpus=True), slots_per_gpu=1, job_name="h")
    assert whole["gpus_per_task"] == 1 and "gres" not in whole and "partition" not in whole
    assert "gpus_per_task" not in sbatch_parameters(SlurmSpec(), 1, "h")


def test_files_named_by_a_worker_command_travel_with_it(tmp_path):
    spec = tmp_path / "run.json"
    spec.write_text('{"x": 1}')
    argv = ["/driver/python", "-m", "harness.worker", str(spec), "--uri", "http://h"]
    files = ship_files(argv)
    assert files == {3: ("run.json", b'{"x": 1}')}
    node = tmp_path / "node"
    node.mkdir()
    out = unship(argv, files, node, own_python=True)
    assert out[3] == str(node / "run.json") and (node / "run.json").read_text() == '{"x": 1}' and out[0] != "/driver/python"
