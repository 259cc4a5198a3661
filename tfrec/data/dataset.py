"""The tf.data reader: example records joined with per-user lifelong histories.

Histories are stored once per user (``write_user_histories``) and held in memory in CSR form
(flat per-behavior arrays + ``row_splits``). Each batch of examples is joined in-graph: a hash
table maps ``user_id`` to its row, a vectorized binary search finds the behaviors strictly before
``request_timestamp`` (no future leakage), the most recent ``spec.max_history_length`` of those
are kept, and one gather builds the padded ``[B, L]`` model features.

Model features per batch (``make_dataset`` yields ``(features, label)``):

* ``user_id``, ``item_id``, ``request_timestamp``: ``[B]`` int64.
* each declared user feature (default schema: ``user_segment``) and context feature: ``[B]``
  (int64 ids, float32 numbers); a multi-valued user feature ``[B, max_len]`` int64 padded with -1.
* ``hist_item_id``, ``hist_behavior_type``, ``hist_timestamp``: ``[B, L]`` int64;
  ``hist_duration``, ``hist_amount``: ``[B, L]`` float32; each declared behavior feature
  ``hist_<name>`` ``[B, L]``; zero-padded, L = the longest history in the batch (at least 1).
* ``hist_length``: ``[B]`` int32.
* with Semantic IDs in the records (``spec.semantic_id_levels`` M > 0): ``item_semantic_id``
  ``[B, M]`` and ``hist_semantic_id`` ``[B, L, M]`` int64 (the per-level record fields stacked;
  padded positions 0).
* ``true_prob``: ``[B]`` float32, only with ``include_true_prob=True``.
* ``user_vector``: ``[B, D]`` float32, only with ``user_vectors=`` (a ``UserVectors``,
  ``tfrec.data.user_vectors``): the user's precomputed vector of the last time slice whose boundary
  is ``<= request_timestamp``, zeros when there is none.
* label: ``[B]`` float32.

``min_request_timestamp`` keeps only the examples requested at or after it (CHIME's protocol: the
compressor learns from the logs before ``t1``, the ranker trains on ``[t1, t2)``).
"""
from __future__ import annotations

import dataclasses
import functools
import logging
from typing import Any, Callable, Dict, List, Mapping, Tuple

import numpy as np
import tensorflow as tf

from tfrec.data import spec as spec_lib
from tfrec.data.spec import FeatureSpec
from tfrec.data.tfrecord import Paths, ScanReport, scan_tfrecord_files
from tfrec.data.user_vectors import UserVectors, UserVectorTensors, join_user_vectors

logger = logging.getLogger(__name__)

_TIMESTAMP = "hist_timestamp"


@dataclasses.dataclass(frozen=True)
class HistoryTensors:
    """In-graph form of ``UserHistories``.

    Unknown users map to an extra empty row ``U`` whose user features are unknown (cold start:
    categorical -1, i.e. the OOV row; numeric 0; multi-valued empty), and every flat sequence
    carries one trailing zero (the padding sentinel at index N), so padded positions and
    cold-start users gather zeros without any masking.

    Attributes:
      row_of_user: ``StaticHashTable`` user_id -> row (``U`` for unknown users).
      row_splits: ``[U + 2]`` int64 CSR row boundaries (the last row is the empty cold-start row).
      profile: user feature name -> ``[U + 1]`` (multi-valued ``[U + 1, max_len]``) values per row.
      sequences: name -> ``[N + 1]`` flat behavior values (oldest first within each row).
    """

    row_of_user: tf.lookup.StaticHashTable
    row_splits: tf.Tensor
    profile: Dict[str, tf.Tensor]
    sequences: Dict[str, tf.Tensor]


