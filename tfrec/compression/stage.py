"""The compression stage: train CHIME's (or LEARN's) compressor on the logs before t1, write every
user's compressed vector per time slice (``UserVectors``) and the codebook report (CHIME Table 5).

CHIME's protocol (sec. 5.1): logs before ``t1`` train the compressor (the *representation set*),
the ranker trains on ``[t1, t2)`` and is tested after ``t2``. Our data sets already split examples
by time (train before test), so ``t1`` defaults to the first training example's request time: the
compressor sees only behaviors older than every ranking example, and the ranker keeps all its
training examples. A user's vector for slice ``s`` summarises their behaviors before
``boundaries[s]`` (the last ``max_length``); an example at time ``r`` reads the last slice with
``boundaries[s] <= r`` (``tfrec.data.user_vectors``), so no example sees its own future. More
boundaries (``--boundaries``) give fresher vectors with the same compressor ("more time slices",
sec. 5.1), still never past the request time.

Outputs under ``out_dir``: ``user_vectors.npz``; ``compressor.json`` (config, t1, boundaries, the
per-epoch train / held-out losses -- the Q1 curve --, the codebook report, costs);
``weights/final`` (the compressor's weights).
"""
from __future__ import annotations

import json
import time
import zlib
from pathlib import Path
from typing import Dict, Optional, Sequence

import numpy as np
import tensorflow as tf

from tfrec import configs as configs_lib
from tfrec.compression.chime import SequenceCompressor, sequence_dataset
from tfrec.compression.sequences import user_sequences
from tfrec.configs.compressor import CompressorConfig
from tfrec.data.tfrecord import read_request_timestamps
from tfrec.data.user_vectors import UserVectors
from tfrec.grouping.rqvae import codebook_report

VECTORS_FILE = "user_vectors.npz"
REPORT_FILE = "compressor.json"
WEIGHTS = "weights/final"


def train_request_times(data) -> np.ndarray:
    """Every training example's request time (``DataDir``), int64 ``[N]``."""
    files = [str(p) for p in sorted(Path(data.path).glob("train*.tfrecord"))]
    if not files:
        raise FileNotFoundError(f"no train*.tfrecord in {data.path}: run `tfrec write-tfrecords --data {data.path}`")
    return read_request_timestamps(files, data.spec)[0]  # a damaged file is named, not half read


def first_request_time(data) -> int:
    """The earliest request time of the training examples: the default ``t1``."""
    times = train_request_times(data)
    if not len(times):
        raise ValueError(f"{data.path} has no training example: t1 cannot default to the first request time")
    return int(times.min())


