"""Team scale, proven on this machine with the real components (tests/harness/teamkit.py): an MLflow server
on PostgreSQL with served artifacts, Optuna studies and suite leases in PostgreSQL, a two-node Ray cluster.
Each test is a real CLI invocation (or several) against that stack; faults are real (kill -9, the server
stopped, PostgreSQL restarted).  All traffic stays on 127.0.0.1."""

import json
import signal
import time
from pathlib import Path

import pytest
from teamkit import (
    LEASE_TTL_S,
    assert_exact_steps,
    finished_once_each,
    leases,
    needs_team,
    output,
    run,
    runs_of,
    start,
    suite_file,
    tracker,
    wait_for,
)

pytestmark = [pytest.mark.slow, needs_team]


def checkpoint_steps(team, suite: str) -> dict[str, int]:
    """run_id -> furthest checkpoint step any attempt holds in the store (tag checkpoint_step)."""
    out: dict[str, int] = {}
    for r in runs_of(team, suite)[0]:
        step = r.data.tags.get("checkpoint_step")
        if step:
            out[r.data.tags["run_id"]] = max(out.get(r.data.tags["run_id"], 0), int(step))
    return out


def test_smoke_through_the_server_and_a_second_orchestrator_is_refused(team, tmp_path):
    # long enough runs (~7 s each) that the first still holds the lease when the second is up (~5 s)
    path = suite_file(tmp_path, "tsmoke", {"defaults": {"training": {"steps": 1000}, "evaluation": {"every": 250}}})
    first = start(team, tmp_path, "run", str(path), "--workers", "2")
    holder = wait_for(lambda: leases(team).get("tsmoke"), 90, "the first orchestrator's lease")
    assert holder.startswith(f"pid {first.pid} on ")
    second = run(team, tmp_path, "run", str(path), "--workers", "2")  # another machine, the same suite and server
    assert second.returncode == 2, second.stderr
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: suite tsmoke is already being run by pid {first.pid} on "), lines
    assert first.wait(timeout=240) == 0, output(first)
    assert "tsmoke" not in leases(team)  # released on exit

    done = finished_once_each(team, "tsmoke", 4)
    client = tracker(team).client
    for r in done.values():  # params, metric histories and artifacts, all read back through the server
        assert r.data.params["model.pos_emb"] in ("abs", "rel_k") and r.data.params["training.steps"] == "1000"
        assert_exact_steps(team, r, 1000, 10, 250)
        assert {"config.json", "model.pt"} <= {a.path for a in client.list_artifacts(r.info.run_id)}
        assert r.info.artifact_uri.startswith("mlflow-artifacts:/")  # served by the server, no client-side path
        spec = json.loads(Path(client.download_artifacts(r.info.run_id, "config.json", str(tmp_path / r.info.run_id))).read_text())
        assert spec["run_id"] == r.data.tags["run_id"] and r.data.tags["node"]
    report = run(team, tmp_path, "report", str(path), "--check")  # the report built from the server alone
    assert report.returncode == 0, report.stderr
    assert "report logged to MLflow: mlflow-artifacts:/" in report.stderr and "claim PASS" in report.stderr
    parent = next(p for p in runs_of(team, "tsmoke")[1] if p.data.tags.get("harness.kind") == "invocation")
    assert "report/report.md" in {a.path for a in client.list_artifacts(parent.info.run_id, "report")}

    password = team.pgpass.read_text().strip().rsplit(":", 1)[1]
    seen = [output(first), second.stderr, report.stderr, (tmp_path / "reports" / "tsmoke" / "report.md").read_text()]
    seen += [json.dumps([r.data.tags, r.data.params]) for r in runs_of(team, "tsmoke")[0] + runs_of(team, "tsmoke")[1]]
    seen += [p.read_text(errors="replace") for p in team.dir.joinpath("logs").glob("*.log")]
    assert password not in "".join(seen)  # the credentials file is the only place it lives


