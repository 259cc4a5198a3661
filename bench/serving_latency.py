"""Per-request serving latency: cached user state + ``score`` vs. the full ``serving_default`` forward.

Over gRPC on loopback against ``tfrec serve`` (TF Serving's API, ``tfrec.serving.server``) started
in a child process by ``ServerProcess``, one server per model. By default it builds *untrained*
DMGIN and DIN with ``pipelines/configs/{dmgin,din}.yaml`` on the synthetic ``medium`` spec
(5,000 items, max_history_length 1,500) and a random item -> group table with the preset's group
count (50 topics + the reserved group 0; latency does not depend on the weights), and exports them
to a temporary base dir; ``--saved-model-base DIR`` uses existing exports instead (e.g.
``saved_models`` after ``./run.sh demo``; the latest version of each model).

Per model, with one distinct user per request (a random history of ``--history-length``
behaviors, default the model's max_history_length, so every request carries the full L) and
``--candidates`` random candidates (default 100); every user's state is precomputed through
``user_tower`` into a ``SQLiteCache`` first. Each path runs ``--warmup`` requests (default 20)
then ``--requests`` timed ones (default 300) on the same users and candidates, path after path
(``--order blocked``, the default) or all paths per request (``--order interleaved``):

* ``cached (client)``: ``ServingClient.score_with_source`` as the client runs it: the state read
  from the SQLite cache (a hit; asserted) + ``score`` request built + Predict + decode.
* ``score RPC``: the same ``score`` PredictRequest, prebuilt; only the stub's ``Predict`` call.
* ``full (client)``: ``user_features`` from the raw history + request built + ``serving_default``
  Predict + decode (what a client without the user tower split does).
* ``serving_default RPC``: that request prebuilt; only ``Predict``.
* ``user_tower (client)`` / ``user_tower RPC``: the state computation alone (the cost of a miss).

Prints p50 / p90 / p99 / mean in ms, the full / cached ratio at p50 and p99, the compute floor
(FLOPs per candidate of ``score`` and of ``serving_default`` from ``bench/score_flops.py``, this
CPU's matmul GFLOP/s from ``bench/matmul_gflops.py``, FLOPs / GFLOP/s for the request) and the
goals (cached p50 <= 5 ms, p99 <= 15 ms, full / cached >= 10x at p50). The cached-path
probabilities are checked against ``serving_default``'s for every timed request (allclose), so
both paths compute the same thing. Then (unless ``--no-breakdown``) it times the pieces of one
request, interleaved, in this process: cache read, request building and serialisation, the
server's request parse, ``Servable.predict`` (TensorProto -> numpy, ``tf.constant``, the
signature call, and the rest: its Python validation), response building, plus a bare gRPC round
trip (``GetModelStatus`` to the live server). gRPC's share is what the RPC p50 leaves over, and
the cached path is summed up as client / gRPC / server Python / TensorFlow.

The client (this process) and the server share the machine: on a 2-core box both run on the same
2 cores, as in the issue's setup. Figures move with whatever else runs: run twice, compare medians.

    python bench/serving_latency.py                                  # DMGIN and DIN, untrained, medium spec
    python bench/serving_latency.py --models din
    python bench/serving_latency.py --saved-model-base saved_models  # exports of ./run.sh demo
    python bench/serving_latency.py --intra-op-threads 1 --json /tmp/latency.json
    python bench/serving_latency.py --models dmgin --history-length 10000 --no-breakdown
    python bench/serving_latency.py --order interleaved --requests 1000

``bench/serving_throughput.py`` imports the setup (exports, users, cache precompute, server) from
here. A figure, never a test: nothing but the cached-vs-full equality is asserted.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
for _p in (str(REPO), str(BENCH_DIR)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import numpy as np

CONFIG_DIR = REPO / "pipelines" / "configs"
MODEL_CHOICES = ("dmgin", "din")
PRESET = "medium"
NOW = 1_700_000_000  # request time of every user (epoch s); histories lie before it
GOAL_P50_MS, GOAL_P99_MS, GOAL_RATIO = 5.0, 15.0, 10.0
PERCENTILES = (50, 90, 99)


# -- setup shared with serving_throughput.py -------------------------------------------------------
def add_common_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--models", nargs="+", default=list(MODEL_CHOICES), choices=MODEL_CHOICES)
    p.add_argument("--saved-model-base", default=None,
                   help="use existing exports <DIR>/<model>/<version>/ (latest version) instead of building "
                        "untrained models into a temporary directory")
    p.add_argument("--candidates", type=int, default=100, help="candidates per request")
    p.add_argument("--history-length", type=int, default=None,
                   help="behaviors per user (default: the model's max_history_length). When models are built, "
                        "also their max_history_length; with --saved-model-base, capped at the export's")
    p.add_argument("--intra-op-threads", type=int, default=None,
                   help="server's --tensorflow-intra-op-parallelism (default: TF's, one per core); also used "
                        "for the matmul GFLOP/s timing")
    p.add_argument("--server-arg", action="append", default=[],
                   help="extra `tfrec serve` argument (repeatable), e.g. --server-arg=--grpc-max-threads=4")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--keep", action="store_true", help="keep the temporary exports, cache and server logs")
    p.add_argument("--json", default=None, help="write the figures to this JSON file")


def machine_info() -> dict:
    import tensorflow as tf

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpu": cpu, "tensorflow": tf.__version__, "python": platform.python_version()}


def medium_spec(history_length: int | None = None):
    """The synthetic medium preset's FeatureSpec (max_history_length overridden when given) and group count."""
    from tfrec.data.spec import FeatureSpec
    from tfrec.data.synthetic import preset

    cfg = preset(PRESET)
    spec = FeatureSpec(n_items=cfg.n_items, n_user_segments=cfg.n_user_segments,
                       max_history_length=int(history_length or cfg.max_history_length))
    return spec, cfg.n_topics


