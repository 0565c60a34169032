"""Hostile input (issue 34): values that validate but cannot run are refused at their key, in one line, exit 2.

Each case was accepted by `harness validate` before the check existed (a seed the generators reject, betas that
make Adam divide by zero, an infinite learning rate that became null in the run's JSON, 10^29 steps, NaN claim
bounds); each now names file, line and key.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TINY_SUITE

from harness.cli import main

ROOT = Path(__file__).resolve().parents[2]


def one_error(capsys, *argv: str) -> str:
    rc = main(["validate", *argv])
    out, err = capsys.readouterr()
    assert rc == 2 and out == "" and len(err.splitlines()) == 1, (rc, out, err)
    return err.removeprefix("error: ").strip()


@pytest.fixture
def suite(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    def write(extra: str = "", edit: tuple[str, str] | None = None) -> str:
        text = TINY_SUITE.replace(*edit, 1) if edit else TINY_SUITE
        (tmp_path / "s.yaml").write_text(text + extra)
        return "s.yaml"

    return write


@pytest.mark.parametrize("override, expected", [
    ("seeds=['0']", "seeds[0]: Input should be a valid integer"),  # a string is not a seed
    ("seeds=[true]", "seeds[0]: Input should be a valid integer"),  # nor is a boolean
    ("seeds=[-1]", "seeds[0]: Input should be greater than or equal to 0"),
    ("seeds=[18446744073709551616]", "seeds[0]: Input should be less than 9223372036854775808"),  # torch.manual_seed's range
    ("defaults.optimizer.betas=[0.9,1.0]", "defaults.optimizer.betas[1]: Input should be less than 1"),
    ("defaults.optimizer.betas=[-0.1,0.9]", "defaults.optimizer.betas[0]: Input should be greater than or equal to 0"),
    ("defaults.optimizer.lr=nan", "defaults.optimizer.lr: Input should be a finite number"),
    ("defaults.model.dropout=nan", "defaults.model.dropout: Input should be a finite number"),  # component configs too
    ("defaults.training.steps=100000000000000000000000000000", "defaults.training.steps: Input should be less than or equal to 1000000000"),
])
def test_values_that_cannot_run_are_refused_at_their_key(suite, capsys, override, expected):
    assert f"<override>: {expected}" in one_error(capsys, suite(), override)


def test_an_infinite_learning_rate_in_the_file_names_its_line(suite, capsys):
    path = suite(edit=("  training:", "  optimizer: {lr: .inf}\n  training:"))
    assert one_error(capsys, path) == "s.yaml:6: defaults.optimizer.lr: Input should be a finite number, got inf"


@pytest.mark.parametrize("check, expected", [
    ("{kind: at_least, metric: exact/len_04, value: .nan}", "claims[0].check.value: Input should be a finite number"),
    ("{kind: between, metric: exact/len_04, low: 0.9, high: 0.1}", "claims[0].check: 'low' (0.9) is above 'high' (0.1)"),
    ("{kind: at_most, metric: exact/len_04, value: -.inf}", "claims[0].check.value: Input should be a finite number"),
])
def test_claim_bounds_are_finite_and_ordered(suite, capsys, check, expected):
    path = suite(f"claims:\n  - id: c\n    text: x\n    check: {check}\n")
    assert f"s.yaml:10: {expected}" in one_error(capsys, path)


def test_a_claim_id_fits_an_mlflow_tag_key(suite, capsys):
    """MLflow keys are at most 250 characters; the claim id lands in a tag key, so 100 is the cap (a 260-character id used
    to crash `harness run` after every run had finished)."""
    assert main(["validate", suite("claims:\n  - {id: " + "a" * 100 + ", text: x}\n")]) == 0
    capsys.readouterr()
    err = one_error(capsys, suite("claims:\n  - {id: " + "a" * 101 + ", text: x}\n"))
    assert "claims[0].id: String should have at most 100 characters" in err


# Class 1 and 2: a suite neither reads nor writes outside the allowed roots (its own directory, the working directory,
# $HARNESS_ALLOWED_ROOTS), symlinks resolved first; a storage URL is the user's choice, not the suite's.

TUNE = """tune:
  - name: lr
    space: {optimizer.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}}
    objective: token_acc/len_03
    direction: maximize
    trials: 2
    storage: STORAGE
