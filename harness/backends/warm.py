"""Warm workers: one process per pool that imports torch, mlflow, optuna and the plugins once, then forks
a child per job, so that a run starts in milliseconds instead of seconds.

    launcher (orchestrator, or a Ray actor)        warm process (WARM_COMMAND)
      WarmWorkers.launch(token, argv, log, env) -->  fork: child = one job, in its own process group
      WarmWorkers.events(timeout)              <--  {"token", "pid"} when forked, {"token", "rc"} when it ended

The warm process is started single-threaded (no BLAS, OpenMP or allocator threads: SINGLE_THREAD_ENV and
WARM_ENV) and never runs a tensor operation, so forking it is safe.  A child keeps what a fresh worker
process had: its own process group (signalled as a whole), PR_SET_PDEATHSIG (it dies with the warm
process, which dies with its launcher), its own log file on stdout and stderr, the slot's environment
(CUDA_VISIBLE_DEVICES, thread count: CUDA is never initialized before the fork).  A job whose argv is
`python -m harness.worker ...` runs `harness.worker.main` in the child (the warm path; also the modules of
WARM_MODULES, e.g. the Hydra launcher's jobs); any other argv is
exec'd there (a cold start, e.g. a test's script).  Exit codes are a subprocess's: negative = killed by
that signal.  SIGTERM to the warm process (its launcher died, or stopped it) stops its children (SIGTERM,
SIGKILL after a grace period) before it exits; EOF on its stdin ends it once its children are gone.  When a
job ends, what it left in its process group (a subprocess, a data-loader pool) is killed: nothing a run
started outlives it."""

from __future__ import annotations

import importlib
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, TextIO

from harness.backends.base import (
    PARENT_PID_ENV,
    SINGLE_THREAD_ENV,
    set_parent_death_signal,
    signal_group,
    terminate_groups,
)
from harness.store import read_tail

WORKER_MODULE = "harness.worker"
# modules whose `main(argv) -> int` runs in a forked child (the warm path): runs and trials, Hydra launcher jobs
WARM_MODULES = (WORKER_MODULE, "hydra_plugins.harness_launcher.job")
TRIAL_MODULES = ["harness.tune.trial"]  # what a tuning trial imports beyond a run (optuna): WarmWorkers.preload
WARM_COMMAND = "from harness.backends.warm import main; main()"  # not -m: the package imports this module
WARM_ENV = {"JE_ARROW_MALLOC_CONF": "background_thread:false"}  # pyarrow's jemalloc starts no thread
TEMP_LOG_ENV = "HARNESS_WARM_TEMP_LOG"  # a temp log's path: the warm process removes it at exit while it is empty
GRACE_S = 5.0
EXIT_TERMINATED = 128 + signal.SIGTERM
WARM_DIED = -int(signal.SIGKILL)  # exit code of the jobs in flight when the warm process itself died


def is_worker_command(argv: list[str]) -> bool:
    return len(argv) >= 3 and argv[1] == "-m" and argv[2] in WARM_MODULES