def build_exports(models, base: Path, history_length: int | None = None, seed: int = 0) -> dict[str, Path]:
    """Untrained models with the repo's yaml configs, exported to ``base/<model>/1``."""
    import tensorflow as tf

    from pipelines.common import load_yaml_config
    from tfrec.export import export_saved_model
    from tfrec.grouping import GroupTable
    from tfrec.training import build_model

    spec, k = medium_spec(history_length)
    rng = np.random.default_rng(seed)
    table = rng.integers(1, k + 1, spec.n_items).astype(np.int32)  # group 0 = unknown
    groups = GroupTable(table=table, centroids=np.zeros((k, 1), np.float32), n_groups=k + 1, report={})
    out = {}
    for name in models:
        tf.keras.utils.set_random_seed(seed)
        config = load_yaml_config(CONFIG_DIR / f"{name}.yaml")
        if config.get("top_k_groups") == 0:  # untrained, no data to size k from: the pre-issue-15 default
            config["top_k_groups"] = 16
        model = build_model(name, spec, config, groups)
        dummy = {key: tf.zeros([1] + [1] * (len(s.shape) - 1), s.dtype)
                 for key, s in spec.user_input_signature().items()}
        dummy["item_id"] = tf.zeros([1], tf.int64)
        model(dummy)  # create the variables
        started = time.perf_counter()
        out[name] = export_saved_model(model, spec, base, name, version=1,
                                       metadata={"note": "untrained, built by bench/serving_latency.py"})
        print(f"exported untrained {name} (L={spec.max_history_length}, {k + 1} groups) -> {out[name]} "
              f"({time.perf_counter() - started:.1f} s)", flush=True)
    return out


def find_exports(models, base: Path) -> dict[str, Path]:
    from tfrec.export import list_versions

    out = {}
    for name in models:
        versions = list_versions(base / name)
        if not versions:
            raise SystemExit(f"no exported version under {base / name}; run ./run.sh demo or drop --saved-model-base")
        out[name] = base / name / str(versions[-1])
    return out


def export_spec(version_dir: Path):
    from tfrec.data.spec import FeatureSpec
    from tfrec.export import read_export_metadata

    return FeatureSpec.from_dict(read_export_metadata(version_dir)["model_config"]["spec"])