def held_out(user_ids: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A deterministic ``fraction`` of users (by a hash of id and seed) for the held-out loss."""
    keys = np.array([zlib.crc32(f"{seed}:{int(u)}".encode()) % 10_000 for u in user_ids])
    return keys < int(round(fraction * 10_000))


def _batches(sequences: Dict[str, np.ndarray], rows: np.ndarray) -> Dict[str, np.ndarray]:
    return {k: v[rows] for k, v in sequences.items()}


def codes_report(model: SequenceCompressor, sequences: Dict[str, np.ndarray], batch_size: int) -> Optional[dict]:
    """CHIME Table 5 over every valid position: per level used codes, hit ratio, perplexity."""
    if model.compression is None:
        return None
    codes = []
    for batch in sequence_dataset(sequences, batch_size):
        out = model(batch, training=False)
        codes.append(out["codes"].numpy()[batch["mask"].numpy()])
    codes = np.concatenate(codes) if codes else np.zeros((0, len(model.config.codebook_sizes)), np.int32)
    levels = []
    for m, k in enumerate(model.config.codebook_sizes):
        level = codebook_report(codes[:, m:m + 1], k)["per_level"][0]
        levels.append({**level, "level": m + 1, "codebook_size": int(k)})
    return {"positions": int(len(codes)), "per_level": levels}


def user_vectors(model: SequenceCompressor, histories, boundaries: Sequence[int], batch_size: int,
                 positives_only: bool) -> np.ndarray:
    """``[U, S, D]``: every user's vector at every boundary (users in ``histories.user_ids`` order)."""
    c = model.config
    out = np.zeros((len(histories.user_ids), len(boundaries), model.vector_dim), np.float32)
    for s, boundary in enumerate(boundaries):
        seqs = user_sequences(histories, int(boundary), c.max_length, c.positive_types, positives_only)
        rows = []
        for batch in sequence_dataset(seqs, batch_size):
            rows.append(model.user_vectors(batch).numpy())
        out[:, s] = np.concatenate(rows) if rows else 0.0
    return out


def _compressor(data, config: CompressorConfig, pretrained_init: bool = True) -> SequenceCompressor:
    """A compressor on ``data``'s spec, item table and (when the config reads them) content vectors."""
    reads_content = config.method == "learn" or (config.adaptation and config.content_dim)
    return SequenceCompressor(data.spec, config, item_table=data.item_table if data.spec.item_features else None,
                              content_vectors=data.item_content.vectors if reads_content else None,
                              pretrained_init=pretrained_init)


def compress(data, config: CompressorConfig, out_dir, t1: Optional[int] = None,
             boundaries: Optional[Sequence[int]] = None, eval_fraction: float = 0.1, verbose: int = 0) -> dict:
    """Trains the compressor on ``data`` (a ``tfrec.api.DataDir``) before ``t1``; writes its outputs.

    Args:
      data: the data directory (``tfrec.api.open_data``).
      config: ``CompressorConfig``.
      out_dir: where ``user_vectors.npz``, ``compressor.json`` and the weights go.
      t1: the end of the representation set (default: the first training example's request time).
      boundaries: the time-slice boundaries of the written vectors (default ``[t1]``), each >= t1
        (an earlier one would leak: the compressor's weights saw behaviors up to t1). A vector at
        boundary ``b`` reads only behaviors before ``b``; the compressor stays the one trained
        before ``t1`` (CHIME retrains it per slice; we do not, see docs/models.md).
      eval_fraction: users held out of training for the held-out loss curve (CHIME Fig. 4).
      verbose: Keras verbosity.

    Returns:
      The summary written to ``compressor.json``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    t1 = int(first_request_time(data) if t1 is None else t1)
    boundaries = sorted({int(b) for b in (boundaries or [t1])})
    if boundaries[0] < t1:
        # the compressor's losses at positions before b read that user's behaviors in [b, t1): an example
        # in [b, t1) reading slice b would see its own future through the weights
        raise ValueError(f"time-slice boundary {boundaries[0]} precedes t1={t1}: the compressor trained on "
                         "behaviors up to t1, so a vector for an earlier slice would leak them; use boundaries >= t1 "
                         "(or an earlier --t1)")
    if not 0.0 <= eval_fraction < 1.0:
        raise ValueError(f"eval_fraction must be in [0, 1) (the share of users held out for the held-out loss). "
                         f"Received: {eval_fraction}")
    histories = data.histories
    learn = config.method == "learn"
    sequences = user_sequences(histories, t1, config.max_length, config.positive_types, positives_only=learn)
    has_data = sequences["length"] > 1  # a single behavior gives no (position, future) pair
    evaluate = held_out(sequences["user_id"], eval_fraction, config.seed) & has_data
    train_rows = np.flatnonzero(has_data & ~evaluate)
    eval_rows = np.flatnonzero(evaluate)
    if not len(train_rows):
        raise ValueError(f"no user has two behaviors before t1={t1}: the compressor has nothing to learn from "
                         "(choose a later --t1)")
    tf.keras.utils.set_random_seed(config.seed)
    model = _compressor(data, config)
    train_ds = sequence_dataset(_batches(sequences, train_rows), config.batch_size, shuffle=True, seed=config.seed)
    model.compile_for(steps=config.epochs * int(np.ceil(len(train_rows) / config.batch_size)))
    eval_ds = sequence_dataset(_batches(sequences, eval_rows), config.batch_size) if len(eval_rows) else None
    model.initialize_codebooks(train_ds, seed=config.seed)
    initial = model.evaluate(eval_ds, verbose=0, return_dict=True) if eval_ds is not None else {}
    t_train = time.time()
    history = model.fit(train_ds, validation_data=eval_ds, epochs=config.epochs, verbose=verbose)
    train_seconds = time.time() - t_train
    model.save_weights(str(out / WEIGHTS))
    report = codes_report(model, _batches(sequences, train_rows), config.batch_size)
    t_infer = time.time()
    vectors = user_vectors(model, histories, boundaries, config.batch_size, positives_only=learn)
    infer_seconds = time.time() - t_infer
    summary = {
        "method": config.method, "config": configs_lib.to_dict(config), "t1": t1, "boundaries": boundaries,
        "users": int(len(histories.user_ids)), "train_users": int(len(train_rows)), "eval_users": int(len(eval_rows)),
        "behaviors_before_t1": int(sequences["length"].sum()), "vector_dim": model.vector_dim,
        "history": {"initial": {k: float(v) for k, v in initial.items()},
                    **{k: [float(x) for x in v] for k, v in history.history.items()}},
        "codebooks": report, "parameters": int(model.count_params()),
        "train_seconds": round(train_seconds, 2), "infer_seconds": round(infer_seconds, 2),
        "infer_ms_per_user_slice": round(1000 * infer_seconds / max(len(histories.user_ids) * len(boundaries), 1), 3),
        "total_seconds": round(time.time() - t0, 2),
    }
    UserVectors(np.asarray(histories.user_ids), np.asarray(boundaries), vectors, name=config.method,
                meta={k: summary[k] for k in ("t1", "vector_dim", "users")}).save(out / VECTORS_FILE)
    (out / REPORT_FILE).write_text(json.dumps(summary, indent=2))
    return summary


def load_compressor(out_dir, data) -> SequenceCompressor:
    """Rebuilds the compressor a ``compress`` run wrote under ``out_dir`` (config from
    ``compressor.json``, weights from ``weights/final``) on ``data``'s spec and item tables."""
    out = Path(out_dir)
    if not (out / REPORT_FILE).exists():
        raise FileNotFoundError(f"{out / REPORT_FILE} not found: run `tfrec chime-compress --out {out}` first")
    info = json.loads((out / REPORT_FILE).read_text())
    config = configs_lib.from_dict(CompressorConfig, info["config"])
    model = _compressor(data, config, pretrained_init=False)
    dummy = {"item_id": tf.zeros([1, 2], tf.int64), "behavior_type": tf.zeros([1, 2], tf.int64),
             "label": tf.ones([1, 2]), "mask": tf.ones([1, 2], tf.bool)}
    model(dummy)
    model.load_weights(str(out / WEIGHTS)).expect_partial()
    return model
