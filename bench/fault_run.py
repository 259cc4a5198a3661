"""Fault run: client threads on loopback against ``tfrec serve`` while versions land and things break.

The scenario of ``tests/serving/test_fault_run.py``, longer (``tfrec.serving.loadgen.fault_scenario``;
the test and this script differ only in duration and threads). A seeded *untrained* tiny DMGIN
(``tests/models/test_models.py``'s config and spec; the weights do not matter) is exported once, or
``--saved-model DIR`` (one version directory) is used; the scenario serves copies of it from its
own ``tfrec serve`` (``ServerProcess``, ``--file-system-poll-wait-seconds --poll``) and runs
``--threads`` clients (``ServingClient`` + ``RedisCache`` on a ``redis-server`` this script starts on
a loopback port, client timeout ``--client-timeout``) calling ``score_with_source`` for random users
(half from 20 hot users, half from 10,000) with ``--think-ms`` between requests, while, one every
``--duration`` / 6 s and each waiting for its effect:

a. version 2 lands atomically (``os.rename`` of a staged directory);
b. version 3 lands non-atomically (``saved_model.pb``; ``--copy-pause`` s and until the server has
   tried the partial directory and failed; then the rest): the old version must keep serving,
   version 3 serve within ``--reload-deadline`` s of the copy's end;
c. a broken version 4 lands (garbage ``saved_model.pb``), is reported by ``GetModelStatus``, removed;
d. Redis is SIGKILLed and restarted ``--duration`` / 6 s later on the same port;
e. the server is SIGKILLed and restarted on the same port (the downtime window: kill until every
   client thread has an answer again).

Prints, as Markdown: requests, throughput, failures by code inside / outside the downtime window,
p50 / p99 latency overall, around each version swap (±1 s) and while each event ran, the server
restart and the downtime the clients saw (with the gRPC reconnect lag), the max latency of a failed
request, and the scenario's checks; writes ``bench/results/fault-run.md`` (+ ``.json``, every figure
and the server's load / unload log lines) unless ``--no-write``. Exits 1 when a check fails. The
client threads and the server share the box's cores: on a 2-core machine a version load takes
seconds, and so does the restart (TensorFlow's import).

    .venv/bin/python bench/fault_run.py                           # 30 s, 3 threads
    .venv/bin/python bench/fault_run.py --duration 60 --threads 4 --think-ms 0
    .venv/bin/python bench/fault_run.py --saved-model saved_models/dmgin/1 --no-write
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tfrec.serving.loadgen import fault_scenario, summary_markdown

RESULTS = ROOT / "bench" / "results" / "fault-run"


def export_tiny_dmgin(base: Path) -> Path:
    """A seeded untrained tiny DMGIN (the serving tests' model) exported under ``base``."""
    import tensorflow as tf

    from tests.models.test_models import SPEC, make_dmgin
    from tfrec.export import export_saved_model
    from tfrec.testing import random_features

    tf.keras.utils.set_random_seed(7)
    model = make_dmgin()
    model(random_features(SPEC, 2, 4, seed=0))
    return export_saved_model(model, SPEC, base, "dmgin")


def write_results(summary: dict, command: str) -> Path:
    sc = summary["scenario"]
    failed = [name for name, c in summary["checks"].items() if not c["ok"]]
    log_lines = "\n".join(sc.get("server_log", []))
    text = f"""# Fault run: load on loopback while versions land, Redis and the server die

`{command}`

{summary['threads']} client threads (`ServingClient` + `RedisCache`, timeout {sc['client_timeout_s']:g} s,
{sc['think_s'] * 1e3:g} ms between requests, half the requests from {sc['hot_users']} hot users, half from
{sc['n_users']:,}) against their own `tfrec serve` (poll {sc['poll_seconds']:g} s) on a tiny DMGIN, while
(`tfrec.serving.loadgen.fault_scenario`; the same scenario as `tests/serving/test_fault_run.py`):
a. version 2 lands atomically; b. version 3 is copied non-atomically (`saved_model.pb`, a
{sc['copy_pause_s']:g} s pause and until the server failed to load the partial directory, then the rest);
c. a broken version 4 lands, then is removed; d. Redis is SIGKILLed for {sc['redis_outage_s']:g} s;
e. the server is SIGKILLed and restarted on the same port. Client and server
share the machine ({platform.machine()}, {os.cpu_count()} cores), as does anything else running on it.

{summary_markdown(summary)}

{"All checks pass." if not failed else "Failed checks: " + "; ".join(failed) + "."}

Downtime window: from the SIGKILL until every client thread has a successful answer again; "reconnect lag"
is the part after the restarted server printed its ready line (gRPC's channel reconnect backoff).

Server log (loads, unloads, failed loads):

```
{log_lines}
```
"""
    out = RESULTS.with_suffix(".md")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    RESULTS.with_suffix(".json").write_text(json.dumps({"command": command, **summary}, indent=2, default=str))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=30.0, help="nominal run length, s (default 30)")
    p.add_argument("--threads", type=int, default=3, help="client threads (default 3)")
    p.add_argument("--think-ms", type=float, default=50.0, help="pause between a thread's requests (default 50)")
    p.add_argument("--poll", type=float, default=0.2, help="server --file-system-poll-wait-seconds (default 0.2)")
    p.add_argument("--client-timeout", type=float, default=5.0, help="client RPC deadline, s (default 5)")
    p.add_argument("--copy-pause", type=float, default=1.0, help="pause inside the non-atomic copy, s (default 1)")
    p.add_argument("--reload-deadline", type=float, default=8.0,
                   help="version 3 must serve this soon after its copy ends, s (default 8)")
    p.add_argument("--fast-failure", type=float, default=2.0, help="a failed request may take at most this, s")
    p.add_argument("--saved-model", type=Path, help="a SavedModel version directory to serve (default: export a "
                                                    "tiny untrained DMGIN)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-write", action="store_true", help="print only; leave bench/results alone")
    args = p.parse_args(argv)
    command = ".venv/bin/python bench/fault_run.py" + "".join(
        f" {shlex.quote(a)}" for a in (sys.argv[1:] if argv is None else argv))

    from tests.redis_fixtures import RedisServer

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tfrec-fault-run-") as tmp, RedisServer() as redis:
        tmp = Path(tmp)
        source = args.saved_model.resolve() if args.saved_model else export_tiny_dmgin(tmp / "export")
        model_name = source.parent.name
        print(f"serving copies of {source} as {model_name}; Redis on port {redis.port}", flush=True)
        summary = fault_scenario(source, tmp / "run", redis, model_name=model_name, duration_s=args.duration,
                                 threads=args.threads, poll_seconds=args.poll, client_timeout=args.client_timeout,
                                 copy_pause_s=args.copy_pause, reload_deadline_s=args.reload_deadline,
                                 fast_failure_s=args.fast_failure, think_s=args.think_ms / 1e3, seed=args.seed,
                                 progress=lambda msg: print(msg, flush=True))
    print()
    print(summary_markdown(summary))
    print(f"\n({time.perf_counter() - started:.0f} s in all)")
    if not args.no_write:
        print(f"wrote {write_results(summary, command)}")
    failed = [name for name, c in summary["checks"].items() if not c["ok"]]
    if failed:
        print("FAILED checks: " + "; ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
