"""Session fixtures of the team-scale tests (a pytest plugin, named in tests/conftest.py): the stack
(tests/harness/teamkit.py) is started once per session, on free ports in a temp folder, only when a test
asks for it, and stopped by pid at the end of the session."""

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pytest
import teamkit


@pytest.fixture(scope="session")
def team():
    why = teamkit.missing()
    if why:
        pytest.skip(why)
    stack = teamkit.start_team()
    os.environ["PGPASSFILE"] = str(stack.pgpass)  # this process reads the team database too (leases, studies)
    try:
        yield stack
    finally:
        teamkit.stop_team(stack)


@pytest.fixture(scope="session")
def team_ray(team):
    """The team stack plus its two-node Ray cluster (a head and a second node, one CPU each)."""
    t0 = time.monotonic()
    team.start_ray()
    print(f"\n[team] two-node Ray cluster up in {time.monotonic() - t0:.1f} s", file=sys.stderr)
    try:
        yield team
    finally:
        team.stop_ray()


@pytest.fixture(scope="session")
def slurm_cluster():
    """A single-node SLURM (munged, slurmctld, slurmd) on this machine; SLURM_CONF set for this session."""
    from slurm import Slurm, have_slurm

    if have_slurm():
        pytest.skip(f"SLURM is not installed: {have_slurm()} (apt-get install slurmctld slurmd slurm-client munge)")
    if os.geteuid() != 0:
        pytest.skip("slurmd must run as root")
    cluster = Slurm(Path(tempfile.mkdtemp(prefix="harness-slurm-", dir="/tmp")), port=teamkit.free_port(), cpus=2)
    seconds = cluster.up()
    print(f"\n[slurm] munged + slurmctld + slurmd up in {seconds:.1f} s", file=sys.stderr)
    os.environ.update(cluster.env())
    try:
        yield cluster
    finally:
        cluster.down()
        os.environ.pop("SLURM_CONF", None)
        shutil.rmtree(cluster.dir, ignore_errors=True)
