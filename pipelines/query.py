"""Score candidates for one user through the serving client (cache -> user_tower -> score).

  tfrec query --target 127.0.0.1:8500 --model dmgin --data DATA --user-id 12 --candidates 3,17,256
  tfrec query ... --history-json history.json --cache sqlite:///runs/user_state.db

The user's history comes from DATA/user_histories.tfrecord, or from --history-json (an object with
parallel lists item_id, behavior_type, timestamp [, duration, amount], oldest first, and optional
the user features by name, e.g. user_segment; with --data its schema applies). Prints JSON: version, where the user state came from, and one probability per
candidate. A model trained with user vectors gets the user's vector at the request time on a cache
miss (--user-vectors / --export-base, as in `tfrec precompute`).
"""
from __future__ import annotations

import json
from pathlib import Path

from pipelines.common import history_files, load_spec
from pipelines.precompute import add_user_vector_arguments, served_user_vectors


def add_arguments(p):
    p.add_argument("--target", default="127.0.0.1:8500", help="gRPC host:port of tfrec serve or TF Serving")
    p.add_argument("--model", default="dmgin", help="served model name")
    p.add_argument("--version", type=int, help="pin a model version (default: latest available)")
    p.add_argument("--user-id", type=int, required=True)
    p.add_argument("--candidates", required=True, help="comma-separated candidate item ids")
    p.add_argument("--data", help="data directory (history from user_histories.tfrecord, L from spec.json)")
    p.add_argument("--history-json", help="the user's history as JSON instead of --data")
    p.add_argument("--max-history-length", type=int, help="most recent behaviors kept (default: spec.json's)")
    p.add_argument("--cache", default="", help="sqlite:///path.db or redis://host:port/db (default: none)")
    p.add_argument("--request-timestamp", type=int, help="request time (default: after the last behavior)")
    add_user_vector_arguments(p)


def parse_candidates(text: str) -> list:
    try:
        out = [int(c) for c in text.split(",") if c.strip()]
    except ValueError:
        raise ValueError(f"--candidates must be comma-separated integer item ids, got {text!r}") from None
    if not out:
        raise ValueError("--candidates is empty; give at least one item id")
    return out


def load_history(args):
    max_len = args.max_history_length
    if args.history_json:
        history = json.loads(Path(args.history_json).read_text())
        spec = load_spec(args.data) if args.data else None
        return history, max_len, spec
    if not args.data:
        raise ValueError("give --data DATA (user_histories.tfrecord) or --history-json FILE")
    from tfrec.data.dataset import load_user_histories
    spec = load_spec(args.data)
    histories = load_user_histories(history_files(args.data), spec)
    try:
        history = histories.history(args.user_id)
    except KeyError:
        history = {}  # cold start: an empty history, unknown user features
    return history, max_len or spec.max_history_length, spec


def run(args):
    from tfrec.cache import open_cache
    from tfrec.serving.client import ServingClient

    candidates = parse_candidates(args.candidates)
    history, max_len, spec = load_history(args)
    with ServingClient(args.target, args.model, open_cache(args.cache), version=args.version,
                       max_history_length=max_len, spec=spec) as client:
        client.use_user_vectors(served_user_vectors(client, client.served_version(), args.user_vectors,
                                                    args.export_base))
        probs, (version, source) = client.score_with_source(args.user_id, history, candidates, None,
                                                            args.request_timestamp)
    result = {"model": args.model, "version": version, "user_id": args.user_id, "user_state": source,
              "scores": [{"item_id": c, "probability": round(float(p), 6)} for c, p in zip(candidates, probs)]}
    print(json.dumps(result))
    return result
