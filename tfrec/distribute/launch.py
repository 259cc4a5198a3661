"""A local cluster on 127.0.0.1: N workers (and M parameter servers + a coordinator) as processes.

``tfrec launch --workers N [--ps M] -- train ARGS`` runs the same ``tfrec train`` command in every
task with its own ``TF_CONFIG`` (free loopback ports) and ``--strategy multi-worker`` (no ``--ps``)
or ``--strategy parameter-server``. It is for tests and for trying a cluster job on one machine; a
real cluster starts the same command on each host with that host's ``TF_CONFIG``
(docs/distributed.md).

Supervision (what a cluster manager such as Kubernetes' Job controller does for the real job):

* multi-worker: the job ends when every worker has exited; if one fails (e.g. is killed), the
  others are stopped and the whole job restarts, at most ``max_restarts`` times, on fresh ports;
  ``tfrec train`` resumes from its ``BackupAndRestore`` backup (synchronous training cannot go on
  with a worker missing).
* parameter-server: the job ends when the coordinator (``chief``) exits; a failed ``worker`` is
  restarted alone (same address: the coordinator re-dispatches the steps it lost and uses it
  again when it is back); a failed ``ps`` or coordinator restarts the whole job, which resumes
  from the backup.

Every task's output goes to ``log_dir/<type>-<index>.log`` (the chief's -- worker 0 without a
coordinator -- also to this process's stdout); ``log_dir/tasks.json`` lists the tasks' pids and
addresses, rewritten at every (re)start. Every task runs in its own process group, and all of them
are stopped when the launcher exits, fails or is interrupted (SIGINT, SIGTERM, SIGHUP); on Linux a
task also dies with the launcher if that is killed outright (``PR_SET_PDEATHSIG``). A task that
failed to bind its port (another process took it after it was chosen) restarts the job on fresh
ports without counting as a restart.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

TaskKey = Tuple[str, int]


def free_ports(n: int) -> List[int]:
    """``n`` distinct free TCP ports on 127.0.0.1 (held open together while choosing)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


PARENT_ENV = "TFREC_LAUNCHER_PID"
PIN_ENV = "TFREC_PIN_CPU"


def task_setup(env=None) -> None:
    """Run first in a task the launcher started (``tfrec.cli.main``): pins it to its core when asked,
    and makes it die with the launcher, even when that is killed outright (Linux
    ``PR_SET_PDEATHSIG``), so no server is left behind."""
    env = os.environ if env is None else env
    if env.get(PIN_ENV):
        os.sched_setaffinity(0, {int(env[PIN_ENV])})
    parent = env.get(PARENT_ENV)
    if not parent:
        return
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != int(parent):  # the launcher died before the call above
        os._exit(1)


def cluster_spec(workers: int, ps: int = 0) -> Dict[str, List[str]]:
    """Loopback addresses: ``worker`` (and, with ``ps``, ``chief`` + ``ps``)."""
    n = workers + (ps + 1 if ps else 0)
    ports = iter(free_ports(n))
    cluster = {"worker": [f"127.0.0.1:{next(ports)}" for _ in range(workers)]}
    if ps:
        cluster["chief"] = [f"127.0.0.1:{next(ports)}"]
        cluster["ps"] = [f"127.0.0.1:{next(ports)}" for _ in range(ps)]
    return cluster


def tf_config(cluster: Dict[str, List[str]], task_type: str, index: int) -> str:
    return json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}})