# ---------------------------------------------------------------- the launcher's side
class WarmWorkers:
    """A handle on one warm process (module docstring).  `log_path` receives its own output."""

    def __init__(self, log_path: Path, env: dict[str, str] | None = None, temporary: bool = False) -> None:
        self.log_path = log_path
        self.temporary = temporary  # the log is a temp file, removed on close when empty
        self.env = dict(env or {})
        self.proc: subprocess.Popen | None = None
        self.pids: dict[str, int] = {}  # token -> pid of a job in flight (known once forked)
        self.running: set[str] = set()  # tokens launched and not ended
        self.ready = False  # the warm process said it has imported everything
        self._buf = b""

    @classmethod
    def temporary_log(cls) -> WarmWorkers:
        """Warm workers logging to a new temp file (for a start before the store's folder may be written)."""
        fd, path = tempfile.mkstemp(prefix="harness-warm-", suffix=".log")
        os.close(fd)
        return cls(Path(path), temporary=True)

    def start(self) -> WarmWorkers:
        if self.proc is not None and self.proc.poll() is None:
            return self
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **SINGLE_THREAD_ENV, **WARM_ENV, **self.env, PARENT_PID_ENV: str(os.getpid()),
               **({TEMP_LOG_ENV: str(self.log_path)} if self.temporary else {})}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", WARM_COMMAND], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                env=env, start_new_session=True,  # Ctrl-C reaches the launcher only; it stops the jobs itself
            )
        self._buf = b""
        self.ready = False
        return self

    def launch(self, token: str, argv: list[str], log_path: Path, env: dict[str, str], cwd: str | None = None) -> None:
        """Fork a child running `argv` with its output appended to `log_path`, `env` set (and in `cwd`)."""
        self.start()
        assert self.proc is not None and self.proc.stdin is not None
        log_path.parent.mkdir(parents=True, exist_ok=True)
        request = {"token": token, "argv": argv, "log": str(log_path), "env": env, "cwd": cwd}
        self.running.add(token)
        try:
            self.proc.stdin.write((json.dumps(request) + "\n").encode())
            self.proc.stdin.flush()
        except BrokenPipeError:  # it died: the next events() call reports the job lost
            pass

    def preload(self, modules: list[str]) -> None:
        """Have the warm process import `modules` before it forks the next job (e.g. optuna for a suite that
        tunes: not imported by default, so that a suite without tune blocks does not wait for it)."""
        self.start()
        assert self.proc is not None and self.proc.stdin is not None
        try:
            self.proc.stdin.write((json.dumps({"import": modules}) + "\n").encode())
            self.proc.stdin.flush()
        except BrokenPipeError:  # it died: the next events() call reports the jobs lost
            pass

    def events(self, timeout: float) -> list[dict[str, Any]]:
        """What happened within `timeout` seconds: started ({"token", "pid"}) and ended ({"token", "rc"})
        jobs.  If the warm process died, every job in flight ends with rc WARM_DIED."""
        if self.proc is None or not self.running:
            time.sleep(max(0.0, timeout))
            return []
        out = self.proc.stdout
        assert out is not None
        ready, _, _ = select.select([out], [], [], timeout)
        if not ready:
            return []
        data = os.read(out.fileno(), 1 << 16)
        if not data:  # the warm process is gone: its children died with it (PR_SET_PDEATHSIG)
            rc = self.proc.wait()
            if not self.ready:
                raise RuntimeError(f"the warm worker process exited ({rc}) before it was ready; its log "
                                   f"{self.log_path} ends with:\n{_tail(self.log_path)}")
            lost = [{"token": t, "rc": WARM_DIED} for t in sorted(self.running)]
            self.running.clear()
            self.pids.clear()
            self.proc = None
            return lost
        self._buf += data
        *lines, self._buf = self._buf.split(b"\n")
        events = [json.loads(line) for line in lines if line]
        for e in events:
            if "ready" in e:
                self.ready = True
            elif "pid" in e:
                self.pids[e["token"]] = e["pid"]
            else:
                self.running.discard(e["token"])
                self.pids.pop(e["token"], None)
        return [e for e in events if "ready" not in e]

    def stop_all(self, grace_s: float = GRACE_S) -> list[dict[str, Any]]:
        """Stop every job in flight: SIGTERM to its process group, SIGKILL after `grace_s`.  Returns the
        end events seen meanwhile (the caller reports them)."""
        ended: list[dict[str, Any]] = []

        def wait(timeout: float) -> list[int]:
            before = dict(self.pids)
            got = self.events(timeout)
            ended.extend(e for e in got if "rc" in e)
            return [before[e["token"]] for e in got if "rc" in e and e["token"] in before]

        deadline = time.monotonic() + grace_s
        while set(self.pids) != self.running and time.monotonic() < deadline:
            wait(0.05)  # a job launched but not yet forked: learn its pid first
        terminate_groups(list(self.pids.values()), max(0.0, deadline - time.monotonic()), wait)
        deadline = time.monotonic() + grace_s
        while self.running and self.proc is not None and time.monotonic() < deadline:  # the SIGKILLed ones
            wait(0.5)
        return ended

    def close(self, timeout: float = 10.0) -> None:
        """End the warm process (EOF on its stdin; it stops jobs still running)."""
        if self.proc is None:
            return
        try:
            if not self.ready and not self.running:  # still importing, never used: no need to wait for it
                self.proc.terminate()
            if self.proc.stdin is not None:
                self.proc.stdin.close()
            self.proc.send_signal(signal.SIGCONT)  # a paused warm process reads the EOF now, not after `timeout`
            rc = self.proc.wait(timeout=timeout)
        except (subprocess.TimeoutExpired, BrokenPipeError):
            self.proc.kill()
            rc = self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None
        self.running.clear()
        self.pids.clear()
        if self.temporary and rc in (0, -signal.SIGTERM, EXIT_TERMINATED):  # a failed one keeps its log
            self.log_path.unlink(missing_ok=True)