@dataclasses.dataclass
class User:
    user_id: int
    segment: int
    history: dict  # item_id, behavior_type, timestamp, duration, amount (oldest first)


def make_users(spec, n: int, length: int, seed: int = 0, first_id: int = 0) -> list[User]:
    """``n`` users with random histories of ``length`` behaviors before ``NOW``."""
    rng = np.random.default_rng(seed)
    users = []
    for i in range(n):
        btype = rng.integers(0, spec.n_behavior_types, length)
        users.append(User(first_id + i, int(rng.integers(0, spec.n_user_segments)), {
            "item_id": rng.integers(0, spec.n_items, length),
            "behavior_type": btype,
            "timestamp": np.sort(NOW - rng.integers(1, 400 * 86_400, length)),
            "duration": rng.exponential(30.0, length).astype(np.float32),
            "amount": (rng.gamma(2.0, 10.0, length) * (btype == 4)).astype(np.float32),
        }))
    return users


def make_candidates(spec, n_requests: int, n_candidates: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, spec.n_items, (n_requests, n_candidates)).astype(np.int64)


def precompute(client, users: list[User], batch_size: int = 32) -> dict:
    """Every user's state through ``user_tower`` (batched) into ``client.cache``."""
    from tfrec.serving.precompute import precompute_states

    summary = precompute_states(client, client.cache, ((u.user_id, u.segment, u.history) for u in users), NOW,
                                batch_size)
    return {k: summary[k] for k in ("users", "version", "seconds")}


def cached_score(client, user: User, candidates: np.ndarray) -> np.ndarray:
    """The cached path as the client runs it (cache hit asserted): probabilities ``[C]``."""
    probs, (_, source) = client.score_with_source(user.user_id, None, candidates, user.segment, NOW)
    if source != "cache":
        raise AssertionError(f"user {user.user_id}: state came from {source}, expected a cache hit")
    return probs


@contextlib.contextmanager
def serving(name: str, version_dir: Path, work: Path, max_history_length: int, intra_op_threads=None,
            extra_args=(), timeout: float = 30.0):
    """``tfrec serve`` for one model + a ``ServingClient`` pinned to ``version_dir``'s version with a
    fresh SQLite cache; yields ``(server, client)``."""
    from tfrec.cache import SQLiteCache
    from tfrec.serving.client import ServingClient
    from tfrec.serving.process import ServerProcess

    args = ["--model-base-path", str(version_dir.parent), "--model-name", name,
            "--file-system-poll-wait-seconds", "0"]  # no directory polling thread during the timing
    if intra_op_threads:
        args += ["--tensorflow-intra-op-parallelism", str(intra_op_threads)]
    args += list(extra_args)
    db = work / f"user_state-{name}.db"
    for path in work.glob(f"user_state-{name}.db*"):
        path.unlink()
    started = time.perf_counter()
    server = ServerProcess(args, log_path=work / f"serve-{name}.log")
    try:
        print(f"tfrec serve {' '.join(args)} at {server.target} (ready in {time.perf_counter() - started:.1f} s)",
              flush=True)
        client = ServingClient(server.target, name, SQLiteCache(db), version=int(version_dir.name),
                               timeout=timeout, max_history_length=max_history_length)
        try:
            yield server, client
        finally:
            client.close()
    finally:
        server.stop()


def prepare(args, work: Path) -> dict[str, Path]:
    """The version dirs to serve: built into ``work/saved_models`` or found under ``--saved-model-base``."""
    if args.saved_model_base:
        return find_exports(args.models, Path(args.saved_model_base))
    return build_exports(args.models, work / "saved_models", args.history_length, args.seed)


def request_length(args, spec) -> int:
    if args.history_length and args.history_length > spec.max_history_length:
        print(f"note: --history-length {args.history_length} > the export's max_history_length "
              f"{spec.max_history_length}; requests carry the most recent {spec.max_history_length}")
    return min(args.history_length or spec.max_history_length, spec.max_history_length)


def stats_ms(seconds) -> dict:
    ms = np.asarray(seconds, np.float64) * 1e3
    out = {f"p{q}": float(np.percentile(ms, q)) for q in PERCENTILES}
    out.update(mean=float(ms.mean()), min=float(ms.min()), max=float(ms.max()), n=int(ms.size))
    return out


