"""A small load generator for fault runs: client threads on loopback while things break.

``run_load(make_client, duration_s, threads, request_fn, events)`` starts ``threads`` worker
threads, each with its own client (``make_client(i)``), that call ``request_fn(client, rng)`` back
to back (``random_score_request`` builds one: ``ServingClient.score_with_source`` for a random user
with that user's fixed random history and random candidates) and record every request as a
``Record``: start time (seconds since the run began), latency, ``"OK"`` or the failure's code (the
gRPC status name, e.g. ``UNAVAILABLE``, or the exception's class name), and the version that
answered (plus where the user state came from, ``cache`` / ``user_tower``). After a failure a
thread pauses ``failure_pause_s`` (a client's minimal backoff) so a dead server is not spun on.

A controller thread fires the ``Event`` s — ``Event(at, action, label)`` or a plain
``(at, action, label)`` tuple — in order, each no earlier than ``at`` seconds into the run and
never before the previous one returned; ``action(run)`` receives the ``LoadRun`` (clock, records so
far, clients, ``wait_for``) and its return value lands in the summary. An action may declare a
*downtime window*: ``run.begin_downtime(label, at=t_fault)`` once the fault is in place (from then
on, only the repaired system can answer), ``run.end_downtime(window)`` once it is repaired (e.g.
the restarted server printed its ready line). The window closes when every thread has had a
successful request that started after ``begin_downtime``: it covers the clients' reconnect too,
which ``reconnect_lag_s`` (close - repaired) reports separately. A failure counts as inside a
window when it *ended* inside it (a request in flight at the kill fails at the kill).

The load runs ``duration_s`` seconds and at least ``tail_s`` after the last event returned (hard
cap ``max_run_s``); then the workers finish their request in flight and the clients are closed.
The summary (``summarize``; ``summary_markdown`` renders it): requests, throughput, failures by
code, inside / outside the downtime windows (with the first few outside ones), p50 / p99 / max
latency of the successful requests overall and in ``swap_window_s`` either side of each version
swap (the first request answered by a version newer than every earlier answer), the max latency of
a failed request overall and per window (failures must be fast, never hang to the deadline),
requests per version and per state source, the clients' summed ``stats``, and the events with the
latency and failures of the requests that started while each ran.

``fault_scenario(source, workdir, redis_server, ...)`` is the fault run of
``tests/serving/test_fault_run.py`` and ``bench/fault_run.py`` (they differ only in duration and
threads): its own ``tfrec serve`` (``ServerProcess``) on a copy of one SavedModel version, clients
with a ``RedisCache`` on ``redis_server`` (anything shaped like ``tests.redis_fixtures.RedisServer``:
``url``, ``pid``, ``start()``, ``stop()``), and in order:

a. version 2 lands atomically (staged in a hidden directory, ``os.rename`` d into place) and
   answers every client thread (each event waits for its effect before the next one fires);
b. version 3 lands non-atomically, as an operator's copy does: ``saved_model.pb`` first, a pause
   (``copy_pause_s``, and until the server has tried the partial directory and reported it ``END``),
   then ``variables/`` and the assets; version 2 must keep serving meanwhile and version 3 serve
   within ``reload_deadline_s`` of the copy's end (then answer every thread);
c. version 4 lands broken (garbage ``saved_model.pb``): ``GetModelStatus`` must report it ``END``
   with an error while the previous version keeps serving; then the operator removes it (a
   restarted server's ``latest`` policy would aspire it alone and serve nothing, as TF Serving);
d. Redis is SIGKILLed, requests keep succeeding (states from ``user_tower``), Redis comes back on
   the same port and cache hits resume;
e. the server is SIGKILLed and restarted on the same port: the downtime window; every failure in it
   must be ``UNAVAILABLE`` and end within ``fast_failure_s``; requests succeed again afterwards.

It returns the summary plus ``checks`` (name -> ``{"ok", "detail"}``: the properties above, no
failure outside the downtime window, the final version 3) and ``scenario`` facts (timings,
``GetModelStatus`` seen mid-copy, the broken version's error). Plain Python + numpy + gRPC.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

log = logging.getLogger("tfrec.serving.loadgen")

OK = "OK"


@dataclass
class Record:
    """One request. Times are seconds since the run began."""
    thread: int
    start: float
    latency: float
    code: str                       # "OK", a grpc.StatusCode name or an exception class name
    version: Optional[int] = None   # the version that answered (successful requests)
    source: Optional[str] = None    # where the user state came from ("cache" / "user_tower")
    detail: str = ""                # the failure's message (first 200 characters)

    @property
    def ok(self) -> bool:
        return self.code == OK

    @property
    def end(self) -> float:
        return self.start + self.latency


@dataclass
class Event:
    """``action(run)`` fired ``at`` seconds into the run (after the previous event returned)."""
    at: float
    action: Callable[["LoadRun"], Any]
    label: str
    started: Optional[float] = None
    ended: Optional[float] = None
    result: Any = None
    error: Optional[str] = None


@dataclass
class Window:
    """A declared downtime: ``begin`` (fault in place) .. ``end`` (every thread answered again)."""
    label: str
    begin: float
    since: float                    # a success of a request started after this proves recovery
    ready: Optional[float] = None   # repaired (e.g. the restarted server is up)
    end: Optional[float] = None     # filled in by ``summarize``


class LoadRun:
    """What event actions see: ``now()``, the ``records`` so far, the ``clients``, downtime windows."""

    def __init__(self, threads: int):
        self.t0 = time.monotonic()
        self.threads = threads
        self.records: List[Record] = []   # appended by the workers (list.append is atomic)
        self.clients: list = []
        self.windows: List[Window] = []
        self.stopping = threading.Event()

    def now(self) -> float:
        return time.monotonic() - self.t0

    def snapshot(self, since: float = 0.0, until: Optional[float] = None) -> List[Record]:
        """Records that started in [since, until]."""
        return [r for r in list(self.records) if r.start >= since and (until is None or r.start <= until)]

    def wait_for(self, predicate: Callable[[], bool], timeout: float, poll: float = 0.05) -> Optional[float]:
        """Seconds until ``predicate()`` held, or None at the timeout (or when the run is stopping)."""
        started = time.monotonic()
        while True:
            try:
                if predicate():
                    return time.monotonic() - started
            except Exception:  # a probe against a server that is down: not yet
                pass
            if time.monotonic() - started >= timeout or self.stopping.is_set():
                return None
            time.sleep(poll)

    def begin_downtime(self, label: str, at: Optional[float] = None) -> Window:
        """Opens a downtime window; call it once the fault is in place (``at``: when it began)."""
        now = self.now()
        window = Window(label, begin=now if at is None else at, since=now)
        self.windows.append(window)
        return window

    def end_downtime(self, window: Window) -> None:
        """The fault is repaired; the window closes when every thread has succeeded again."""
        window.ready = self.now()

    def client_stats(self) -> Dict[str, int]:
        total: Dict[str, int] = {}
        for client in self.clients:
            for key, value in dict(getattr(client, "stats", {}) or {}).items():
                total[key] = total.get(key, 0) + int(value)
        return total


def _failure(err: BaseException):
    """(code, detail) of a failed request."""
    code = getattr(err, "code", None)
    if callable(code):
        try:
            status = code()
            details = err.details() if callable(getattr(err, "details", None)) else str(err)
            return status.name, (details or "")[:200]
        except Exception:
            pass
    return type(err).__name__, str(err)[:200]


def run_load(make_client: Callable[[int], Any], duration_s: float, threads: int,
             request_fn: Callable[[Any, np.random.Generator], Any], events: Sequence = (), seed: int = 0,
             tail_s: float = 1.0, max_run_s: Optional[float] = None, failure_pause_s: float = 0.05,
             think_s: float = 0.0, swap_window_s: float = 1.0, progress: Optional[Callable[[str], None]] = None,
             run: Optional[LoadRun] = None) -> dict:
    """Drives the load and fires the events (module docstring); returns ``summarize``'s summary.

    ``request_fn(client, rng)`` returns the answering version, or ``(version, source)``; it raises
    on failure. ``max_run_s`` (default ``duration_s + 300``) bounds the run even when an event hangs.
    ``think_s``: each thread's pause after a successful request (0: back to back; on a small box a
    pause leaves the server CPU to load versions, as a real server has).
    """
    events = [e if isinstance(e, Event) else Event(*e) for e in events]
    run = run or LoadRun(threads)
    run.threads = threads
    run.clients = [make_client(i) for i in range(threads)]
    max_run_s = duration_s + 300.0 if max_run_s is None else max_run_s
    say = progress or (lambda _msg: None)
    stop = threading.Event()

    def worker(i: int) -> None:
        rng = np.random.default_rng([seed, i])
        client = run.clients[i]
        while not stop.is_set():
            started = time.monotonic()
            version = source = None
            try:
                out = request_fn(client, rng)
                code, detail = OK, ""
                if isinstance(out, tuple):
                    version, source = out[0], (out[1] if len(out) > 1 else None)
                else:
                    version = out
            except Exception as err:  # grpc.RpcError, LookupError, ...
                code, detail = _failure(err)
            latency = time.monotonic() - started
            run.records.append(Record(i, started - run.t0, latency, code,
                                      None if version is None else int(version), source, detail))
            if code != OK:
                stop.wait(failure_pause_s)
            elif think_s > 0:
                stop.wait(think_s)

    def controller() -> None:
        for event in events:
            delay = event.at - run.now()
            if delay > 0 and stop.wait(delay):
                return
            event.started = run.now()
            say(f"[{event.started:6.2f} s] {event.label} ...")
            try:
                event.result = event.action(run)
            except Exception as err:  # recorded; the run goes on
                log.exception("event %s failed", event.label)
                event.error = f"{type(err).__name__}: {err}"
            event.ended = run.now()
            say(f"[{event.ended:6.2f} s] {event.label} done"
                + (f": {event.error}" if event.error else f": {_short(event.result)}"))

    workers = [threading.Thread(target=worker, args=(i,), name=f"loadgen-{i}", daemon=True) for i in range(threads)]
    ctl = threading.Thread(target=controller, name="loadgen-events", daemon=True)
    for t in workers:
        t.start()
    ctl.start()
    while True:
        now = run.now()
        last = max([e.ended for e in events if e.ended is not None], default=0.0)
        done = not ctl.is_alive()
        if (done and now >= duration_s and now >= last + tail_s) or now >= max_run_s:
            break
        time.sleep(0.05)
    run.stopping.set()
    stop.set()
    for t in workers:
        t.join(timeout=60)
    ctl.join(timeout=1)
    for client in run.clients:
        try:
            client.close()
        except Exception:
            pass
    summary = summarize(run, events, swap_window_s=swap_window_s)
    summary["hung_event"] = next((e.label for e in events if e.started is not None and e.ended is None), None)
    return summary


def _short(value, limit: int = 160) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[:limit] + "..."


def _ms(latencies: Sequence[float]) -> dict:
    if not len(latencies):
        return {"n": 0, "p50_ms": None, "p99_ms": None, "max_ms": None}
    a = np.asarray(latencies) * 1e3
    return {"n": int(a.size), "p50_ms": round(float(np.percentile(a, 50)), 2),
            "p99_ms": round(float(np.percentile(a, 99)), 2), "max_ms": round(float(a.max()), 2)}


def _count(values) -> Dict[str, int]:
    out: Dict[str, int] = {}
    for v in values:
        out[str(v)] = out.get(str(v), 0) + 1
    return dict(sorted(out.items()))


def summarize(run: LoadRun, events: Sequence[Event] = (), swap_window_s: float = 1.0) -> dict:
    """The summary of a finished run (module docstring); closes the downtime windows."""
    records = sorted(run.records, key=lambda r: r.start)
    ok = [r for r in records if r.ok]
    failed = [r for r in records if not r.ok]
    elapsed = max((r.end for r in records), default=0.0)

    windows = []
    for w in run.windows:
        firsts = []
        for i in range(run.threads):
            first = next((r for r in ok if r.thread == i and r.start >= w.since), None)
            firsts.append(first.end if first is not None else None)
        w.end = max(firsts) if w.ready is not None and firsts and None not in firsts else None
        close = w.end if w.end is not None else float("inf")
        inside = [r for r in failed if w.begin <= r.end <= close]
        windows.append({
            "label": w.label, "begin_s": round(w.begin, 3), "ready_s": _round(w.ready), "end_s": _round(w.end),
            "repair_s": _round(None if w.ready is None else w.ready - w.begin),
            "downtime_s": _round(None if w.end is None else w.end - w.begin),
            "reconnect_lag_s": _round(None if w.end is None or w.ready is None else w.end - w.ready),
            "requests_inside": sum(1 for r in records if w.begin <= r.end <= close),
            "failures": _count(r.code for r in inside),
            "max_failed_latency_ms": _round(max((r.latency for r in inside), default=None), 1e3),
        })

    def in_window(r: Record) -> bool:
        return any(w.begin <= r.end <= (w.end if w.end is not None else float("inf")) for w in run.windows)

    outside = [r for r in failed if not in_window(r)]
    swaps, newest = [], None
    for r in ok:
        if r.version is None:
            continue
        if newest is None:
            newest = r.version
        elif r.version > newest:
            around = [x for x in records if abs(x.start - r.start) <= swap_window_s]
            swaps.append({"from": newest, "to": r.version, "at_s": round(r.start, 3),
                          **_ms([x.latency for x in around if x.ok]),
                          "failures": _count(x.code for x in around if not x.ok)})
            newest = r.version
    tail = [r.version for r in ok[-max(1, 3 * run.threads):]]
    return {
        "threads": run.threads, "elapsed_s": round(elapsed, 2), "requests": len(records), "ok": len(ok),
        "failed": len(failed), "throughput_rps": round(len(records) / elapsed, 1) if elapsed else None,
        "failures_by_code": _count(r.code for r in failed),
        "failures_inside_downtime": _count(r.code for r in failed if in_window(r)),
        "failures_outside_downtime": _count(r.code for r in outside),
        "outside_examples": [asdict(r) for r in outside[:5]],
        "latency": _ms([r.latency for r in ok]),
        "max_failed_latency_ms": _round(max((r.latency for r in failed), default=None), 1e3),
        "swaps": swaps, "windows": windows,
        "versions": _count(r.version for r in ok), "sources": _count(r.source for r in ok if r.source),
        "final_version": max(set(tail), key=tail.count) if tail else None,
        "client_stats": run.client_stats(),
        "events": [{"label": e.label, "at_s": e.at, "started_s": _round(e.started), "ended_s": _round(e.ended),
                    "error": e.error, "result": e.result, **_during(records, e.started, e.ended)} for e in events],
    }


def _during(records: Sequence[Record], t0: Optional[float], t1: Optional[float]) -> dict:
    """Latency of the successful requests and the failures by code, between ``t0`` and ``t1``."""
    inside = [r for r in records if t0 is not None and t1 is not None and t0 <= r.start <= t1]
    return {"latency": _ms([r.latency for r in inside if r.ok]), "failures": _count(r.code for r in inside if not r.ok)}


def _round(value, scale: float = 1.0, digits: int = 3):
    return None if value is None else round(value * scale, digits)


# -- requests ---------------------------------------------------------------------------------------

def random_history(user_id: int, length: int, n_items: int, now: int = 1_700_000_000) -> dict:
    """A fixed random history for one user (seeded by the id: a cached state stays that user's)."""
    rng = np.random.default_rng(int(user_id) + 1)
    n = int(rng.integers(1, length + 1))
    return {"item_id": rng.integers(0, n_items, n), "behavior_type": rng.integers(0, 6, n),
            "timestamp": np.sort(now - rng.integers(1, 10**7, n)), "duration": rng.exponential(20.0, n),
            "amount": np.zeros(n)}


def random_score_request(n_users: int, n_items: int, history_length: int = 12, n_candidates: int = 8,
                         hot_users: int = 0, hot_fraction: float = 0.5):
    """``request_fn`` for ``run_load``: ``score_with_source`` for a random user (with that user's
    ``random_history``) and ``n_candidates`` random items; returns (version, source). With
    ``hot_users`` H, a ``hot_fraction`` of the requests go to users ``0..H-1`` (their states are soon
    cached) and the rest to any of ``n_users`` (mostly cache misses: ``user_tower`` calls)."""
    hot = {u: random_history(u, history_length, n_items) for u in range(hot_users)}

    def request(client, rng: np.random.Generator):
        if hot_users and rng.random() < hot_fraction:
            user = int(rng.integers(0, hot_users))
        else:
            user = int(rng.integers(0, n_users))
        history = hot[user] if user in hot else random_history(user, history_length, n_items)
        candidates = rng.integers(0, n_items, n_candidates)
        probs, (version, source) = client.score_with_source(user, history, candidates)
        if probs.shape != (n_candidates,) or not np.all(np.isfinite(probs)):
            raise ValueError(f"bad probabilities {probs!r}")
        return version, source

    return request


# -- the fault scenario -------------------------------------------------------------------------------

def model_status(target: str, model_name: str, timeout: float = 2.0) -> Dict[int, dict]:
    """``GetModelStatus`` over a fresh channel (no reconnect backoff): version -> state, error."""
    import grpc
    from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

    from tfrec.serving.model_manager import State

    with grpc.insecure_channel(target) as channel:
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = model_name
        response = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(request, timeout=timeout)
    return {s.version: {"state": State(s.state).name, "error_code": s.status.error_code,
                        "error_message": s.status.error_message[:300]} for s in response.model_version_status}


def _state(target, model_name, version) -> Optional[dict]:
    try:
        return model_status(target, model_name).get(version)
    except Exception as err:
        return {"state": "?", "error_code": -1, "error_message": f"GetModelStatus failed: {err}"[:300]}


def _check(checks: dict, name: str, ok: bool, detail: Any = "") -> None:
    checks[name] = {"ok": bool(ok), "detail": detail}


def fault_scenario(source: os.PathLike, workdir: os.PathLike, redis_server, model_name: str = "dmgin",
                   duration_s: float = 8.0, threads: int = 3, poll_seconds: float = 0.2,
                   client_timeout: float = 5.0, copy_pause_s: float = 1.0, reload_deadline_s: float = 8.0,
                   load_timeout_s: float = 30.0, fast_failure_s: float = 2.0, redis_outage_s: Optional[float] = None,
                   n_users: int = 10_000, hot_users: int = 20, hot_fraction: float = 0.5, history_length: int = 12,
                   n_candidates: int = 8, think_s: float = 0.05, seed: int = 0, server_args: Sequence[str] = (),
                   progress: Optional[Callable[[str], None]] = None) -> dict:
    """The fault run a–e of the module docstring; returns the summary with ``checks`` and ``scenario``.

    Args:
      source: one SavedModel version directory (``<base>/<model>/<version>``); every good version
        the scenario serves is a copy of it.
      workdir: an empty directory for the served base path and the server logs.
      redis_server: a started ``tests.redis_fixtures.RedisServer`` (or alike).
      duration_s: the nominal run length; the events are spread over it (one every duration / 6 s,
        each waiting for its effect), and the run lasts until the last one is done plus a tail.
      reload_deadline_s: how soon after the non-atomic copy ends version 3 must serve.
      fast_failure_s: the longest a failed request may take (the client timeout is ``client_timeout``).
      n_users, hot_users, hot_fraction: the request mix (``random_score_request``): half the requests
        from 20 hot users (cache hits), half from 10,000 (cache misses, ``user_tower``), so both
        paths meet every fault.
      think_s: each client thread's pause between requests (``run_load``).
    """
    from tfrec.cache import RedisCache
    from tfrec.serving.client import ServingClient
    from tfrec.serving.process import ServerProcess

    source, workdir = Path(source), Path(workdir)
    say = progress or (lambda _msg: None)
    base = workdir / "models"
    model_dir = base / model_name
    shutil.copytree(source, model_dir / "1")
    staged = model_dir / ".staged-2"  # hidden: not a version until renamed
    shutil.copytree(source, staged)
    try:
        n_items = int(json.loads((source / "assets.extra" / "tfrec_export.json").read_text())["item_table"]["n_items"])
    except (OSError, KeyError, ValueError):
        n_items = 2
    serve_args = ["--model-base-path", str(base), "--file-system-poll-wait-seconds", str(poll_seconds), *server_args]
    started = time.monotonic()
    servers = {"current": ServerProcess(serve_args, log_path=workdir / "serve-1.log")}
    port = servers["current"].port
    target = servers["current"].target
    facts: Dict[str, Any] = {"server_start_s": round(time.monotonic() - started, 2), "port": port,
                             "n_items": n_items}
    say(f"server up on {target} in {facts['server_start_s']} s")
    spacing = duration_s / 6.0
    outage = spacing if redis_outage_s is None else redis_outage_s
    run = LoadRun(threads)

    def answered(version: int, since: float) -> bool:
        """Every client thread has had an answer from ``version`` since ``since``."""
        return len({r.thread for r in run.snapshot(since) if r.ok and r.version == version}) == threads

    def serving_version(before: float) -> Optional[int]:
        """The newest version that answered in the second before ``before``."""
        versions = [r.version for r in run.snapshot(max(0.0, before - 1.0), before) if r.ok]
        return max(versions) if versions else None

    def state_is(version: int, state: str):
        return lambda: (_state(target, model_name, version) or {}).get("state") == state

    # a. a good version lands atomically
    def atomic_version(run: LoadRun) -> dict:
        t = run.now()
        os.rename(staged, model_dir / "2")
        available = run.wait_for(state_is(2, "AVAILABLE"), load_timeout_s)
        first = run.wait_for(lambda: answered(2, t), load_timeout_s)
        return {"at_s": round(t, 3), "available_after_s": _round(available),
                "all_threads_on_v2_after_s": None if first is None else _round(first + (available or 0))}

    # b. a good version lands non-atomically (saved_model.pb first, a pause, then the rest)
    def slow_copy(run: LoadRun) -> dict:
        dst = model_dir / "3"
        before = serving_version(run.now())
        t = run.now()
        dst.mkdir()
        shutil.copy2(source / "saved_model.pb", dst / "saved_model.pb")
        time.sleep(copy_pause_s)
        # ... and the copy stalls until the server has tried the partial directory and failed, so the
        # retry after the copy is exercised whatever the box's speed
        failed = run.wait_for(state_is(3, "END"), load_timeout_s)
        mid = _state(target, model_name, 3)
        shutil.copytree(source, dst, dirs_exist_ok=True,
                        ignore=lambda d, names: ["saved_model.pb"] if Path(d) == source else [])
        done = run.now()
        say(f"[{done:6.2f} s] copy of version 3 complete; GetModelStatus mid-copy: {mid}")
        available = run.wait_for(state_is(3, "AVAILABLE"), load_timeout_s)
        after = _state(target, model_name, 3)
        first = run.wait_for(lambda: answered(3, done), load_timeout_s) if available is not None else None
        return {"copy_start_s": round(t, 3), "copy_end_s": round(done, 3), "serving_before": before,
                "partial_load_failed_after_s": _round(None if failed is None else failed + copy_pause_s),
                "status_mid_copy": mid, "status_after_wait": after,
                "available_after_copy_s": _round(available),
                "all_threads_on_v3_after_copy_s": None if first is None else _round(first + available)}

    # c. a broken version lands; then the operator removes it
    def broken_version(run: LoadRun) -> dict:
        before = serving_version(run.now())
        tmp = model_dir / ".broken-4"
        tmp.mkdir()
        (tmp / "saved_model.pb").write_bytes(b"not a SavedModel")
        t = run.now()
        os.rename(tmp, model_dir / "4")
        reported = run.wait_for(state_is(4, "END"), load_timeout_s)
        status = _state(target, model_name, 4)
        time.sleep(max(0.5, spacing / 2))  # requests keep flowing on the previous version
        shutil.rmtree(model_dir / "4")
        return {"at_s": round(t, 3), "removed_s": round(run.now(), 3), "serving_before": before,
                "reported_after_s": _round(reported), "status": status}

    # d. Redis is SIGKILLed, later started again on the same port
    def redis_outage(run: LoadRun) -> dict:
        errors_before = run.client_stats().get("cache_errors", 0)
        t = run.now()
        os.kill(redis_server.pid, signal.SIGKILL)
        redis_server.stop()  # reaps it
        time.sleep(outage)
        errors = run.client_stats().get("cache_errors", 0) - errors_before
        back = run.now()
        redis_server.start()
        up = run.now()
        hit = run.wait_for(lambda: any(r.ok and r.source == "cache" for r in run.snapshot(up)), load_timeout_s)
        return {"killed_s": round(t, 3), "restarted_s": round(back, 3), "up_s": round(up, 3),
                "cache_errors_during": errors, "first_hit_after_s": _round(hit)}

    # e. the server is SIGKILLed and restarted on the same port
    def server_restart(run: LoadRun) -> dict:
        old = servers["current"]
        t = run.now()
        old.proc.kill()
        old.proc.wait()
        window = run.begin_downtime("server SIGKILL + restart", at=t)
        old.stop()
        for attempt in range(3):
            try:
                servers["current"] = ServerProcess([*serve_args, "--port", str(port)],
                                                   log_path=workdir / f"serve-2-{attempt}.log")
                break
            except RuntimeError as err:  # the port in TIME_WAIT or taken: try again
                if attempt == 2:
                    raise
                say(f"restart on port {port} failed ({str(err).splitlines()[0]}); again")
                time.sleep(0.5)
        run.end_downtime(window)
        back = run.wait_for(lambda: any(r.ok for r in run.snapshot(window.ready)), load_timeout_s)
        return {"killed_s": round(t, 3), "ready_s": round(window.ready, 3),
                "restart_s": round(window.ready - t, 3), "first_ok_after_ready_s": _round(back)}

    events = [Event(1 * spacing, atomic_version, "a: version 2 lands atomically"),
              Event(2 * spacing, slow_copy, "b: version 3 copied non-atomically"),
              Event(3 * spacing, broken_version, "c: broken version 4 lands (then removed)"),
              Event(4 * spacing, redis_outage, "d: Redis SIGKILL, restart"),
              Event(5 * spacing, server_restart, "e: server SIGKILL, restart on the same port")]

    def make_client(i: int):
        return ServingClient(target, model_name, RedisCache(redis_server.url), timeout=client_timeout,
                             max_history_length=history_length)

    try:
        summary = run_load(make_client, duration_s, threads,
                           random_score_request(n_users, n_items, history_length, n_candidates, hot_users,
                                                hot_fraction),
                           events, seed=seed, tail_s=max(1.0, spacing), failure_pause_s=0.05, think_s=think_s,
                           progress=say, run=run)
    finally:
        servers["current"].stop()
    facts["server_log"] = [line[:300] for path in sorted(workdir.glob("serve-*.log"))
                           for line in path.read_text(errors="replace").splitlines()
                           if " loaded " in line or "failed to load" in line or " unloaded " in line]
    summary["scenario"] = {**facts, "duration_s": duration_s, "threads": threads, "poll_seconds": poll_seconds,
                           "client_timeout_s": client_timeout, "copy_pause_s": copy_pause_s,
                           "reload_deadline_s": reload_deadline_s, "fast_failure_s": fast_failure_s,
                           "redis_outage_s": outage, "think_s": think_s, "n_users": n_users, "hot_users": hot_users,
                           "hot_fraction": hot_fraction}
    summary["checks"] = _fault_checks(summary, run, events, fast_failure_s, reload_deadline_s)
    return summary


def _fault_checks(summary: dict, run: LoadRun, events: Sequence[Event], fast_failure_s: float,
                  reload_deadline_s: float) -> dict:
    checks: Dict[str, dict] = {}
    a, b, c, d, e = (ev.result or {} for ev in events)
    records = sorted(run.records, key=lambda r: r.start)

    def between(t0, t1):
        return [r for r in records if t0 is not None and t1 is not None and r.start >= t0 and r.end <= t1]

    _check(checks, "every event ran", all(ev.error is None and ev.ended is not None for ev in events),
           {ev.label: ev.error for ev in events if ev.error or ev.ended is None})
    _check(checks, "a: version 2 answers every thread after the atomic rename",
           a.get("all_threads_on_v2_after_s") is not None, a)
    during_copy = between(b.get("copy_start_s"), b.get("copy_end_s"))
    bad = [asdict(r) for r in during_copy if not r.ok or r.version is None or r.version >= 3][:3]
    _check(checks, "b: the old version serves during the copy", bool(during_copy) and not bad,
           {"requests": len(during_copy), "serving_before": b.get("serving_before"), "other": bad})
    late = b.get("available_after_copy_s")
    _check(checks, f"b: version 3 serves within {reload_deadline_s:g} s of the copy's end",
           late is not None and late <= reload_deadline_s and b.get("all_threads_on_v3_after_copy_s") is not None,
           {k: b.get(k) for k in ("partial_load_failed_after_s", "status_mid_copy", "status_after_wait",
                                  "available_after_copy_s",
                                  "all_threads_on_v3_after_copy_s")})
    status = c.get("status") or {}
    _check(checks, "c: GetModelStatus reports version 4 END with an error",
           status.get("state") == "END" and status.get("error_code", 0) != 0, status)
    while_broken = between(c.get("at_s"), c.get("removed_s"))
    bad = [asdict(r) for r in while_broken if not r.ok or r.version is None or r.version >= 4][:3]
    _check(checks, "c: the previous version keeps serving", bool(while_broken) and not bad,
           {"requests": len(while_broken), "serving_before": c.get("serving_before"), "other": bad})
    outage = between(d.get("killed_s"), d.get("up_s"))
    _check(checks, "d: requests succeed while Redis is down",
           bool(outage) and all(r.ok for r in outage) and d.get("cache_errors_during", 0) > 0,
           {"requests": len(outage), "failed": sum(not r.ok for r in outage),
            "cache_errors": d.get("cache_errors_during")})
    _check(checks, "d: cache hits resume after Redis restarts", d.get("first_hit_after_s") is not None, d)
    window = summary["windows"][0] if summary["windows"] else {}
    codes = window.get("failures", {})
    _check(checks, "e: every failure in the downtime is UNAVAILABLE", bool(window) and set(codes) <= {"UNAVAILABLE"},
           codes)
    slowest = window.get("max_failed_latency_ms")
    _check(checks, f"e: failed requests end within {fast_failure_s:g} s",
           summary["max_failed_latency_ms"] is None or summary["max_failed_latency_ms"] <= fast_failure_s * 1e3,
           {"max_failed_latency_ms": summary["max_failed_latency_ms"], "in_downtime": slowest})
    _check(checks, "e: requests succeed after the restart",
           window.get("end_s") is not None and e.get("first_ok_after_ready_s") is not None, window)
    _check(checks, "no failure outside the downtime window", not summary["failures_outside_downtime"],
           {"by_code": summary["failures_outside_downtime"], "examples": summary["outside_examples"]})
    _check(checks, "final version is 3", summary["final_version"] == 3, summary["final_version"])
    return checks


def summary_markdown(summary: dict) -> str:
    """The figures of a (fault) run as Markdown tables."""
    def f(value, unit=""):
        return "n/a" if value is None else f"{value:,}{unit}" if isinstance(value, int) else f"{value:g}{unit}"

    def codes(d):
        return ", ".join(f"{k} {v}" for k, v in d.items()) or "none"

    lat = summary["latency"]
    window = summary["windows"][0] if summary["windows"] else {}
    rows = [("requests", f(summary["requests"])), ("threads", f(summary["threads"])),
            ("run length", f(summary["elapsed_s"], " s")), ("throughput", f(summary["throughput_rps"], " req/s")),
            ("failures (all)", codes(summary["failures_by_code"])),
            ("failures inside the downtime", codes(summary["failures_inside_downtime"])),
            ("failures outside the downtime", codes(summary["failures_outside_downtime"])),
            ("latency p50 / p99 / max (ok)", f"{f(lat['p50_ms'])} / {f(lat['p99_ms'])} / {f(lat['max_ms'])} ms"),
            ("max latency of a failed request", f(summary["max_failed_latency_ms"], " ms"))]
    for s in summary["swaps"]:
        rows.append((f"swap v{s['from']} -> v{s['to']} at {s['at_s']:g} s (±1 s): p50 / p99",
                     f"{f(s['p50_ms'])} / {f(s['p99_ms'])} ms, {s['n']} ok, failures: {codes(s['failures'])}"))
    if window:
        rows += [("server restart (kill -> ready)", f(window["repair_s"], " s")),
                 ("downtime seen by clients (kill -> every thread ok)", f(window["downtime_s"], " s")),
                 ("reconnect lag (ready -> every thread ok)", f(window["reconnect_lag_s"], " s"))]
    rows += [("answers per version", codes(summary["versions"])), ("user state from", codes(summary["sources"])),
             ("final version", f(summary["final_version"]))]
    lines = ["| figure | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows]
    if summary["events"]:
        lines += ["", "| event | from / to (s) | requests ok | p50 / p99 (ms) | failures |", "|---|---|---:|---|---|"]
        for e in summary["events"]:
            lat = e["latency"]
            lines.append(f"| {e['label']} | {f(e['started_s'])} / {f(e['ended_s'])} | {lat['n']:,} "
                         f"| {f(lat['p50_ms'])} / {f(lat['p99_ms'])} | {codes(e['failures'])} |")
    if "checks" in summary:
        lines += ["", "| check | result |", "|---|---|"]
        lines += [f"| {name} | {'ok' if c['ok'] else 'FAILED: ' + _short(c['detail'], 300)} |"
                  for name, c in summary["checks"].items()]
    return "\n".join(lines)
