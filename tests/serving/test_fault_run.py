"""A bounded fault run: client threads on loopback against their own ``tfrec serve`` and Redis while
versions land (atomically, by a slow non-atomic copy, broken), Redis is SIGKILLed and the server is
SIGKILLed and restarted on the same port (``tfrec.serving.loadgen.fault_scenario``; the longer run is
``bench/fault_run.py``). ``pytest -s`` prints the summary."""
import json

from tests.redis_fixtures import redis_server  # noqa: F401  (fixture)
from tfrec.serving.loadgen import fault_scenario, summary_markdown


def test_fault_run(exported, redis_server, tmp_path):  # noqa: F811
    summary = fault_scenario(exported["base"] / "dmgin" / "1", tmp_path, redis_server, duration_s=6.0, threads=3,
                             poll_seconds=0.2, client_timeout=5.0, copy_pause_s=1.0, reload_deadline_s=20.0,
                             fast_failure_s=2.0, progress=print)
    print(summary_markdown(summary))
    failed = {name: c["detail"] for name, c in summary["checks"].items() if not c["ok"]}
    assert not failed, json.dumps(failed, indent=1, default=str)
    # the figures the brief asks for are all there
    assert summary["requests"] > 0 and summary["latency"]["p99_ms"] is not None
    assert summary["windows"][0]["downtime_s"] is not None
    assert set(summary["failures_inside_downtime"]) <= {"UNAVAILABLE"}
    assert summary["failures_outside_downtime"] == {}
    assert summary["max_failed_latency_ms"] is None or summary["max_failed_latency_ms"] < 2000
    assert summary["final_version"] == 3