def test_kill9_of_tune_and_run_then_rerun_loses_and_duplicates_nothing(team, tmp_path):
    import optuna

    diff = {"grid": {"model.pos_emb": ["abs"]}, "seeds": [0],
            "defaults": {"training": {"steps": 150, "checkpoint_every": 10}, "evaluation": {"every": 50}},
            "tune": [{"name": "lr", "per": [], "space": {"optimizer.lr": {"type": "float", "low": 1e-4, "high": 3e-2, "log": True}},
                      "objective": "token_acc/len_03", "direction": "maximize", "trials": 4, "set": {"training.steps": 60},
                      "sampler": {"name": "tpe", "seed": 0, "startup_trials": 2}, "pruner": {"name": "none"}}]}
    path = suite_file(tmp_path, "tkill", diff)
    optuna.storages.RDBStorage(team.database_url)  # Optuna's schema, created before two processes race to make it

    def study_states():
        summaries = [s for s in optuna.get_all_study_summaries(team.database_url) if s.study_name.startswith("tkill")]
        if not summaries:
            return []
        return [t.state.name for t in optuna.load_study(study_name=summaries[0].study_name, storage=team.database_url).trials]

    # harness tune, SIGKILLed in its second wave of trials
    proc = start(team, tmp_path, "tune", str(path), "--workers", "2")
    wait_for(lambda: study_states().count("COMPLETE") == 2 and "RUNNING" in study_states(), 180, "the second wave of trials")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = time.monotonic()
    blocked = run(team, tmp_path, "tune", str(path), "--workers", "2")  # the dead holder's lease has not expired yet
    assert blocked.returncode == 2 and f"already being run by pid {proc.pid} on " in blocked.stderr, blocked.stderr
    time.sleep(max(0.0, killed_at + LEASE_TTL_S + 1 - time.monotonic()))  # ... and then it has
    again = run(team, tmp_path, "tune", str(path), "--workers", "2")
    assert again.returncode == 0, again.stderr
    states = study_states()
    assert states.count("COMPLETE") == 4 and "RUNNING" not in states  # the killed wave redone, not counted
    trials = [r for r in runs_of(team, "tkill")[0] if r.data.tags.get("harness.kind") == "trial"]
    finished = [int(r.data.tags["trial.number"]) for r in trials if r.info.status == "FINISHED"]
    assert len(finished) == len(set(finished)) == 4  # one finished MLflow run per counted trial

    # harness run (studies done: the final run only), SIGKILLed while training with a checkpoint in the store
    proc = start(team, tmp_path, "run", str(path), "--workers", "1", "--no-report")
    wait_for(lambda: checkpoint_steps(team, "tkill"), 180, "a checkpoint in the store")
    workers_log = output(proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(LEASE_TTL_S + 1)
    again = run(team, tmp_path, "run", str(path), "--workers", "1", "--no-report")
    assert again.returncode == 0, again.stderr + workers_log
    assert "0 already finished, 1 to run" in again.stderr and "left RUNNING by a dead orchestrator" in again.stderr
    done = finished_once_each(team, "tkill", 1)
    final = next(iter(done.values()))
    assert int(final.data.tags["resumed_from_step"]) >= 10  # from the killed attempt's checkpoint, via the server
    assert_exact_steps(team, final, 150, 10, 50)
    assert not checkpoint_steps(team, "tkill")  # dropped from the store once the run finished


def test_server_stopped_20s_and_postgres_restarted_mid_suite(team, tmp_path):
    diff = {"seeds": [0], "defaults": {"training": {"steps": 240, "log_every": 5, "checkpoint_every": 40},
                                       "evaluation": {"every": 80}}}
    path = suite_file(tmp_path, "toutage", diff)
    proc = start(team, tmp_path, "run", str(path), "--workers", "2", "--no-report")
    wait_for(lambda: len(checkpoint_steps(team, "toutage")) == 2, 180, "both runs training")
    team.stop_mlflow()
    time.sleep(20)
    team.start_mlflow()
    wait_for(lambda: min(checkpoint_steps(team, "toutage").values()) >= 120, 180, "training on after the outage")
    team.stop_postgres()
    time.sleep(3)
    team.start_postgres()
    assert proc.wait(timeout=300) == 0, output(proc)
    assert "unreachable" in output(proc) or any("unreachable" in p.read_text() for p in (tmp_path / ".harness" / "logs").rglob("*.log"))
    done = finished_once_each(team, "toutage", 2)
    for r in done.values():
        assert r.data.tags["attempt"] == "0"  # no run failed: they waited for the server and went on
        assert_exact_steps(team, r, 240, 5, 80)  # every buffered point arrived, none twice


def test_a_run_that_cannot_reach_the_server_past_its_deadline_fails_clearly(team, tmp_path):
    diff = {"grid": {"model.pos_emb": ["abs"]}, "seeds": [0],
            "defaults": {"training": {"steps": 400, "checkpoint_every": 20}, "evaluation": {"every": 200}}}
    path = suite_file(tmp_path, "tdeadline", diff)
    proc = start(team, tmp_path, "run", str(path), "--workers", "1", "--no-report", HARNESS_TRACKING_DEADLINE_S="8")
    wait_for(lambda: checkpoint_steps(team, "tdeadline"), 180, "the run training")
    team.stop_mlflow()
    logs = tmp_path / ".harness" / "logs" / "tdeadline"
    wait_for(lambda: any("unreachable for 8 s" in p.read_text() for p in logs.glob("*.log")), 60, "the worker to give up")
    team.start_mlflow()
    assert proc.wait(timeout=120) == 1, output(proc)
    children, _ = runs_of(team, "tdeadline")
    assert [(r.info.status, r.data.tags["outcome"], r.data.tags["exit_code"]) for r in children] == [("FAILED", "failed", "75")]
    tail = tracker(team).client.download_artifacts(children[0].info.run_id, "worker_log_tail.txt", str(tmp_path))
    assert "tracking server http://127.0.0.1" in open(tail).read() and "unreachable for 8 s" in open(tail).read()


def test_four_suites_written_at_once_keep_every_step(team, tmp_path):
    diff = {"seeds": [0], "defaults": {"training": {"steps": 20, "log_every": 1}, "evaluation": {"every": 10}}}
    names = [f"tconc{i}" for i in range(4)]
    procs = [start(team, tmp_path, "run", str(suite_file(tmp_path, n, diff)), "--workers", "2", "--no-report") for n in names]
    for p in procs:
        assert p.wait(timeout=300) == 0, output(p)
    points = 0
    for name in names:
        for r in finished_once_each(team, name, 2).values():
            points += assert_exact_steps(team, r, 20, 1, 10)
    # per run: 4 train metrics x 20 steps, 2 logged once, 13 at each of 2 evaluations (exact, token_acc, loss and
    # items/exact of 3 splits, examples_seen), + throughput/{examples_per_s,step_seconds,tokens_per_s} at the end
    assert points == 4 * 2 * (4 * 20 + 2 + 13 * 2 + 3)


def test_two_ray_nodes_and_a_retry_resuming_on_the_other_node(team_ray, tmp_path):
    """Two runs on a head and a second node (one CPU each): the short one ends first, the long one is killed
    after a checkpoint and retried on the node that is free, the other one, and resumes there from the
    checkpoint it finds through the server."""
    team = team_ray
    diff = {"grid": {"model.pos_emb": ["abs"], "training.steps": [5, 100]}, "seeds": [0],
            "scheduler": {"max_retries": 1, "ray_address": team.ray_address},
            "defaults": {"training": {"checkpoint_every": 20, "fault": {"kind": "kill", "at_step": 50, "attempts": [0]}},
                         "evaluation": {"every": 50}}}
    path = suite_file(tmp_path, "tray", diff)
    proc = run(team, tmp_path, "run", str(path), "--backend", "ray", "--workers", "2", "--no-report", timeout=300)
    assert proc.returncode == 0, proc.stderr
    done = finished_once_each(team, "tray", 2)
    children, _ = runs_of(team, "tray")
    long_runs = sorted((r for r in children if r.data.params["training.steps"] == "100"), key=lambda r: r.data.tags["attempt"])
    (first, second), short = long_runs, next(r for r in children if r.data.params["training.steps"] == "5")
    assert (first.info.status, first.data.tags["exit_code"], second.info.status) == ("FAILED", "-9", "FINISHED")
    assert all(" ray:" in r.data.tags["node"] for r in children)
    assert len({r.data.tags["node"] for r in children}) == 2  # both nodes ran runs
    assert first.data.tags["node"] != second.data.tags["node"] == short.data.tags["node"]
    assert second.data.tags["resumed_from_step"] == "40"  # the other node found the checkpoint through the server
    assert_exact_steps(team, done[second.data.tags["run_id"]], 100, 10, 50)