def _tail(path: Path, n: int = 3000) -> str:
    return read_tail(path, n).decode(errors="replace")


# ---------------------------------------------------------------- the warm process
def _preload() -> None:
    """Everything a worker imports, once, then a warm-up of torch's CPU kernels."""
    from harness import track, worker  # noqa: F401  (worker: runner, train -> torch)
    from harness.plugins import warm_imports

    track.preload()  # optuna (tuning trials report through harness.tune.trial) only on request: WarmWorkers.preload
    warm_imports()
    _warm_up_torch()


def _import_all(modules: list[str]) -> None:
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001  (logged; a job that needs the module fails with its own traceback)
            traceback.print_exc()


def _warm_up_torch() -> None:
    """Two training steps of a tiny model built from the common layers.  The first calls into torch's CPU
    kernels, autograd and the optimizer cost ~1.5 s (measured: a 150-step smoke run trained in 2.5 s in a
    child forked without this, 0.9 s with it, 0.85 s as the second run of one process); paid here once,
    every forked run inherits it.  Single-threaded (OMP_NUM_THREADS=1, one torch thread): no thread is
    left behind, so the fork stays safe."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(0)
    layers = nn.ModuleDict({"emb": nn.Embedding(11, 16), "qkv": nn.Linear(16, 48), "norm": nn.LayerNorm(16),
                            "conv": nn.Conv1d(16, 16, 3, padding=1, groups=16), "head": nn.Linear(16, 11)})
    opt = torch.optim.AdamW(layers.parameters(), lr=1e-3)
    tokens = torch.randint(0, 11, (4, 9), generator=gen)  # [B, T]
    for _ in range(2):
        x = layers["norm"](layers["emb"](tokens))  # [B, T, 16]
        q, k, v = layers["qkv"](x).chunk(3, dim=-1)  # [B, T, 16] each
        att = (q @ k.transpose(1, 2) / 4.0).masked_fill(torch.ones(9, 9).triu(1).bool(), float("-inf"))
        y = att.softmax(dim=-1) @ v + F.scaled_dot_product_attention(q, k, v, is_causal=True)  # [B, T, 16]
        y = F.gelu(y) + F.silu(layers["conv"](y.transpose(1, 2)).transpose(1, 2))
        loss = F.cross_entropy(layers["head"](y).reshape(-1, 11), tokens.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(layers.parameters(), 1.0)
        opt.step()


def _child(request: dict[str, Any], parent: int, close_fds: list[int]) -> None:
    """In the forked child: become the job (never returns)."""
    rc = 1
    try:
        os.setpgid(0, 0)
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_DFL)
        for fd in close_fds:
            os.close(fd)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        os.close(null)
        os.environ.update(request["env"])
        if request.get("cwd"):
            os.chdir(request["cwd"])
        os.environ[PARENT_PID_ENV] = str(parent)  # harness.worker dies with the warm process
        set_parent_death_signal(signal.SIGTERM)
        if os.getppid() != parent:  # the warm process died before the request above
            os._exit(EXIT_TERMINATED)
        argv = request["argv"]
        if not is_worker_command(argv):
            os.execvpe(argv[0], argv, os.environ)
        module = importlib.import_module(argv[2])
        sys.argv = [argv[2], *argv[3:]]
        try:
            rc = module.main(argv[3:])
        except SystemExit as e:  # argparse
            rc = e.code if isinstance(e.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(rc)


def serve(requests: int, events: TextIO) -> int:
    """The warm process's loop: fork a child per request line, report forks and exits on `events`.
    SIGTERM (the launcher died, or stopped us) and EOF on `requests` both end the loop; either way the
    children are stopped and reaped before this returns, so a job never outlives its warm process.  The
    SIGTERM handler only sets a flag (the wakeup fd makes select return): an exception raised from it
    could land anywhere, the shutdown below included, and end the process with its jobs still running."""
    parent = os.getpid()
    children: dict[int, str] = {}  # pid -> token
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)  # wakes select through the wakeup fd
    terminated = False
    listening = True  # the launcher reads `events`; once it is gone (EPIPE) there is no one to tell

    def on_term(signum: int, frame: object) -> None:
        nonlocal terminated
        terminated = True

    def emit(event: dict[str, Any]) -> None:
        nonlocal listening
        if not listening:
            return
        try:
            events.write(json.dumps(event) + "\n")
            events.flush()
        except BrokenPipeError:  # the launcher died: keep going, so that the children are still reaped
            listening = False

    def reap(timeout: float = 0.0) -> list[int]:
        if timeout > 0:
            select.select([wake_r], [], [], timeout)
        ended = []
        while children:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            if pid in children:
                signal_group(pid, signal.SIGKILL)  # what the job left in its group (a subprocess, a pool) ends with it
                emit({"token": children.pop(pid), "rc": os.waitstatus_to_exitcode(status)})
                ended.append(pid)
        return ended

    signal.signal(signal.SIGTERM, on_term)
    buf, open_ = b"", True
    emit({"ready": parent})
    while open_ and not terminated:
        ready_fds, _, _ = select.select([requests, wake_r], [], [])
        if wake_r in ready_fds:
            os.read(wake_r, 4096)
        reap()
        if terminated or requests not in ready_fds:
            continue
        data = os.read(requests, 1 << 16)
        open_ = bool(data)
        buf += data
        *lines, buf = buf.split(b"\n")
        for line in filter(None, lines):
            request = json.loads(line)
            if "import" in request:  # WarmWorkers.preload: a failure is the jobs' to report, not ours
                _import_all(request["import"])
                continue
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                _child(request, parent, [requests, wake_r, wake_w, events.fileno()])
            children[pid] = request["token"]
            emit({"token": request["token"], "pid": pid})
    terminate_groups(list(children), GRACE_S, reap)
    while children:
        reap(0.5)
    return EXIT_TERMINATED if terminated else 0


def main() -> None:
    set_parent_death_signal(signal.SIGTERM)
    launcher = os.environ.get(PARENT_PID_ENV)
    if launcher is not None and os.getppid() != int(launcher):
        _drop_empty_temp_log()
        os._exit(EXIT_TERMINATED)  # the launcher died before we asked to die with it
    events = os.fdopen(os.dup(1), "w")  # the protocol; the process's own stdout goes to its log (stderr)
    os.dup2(2, 1)
    sys.stdout = os.fdopen(1, "w", buffering=1)
    _preload()
    code = serve(0, events)
    sys.stdout.flush()
    sys.stderr.flush()
    _drop_empty_temp_log()
    os._exit(code)  # no interpreter teardown (torch's and mlflow's take ~2 s): nothing is left to flush


def _drop_empty_temp_log() -> None:
    """Remove this process's temp log (TEMP_LOG_ENV) if nothing was written to it.  The launcher does it on
    close; this covers a launcher that never closed us (SIGKILLed), whose temp logs were otherwise left behind."""
    path = os.environ.get(TEMP_LOG_ENV)
    if path is None:
        return
    try:
        log, ours = os.stat(path), os.fstat(2)
    except FileNotFoundError:  # the launcher removed it already
        return
    if log.st_size == 0 and (log.st_dev, log.st_ino) == (ours.st_dev, ours.st_ino):
        os.unlink(path)