class LocalCluster:
    """Runs ``command`` (a ``tfrec`` argument list, e.g. ``["train", "--model", "din", ...]``) in every
    task of a loopback cluster and supervises it (module docstring).

    Args:
      command: the tfrec arguments of every task (``--strategy`` is added unless given).
      workers: number of worker tasks (>= 1).
      ps: number of parameter servers (0 = multi-worker mirrored, no coordinator).
      log_dir: where task logs and ``tasks.json`` go.
      max_restarts: restarts allowed (of the whole job, or of single parameter-server workers).
      python: the interpreter that runs ``-m tfrec.cli`` (default: this one).
      echo_chief: copy the chief's output to this process's stdout.
      pin_cpus: pin worker i to CPU core i mod (cores) (``sched_setaffinity``), to measure scaling on
        one machine with one core per worker; the coordinator and parameter servers stay unpinned.
    """

    def __init__(self, command: Sequence[str], workers: int, ps: int = 0, log_dir: os.PathLike = "launch-logs",
                 max_restarts: int = 0, python: Optional[str] = None, echo_chief: bool = True,
                 env: Optional[Dict[str, str]] = None, pin_cpus: bool = False):
        if workers < 1 or ps < 0:
            raise ValueError(f"--workers must be >= 1 and --ps >= 0. Received: workers={workers}, ps={ps}")
        command = list(command)
        if command and command[0] == "--":
            command = command[1:]
        if not command:
            raise ValueError("tfrec launch: give the tfrec command to run after --, e.g. "
                             "`tfrec launch --workers 2 -- train --model din --data DATA --out RUN`")
        if not any(arg == "--strategy" or arg.startswith("--strategy=") for arg in command):
            command += ["--strategy", "parameter-server" if ps else "multi-worker"]
        self.command, self.workers, self.ps = command, workers, ps
        self.log_dir = Path(log_dir)
        self.max_restarts = max_restarts
        self.python = python or sys.executable
        self.echo_chief = echo_chief
        self.env = dict(os.environ if env is None else env)
        self.pin_cpus = pin_cpus
        self.procs: Dict[TaskKey, subprocess.Popen] = {}
        self.cluster: Dict[str, List[str]] = {}
        self.restarts = 0
        self.events: List[str] = []
        self._lock = threading.Lock()

    # -- tasks ------------------------------------------------------------------------------------
    @property
    def chief(self) -> TaskKey:
        return ("chief", 0) if self.ps else ("worker", 0)

    def tasks(self) -> List[TaskKey]:
        keys = [("worker", i) for i in range(self.workers)]
        if self.ps:
            keys = [("ps", i) for i in range(self.ps)] + keys + [("chief", 0)]
        return keys

    def _start(self, key: TaskKey) -> None:
        kind, index = key
        env = {**self.env, "TF_CONFIG": tf_config(self.cluster, kind, index), "GRPC_FAIL_FAST": "use_caller",
               "PYTHONUNBUFFERED": "1"}
        log = open(self.log_dir / f"{kind}-{index}.log", "ab")
        log.write(f"\n=== {time.strftime('%H:%M:%S')} start {kind}:{index} (restart {self.restarts}) ===\n".encode())
        log.flush()
        echo = self.echo_chief and key == self.chief
        env[PARENT_ENV] = str(os.getpid())  # the task dies with the launcher (``task_setup``)
        if self.pin_cpus and kind == "worker":
            cores = sorted(os.sched_getaffinity(0))
            env[PIN_ENV] = str(cores[index % len(cores)])
        proc = subprocess.Popen([self.python, "-m", "tfrec.cli", *self.command], env=env,
                                stdout=subprocess.PIPE if echo else log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        if echo:
            threading.Thread(target=self._tee, args=(proc, log), daemon=True).start()
        else:
            log.close()
        self.procs[key] = proc
        self._write_tasks()

    @staticmethod
    def _tee(proc, log) -> None:
        for line in iter(proc.stdout.readline, b""):
            log.write(line)
            log.flush()
            sys.stdout.write(line.decode(errors="replace"))
            sys.stdout.flush()
        log.close()

    def _write_tasks(self) -> None:
        info = {f"{k}-{i}": {"pid": p.pid, "address": self.cluster[k][i]} for (k, i), p in self.procs.items()}
        tmp = self.log_dir / "tasks.json.tmp"
        tmp.write_text(json.dumps({"cluster": self.cluster, "restarts": self.restarts, "tasks": info}, indent=1))
        tmp.replace(self.log_dir / "tasks.json")

    def _stop(self, keys=None, grace: float = 5.0) -> None:
        keys = list(self.procs) if keys is None else keys
        for key in keys:
            proc = self.procs.get(key)
            if proc is not None and proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.time() + grace
        for key in keys:
            proc = self.procs.get(key)
            if proc is None:
                continue
            try:
                proc.wait(max(deadline - time.time(), 0.1))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()

    def _start_all(self) -> None:
        self.cluster = cluster_spec(self.workers, self.ps)
        self.procs = {}
        for key in self.tasks():
            self._start(key)

    def _note(self, message: str) -> None:
        self.events.append(message)
        print(f"[tfrec launch] {message}", file=sys.stderr, flush=True)

    # -- supervision ------------------------------------------------------------------------------
    def run(self, poll: float = 0.2) -> int:
        """Runs the job to its end; returns the chief's exit code (the failing task's when the job
        gave up)."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}

        def interrupted(signum, frame):
            raise KeyboardInterrupt

        main_thread = threading.current_thread() is threading.main_thread()
        if main_thread:  # (signal handlers can only be set there)
            for sig in previous:
                signal.signal(sig, interrupted)
        port_retries = 0
        try:
            self._start_all()
            self._note(f"started {len(self.procs)} tasks on 127.0.0.1 ({self.describe()}); logs in {self.log_dir}")
            while True:
                time.sleep(poll)
                status = {key: proc.poll() for key, proc in self.procs.items()}
                chief_code = status[self.chief]
                if self.ps:
                    if chief_code == 0:
                        return 0
                    failed = [k for k, c in status.items() if c is not None]
                else:
                    if chief_code == 0:  # the run is written; the other workers only finish their exit
                        self._drain(status)
                        return 0
                    failed = [k for k, c in status.items() if c not in (None, 0)]
                if not failed:
                    continue
                key = failed[0]
                code = status[key]
                if self._port_taken(key) and port_retries < 3:  # another process took a chosen port first
                    port_retries += 1
                    self._note(f"{key[0]}:{key[1]} could not bind its port: restarting the job on fresh ports")
                    self._stop()
                    self._start_all()
                    continue
                if self.restarts >= self.max_restarts:
                    self._note(f"{key[0]}:{key[1]} exited with {code}; no restarts left "
                               f"({self.restarts} of {self.max_restarts} used): stopping the job")
                    return 128 - code if code < 0 else code  # (killed by signal N: 128 + N, as a shell says)
                self.restarts += 1
                if self.ps and key[0] == "worker":
                    self._note(f"{key[0]}:{key[1]} exited with {code}: restarting it "
                               f"(restart {self.restarts} of {self.max_restarts})")
                    self._start(key)
                else:
                    self._note(f"{key[0]}:{key[1]} exited with {code}: restarting the whole job "
                               f"(restart {self.restarts} of {self.max_restarts}); it resumes from its backup")
                    self._stop()
                    self._start_all()
        except KeyboardInterrupt:
            self._note("interrupted: stopping every task")
            return 130
        finally:
            if main_thread:  # a second Ctrl-C must not cut the cleanup short
                for sig in previous:
                    signal.signal(sig, signal.SIG_IGN)
            self._stop()
            if main_thread:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    def _port_taken(self, key: TaskKey) -> bool:
        """Whether the task failed because its address was in use (the ports are chosen free, then
        released for the tasks to bind: another process can take one in between)."""
        kind, index = key
        try:
            tail = (self.log_dir / f"{kind}-{index}.log").read_text(errors="replace")[-20000:]
        except OSError:
            return False
        tail = tail.rsplit("=== ", 1)[-1]
        return "Address already in use" in tail or "Failed to add port" in tail

    def _drain(self, status, timeout: float = 30.0) -> None:
        """After the chief succeeded: waits for the other workers, noting any that fail now (the run is
        complete, so nothing restarts)."""
        deadline = time.time() + timeout
        for key, proc in self.procs.items():
            try:
                code = proc.wait(max(deadline - time.time(), 0.1))
            except subprocess.TimeoutExpired:
                code = None
            if code not in (0,):
                self._note(f"{key[0]}:{key[1]} {'still running' if code is None else f'exited with {code}'} after "
                           "the chief finished the run: stopping it (the run is complete)")

    def describe(self) -> str:
        if self.ps:
            return f"parameter-server: 1 coordinator, {self.workers} workers, {self.ps} ps"
        return f"multi-worker: {self.workers} workers"


__all__ = ["LocalCluster", "cluster_spec", "free_ports", "task_setup", "tf_config"]
