"""Precompute every user's state through the user_tower signature into the user-state cache.

  tfrec precompute --target 127.0.0.1:8500 --model dmgin --data DATA --cache sqlite:///runs/user_state.db
  tfrec precompute ... --cache redis://127.0.0.1:6379/0 --ttl 3600

Reads DATA/user_histories.tfrecord and DATA/spec.json (max_history_length), pins the latest
available model version (or --version) and prints a JSON summary.
"""
from __future__ import annotations

import json

from pipelines.common import history_files, load_spec


def add_arguments(p):
    p.add_argument("--target", default="127.0.0.1:8500", help="gRPC host:port of tfrec serve or TF Serving")
    p.add_argument("--model", default="dmgin", help="served model name")
    p.add_argument("--version", type=int, help="pin a model version (default: latest available)")
    p.add_argument("--data", required=True, help="data directory with user_histories.tfrecord and spec.json")
    p.add_argument("--cache", required=True, help="sqlite:///path.db or redis://host:port/db")
    p.add_argument("--ttl", type=float, help="seconds the entries live (default: no expiry)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--request-timestamp", type=int, help="compute states as of this time (default: data's now)")


def run(args):
    from tfrec.cache import open_cache
    from tfrec.data.dataset import load_user_histories
    from tfrec.serving.client import ServingClient
    from tfrec.serving.precompute import precompute_user_states

    spec = load_spec(args.data)
    histories = load_user_histories(history_files(args.data), spec)
    cache = open_cache(args.cache, ttl_seconds=args.ttl)
    if cache is None:
        raise ValueError("--cache must name a cache (sqlite:///path.db or redis://host:port/db)")
    with ServingClient(args.target, args.model, cache, version=args.version,
                       max_history_length=spec.max_history_length) as client:
        summary = precompute_user_states(client, cache, histories, args.request_timestamp, args.batch_size)
    print(json.dumps(summary))
    return summary
