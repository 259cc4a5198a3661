"""Serving throughput of the cached path under a bounded concurrent load: K client threads for D seconds.

Same setup as ``bench/serving_latency.py`` (imported from it: untrained DMGIN / DIN on the synthetic
medium spec exported to a temporary dir, or ``--saved-model-base DIR``; one ``tfrec serve`` per
model started by ``ServerProcess``; every user's state precomputed through ``user_tower`` into a
``SQLiteCache``). Then ``--threads`` K client threads (default 8) share one ``ServingClient`` (one
gRPC channel, the cache's per-thread SQLite connections) and, for ``--duration`` D seconds (default
30, after ``--warmup-seconds`` of the same load untimed), each loops the cached path: cache hit +
``score`` Predict with ``--candidates`` (default 100) candidates. Thread t takes users t, t + K,
t + 2K, ... of ``--users`` distinct users (so no two threads score the same user at once).

The server gets ``--grpc-max-threads`` K worker threads and ``--max-concurrent-requests``
max(64, 4K), so no request is refused for concurrency. A request fails when it raises (an RPC
error, a deadline, a cache miss) or when its probabilities differ from the same user's answer
computed sequentially before the load (checked for the first 256 users). Prints requests/s,
p50 / p90 / p99 / mean / max latency under load, the CPU seconds the client process and the
server process spent per request, and the failed count; exits 1 if any request failed.

Client and server share the machine's cores (a 2-core box in the issue), so requests/s is bounded
by (client + server CPU per request) / cores: the CPU-ms-per-request figures say which side costs.

    python bench/serving_throughput.py                                # DMGIN and DIN, 8 threads, 30 s
    python bench/serving_throughput.py --models din
    python bench/serving_throughput.py --threads 4 --duration 10 --saved-model-base saved_models
    python bench/serving_throughput.py --intra-op-threads 1 --json /tmp/throughput.json
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
from serving_latency import (
    add_common_arguments,
    cached_score,
    export_spec,
    machine_info,
    make_candidates,
    make_users,
    precompute,
    prepare,
    request_length,
    serving,
    stats_ms,
    write_json,
)

CHECKED_USERS = 256


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc; NaN where unavailable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def run_load(client, users, cands, reference, threads: int, seconds: float) -> dict:
    """K threads looping the cached path for ``seconds``; latencies, failures, counts."""
    n = len(users)
    latencies = [[] for _ in range(threads)]
    failures = [[] for _ in range(threads)]
    start_gate = threading.Barrier(threads + 1)
    deadline = [0.0]

    def worker(t: int):
        i = t
        start_gate.wait()
        while True:
            began = time.perf_counter()
            if began >= deadline[0]:
                return
            k = i % n
            try:
                probs = cached_score(client, users[k], cands[k])
                if k in reference and not np.allclose(probs, reference[k], rtol=1e-5, atol=1e-6):
                    raise AssertionError(f"user {users[k].user_id}: probabilities differ from the sequential answer "
                                         f"by {np.abs(probs - reference[k]).max():.2e}")
                latencies[t].append(time.perf_counter() - began)
            except Exception as err:  # noqa: BLE001 - every failure is counted and reported
                failures[t].append(f"{type(err).__name__}: {str(err)[:300]}")
            i += threads

    pool = [threading.Thread(target=worker, args=(t,), daemon=True, name=f"load-{t}") for t in range(threads)]
    for thread in pool:
        thread.start()
    cpu_client0 = time.process_time()
    deadline[0] = time.perf_counter() + seconds
    began = time.perf_counter()
    start_gate.wait()
    for thread in pool:
        thread.join()
    elapsed = time.perf_counter() - began
    cpu_client = time.process_time() - cpu_client0
    lat = [x for per in latencies for x in per]
    fails = [x for per in failures for x in per]
    return {"elapsed_s": elapsed, "ok": len(lat), "failed": len(fails), "failures": fails[:10],
            "requests_per_s": len(lat) / elapsed, "latency_ms": stats_ms(lat) if lat else {},
            "client_cpu_s": cpu_client, "per_thread_ok": [len(per) for per in latencies]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(p)
    p.add_argument("--threads", type=int, default=8, help="K concurrent client threads")
    p.add_argument("--duration", type=float, default=30.0, help="D seconds of timed load")
    p.add_argument("--warmup-seconds", type=float, default=3.0, help="untimed load first")
    p.add_argument("--users", type=int, default=2000, help="distinct users (states precomputed)")
    args = p.parse_args(argv)
    if args.threads < 1 or args.duration <= 0 or args.users < args.threads:
        p.error("need --threads >= 1, --duration > 0 and --users >= --threads")

    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    work = Path(tempfile.mkdtemp(prefix="tfrec-bench-throughput-"))
    info = machine_info()
    server_args = ["--grpc-max-threads", str(args.threads),
                   "--max-concurrent-requests", str(max(64, 4 * args.threads)), *args.server_arg]
    print(f"{info['cpus']} CPUs ({info['cpu']}), TensorFlow {info['tensorflow']}; {args.threads} client threads "
          f"x {args.duration:g} s; server intra-op threads {args.intra_op_threads or 'default'}; work dir {work}",
          flush=True)
    results, failed = {}, 0
    try:
        exports = prepare(args, work)
        for name, version_dir in exports.items():
            spec = export_spec(version_dir)
            length = request_length(args, spec)
            users = make_users(spec, args.users, length, seed=args.seed)
            cands = make_candidates(spec, args.users, args.candidates, seed=args.seed + 1)
            with serving(name, version_dir, work, spec.max_history_length, args.intra_op_threads,
                         server_args) as (server, client):
                pre = precompute(client, users)
                print(f"{name}: precomputed {pre['users']} user states (L={length}) in {pre['seconds']} s", flush=True)
                reference = {k: cached_score(client, users[k], cands[k]) for k in range(min(CHECKED_USERS, len(users)))}
                run_load(client, users, cands, reference, args.threads, args.warmup_seconds)
                server_cpu0 = process_cpu_seconds(server.proc.pid)
                r = run_load(client, users, cands, reference, args.threads, args.duration)
                r["server_cpu_s"] = process_cpu_seconds(server.proc.pid) - server_cpu0
                if r["failed"] and server.proc.poll() is not None:
                    r["server_log_tail"] = server.log()[-2000:]
                r.update(history_length=length, candidates=args.candidates, version_dir=str(version_dir),
                         client_stats=dict(client.stats))
            results[name] = r
            failed += r["failed"]
            lat = r["latency_ms"]
            print(f"{name}: {r['ok']} ok, {r['failed']} failed in {r['elapsed_s']:.1f} s -> "
                  f"{r['requests_per_s']:.1f} requests/s; latency ms p50 {lat.get('p50', float('nan')):.2f} "
                  f"p99 {lat.get('p99', float('nan')):.2f}", flush=True)
            for message in r["failures"][:5]:
                print(f"  failure: {message}")
        print(f"\n== cached path (cache hit + score, C={args.candidates}) under load: {args.threads} client "
              f"threads x {args.duration:g} s, {info['cpus']} CPUs shared by client and server")
        head = (f"{'model':<7} {'req/s':>8} {'ok':>7} {'failed':>7} {'p50':>7} {'p90':>7} {'p99':>7} {'mean':>7} "
                f"{'max':>7}  (ms)  {'client CPU ms/req':>17} {'server CPU ms/req':>17}")
        print(head)
        print("-" * len(head))
        for name, r in results.items():
            lat = r["latency_ms"] or {k: float("nan") for k in ("p50", "p90", "p99", "mean", "max")}
            done = max(r["ok"] + r["failed"], 1)
            print(f"{name:<7} {r['requests_per_s']:8.1f} {r['ok']:7d} {r['failed']:7d} {lat['p50']:7.2f} "
                  f"{lat['p90']:7.2f} {lat['p99']:7.2f} {lat['mean']:7.2f} {lat['max']:7.2f}        "
                  f"{1e3 * r['client_cpu_s'] / done:17.2f} {1e3 * r['server_cpu_s'] / done:17.2f}")
        print(f"failed requests: {failed} ({'OK' if failed == 0 else 'FAILED'}: the goal is zero)")
        if args.json:
            write_json(args.json, {"bench": "serving_throughput", "machine": info, "args": vars(args),
                                   "models": results})
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