# -- the latency paths ------------------------------------------------------------------------------
def time_paths(fns: dict, n_warmup: int, n: int, order: str = "blocked"):
    """Calls each ``fn(i)`` for i in [0, n_warmup + n): path after path ("blocked": all requests of
    one path, then the next) or request after request ("interleaved": every path for request i,
    then i + 1). Returns {path: (seconds of the last n calls, their results)}."""
    out = {label: ([], []) for label in fns}

    def one(label, i):
        start = time.perf_counter()
        result = fns[label](i)
        took = time.perf_counter() - start
        if i >= n_warmup:
            out[label][0].append(took)
            out[label][1].append(result)

    if order == "blocked":
        for label in fns:
            for i in range(n_warmup + n):
                one(label, i)
    elif order == "interleaved":
        for i in range(n_warmup + n):
            for label in fns:
                one(label, i)
    else:
        raise ValueError(f"order must be blocked or interleaved, got {order!r}")
    return out


def measure_model(client, users: list[User], cands: np.ndarray, n_warmup: int, n: int,
                  order: str = "blocked") -> dict:
    """Times every path on the same users / candidates; checks cached == serving_default."""
    from tfrec.serving.requests import from_tensor_proto, predict_request

    version = client.pinned_version
    name = client.model_name
    stub = client.predictions
    timeout = client.timeout
    total = n_warmup + n
    feats = [client.features(u.user_id, u.history, u.segment, NOW) for u in users[:total]]
    states = [{k: v[None] for k, v in client.cache.get(name, version, u.user_id).items()} for u in users[:total]]
    req = {
        "score": [predict_request(name, {**s, "candidate_item_id": c[None]}, "score", version)
                  for s, c in zip(states, cands)],
        "serving_default": [predict_request(name, {**f, "candidate_item_id": c[None]}, "serving_default", version)
                            for f, c in zip(feats, cands)],
        "user_tower": [predict_request(name, f, "user_tower", version) for f in feats],
    }
    sizes = {k: int(np.median([r.ByteSize() for r in v[:50]])) for k, v in req.items()}

    def rpc(signature):
        return lambda i: stub.Predict(req[signature][i], timeout=timeout)

    def full_client(i):
        u = users[i]
        f = client.features(u.user_id, u.history, u.segment, NOW)
        return client.predict("serving_default", {**f, "candidate_item_id": cands[i][None]}, version)[0]

    def tower_client(i):
        u = users[i]
        return client.predict("user_tower", client.features(u.user_id, u.history, u.segment, NOW), version)[0]

    timed = time_paths({
        "cached (client)": lambda i: cached_score(client, users[i], cands[i]),
        "score RPC": rpc("score"),
        "full (client)": full_client,
        "serving_default RPC": rpc("serving_default"),
        "user_tower (client)": tower_client,
        "user_tower RPC": rpc("user_tower"),
    }, n_warmup, n, order)
    paths = {label: seconds for label, (seconds, _) in timed.items()}
    cached = np.stack(timed["cached (client)"][1])
    full = np.stack([o["probabilities"][0] for o in timed["full (client)"][1]])
    score_only = np.stack([from_tensor_proto(r.outputs["probabilities"])[0] for r in timed["score RPC"][1]])
    np.testing.assert_allclose(cached, full, rtol=1e-4, atol=1e-5,
                               err_msg=f"{name}: cached-path probabilities differ from serving_default")
    np.testing.assert_array_equal(cached, score_only)
    figures = {path: stats_ms(s) for path, s in paths.items()}
    c, f = figures["cached (client)"], figures["full (client)"]
    return {
        "paths": figures,
        "ratio_full_over_cached": {"p50": f["p50"] / c["p50"], "p99": f["p99"] / c["p99"]},
        "ratio_rpc": {"p50": figures["serving_default RPC"]["p50"] / figures["score RPC"]["p50"],
                      "p99": figures["serving_default RPC"]["p99"] / figures["score RPC"]["p99"]},
        "max_abs_diff_cached_vs_full": float(np.abs(cached - full).max()),
        "request_bytes": sizes,
        "goals": goals(c, f),
        "_requests": req, "_states": states,  # for the breakdown; dropped from the JSON
    }