@dataclasses.dataclass
class UserHistories:
    """All user-history records, in memory in CSR form.

    Row ``r`` holds user ``user_ids[r]``; its behaviors are
    ``sequences[name][row_splits[r]:row_splits[r + 1]]``, oldest first.

    Attributes:
      user_ids: ``[U]`` int64.
      profile: user feature name -> ``[U]`` values (multi-valued: ``[U, max_len]`` padded with -1).
      row_splits: ``[U + 1]`` int64.
      sequences: ``hist_*`` name -> ``[N]`` flat values (int64 or float32).
      scan: the ``ScanReport`` of the history files.
    """

    user_ids: np.ndarray
    profile: Dict[str, np.ndarray]
    row_splits: np.ndarray
    sequences: Dict[str, np.ndarray]
    scan: ScanReport

    def __len__(self) -> int:
        return len(self.user_ids)

    @property
    def n_behaviors(self) -> int:
        return int(self.row_splits[-1])

    @property
    def nbytes(self) -> int:
        """Bytes of the arrays held (behaviors, row splits, user ids, user features)."""
        return int(sum(v.nbytes for v in self.sequences.values()) + self.row_splits.nbytes + self.user_ids.nbytes
                   + sum(v.nbytes for v in self.profile.values()))

    def history(self, user_id: int) -> Dict[str, np.ndarray]:
        """The full stored history of one user (its user features + ``hist_*`` arrays).

        Raises:
          KeyError: the user has no history record.
        """
        rows = np.flatnonzero(self.user_ids == user_id)
        if not len(rows):
            raise KeyError(f"user_id {user_id} has no user-history record")
        start, end = self.row_splits[rows[0]], self.row_splits[rows[0] + 1]
        out = {name: values[start:end] for name, values in self.sequences.items()}
        out.update({name: values[rows[0]] for name, values in self.profile.items()})
        return out

    @functools.cached_property
    def tensors(self) -> HistoryTensors:
        """TF constants + user_id -> row hash table for the in-graph join (built once)."""
        n_users = len(self.user_ids)
        keys, rows = self.user_ids, np.arange(n_users, dtype=np.int64)
        if not n_users:  # tables cannot be empty; user ids are >= 0, so -1 never matches
            keys, rows = np.array([-1], np.int64), np.array([0], np.int64)
        table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(keys, tf.int64), tf.constant(rows)),
            default_value=n_users,
        )
        sequences = {
            name: tf.constant(np.append(values, np.zeros(1, values.dtype)))
            for name, values in self.sequences.items()
        }
        return HistoryTensors(
            row_of_user=table,
            row_splits=tf.constant(np.append(self.row_splits, self.n_behaviors), tf.int64),
            profile={name: tf.constant(np.concatenate([values, _unknown_rows(values, 1)]))
                     for name, values in self.profile.items()},
            sequences=sequences,
        )


def _unknown_rows(values: np.ndarray, n: int) -> np.ndarray:
    """``n`` rows of the unknown value shaped like ``values``' rows: -1 for ids, 0 for numbers."""
    fill = spec_lib.MULTI_PAD if values.dtype.kind in "iu" else 0
    return np.full((n,) + values.shape[1:], fill, values.dtype)


def dense_profile(parsed: Mapping[str, Any], spec: FeatureSpec) -> Dict[str, Any]:
    """The user features of a parsed batch; multi-valued ones padded to ``[B, max_len]`` with -1."""
    out = {}
    for f in spec.user_fields():
        value = parsed[f.name]
        if f.multi:
            value = value.to_tensor(default_value=spec_lib.MULTI_PAD, shape=[None, f.max_len])
        out[f.name] = value
    return out


# --------------------------------------------------------------------------------------------
# Loading user histories
# --------------------------------------------------------------------------------------------
def _sequence_names(spec: FeatureSpec) -> Tuple[str, ...]:
    return tuple(f.name for f in spec.sequence_features())