"""


@pytest.fixture
def outside(tmp_path, monkeypatch):
    """A suite tree `tree/` (the working directory) beside an outside directory holding a secret suite."""
    tree, far = tmp_path / "tree", tmp_path / "far"
    tree.mkdir(), far.mkdir()
    (far / "secret.yaml").write_text("name: secret\nsecret_value: 42\n")
    monkeypatch.chdir(tree)
    monkeypatch.delenv("HARNESS_ALLOWED_ROOTS", raising=False)
    monkeypatch.delenv("HARNESS_ALLOW_SUITE_STORAGE", raising=False)
    return far


@pytest.mark.parametrize("target", ["ABS", "../far/secret.yaml", "link.yaml", "sub/../../far/secret.yaml"])
def test_include_cannot_reach_outside_the_roots(outside, capsys, target):
    Path("link.yaml").symlink_to(outside / "secret.yaml")
    target = str(outside / "secret.yaml") if target == "ABS" else target
    Path("s.yaml").write_text(f"include: {target}\n" + TINY_SUITE)
    err = one_error(capsys, "s.yaml")
    assert err.startswith(f"s.yaml:1: include: '{target}' resolves outside the allowed roots") and "secret_value" not in err


def test_an_included_file_is_held_to_the_roots_of_the_suite_asked_for(outside, capsys):
    """The roots are fixed by the suite on the command line: an included file's own directory does not widen them."""
    Path("sub").mkdir()
    Path("sub/top.yaml").write_text("include: base.yaml\n" + TINY_SUITE)
    Path("sub/base.yaml").write_text("include: ../../far/secret.yaml\nname: base\n")
    assert "sub/base.yaml:1: include: '../../far/secret.yaml' resolves outside" in one_error(capsys, "sub/top.yaml")


def test_an_allowed_root_admits_an_include(outside, capsys, monkeypatch):
    Path("s.yaml").write_text(f"include: {outside / 'secret.yaml'}\n" + TINY_SUITE)
    monkeypatch.setenv("HARNESS_ALLOWED_ROOTS", str(outside))
    assert "unknown key 'secret_value'" in one_error(capsys, "s.yaml")  # read now: its own error, not containment's