def goals(cached: dict, full: dict) -> dict:
    ratio = full["p50"] / cached["p50"]
    return {"p50<=5ms": cached["p50"] <= GOAL_P50_MS, "p99<=15ms": cached["p99"] <= GOAL_P99_MS,
            "full/cached>=10x (p50)": ratio >= GOAL_RATIO}


# -- where the time of one request goes (in this process) -----------------------------------------
def interleaved_median_us(pieces: dict, n: int, warmup: int = 5) -> dict:
    """Median microseconds of each ``fn(i)`` in ``pieces``, timed piece after piece within each round
    (so a change in the machine's load hits every piece alike)."""
    times = {label: [] for label in pieces}
    for i in range(warmup + n):
        for label, fn in pieces.items():
            start = time.perf_counter()
            fn(i % n)
            if i >= warmup:
                times[label].append(time.perf_counter() - start)
    return {label: 1e6 * statistics.median(ts) for label, ts in times.items()}


RPC_PATH = {"score": "score RPC", "serving_default": "serving_default RPC", "user_tower": "user_tower RPC"}


def breakdown(name: str, version_dir: Path, client, users: list[User], cands: np.ndarray, measured: dict,
              n: int = 200) -> dict:
    """Median microseconds of each piece of a request. The server's pieces run in this process on a
    ``Servable`` loaded from the same SavedModel (nothing crosses gRPC); the bare gRPC round trip is
    a ``GetModelStatus`` call to the live server (no TensorFlow work on either side)."""
    import tensorflow as tf
    from tensorflow_serving.apis import get_model_status_pb2, predict_pb2

    from tfrec.serving.model_manager import Servable
    from tfrec.serving.requests import from_tensor_proto, predict_request

    servable = Servable(name, int(version_dir.name), version_dir)
    version = client.pinned_version
    reqs = measured["_requests"]
    n = min(n, len(reqs["score"]))
    status_request = get_model_status_pb2.GetModelStatusRequest()
    status_request.model_spec.name = name

    def one_signature(sig: str) -> dict:
        requests = reqs[sig][:n]
        wire = [r.SerializeToString() for r in requests]
        parsed = [predict_pb2.PredictRequest.FromString(w) for w in wire]
        for r in parsed[:5]:
            servable.predict(sig, r.inputs)  # warm the signature
        arrays = [{k: tf.make_ndarray(v) for k, v in r.inputs.items()} for r in parsed]
        tensors = [{k: tf.constant(a) for k, a in arr.items()} for arr in arrays]
        fn = servable.signatures[sig]
        results = [servable.predict(sig, r.inputs) for r in parsed]

        def response(i):
            resp = predict_pb2.PredictResponse()
            resp.model_spec.name = name
            resp.model_spec.version.value = version
            resp.model_spec.signature_name = sig
            for key, value in results[i].items():
                resp.outputs[key].CopyFrom(tf.make_tensor_proto(value))
            return resp

        resp_wire = [response(i).SerializeToString() for i in range(n)]
        pieces = {}
        if sig == "score":
            pieces["client: cache read (SQLite get + decode)"] = \
                lambda i: client.cache.get(name, version, users[i].user_id)
            pieces["client: build score request"] = lambda i: predict_request(
                name, {**measured["_states"][i], "candidate_item_id": cands[i][None]}, "score", version)
        else:
            pieces["client: user_features from raw history"] = \
                lambda i: client.features(users[i].user_id, users[i].history, users[i].segment, NOW)
            pieces["client: build request"] = lambda i: predict_request(name, dict(arrays[i]), sig, version)
        pieces.update({
            "client: serialize request": lambda i: requests[i].SerializeToString(),
            "server: parse request": lambda i: predict_pb2.PredictRequest.FromString(wire[i]),
            "server: Servable.predict": lambda i: servable.predict(sig, parsed[i].inputs),
            "  of which TensorProto -> numpy": lambda i: {k: tf.make_ndarray(v) for k, v in parsed[i].inputs.items()},
            "  of which tf.constant": lambda i: {k: tf.constant(a) for k, a in arrays[i].items()},
            "  of which signature call + .numpy()": lambda i: {k: v.numpy() for k, v in fn(**tensors[i]).items()},
            "server: build + serialize response": lambda i: response(i).SerializeToString(),
            "client: parse + decode response": lambda i: {
                k: from_tensor_proto(v) for k, v in predict_pb2.PredictResponse.FromString(resp_wire[i]).outputs.items()},
            "bare gRPC round trip (GetModelStatus to the server)":
                lambda i: client.models.GetModelStatus(status_request, timeout=client.timeout),
        })
        timed = interleaved_median_us(pieces, n)
        inner = sum(timed[k] for k in ("  of which TensorProto -> numpy", "  of which tf.constant",
                                        "  of which signature call + .numpy()"))
        row = {}
        for key, us in timed.items():
            row[key] = us
            if key == "  of which signature call + .numpy()":
                row["  of which the rest (validation, dict plumbing)"] = timed["server: Servable.predict"] - inner
        accounted = sum(row[k] for k in ("client: serialize request", "server: parse request",
                                          "server: Servable.predict", "server: build + serialize response",
                                          "client: parse + decode response"))
        rpc_path = RPC_PATH[sig]
        row[f"{rpc_path} p50 (measured above)"] = 1e3 * measured["paths"][rpc_path]["p50"]
        row["  of which gRPC + threads (p50 - serialize/parse/predict/response)"] = \
            row[f"{rpc_path} p50 (measured above)"] - accounted
        return row

    out = {sig: one_signature(sig) for sig in ("score", "serving_default", "user_tower")}
    row = out["score"]
    row["summary"] = {  # the cached path's share per side, us at the median
        "client (cache read, request build, serialize, decode)": sum(row[k] for k in (
            "client: cache read (SQLite get + decode)", "client: build score request", "client: serialize request",
            "client: parse + decode response")),
        "gRPC (both ends, thread hand-offs)": row["  of which gRPC + threads (p50 - serialize/parse/predict/response)"],
        "server Python (parse, TensorProto <-> numpy/tensors, validation, response)": (
            row["server: parse request"] + row["server: Servable.predict"]
            - row["  of which signature call + .numpy()"] + row["server: build + serialize response"]),
        "TensorFlow (score signature call + .numpy())": row["  of which signature call + .numpy()"],
    }
    return out