def _check_parallel(path: str, batch: Mapping[str, Any], names: Tuple[str, ...]) -> np.ndarray:
    """Row lengths of a parsed batch; raises when a sequence field is not parallel to the timestamps.

    The writer checks this for every record, so a mismatch here means the files and the spec
    disagree: typically a spec declaring Semantic IDs over files written without them (a
    missing list field parses as empty rather than failing).
    """
    lengths = batch[_TIMESTAMP].row_lengths().numpy()
    for name in names:
        other = batch[name].row_lengths().numpy()
        if not np.array_equal(other, lengths):
            i = int(np.flatnonzero(other != lengths)[0])
            raise ValueError(
                f"{path}: a record in the batch of user_id {int(batch[spec_lib.USER_ID.name][i])} has "
                f"{int(other[i])} values of {name!r} for {int(lengths[i])} behaviors; the files were written with "
                "another spec (e.g. without Semantic IDs): read them with the spec.json written beside them, "
                "or re-run write-tfrecords"
            )
    return lengths.astype(np.int64)


def _batch_to_numpy(path: str, batch: Mapping[str, Any], spec: FeatureSpec) -> Dict[str, np.ndarray]:
    """Parsed history batch -> numpy: user features dense, sequences as flat values + row lengths."""
    names = _sequence_names(spec)
    out = {spec_lib.USER_ID.name: batch[spec_lib.USER_ID.name].numpy()}
    out.update({name: value.numpy() for name, value in dense_profile(batch, spec).items()})
    for name in names:
        out[name] = batch[name].flat_values.numpy()
    out["row_lengths"] = _check_parallel(path, batch, names)
    return out


def _concat(
    batches: List[Dict[str, np.ndarray]], spec_fields: Mapping[str, Tuple[np.dtype, Tuple[int, ...]]]
) -> Dict[str, np.ndarray]:
    """Concatenates numpy batches field by field (typed empties of the row shape when there are none)."""
    return {
        name: np.concatenate([b[name] for b in batches]) if batches else np.zeros((0,) + shape, dtype)
        for name, (dtype, shape) in spec_fields.items()
    }


def _check_unique_users(user_ids: np.ndarray, file_of_row: np.ndarray) -> None:
    """Raises ValueError naming the first user with more than one history record."""
    order = np.argsort(user_ids, kind="stable")
    dup = np.flatnonzero(user_ids[order][1:] == user_ids[order][:-1])
    if len(dup):
        user = int(user_ids[order][dup[0]])
        files = sorted(set(file_of_row[user_ids == user].tolist()))
        raise ValueError(
            f"user_id {user} has {int((user_ids == user).sum())} user-history records (in {files}); "
            "write exactly one record per user, merging that user's behaviors oldest first."
        )


def _check_sorted(user_ids: np.ndarray, row_splits: np.ndarray, timestamps: np.ndarray) -> None:
    """Raises ValueError naming the first user whose behaviors are not sorted oldest first."""
    decreasing = timestamps[1:] < timestamps[:-1]
    starts = row_splits[1:-1]
    starts = starts[(starts > 0) & (starts < len(timestamps))]
    decreasing[starts - 1] = False  # pairs that straddle two users do not count
    bad = np.flatnonzero(decreasing)
    if len(bad):
        row = int(np.searchsorted(row_splits, bad[0], side="right")) - 1
        raise ValueError(
            f"user_id {int(user_ids[row])}: {_TIMESTAMP} is not sorted oldest first (value "
            f"{timestamps[bad[0] + 1]} follows {timestamps[bad[0]]}); re-write the user-history "
            "file with write_user_histories, which checks the order."
        )


