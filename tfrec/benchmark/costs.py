"""What a model costs: parameters, user-state bytes, and the exported SavedModel's signatures timed
in-process on TF Serving's path (``Session::Run`` of the signature, no RPC).

The same request for every model: ``user_tower`` on one user whose history fills the spec's
``max_history_length`` (``warmup_features``, seed 0), ``score`` on that user's state with 100
candidates (seed 1) and the context features (seed 2). Times are the median of ``calls`` calls
after 10 warm-up calls, in milliseconds.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

SCORE_CANDIDATES = 100


def timed(fn, calls: int, warmup: int = 10) -> tuple:
    """``(p50, p90)`` in ms of ``fn()`` over ``calls`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        out.append(1000 * (time.perf_counter() - t0))
    return float(np.percentile(out, 50)), float(np.percentile(out, 90))


def load_session(path, intra: int = 0, inter: int = 0):
    """``(graph, session, meta_graph)``: the SavedModel at ``path`` in a ``tf.compat.v1.Session``."""
    import tensorflow as tf

    graph = tf.Graph()
    config = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=intra, inter_op_parallelism_threads=inter)
    with graph.as_default():
        session = tf.compat.v1.Session(graph=graph, config=config)
        level = tf.get_logger().level
        tf.get_logger().setLevel("ERROR")  # the v1 loader's deprecation notice: it is the Session path on purpose
        meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(path))
        tf.get_logger().setLevel(level)
    return graph, session, meta


def signature_runner(graph, session, meta, name):
    """``(input keys, output keys, run)``: ``run(*inputs in key order)`` -> outputs in key order, one
    ``Session::Run`` of signature ``name`` (``Session.make_callable``)."""
    sig = meta.signature_def[name]
    keys, outs = sorted(sig.inputs), sorted(sig.outputs)
    run = session.make_callable([graph.get_tensor_by_name(sig.outputs[o].name) for o in outs],
                                [graph.get_tensor_by_name(sig.inputs[k].name) for k in keys])
    return keys, outs, run


def session_callables(path, signatures, feeds, intra: int = 0, inter: int = 0) -> dict:
    """{name: zero-argument callable running the signature on ``feeds[name]`` through Session::Run}."""
    loaded = load_session(path, intra, inter)
    out = {}
    for name in signatures:
        keys, _, run = signature_runner(*loaded, name)
        values = [np.asarray(feeds[name][k]) for k in keys]
        out[name] = (lambda run=run, values=values: run(*values))
    return out


def signature_feeds(version_dir, spec, n_candidates: int = SCORE_CANDIDATES) -> dict:
    """The benchmark's fixed request: ``{"user_tower": inputs, "score": inputs}`` for the SavedModel at
    ``version_dir`` (the state comes from its own ``user_tower``)."""
    import tensorflow as tf

    from tfrec.export.saved_model import CANDIDATES, warmup_features
    from tfrec.serving.requests import random_feature_values

    loaded = tf.saved_model.load(str(version_dir))
    user_tower = loaded.signatures["user_tower"]
    features = {k: v[:1] for k, v in warmup_features(spec, batch=1).items()}
    state = {k: v.numpy() for k, v in user_tower(**{k: tf.constant(v) for k, v in features.items()}).items()}
    score_keys = loaded.signatures["score"].structured_input_signature[1]
    candidates = np.random.default_rng(1).integers(0, spec.n_items, (1, n_candidates)).astype(np.int64)
    rng = np.random.default_rng(2)
    context = {fd.name: np.stack([random_feature_values(fd, rng)]) for fd in spec.context_features}
    score = {k: v for k, v in {**state, CANDIDATES: candidates, **context}.items() if k in score_keys}
    missing = sorted(set(score_keys) - set(score))
    if missing:
        raise ValueError(f"signature_feeds: no value for score inputs {missing}")
    return {"user_tower": features, "score": score}


def tree_bytes(path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def serving_costs(version_dir, spec, calls: int) -> dict:
    """``user_tower_ms`` (one user) and ``score_ms`` (100 candidates): p50 over ``calls`` Session::Run
    calls of the exported signatures; ``saved_model_bytes``."""
    feeds = signature_feeds(version_dir, spec)
    runs = session_callables(version_dir, ["user_tower", "score"], feeds)
    user_tower, score = timed(runs["user_tower"], calls), timed(runs["score"], calls)
    return {"user_tower_ms": round(user_tower[0], 3), "user_tower_ms_p90": round(user_tower[1], 3),
            "score_ms": round(score[0], 3), "score_ms_p90": round(score[1], 3),
            "score_candidates": SCORE_CANDIDATES, "timing_calls": calls, "saved_model_bytes": tree_bytes(version_dir)}


def state_bytes(model) -> int:
    """Bytes of one user's state (``encode_user`` outputs, fixed shapes: the serving cache's payload)."""
    from tfrec.training import dummy_features

    return int(sum(v.numpy().nbytes for v in model.encode_user(dummy_features(model.spec), training=False).values()))