def format_breakdown(name: str, rows: dict, cached_p50_ms: float | None = None) -> str:
    lines = []
    for sig, row in rows.items():
        lines.append(f"  {name} {sig}: median us per request")
        for key, us in row.items():
            if key != "summary":
                lines.append(f"    {key:<74} {us:9.0f}")
    summary = rows["score"]["summary"]
    total = sum(summary.values())
    lines.append(f"  {name} cached path, where the time goes (us; sum {total:.0f}"
                 + (f" vs cached (client) p50 {1e3 * cached_p50_ms:.0f} measured above" if cached_p50_ms else "")
                 + "):")
    for key, us in summary.items():
        lines.append(f"    {key:<74} {us:9.0f}  {100 * us / total:4.0f}%")
    return "\n".join(lines)


# -- compute floor ----------------------------------------------------------------------------------
def flops_figures(version_dir: Path, candidates: int, history_length: int) -> dict:
    """FLOPs per candidate and per-request constant of ``score`` and ``serving_default`` (score_flops)."""
    import score_flops

    out = {}
    for sig in ("score", "serving_default"):
        rows = score_flops.analyse(version_dir, sig, candidates=(1, candidates), history_length=history_length)
        slope, const = score_flops.per_candidate(rows, 1, candidates)
        out[sig] = {"per_candidate": slope, "constant": const, "total": rows[candidates]["flops"],
                    "warnings": [w for w in (f"{len(rows[candidates]['unknown'])} matmul ops without static shapes"
                                             if rows[candidates]["unknown"] else "",
                                             f"control flow left: {dict(rows[candidates]['loops'])}"
                                             if rows[candidates]["loops"] else "") if w]}
    return out