def load_user_histories(paths: Paths, spec: FeatureSpec, skip_corrupt: bool = False) -> UserHistories:
    """Reads every user-history record into memory (CSR form), checking each file first.

    Args:
      paths: user-history TFRecord file(s): a path, a glob, or a list of them.
      spec: the feature spec.
      skip_corrupt: bool, default False. Drop corrupt files (their users become cold-start)
        instead of raising ``CorruptTFRecordError``.

    Returns:
      The ``UserHistories``.

    Raises:
      FileNotFoundError: a path does not exist or a glob matches nothing.
      CorruptTFRecordError: a file is corrupt and ``skip_corrupt`` is False.
      ValueError: a user has more than one record, or a history is not sorted by timestamp.
    """
    per_file: Dict[str, List[Dict[str, np.ndarray]]] = {}
    names = _sequence_names(spec)
    report = scan_tfrecord_files(
        paths, spec, spec.history_record_features(), skip_corrupt=skip_corrupt,
        on_batch=lambda path, batch: per_file.setdefault(path, []).append(_batch_to_numpy(path, batch, spec)),
    )
    batches = [b for path in report.good_files for b in per_file.get(path, [])]
    dtypes = {spec_lib.USER_ID.name: (np.int64, ()), "row_lengths": (np.int64, ())}
    dtypes.update({f.name: (f.np_dtype, (f.max_len,) if f.multi else ()) for f in spec.user_fields()})
    dtypes.update({f.name: (f.np_dtype, ()) for f in spec.sequence_features()})
    data = _concat(batches, dtypes)
    user_ids = data[spec_lib.USER_ID.name]
    row_splits = np.concatenate([[0], np.cumsum(data["row_lengths"])]).astype(np.int64)
    file_of_row = np.repeat(report.good_files, [report.record_counts[p] for p in report.good_files])
    _check_unique_users(user_ids, file_of_row)
    _check_sorted(user_ids, row_splits, data[_TIMESTAMP])
    return UserHistories(
        user_ids=user_ids,
        profile={f.name: data[f.name] for f in spec.user_fields()},
        row_splits=row_splits,
        sequences={name: data[name] for name in names},
        scan=report,
    )


