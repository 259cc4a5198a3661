"""Precompute every user's state through the user_tower signature into the user-state cache.

  tfrec precompute --target 127.0.0.1:8500 --model dmgin --data DATA --cache sqlite:///runs/user_state.db
  tfrec precompute ... --cache redis://127.0.0.1:6379/0 --ttl 3600

Reads DATA/user_histories.tfrecord and DATA/spec.json (max_history_length and the features), pins
the latest available model version (or --version) and prints a JSON summary.

A model trained with user vectors (`tfrec train --user-vectors`; its user_tower takes
`user_vector [B, D]`, read off the server) gets each user's vector as of the states' request time
(the last slice with boundary <= it; zeros when none): from --user-vectors PATH, or else the file
recorded at export (EXPORT_BASE/MODEL/VERSION/assets.extra/tfrec_export.json, --export-base).
"""
from __future__ import annotations

import json
from pathlib import Path

from pipelines.common import USER_VECTORS_KEY, check_recorded_user_vectors, history_files, load_spec


def add_arguments(p):
    p.add_argument("--target", default="127.0.0.1:8500", help="gRPC host:port of tfrec serve or TF Serving")
    p.add_argument("--model", default="dmgin", help="served model name")
    p.add_argument("--version", type=int, help="pin a model version (default: latest available)")
    p.add_argument("--data", required=True, help="data directory with user_histories.tfrecord and spec.json")
    p.add_argument("--cache", required=True, help="sqlite:///path.db or redis://host:port/db")
    p.add_argument("--ttl", type=float, help="seconds the entries live (default: no expiry)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--request-timestamp", type=int, help="compute states as of this time (default: data's now)")
    add_user_vector_arguments(p)


def add_user_vector_arguments(p):
    """``--user-vectors`` / ``--export-base``: where a served model's user vectors come from."""
    p.add_argument("--user-vectors", metavar="PATH",
                   help="the user-vector file (.npz) of a model trained with --user-vectors (default: the one "
                        "recorded in its export metadata)")
    p.add_argument("--export-base", default="saved_models",
                   help="export root of the served versions, for the user-vector file recorded at export")


def served_user_vectors(client, version: int, path=None, export_base=None):
    """The ``UserVectors`` that ``version`` of the client's model reads, or None when it reads none.

    D comes from the server (the width of the ``user_tower`` input ``user_vector``); the file is
    ``path`` (``--user-vectors``), else the one ``tfrec export`` recorded in
    ``<export_base>/<model>/<version>/assets.extra/tfrec_export.json``.

    Raises:
      ValueError: no file is known, its width differs from the served model's, or ``path`` is given
        for a model that takes no user vector.
      FileNotFoundError: the file is gone; the message names ``--user-vectors``.
    """
    from tfrec.data.user_vectors import UserVectors
    from tfrec.export import read_export_metadata

    dim = client.served_user_vector_dim(version)
    served = f"{client.model_name} version {version} on {client.target}"
    if not dim:
        if path:
            raise ValueError(f"--user-vectors {path}: {served} takes no user_vector (trained without user "
                             "vectors); drop the flag")
        return None
    source = "--user-vectors"
    if not path:
        version_dir = Path(export_base or ".") / client.model_name / str(version)
        try:
            recorded = read_export_metadata(version_dir).get(USER_VECTORS_KEY) or {}
        except FileNotFoundError:
            recorded = {}
        path, source = recorded.get("path"), f"recorded in {version_dir}'s export metadata"
        if not path:
            raise ValueError(f"{served} reads user vectors (user_tower input user_vector [B, {dim}]) and no file "
                             f"is known ({version_dir} holds no export metadata naming one): pass --user-vectors "
                             "PATH, or --export-base with the export root of that version")
    if not Path(path).exists():
        raise FileNotFoundError(f"user vectors {path} ({source}) not found: pass --user-vectors PATH with the file "
                                f"{client.model_name} was trained with")
    if source != "--user-vectors":
        check_recorded_user_vectors(recorded, path)
    vectors = UserVectors.load(path)
    if vectors.dim != dim:
        raise ValueError(f"{path}: user vectors have D={vectors.dim} but {served} takes user_vector [B, {dim}]; "
                         "pass the file it was trained with (--user-vectors PATH)")
    return vectors


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
                       max_history_length=spec.max_history_length, spec=spec) as client:
        client.pinned_version = client.served_version()  # one version for the vectors' check and every state
        client.use_user_vectors(served_user_vectors(client, client.pinned_version, args.user_vectors,
                                                    args.export_base))
        summary = precompute_user_states(client, cache, histories, args.request_timestamp, args.batch_size)
    print(json.dumps(summary))
    return summary