@pytest.mark.parametrize("storage, expected", [
    ("ABS", "journal file 'ABS' resolves outside the allowed roots"),
    ("../far/j.journal", "journal file '../far/j.journal' resolves outside the allowed roots"),
    ("sqlite:////tmp/x.db", "a suite cannot choose a storage URL (sqlite://...)"),
    ("postgresql://u:p@10.0.0.1/db", "a suite cannot choose a storage URL (postgresql://...)"),
])
def test_a_suite_cannot_choose_where_tuning_writes(outside, capsys, storage, expected):
    storage = str(outside / "j.journal") if storage == "ABS" else storage
    Path("s.yaml").write_text(TINY_SUITE + TUNE.replace("STORAGE", storage))
    assert main(["run", "s.yaml", "--tracking-uri", "sqlite:///m.db"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1, err
    assert err.startswith(f"error: s.yaml:13: tune[0].storage: {expected.replace('ABS', storage)}"), err
    assert not (outside / "j.journal").exists() and not Path("m.db").exists()  # nothing written


def test_a_journal_inside_the_tree_and_an_allowed_url_validate(outside, capsys, monkeypatch):
    Path("s.yaml").write_text(TINY_SUITE + TUNE.replace("STORAGE", "studies/j.journal"))
    assert main(["validate", "s.yaml"]) == 0
    Path("s.yaml").write_text(TINY_SUITE + TUNE.replace("STORAGE", "sqlite:///studies.db"))
    monkeypatch.setenv("HARNESS_ALLOW_SUITE_STORAGE", "1")
    assert main(["validate", "s.yaml"]) == 0


# Class 3: interpolation bombs.  A ~1 KB suite whose `${...}` references refer to references expands exponentially;
# the size is counted before OmegaConf resolves anything.  Validation runs in a subprocess with a time limit so the
# test fails (instead of hanging) where the count is missing.

def _list_bomb() -> str:  # 10^10 values from ten lines
    lines = ["x0: [" + ", ".join(["1"] * 10) + "]"]
    lines += [f"x{i}: [" + ", ".join([f'"${{x{i - 1}}}"'] * 10) + "]" for i in range(1, 10)]
    return 'description: "${x9}"\n' + "\n".join(lines) + "\n"


def _string_bomb() -> str:  # a 10 * 2^39-character string
    return 'y0: "aaaaaaaaaa"\n' + "".join(f'y{i}: "${{y{i - 1}}}${{y{i - 1}}}"\n' for i in range(1, 40))


@pytest.mark.parametrize("bomb, expected", [
    (_list_bomb, "s.yaml:7: description: '${x9}': the interpolations expand to more than 50,000 values"),
    (_string_bomb, "s.yaml:23: y16: '${y15}${y15}': the interpolations expand to more than 50,000 values or 1,000,000 characters"),
])
def test_an_interpolation_bomb_is_counted_before_it_is_resolved(tmp_path, bomb, expected):
    (tmp_path / "s.yaml").write_text(TINY_SUITE + bomb())
    assert len((tmp_path / "s.yaml").read_bytes()) < 1500
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "validate", "s.yaml"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stdout == "" and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert proc.stderr.startswith(f"error: {expected}"), proc.stderr


def test_interpolations_below_the_cap_still_resolve(suite, capsys):
    """A realistic use (the suites' own: one value read by several keys, a string built from two) is untouched."""
    path = suite('description: "len_${defaults.training.steps}_${defaults.training.batch_size}"\n',
                 edit=("method: {name: supervised}", 'method: {name: supervised, eval_batch_size: "${defaults.training.batch_size}"}'))
    assert main(["validate", path]) == 0


def test_a_key_built_from_an_interpolation_is_refused(suite, capsys):
    assert "description: '${defaults.${name}}': a key built from an interpolation is not allowed" in one_error(
        capsys, suite('description: "${defaults.${name}}"\n'))


# Class 4: sizes.  A grid, a sweep or a file large enough to exhaust memory is refused by counting, before anything
# that size is built or read; scheduler.max_runs raises the run cap for a suite that means it.

_VALUES = ", ".join(str(8 + 2 * i) for i in range(11))


def test_a_grid_over_the_run_cap_is_refused_before_it_is_expanded(suite, capsys):
    path = suite(f"scheduler: {{max_runs: 1000}}\ngrid:\n  model.d_model: [{_VALUES}]\n  training.steps: [{_VALUES}]\n"
                 f"  training.batch_size: [{_VALUES}]\n")
    assert one_error(capsys, path) == ("s.yaml:8: grid: the grid expands to 1,331 runs (model.d_model 11 x training.steps 11 "
                                       "x training.batch_size 11), over scheduler.max_runs = 1,000")
    suite(f"scheduler: {{max_runs: 1500}}\ngrid:\n  model.d_model: [{_VALUES}]\n  training.steps: [{_VALUES}]\n"
          f"  training.batch_size: [{_VALUES}]\n")
    assert main(["validate", path]) == 0  # the suite that means it raises the cap


def test_a_sweep_is_counted_before_it_is_listed(suite, capsys):
    path = suite(f"grid:\n  model.d_model: [{_VALUES}]\n")
    assert one_error(capsys, path, "defaults.training.batch_size=range(1,10000000)") == (
        "<override>: defaults.training.batch_size=range(1,10000000): the sweep has 9,999,999 values; a sweep holds at most 1,000,000")
    assert one_error(capsys, path, "defaults.training.batch_size=range(1,20000)").startswith(
        "s.yaml:7: grid: the grid expands to 219,989 runs (model.d_model 11 x training.batch_size 19,999), over scheduler.max_runs = 10,000")


def test_a_file_over_the_size_cap_is_refused_unread(suite, capsys):
    path = suite("# " + "x" * (5 * 2**20) + "\n")
    assert one_error(capsys, path) == "s.yaml: <root>: the file has 5,243,159 bytes; a suite holds at most 4,194,304"


# Class 5: a dead run's log is read from its tail in bounded memory, by every reader (the error line, the FAILED
# note, the warm worker's, SLURM's and Ray's tails).  The log is a sparse 2 GiB file: reading it whole would
# allocate 2 GiB (tracemalloc sees it).

def test_every_log_reader_reads_a_2_gib_log_in_bounded_memory(tmp_path):
    import tracemalloc

    from harness.backends.warm import _tail as warm_tail
    from harness.jobs import _tail as job_tail
    from harness.orchestrate import last_error
    from harness.store import read_tail

    log = tmp_path / "run.log"
    with open(log, "wb") as f:
        f.truncate(2 * 2**30)
        f.write(b"step 1\n")
        f.seek(0, 2)
        f.write(b"Traceback (most recent call last):\n  File \"x.py\", line 1\nMemoryError: out of memory\n")
    tracemalloc.start()
    try:
        assert last_error(log) == "MemoryError: out of memory"
        assert job_tail(log).endswith("MemoryError: out of memory\n") and warm_tail(log).endswith("out of memory\n")
        assert read_tail(log, 10) == b"of memory\n" and read_tail(tmp_path / "none.log", 10) == b""
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20, f"{peak:,} bytes"


# Class 7 (the claim id is above): a config value longer than MLflow's 6,000-character param limit is cut visibly
# (MLflow cut it silently), and the run's config.json keeps it whole.

def test_a_param_over_mlflows_limit_is_cut_visibly(tmp_path):
    from harness.track import MAX_PARAM_CHARS, RunLog, Tracker

    t = Tracker(f"sqlite:///{tmp_path}/mlflow.db")
    t.setup()
    exp = t.experiment("s")
    mid = t.create_child(exp, t.start_parent(exp, "p", {}), "r", {})
    log = RunLog(t.uri, mid)
    log.log_params({"task.vocab": "x" * 7000, "short": "y" * MAX_PARAM_CHARS})
    params = t.client.get_run(mid).data.params
    assert params["task.vocab"].endswith("...[cut: 7,000 characters; config.json has the value]")
    assert len(params["task.vocab"]) == MAX_PARAM_CHARS and params["short"] == "y" * MAX_PARAM_CHARS


# Class 8: a process a run starts (in its process group) ends with the run; it used to outlive the suite and keep
# writing.

def test_a_runs_grandchild_ends_with_the_run(tmp_path):
    import time

    from harness.backends.warm import WarmWorkers

    pidfile, out = tmp_path / "grandchild.pid", tmp_path / "written.txt"
    script = f"(while true; do echo x >> {out}; sleep 0.1; done) & echo $! > {pidfile}; sleep 0.5; exit 0"
    warm = WarmWorkers(tmp_path / "warm.log").start()
    try:
        warm.launch("j", ["sh", "-c", script], tmp_path / "j.log", {})
        deadline, rc = time.monotonic() + 60, None
        while rc is None and time.monotonic() < deadline:
            rc = next((e["rc"] for e in warm.events(0.1) if "rc" in e), None)
        assert rc == 0
        grandchild = int(pidfile.read_text())
        time.sleep(0.5)
        alive = Path(f"/proc/{grandchild}").exists() and "Z" not in Path(f"/proc/{grandchild}/stat").read_text().split()[2]
        assert not alive, "the run's grandchild outlived it"
        size = out.stat().st_size
        time.sleep(0.5)
        assert out.stat().st_size == size  # and no longer writes
    finally:
        warm.close()


# Class 10: names within file-system and MLflow limits, one value per path, include chains bounded, no write into
# the harness checkout at run time.

@pytest.mark.parametrize("edit, expected", [
    (("name: t", "name: " + "n" * 300), "s.yaml:1: name: String should have at most 100 characters"),
    (("  training: {steps: 5, batch_size: 8}", "  training: {steps: 5, batch_size: 8}\n  model.d_model: 32"),
     "s.yaml:7: defaults.model.d_model: model.d_model is written twice here (by 'model' and 'model.d_model'): keep one"),
])
def test_names_and_paths_are_refused_at_their_key(suite, capsys, edit, expected):
    assert one_error(capsys, suite(edit=edit)).startswith(expected)


def test_a_stage_name_follows_the_rule_of_stage(suite, capsys):
    path = suite("stages:\n  'probe/../x':\n    from: main\n")
    assert "stages.probe/../x.[key]: String should match pattern" in one_error(capsys, path)


def test_a_deep_include_chain_is_named_as_such(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s0.yaml").write_text(TINY_SUITE)
    for i in range(1, 20):
        (tmp_path / f"s{i}.yaml").write_text(f"include: s{i - 1}.yaml\n")
    assert main(["validate", "s15.yaml"]) == 0  # 16 files
    capsys.readouterr()
    assert one_error(capsys, "s19.yaml").endswith("include: the include chain is deeper than 16 files")


def test_reading_the_code_version_takes_no_git_lock(tmp_path, monkeypatch):
    """`git status` refreshes the index (writing index.lock in the harness checkout, racing the user's own git)
    unless told not to; every git call the harness makes is told."""
    import subprocess as sp

    from harness import provenance

    calls = []
    real = sp.run
    monkeypatch.setattr(provenance.subprocess, "run", lambda argv, **kw: calls.append(argv) or real(argv, **kw))
    provenance.version_of(ROOT)
    assert calls and all(argv[:2] == ["git", "--no-optional-locks"] for argv in calls), calls


# Class 6: environment faults end in one line naming the store and what to do, exit 5 (STORE_EXIT), and nothing
# finished is lost: a rerun once the fault is fixed goes on.  A 0-byte store is an error, not a silent new one.

def _store_cli(tmp_path, *args):
    from conftest import cli

    proc = cli(ROOT, tmp_path, *args)
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ") or "Traceback" in ln]
    return proc, lines


@pytest.mark.parametrize("content, expected", [
    (b"", "is empty (0 bytes), not an MLflow store"),
    (b"PK\x03\x04 a zip file", "is not an SQLite database"),
])
def test_a_file_that_is_no_store_is_refused_untouched(tmp_path, content, expected):
    (tmp_path / "mlflow.db").write_bytes(content)
    proc, lines = _store_cli(tmp_path, "status", "smoke")
    assert proc.returncode == 5 and len(lines) == 1 and expected in lines[0], proc.stderr
    assert (tmp_path / "mlflow.db").read_bytes() == content  # not recreated over


def test_a_corrupt_store_is_one_line(tmp_path):
    from harness.track import Tracker

    t = Tracker(f"sqlite:///{tmp_path}/mlflow.db")
    t.setup()
    t.experiment("smoke")
    db = tmp_path / "mlflow.db"
    db.write_bytes(db.read_bytes()[:100] + bytes(range(256)) * ((db.stat().st_size - 100) // 256))
    proc, lines = _store_cli(tmp_path, "status", "smoke")
    assert proc.returncode == 5 and lines == [f"error: store sqlite:///{db}: database disk image is malformed: restore it "
                                               "from a backup (sqlite3's `.recover` salvages what it can)"], proc.stderr


@pytest.mark.slow
def test_an_artifact_root_that_cannot_be_written_is_one_line(tmp_path):
    (tmp_path / "mlartifacts").write_text("a file where the artifact folder goes\n")
    proc, lines = _store_cli(tmp_path, "run", "smoke", "--no-report")
    assert proc.returncode == 5 and len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"error: {tmp_path}/mlartifacts/smoke: Not a directory: fix the path or its permissions")


@pytest.fixture
def small_disk(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1100k", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("mounting a small tmpfs needs root")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


@pytest.mark.slow
def test_a_full_disk_is_one_line_and_the_rerun_goes_on(small_disk):
    """The store on a 1.1 MB disk fills during the smoke suite: one line, exit 5; with room again, the rerun
    reaps the runs the first left RUNNING and finishes the suite."""
    from conftest import child_runs

    proc, lines = _store_cli(small_disk, "run", "smoke", "--no-report")
    assert proc.returncode == 5 and len(lines) == 1, proc.stderr
    assert "database or disk is full: free space (or point --tracking-uri elsewhere) and rerun" in lines[0]
    subprocess.run(["mount", "-o", "remount,size=8m", str(small_disk)], check=True)
    again, lines = _store_cli(small_disk, "run", "smoke", "--no-report")
    assert again.returncode == 0 and not lines, again.stderr
    children, _ = child_runs(small_disk, "smoke")
    assert sorted(c.info.status for c in children if c.info.status == "FINISHED") == ["FINISHED"] * 4


# A property over the size rule (class 4): for seeded random grids, seeds and caps, a suite validates exactly when
# axes x seeds fits scheduler.max_runs, and the refusal names the count.

@pytest.mark.parametrize("case", range(12))
def test_the_run_cap_holds_exactly_at_its_bound(suite, capsys, case):
    import random

    rng = random.Random(case)
    sizes = [rng.randint(1, 5) for _ in range(rng.randint(1, 2))]
    n_seeds = rng.randint(1, 3)
    runs = math.prod(sizes) * n_seeds
    cap = max(1, runs + rng.choice([-2, -1, 0, 1]))
    axes = "".join(f"  {key}: [{', '.join(str(8 + 2 * i) for i in range(n))}]\n"
                   for key, n in zip(["model.d_model", "training.steps"], sizes))
    path = suite(f"seeds: {list(range(n_seeds))}\nscheduler: {{max_runs: {cap}}}\ngrid:\n{axes}")
    if runs <= cap:
        assert main(["validate", path]) == 0, capsys.readouterr().err
    else:
        assert f"the grid expands to {runs:,} runs" in one_error(capsys, path)


# Class 10, stopping: a paused (SIGSTOP) run handles the stop at once and ends KILLED by its own handler; it used to
# sit out the grace period and be SIGKILLed (20 s with paused workers, the run not marked).

HANDLES_TERM = """
import signal, sys, time
from pathlib import Path
def on_term(signum, frame):
    Path(sys.argv[1]).write_text("stopped")
    sys.exit(143)
signal.signal(signal.SIGTERM, on_term)
Path(sys.argv[2]).write_text("ready")
time.sleep(600)
"""


def test_a_paused_run_is_stopped_gracefully_at_once(tmp_path):
    import signal
    import time

    from harness.backends.warm import WarmWorkers

    stopped, ready = tmp_path / "stopped", tmp_path / "ready"
    warm = WarmWorkers(tmp_path / "warm.log").start()
    try:
        warm.launch("j", [sys.executable, "-c", HANDLES_TERM, str(stopped), str(ready)], tmp_path / "j.log", {})
        deadline = time.monotonic() + 60
        while not (warm.pids and ready.exists()) and time.monotonic() < deadline:
            warm.events(0.05)
        os.kill(warm.pids["j"], signal.SIGSTOP)
        t0 = time.monotonic()
        ended = warm.stop_all(grace_s=5.0)
        took = time.monotonic() - t0
        assert [e["rc"] for e in ended] == [143] and stopped.read_text() == "stopped"
        assert took < 3.0, f"{took:.1f} s"
    finally:
        warm.close()