def gflops_figures(threads: int | None, given: float | None = None) -> dict:
    import matmul_gflops

    if given:
        return {"peak": given, "score_mlp": given, "peak_label": "given", "score_mlp_label": "given"}
    rows = matmul_gflops.measure_gflops(threads, repeats=5, warmup=2)
    best = max(rows, key=lambda r: r["gflops_median"])
    small = max((r for r in rows if r["m"] == matmul_gflops.SCORE_ROWS), key=lambda r: r["gflops_median"])
    return {"peak": best["gflops_median"], "peak_label": best["label"],
            "score_mlp": small["gflops_median"], "score_mlp_label": small["label"],
            "table": matmul_gflops.format_table(rows)}


def floor_ms(flops: float, gflops: float) -> float:
    return flops / (gflops * 1e9) * 1e3


# -- report -----------------------------------------------------------------------------------------
def format_table(results: dict, candidates: int) -> str:
    head = f"{'model':<7} {'path':<22} {'p50':>8} {'p90':>8} {'p99':>8} {'mean':>8}   (ms)"
    lines = [head, "-" * len(head)]
    for name, r in results.items():
        for path, s in r["paths"].items():
            lines.append(f"{name:<7} {path:<22} {s['p50']:8.2f} {s['p90']:8.2f} {s['p99']:8.2f} {s['mean']:8.2f}")
        ratio, rpc = r["ratio_full_over_cached"], r["ratio_rpc"]
        lines.append(f"{name:<7} full / cached (client): {ratio['p50']:.1f}x at p50, {ratio['p99']:.1f}x at p99;"
                     f"  serving_default RPC / score RPC: {rpc['p50']:.1f}x at p50, {rpc['p99']:.1f}x at p99")
        lines.append("")
    return "\n".join(lines)


def format_floor(results: dict, gf: dict, candidates: int) -> str:
    lines = [f"compute floor (FLOPs / matmul GFLOP/s; ignores gathers, memory traffic, op dispatch), C={candidates}:",
             (f"  matmul GFLOP/s on this CPU: peak {gf['peak']:.1f} ({gf['peak_label']}), "
              f"score-MLP shape {gf['score_mlp']:.1f} ({gf['score_mlp_label']})")]
    for name, r in results.items():
        fl = r.get("flops")
        if not fl:
            continue
        for sig in ("score", "serving_default"):
            f = fl[sig]
            lines.append(
                f"  {name:<6} {sig:<16} {f['per_candidate']:>12,.0f} FLOPs/candidate + {f['constant']:>13,.0f} "
                f"per request = {f['total']:>14,.0f} FLOPs -> floor {floor_ms(f['total'], gf['peak']) * 1e3:9.1f} us "
                f"at peak, {floor_ms(f['total'], gf['score_mlp']) * 1e3:9.1f} us at the score-MLP rate"
                + (f"  [{'; '.join(f['warnings'])}]" if f["warnings"] else ""))
        c = r["paths"]["cached (client)"]["p50"]
        lines.append(f"  {name:<6} cached p50 {c:.2f} ms = {c / floor_ms(fl['score']['total'], gf['score_mlp']):,.0f}x "
                     f"the score floor (score-MLP rate)")
    return "\n".join(lines)


def format_goals(results: dict) -> str:
    lines = [(f"goals (cached path, client end to end): p50 <= {GOAL_P50_MS:g} ms, p99 <= {GOAL_P99_MS:g} ms, "
              f"full / cached >= {GOAL_RATIO:g}x at p50")]
    for name, r in results.items():
        c = r["paths"]["cached (client)"]
        g = r["goals"]
        marks = ", ".join(f"{k} {'MET' if v else 'MISSED'}" for k, v in g.items())
        lines.append(f"  {name:<6} p50 {c['p50']:.2f} ms, p99 {c['p99']:.2f} ms, "
                     f"ratio {r['ratio_full_over_cached']['p50']:.1f}x: {marks}")
    return "\n".join(lines)


