"""Stage `launch`: run a tfrec command as a local cluster on 127.0.0.1 (N workers, M parameter servers).

    tfrec launch --workers 2 -- train --model din --data DATA --out RUN
    tfrec launch --workers 2 --ps 1 -- train --model dmgin --data DATA --out RUN

Each task runs the command with its own TF_CONFIG and `--strategy multi-worker` (no --ps) or
`--strategy parameter-server` (a coordinator, the workers and the parameter servers). Logs:
`--log-dir` (default `<--out of the command>/launch`), one file per task + tasks.json (pids).
A failed task is restarted up to --max-restarts times (multi-worker: the whole job, which resumes
from the run's BackupAndRestore backup; parameter-server: the failed worker alone). On a real
cluster, start the same command on every host with that host's TF_CONFIG: docs/distributed.md.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(p):
    p.add_argument("--workers", type=int, default=2, help="worker tasks (default 2)")
    p.add_argument("--ps", type=int, default=0, help="parameter servers (0 = multi-worker mirrored, the default)")
    p.add_argument("--max-restarts", type=int, default=0, help="restarts allowed after a task fails (default 0)")
    p.add_argument("--log-dir", help="task logs + tasks.json (default <out>/launch, <out> = the command's --out)")
    p.add_argument("--pin-cpus", action="store_true",
                   help="pin worker i to CPU core i (mod the cores): one core per worker, to measure scaling on one box")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- then the tfrec command of every task")


def _out_of(command) -> str | None:
    for i, arg in enumerate(command):
        if arg == "--out" and i + 1 < len(command):
            return command[i + 1]
        if arg.startswith("--out="):
            return arg.split("=", 1)[1]
    return None


def run(args):
    from tfrec.distribute.launch import LocalCluster

    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    out = _out_of(command)
    log_dir = args.log_dir or (str(Path(out) / "launch") if out else "launch-logs")
    code = LocalCluster(command, args.workers, args.ps, log_dir, max_restarts=args.max_restarts,
                         pin_cpus=args.pin_cpus).run()
    if code:
        print(f"tfrec launch: error: the job failed (exit code {code}); task logs in {log_dir}", file=sys.stderr)
        raise SystemExit(code)