# --------------------------------------------------------------------------------------------
# The in-graph join
# --------------------------------------------------------------------------------------------
def _lower_bound(sorted_flat: tf.Tensor, start: tf.Tensor, end: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
    """Vectorized binary search: per example, the first index in [start, end) with value >= target.

    ``sorted_flat`` must be sorted within each window and hold a valid entry at every index
    up to ``max(end)`` (the trailing sentinel), so every gather is in range.
    """

    def body(lo: tf.Tensor, hi: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
        mid = (lo + hi) // 2
        active = lo < hi
        go_right = active & (tf.gather(sorted_flat, mid) < target)
        lo = tf.where(go_right, mid + 1, lo)
        hi = tf.where(active & ~go_right, mid, hi)
        return lo, hi

    lo, _ = tf.while_loop(lambda lo, hi: tf.reduce_any(lo < hi), body, (start, end))
    return lo


def cut_and_pad(
    sequences: Mapping[str, tf.Tensor],
    start: tf.Tensor,
    end: tf.Tensor,
    request_timestamp: tf.Tensor,
    max_history_length: int,
) -> Dict[str, tf.Tensor]:
    """Cuts each example's behavior window at its request time and pads it to ``[B, L]``.

    Keeps the behaviors with timestamp strictly before ``request_timestamp``, then the most
    recent ``max_history_length`` of those.

    Args:
      sequences: name -> ``[N + 1]`` flat values, sorted by timestamp within each window, whose
        last entry (index N) is the zero padding sentinel.
      start: ``[B]`` int64 first flat index of each example's behaviors.
      end: ``[B]`` int64 one past the last (``start == end`` for an empty history).
      request_timestamp: ``[B]`` int64.
      max_history_length: int, the most recent behaviors kept.

    Returns:
      The ``hist_*`` fields as ``[B, L]`` (L = longest kept history, at least 1) and
      ``hist_length`` ``[B]`` int32.
    """
    sentinel = tf.shape(sequences[_TIMESTAMP], out_type=tf.int64)[0] - 1
    cut = _lower_bound(sequences[_TIMESTAMP], start, end, request_timestamp)  # [B]
    begin = tf.maximum(start, cut - max_history_length)
    length = cut - begin  # [B]
    width = tf.maximum(tf.reduce_max(tf.concat([length, [0]], 0)), 1)
    positions = tf.range(width, dtype=tf.int64)
    valid = positions[None, :] < length[:, None]  # [B, L]
    index = tf.where(valid, begin[:, None] + positions[None, :], sentinel)  # [B, L]
    out = {name: tf.gather(values, index) for name, values in sequences.items()}
    out[spec_lib.HIST_LENGTH] = tf.cast(length, tf.int32)
    return out


def stack_semantic_ids(features: Dict[str, tf.Tensor], spec: FeatureSpec) -> Dict[str, tf.Tensor]:
    """Replaces the per-level Semantic ID fields by their stack on a last axis, in place.

    ``item_semantic_id_1..M`` (each ``[B]``) -> ``item_semantic_id`` ``[B, M]`` and
    ``hist_semantic_id_1..M`` (each ``[B, L]``) -> ``hist_semantic_id`` ``[B, L, M]``. Nothing
    changes when ``spec.semantic_id_levels`` is 0.

    Returns:
      ``features``.
    """
    for prefix in (spec_lib.ITEM_SEMANTIC_ID, spec_lib.HIST_SEMANTIC_ID):
        levels = [f.name for f in spec.semantic_id_features(prefix)]
        if levels:
            features[prefix] = tf.stack([features.pop(name) for name in levels], axis=-1)
    return features


# (profile features, window start [B], window end [B], flat sequences with sentinel)
_Join = Tuple[Dict[str, tf.Tensor], tf.Tensor, tf.Tensor, Dict[str, tf.Tensor]]


def _join_history_file(parsed: Mapping[str, tf.Tensor], history: HistoryTensors) -> _Join:
    """Window bounds + profile of each example's user from the in-memory histories."""
    row = history.row_of_user.lookup(parsed[spec_lib.USER_ID.name])  # [B]; U = cold start
    start = tf.gather(history.row_splits, row)
    end = tf.gather(history.row_splits, row + 1)
    profile = {name: tf.gather(values, row) for name, values in history.profile.items()}
    return profile, start, end, history.sequences


def _join_inline(parsed: Mapping[str, tf.Tensor], spec: FeatureSpec) -> _Join:
    """Window bounds + profile from the ragged sequence fields of the examples themselves."""
    splits = tf.cast(parsed[_TIMESTAMP].row_splits, tf.int64)
    sequences = {
        name: tf.concat([parsed[name].flat_values, tf.zeros([1], parsed[name].dtype)], 0)
        for name in _sequence_names(spec)
    }
    return dense_profile(parsed, spec), splits[:-1], splits[1:], sequences


def _make_batch_fn(
    spec: FeatureSpec, history: HistoryTensors | None, include_true_prob: bool, inline_history: bool,
    user_vectors: UserVectorTensors | None = None,
) -> Callable[[tf.Tensor], Tuple[Dict[str, tf.Tensor], tf.Tensor]]:
    """The per-batch map: parse serialized examples, join histories (and user vectors), emit model features."""
    parse_spec = spec.parse_spec(_example_features(spec, include_true_prob, inline_history))

    def batch_fn(serialized: tf.Tensor) -> Tuple[Dict[str, tf.Tensor], tf.Tensor]:
        parsed = tf.io.parse_example(serialized, parse_spec)
        features, label = features_from_columns(parsed, spec, history, include_true_prob, inline_history)
        if user_vectors is not None:
            features = join_user_vectors(features, user_vectors)
        return features, label

    return batch_fn


def features_from_columns(
    parsed: Mapping[str, Any], spec: FeatureSpec, history: HistoryTensors | None, include_true_prob: bool,
    inline_history: bool = False,
) -> Tuple[Dict[str, tf.Tensor], tf.Tensor]:
    """One batch of example columns (parsed TFRecords, or Parquet columns) -> ``(features, label)``.

    Joins each example with its user's history (``history``, or the example's own inline lists),
    cuts it at the request time, adds the user / context features and the stacked Semantic IDs.
    Every reader calls this, so they all emit the same model features.
    """
    if inline_history:
        profile, start, end, sequences = _join_inline(parsed, spec)
    else:
        profile, start, end, sequences = _join_history_file(parsed, history)
    request_timestamp = parsed[spec_lib.REQUEST_TIMESTAMP.name]
    features = {name: parsed[name] for name in (spec_lib.USER_ID.name, spec_lib.TARGET_FEATURES[0].name)}
    features[spec_lib.REQUEST_TIMESTAMP.name] = request_timestamp
    features.update(profile)
    features.update({f.name: parsed[f.name] for f in spec.context_fields()})
    features.update(cut_and_pad(sequences, start, end, request_timestamp, spec.max_history_length))
    features.update({f.name: parsed[f.name] for f in spec.semantic_id_features(spec_lib.ITEM_SEMANTIC_ID)})
    stack_semantic_ids(features, spec)
    if include_true_prob:
        features[spec_lib.TRUE_PROB.name] = parsed[spec_lib.TRUE_PROB.name]
    return features, tf.cast(parsed[spec_lib.LABEL.name], tf.float32)


def _example_features(
    spec: FeatureSpec, include_true_prob: bool, inline_history: bool
) -> Tuple[spec_lib.Feature, ...]:
    return spec.example_record_features(inline_history=inline_history, with_true_prob=include_true_prob)


# --------------------------------------------------------------------------------------------
# The dataset
# --------------------------------------------------------------------------------------------
def _report_cold_start(users: np.ndarray, history: UserHistories) -> int:
    """Counts examples whose user has no history record; logs the count once."""
    n_cold = int((~np.isin(users, history.user_ids)).sum())
    if n_cold:
        logger.warning(
            "%d of %d examples (%.1f%%) have no user-history record: they get an empty history "
            "and unknown user features (cold start).", n_cold, len(users), 100.0 * n_cold / max(len(users), 1),
        )
    return n_cold


def _records(files: List[str], shuffle: bool, seed: int) -> tf.data.Dataset:
    """Serialized records of the files (file order shuffled too when ``shuffle``)."""
    dataset = tf.data.Dataset.from_tensor_slices(files)
    if shuffle and len(files) > 1:
        dataset = dataset.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    return dataset.interleave(
        tf.data.TFRecordDataset, cycle_length=min(len(files), 8), num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )


def _resolve_history(
    history: UserHistories | Paths | None, spec: FeatureSpec, skip_corrupt: bool
) -> UserHistories:
    """The ``UserHistories`` to join: as given, or loaded from user-history paths."""
    if history is None:
        raise ValueError(
            "make_dataset needs the users' histories: pass history=load_user_histories(paths, spec) "
            "(or the user-history paths), or inline_history=True for examples that carry them."
        )
    if isinstance(history, UserHistories):
        return history
    return load_user_histories(history, spec, skip_corrupt=skip_corrupt)


def _scan_examples(
    paths: Paths, spec: FeatureSpec, skip_corrupt: bool, include_true_prob: bool, inline_history: bool
) -> Tuple[ScanReport, np.ndarray]:
    """Scans the example files; returns their ``ScanReport`` and every example's user_id (good files)."""
    users: Dict[str, List[np.ndarray]] = {}

    def on_batch(path, batch):
        if inline_history:
            _check_parallel(path, batch, _sequence_names(spec))
        users.setdefault(path, []).append(batch[spec_lib.USER_ID.name].numpy())

    report = scan_tfrecord_files(
        paths, spec, _example_features(spec, include_true_prob, inline_history), skip_corrupt=skip_corrupt,
        on_batch=on_batch,
    )
    if not report.good_files:
        skipped = [s.path for s in report.skipped]
        raise ValueError(f"Every example file is corrupt ({skipped}); there is nothing to read.")
    good_users = [u for path in report.good_files for u in users.get(path, [])]
    return report, np.concatenate([np.zeros(0, np.int64)] + good_users)


def make_dataset(
    example_paths: Paths,
    spec: FeatureSpec,
    history: UserHistories | Paths | None = None,
    batch_size: int = 256,
    shuffle: bool = False,
    shuffle_buffer: int = 10000,
    seed: int = 0,
    repeat: bool = False,
    skip_corrupt: bool = False,
    include_true_prob: bool = False,
    inline_history: bool = False,
    drop_remainder: bool = False,
    user_vectors: UserVectors | None = None,
    min_request_timestamp: int | None = None,
    input_shard: Tuple[int, int] | None = None,
    scan_reports: List[ScanReport] | None = None,
    max_request_timestamp: int | None = None,
) -> tf.data.Dataset:
    """Batches of ``(features, label)`` with each example's history cut at its request time.

    The example files are scanned first (``scan_tfrecord_files``): a corrupt file raises, or is
    dropped loudly with ``skip_corrupt=True``; records of several files are interleaved. Each
    example keeps only its user's behaviors strictly before ``request_timestamp``, the most
    recent ``spec.max_history_length`` of them. A user without a history record gets an empty
    history and unknown user features (cold start); their count is logged once here.

    With ``user_vectors``, every batch also carries ``user_vector`` ``[B, D]`` (joined after the
    history, by user and request time: see ``tfrec.data.user_vectors`` for the lookup rule).

    Args:
      example_paths: example TFRecord file(s): a path, a glob, or a list of them.
      spec: the feature spec.
      history: ``UserHistories`` from ``load_user_histories``, or user-history path(s) to load;
        required unless ``inline_history``.
      batch_size: int, default 256.
      shuffle: bool, default False. Shuffle files and records.
      shuffle_buffer: int, default 10000. Records in the shuffle buffer.
      seed: int, default 0. Shuffle seed.
      repeat: bool, default False. Repeat forever.
      skip_corrupt: bool, default False. Drop corrupt files instead of raising.
      include_true_prob: bool, default False. Add ``true_prob`` [B] float32 to the features
        (the example files must carry it).
      inline_history: bool, default False. Read the user features and the sequences from the
        example records themselves instead of ``history``.
      drop_remainder: bool, default False. Drop the last partial batch.
      user_vectors: ``UserVectors`` or None, default None. Precomputed per-user vectors to add as
        ``user_vector``; required when ``spec.user_vector_dim`` > 0, and then of that width.
      min_request_timestamp: int or None, default None. Keep only the examples with
        ``request_timestamp >= min_request_timestamp`` (a ``tf.data`` filter on each record's
        parsed ``request_timestamp``, before shuffling and batching, so batches stay full); the
        cold-start count above still counts every example.
      max_request_timestamp: int or None, default None. Keep only the examples with
        ``request_timestamp < max_request_timestamp`` (exclusive: with ``min_request_timestamp``, a
        half-open time window, as the benchmark's validation window; the same kind of filter).
      input_shard: ``(count, index)`` or None, default None. Keep every ``count``-th example record
        from the ``index``-th on (``tf.data.Dataset.shard``, before shuffling): one input pipeline of
        several reading the same files (data not sharded by user).
      scan_reports: list or None, default None. A list to append the ``ScanReport`` s of the files
        read to (the history's, then the examples'): how a caller reports which corrupt files
        ``skip_corrupt`` dropped (their ``skipped``).

    Returns:
      A ``tf.data.Dataset`` of ``(features, label)``; see the module docstring for shapes.

    Raises:
      ValueError: ``history`` is missing while ``inline_history`` is False, bad sizes, or
        ``user_vectors`` missing / of another width than ``spec.user_vector_dim``.
      FileNotFoundError: a path does not exist or a glob matches nothing.
      CorruptTFRecordError: a file is corrupt and ``skip_corrupt`` is False.
    """
    if batch_size <= 0 or shuffle_buffer <= 0:
        raise ValueError(
            f"batch_size and shuffle_buffer must be positive. Received: batch_size={batch_size}, "
            f"shuffle_buffer={shuffle_buffer}"
        )
    _check_user_vectors(spec, user_vectors)
    # The file scans read eagerly, also when the pipeline is built inside a traced function (a
    # parameter-server input function, traced once by the coordinator); the history's tables are
    # built where the pipeline is, so a function traced for remote workers carries its own.
    if inline_history:
        tensors = None
        with tf.init_scope():
            scan, _ = _scan_examples(example_paths, spec, skip_corrupt, include_true_prob, True)
        scans = [scan]
    else:
        with tf.init_scope():
            history = _resolve_history(history, spec, skip_corrupt)
            scan, users = _scan_examples(example_paths, spec, skip_corrupt, include_true_prob, False)
            _report_cold_start(users, history)
        tensors = history.tensors
        scans = [history.scan, scan]
    if scan_reports is not None:
        scan_reports.extend(scans)
    dataset = _records(scan.good_files, shuffle, seed)
    if input_shard is not None and input_shard[0] > 1:
        dataset = dataset.shard(int(input_shard[0]), int(input_shard[1]))
    if min_request_timestamp is not None or max_request_timestamp is not None:
        dataset = dataset.filter(_requested_in(min_request_timestamp, max_request_timestamp))
    if shuffle:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    dataset = dataset.map(
        _make_batch_fn(spec, tensors, include_true_prob, inline_history,
                       user_vectors.tensors() if user_vectors is not None else None),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return dataset.prefetch(tf.data.AUTOTUNE)


def _check_user_vectors(spec: FeatureSpec, user_vectors: UserVectors | None) -> None:
    """Raises ValueError when ``user_vectors`` does not fit ``spec.user_vector_dim`` (0 = any width)."""
    if user_vectors is not None and not isinstance(user_vectors, UserVectors):
        raise ValueError(f"user_vectors must be a UserVectors (UserVectors.load(path)). "
                         f"Received: {type(user_vectors).__name__}")
    if spec.user_vector_dim and user_vectors is None:
        raise ValueError(f"the spec declares user_vector_dim={spec.user_vector_dim}: pass "
                         "user_vectors=UserVectors.load(path) (the file the model was trained with)")
    if spec.user_vector_dim and user_vectors.dim != spec.user_vector_dim:
        raise ValueError(f"user_vectors have D={user_vectors.dim} but the spec declares "
                         f"user_vector_dim={spec.user_vector_dim}: pass the file the model was trained with")


def _requested_in(start: int | None, end: int | None) -> Callable[[tf.Tensor], tf.Tensor]:
    """A ``tf.data`` predicate on one serialized example: ``start <= request_timestamp < end`` (None = open)."""
    name = spec_lib.REQUEST_TIMESTAMP.name
    parse_spec = {name: tf.io.FixedLenFeature([], tf.int64)}

    def keep(serialized: tf.Tensor) -> tf.Tensor:
        t = tf.io.parse_single_example(serialized, parse_spec)[name]
        ok = tf.constant(True)
        if start is not None:
            ok = tf.logical_and(ok, t >= int(start))
        if end is not None:
            ok = tf.logical_and(ok, t < int(end))
        return ok

    return keep


def features_to_numpy(features: Mapping[str, tf.Tensor]) -> Dict[str, np.ndarray]:
    """Converts a features dict (e.g. one batch of ``make_dataset``) to numpy arrays."""
    return {name: np.asarray(value) for name, value in features.items()}


__all__ = [
    "HistoryTensors",
    "UserHistories",
    "cut_and_pad",
    "features_from_columns",
    "features_to_numpy",
    "load_user_histories",
    "make_dataset",
    "stack_semantic_ids",
]