def write_json(path, payload: dict) -> None:
    def clean(obj):
        if isinstance(obj, dict):
            return {k: clean(v) for k, v in obj.items() if not str(k).startswith("_")}
        if isinstance(obj, (list, tuple)):
            return [clean(v) for v in obj]
        if isinstance(obj, (np.floating, np.integer, np.bool_)):
            return obj.item()
        return obj

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(clean(payload), indent=2))
    print(f"wrote {path}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(p)
    p.add_argument("--requests", type=int, default=300, help="timed requests per path")
    p.add_argument("--warmup", type=int, default=20, help="untimed requests per path first")
    p.add_argument("--gflops", type=float, default=None, help="use this matmul GFLOP/s instead of measuring it")
    p.add_argument("--order", choices=["blocked", "interleaved"], default="blocked",
                   help="blocked: all requests of one path, then the next path (steady traffic of one kind); "
                        "interleaved: every path for one request, then the next request")
    p.add_argument("--no-floor", action="store_true", help="skip the FLOPs count and the matmul timing")
    p.add_argument("--no-breakdown", action="store_true", help="skip the per-piece timing of one request")
    args = p.parse_args(argv)

    import matmul_gflops
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    matmul_gflops.set_threads(args.intra_op_threads)  # before this process runs any op
    work = Path(tempfile.mkdtemp(prefix="tfrec-bench-latency-"))
    info = machine_info()
    print(f"{info['cpus']} CPUs ({info['cpu']}), TensorFlow {info['tensorflow']}; server intra-op threads "
          f"{args.intra_op_threads or 'default'}; work dir {work}", flush=True)
    try:
        exports = prepare(args, work)
        n_total = args.warmup + args.requests
        results, gf = {}, None
        if not args.no_floor:
            print("measuring matmul GFLOP/s (bench/matmul_gflops.py) before any server starts ...", flush=True)
            gf = gflops_figures(args.intra_op_threads, args.gflops)
            if "table" in gf:
                print(gf["table"])
        for name, version_dir in exports.items():
            spec = export_spec(version_dir)
            length = request_length(args, spec)
            r = {"version_dir": str(version_dir), "history_length": length, "candidates": args.candidates}
            if not args.no_floor:
                r["flops"] = flops_figures(version_dir, args.candidates, length)
            users = make_users(spec, n_total, length, seed=args.seed)
            cands = make_candidates(spec, n_total, args.candidates, seed=args.seed + 1)
            with serving(name, version_dir, work, spec.max_history_length, args.intra_op_threads,
                         args.server_arg) as (_server, client):
                pre = precompute(client, users)
                print(f"{name}: precomputed {pre['users']} user states (L={length}) into {client.cache.url} "
                      f"in {pre['seconds']} s; timing {args.warmup} + {args.requests} requests per path, "
                      f"C={args.candidates}", flush=True)
                r.update(measure_model(client, users, cands, args.warmup, args.requests, args.order))
                print(f"{name}: cached-path probabilities == serving_default's (max |diff| "
                      f"{r['max_abs_diff_cached_vs_full']:.1e}); request bytes {r['request_bytes']}", flush=True)
                if not args.no_breakdown:
                    r["breakdown_us"] = breakdown(name, version_dir, client, users, cands, r)
                r["client_stats"] = dict(client.stats)
            results[name] = r
            print(flush=True)
        print(f"\n== serving latency over gRPC on loopback, {info['cpus']} CPUs, batch 1, C={args.candidates}, "
              f"{args.requests} requests per path after {args.warmup} warmup ({args.order}), one user per request")
        print(format_table(results, args.candidates))
        if gf:
            print(format_floor(results, gf, args.candidates))
            print()
        print(format_goals(results))
        if not args.no_breakdown:
            print("\nwhere the time goes (median us; server pieces timed in this process on the same SavedModel):")
            for name, r in results.items():
                print(format_breakdown(name, r["breakdown_us"], r["paths"]["cached (client)"]["p50"]))
        if args.json:
            write_json(args.json, {"bench": "serving_latency", "machine": info, "args": vars(args),
                                   "gflops": {k: v for k, v in (gf or {}).items() if k != "table"},
                                   "models": results})
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
