"""The `slurm` backend against a real single-node SLURM started by the test session (Debian's slurmctld +
slurmd with munge, no cgroups: scale/slurm.py) and the team's MLflow server: a suite runs to the end as SLURM
jobs (one job array), `scancel` of a running job is an attempt that is retried and resumes from its
checkpoint, a requeued job (what preemption does) resumes its own run in place, and a rerun trains nothing."""

import subprocess
import time

import pytest
from teamkit import (
    assert_exact_steps,
    finished_once_each,
    needs_team,
    output,
    run,
    runs_of,
    start,
    suite_file,
    wait_for,
)

pytestmark = [pytest.mark.slow, needs_team]


def job_of(run) -> str:
    """The SLURM job id a run's worker ran in (tag node: '<host> slurm:<job>')."""
    return run.data.tags["node"].rsplit("slurm:", 1)[1]


def test_a_suite_as_slurm_jobs_with_scancel_and_requeue(team, slurm_cluster, tmp_path):
    diff = {"seeds": [0], "scheduler": {"max_retries": 1, "slurm": {"time_min": 10}},
            "defaults": {"training": {"steps": 200, "log_every": 10, "checkpoint_every": 20}, "evaluation": {"every": 100}}}
    path = suite_file(tmp_path, "tslurm", diff)
    proc = start(team, tmp_path, "run", str(path), "--backend", "slurm", "--workers", "2", "--no-report")

    def training():
        children, _ = runs_of(team, "tslurm")
        live = [r for r in children if r.info.status == "RUNNING" and r.data.tags.get("checkpoint_step") and "node" in r.data.tags]
        return live if len(live) == 2 else None

    cancelled, requeued = sorted(wait_for(training, 240, "both runs training in SLURM jobs", poll=0.5), key=lambda r: r.info.run_name)
    assert "_" in job_of(cancelled)  # the wave went in as one job array
    subprocess.run(["scancel", job_of(cancelled)], check=True, timeout=30)
    subprocess.run(["scontrol", "requeue", job_of(requeued)], check=True, timeout=30)  # what preemption (REQUEUE) does
    # SLURM holds a requeued job for ~2 minutes (its BeginTime, set when it is back in the queue); a preempting
    # cluster would start it when resources free up: release it now, once it is pending (an update made while
    # it is still completing is accepted, then overwritten by the requeue: measured, a 2 min 40 s wait)
    def pending() -> bool:
        state = subprocess.run(["squeue", "-h", "-j", job_of(requeued), "-o", "%T"], capture_output=True, text=True, timeout=30)
        return state.stdout.split() == ["PENDING"]

    wait_for(pending, 60, "the requeued job to be pending", poll=0.2)
    subprocess.run(["scontrol", "update", f"jobid={job_of(requeued)}", "StartTime=now"], check=True, timeout=30)
    assert proc.wait(timeout=300) == 0, output(proc)

    done = finished_once_each(team, "tslurm", 2)
    children, _ = runs_of(team, "tslurm")
    attempts = sorted((r for r in children if r.data.tags["run_id"] == cancelled.data.tags["run_id"]), key=lambda r: r.data.tags["attempt"])
    assert [(r.data.tags["attempt"], r.info.status) for r in attempts] == [("0", "KILLED"), ("1", "FINISHED")]
    assert int(attempts[1].data.tags["resumed_from_step"]) >= 20  # the retry resumed from the cancelled job's checkpoint
    in_place = done[requeued.data.tags["run_id"]]
    assert in_place.info.run_id == requeued.info.run_id and in_place.data.tags["requeued"] == "1"  # the same run, reopened
    assert int(in_place.data.tags["resumed_from_step"]) >= 20
    for r in done.values():
        assert_exact_steps(team, r, 200, 10, 100)  # the requeued run logged no step twice

    t0 = time.monotonic()
    again = run(team, tmp_path, "run", str(path), "--backend", "slurm", "--workers", "2", "--no-report")
    assert again.returncode == 0 and "2 already finished, 0 to run" in again.stderr, again.stderr
    assert len(runs_of(team, "tslurm")[0]) == 3 and time.monotonic() - t0 < 60  # no job submitted
