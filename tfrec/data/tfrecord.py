"""TFRecord codec: a validating, atomic writer and an up-front per-file integrity scan.

Writing: every record is checked against the ``FeatureSpec`` before it is written (field set,
types, id ranges, labels, parallel sequence lengths, timestamp order) and the file appears only
once every record passed (temp file in the same directory, then ``os.replace``).

Reading: ``tf.data``'s ``ignore_errors`` silently drops the *rest of a file* after one bad record,
and ``TFRecordDataset`` silently ends a file at a truncated trailing record. So
``scan_tfrecord_files`` reads and parses every record of every file up front and either raises
``CorruptTFRecordError`` or, with ``skip_corrupt=True``, drops the whole damaged file loudly.
"""
from __future__ import annotations

import contextlib
import dataclasses
import glob as _glob
import logging
import os
import uuid
import warnings
from typing import Any, Callable, Dict, Iterable, List, Mapping, Sequence, Tuple

import numpy as np
import tensorflow as tf

from tfrec.data import spec as spec_lib
from tfrec.data.spec import Feature, FeatureSpec
from tfrec.tf_errors import clean_tf_message

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike
Paths = PathLike | Sequence[PathLike]

# Bytes around each record's payload in a TFRecord file: uint64 length, uint32 length CRC,
# uint32 payload CRC.
_RECORD_FRAMING_BYTES = 16
_SCAN_BATCH_SIZE = 1024
_SKIP_CORRUPT_FIX = "re-write the file, or pass skip_corrupt=True (--skip-corrupt) to skip it"
# What ``tf.io.parse_example`` raises on a record that is no ``tf.train.Example`` of the spec:
# InvalidArgumentError, or UnicodeDecodeError when TF's message quotes the record's raw bytes and
# those are not UTF-8 (pybind then fails to turn the message into a str: e.g. a garbage payload
# that passes its CRC).
_PARSE_ERRORS = (tf.errors.InvalidArgumentError, UnicodeDecodeError)
_MAX_REASON_CHARS = 200


class RecordValidationError(ValueError):
    """A record handed to the writer breaks the feature spec.

    The message names the record number (0-based, in the order written), the field, what is
    wrong and how to fix it.

    Attributes:
      record: 0-based index of the offending record in the stream written.
      field: name of the offending field.
    """

    def __init__(self, record: int, field: str, problem: str):
        self.record = record
        self.field = field
        super().__init__(f"record {record}, field {field!r}: {problem}.")


class CorruptTFRecordError(IOError):
    """A TFRecord file cannot be read (or parsed) to its end.

    Attributes:
      path: the damaged file.
      records_readable: records readable (and parseable) before the damage.
      reason: what went wrong.
    """

    def __init__(self, path: str, records_readable: int, reason: str):
        self.path = path
        self.records_readable = records_readable
        self.reason = reason
        super().__init__(
            f"TFRecord file {path!r} is corrupt after {records_readable} readable records: "
            f"{reason}. Fix: {_SKIP_CORRUPT_FIX}."
        )


@dataclasses.dataclass(frozen=True)
class SkippedFile:
    """A file dropped by ``scan_tfrecord_files(..., skip_corrupt=True)``.

    Attributes:
      path: the dropped file.
      records_readable: records readable before the damage (all lost with the file).
      reason: what went wrong.
    """

    path: str
    records_readable: int
    reason: str


@dataclasses.dataclass
class ScanReport:
    """Outcome of ``scan_tfrecord_files``.

    Attributes:
      record_counts: number of records of each good file, in reading order.
      skipped: files dropped because they are corrupt (only with ``skip_corrupt=True``).
    """

    record_counts: Dict[str, int] = dataclasses.field(default_factory=dict)
    skipped: List[SkippedFile] = dataclasses.field(default_factory=list)

    @property
    def good_files(self) -> List[str]:
        """Files that read and parse to their end, in reading order."""
        return list(self.record_counts)

    @property
    def n_records(self) -> int:
        """Total number of records in the good files."""
        return sum(self.record_counts.values())


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------
def _where(value: np.ndarray, index: int) -> str:
    """' at position i' for sequence values, '' for scalars."""
    return f" at position {index}" if value.ndim else ""


def _first(mask: np.ndarray) -> int | None:
    """Index of the first True in a 0-d or 1-d mask, or None."""
    flat = np.atleast_1d(mask)
    return int(np.argmax(flat)) if flat.any() else None


def _item(value: np.ndarray, index: int) -> Any:
    item = np.atleast_1d(value)[index]
    return item.item() if isinstance(item, np.generic) else item  # object arrays hold Python objects


def _to_array(record: int, feature: Feature, raw: Any) -> np.ndarray:
    """Converts one field to a numpy array of the feature's dtype, checking shape and type."""
    try:
        value = np.asarray(raw)
    except ValueError:  # ragged nesting: numpy refuses "an array element with a sequence"
        raise RecordValidationError(
            record, feature.name,
            "nested lists of different lengths; pass a flat list (sequence and multi-valued fields) or a scalar",
        ) from None
    if feature.sequence and value.ndim != 1:
        raise RecordValidationError(
            record, feature.name,
            f"expected a 1-D list with one entry per behavior, got shape {value.shape}; "
            "pass a list or 1-D numpy array",
        )
    if feature.multi:
        if value.ndim != 1:
            raise RecordValidationError(
                record, feature.name,
                f"expected a list of at most {feature.max_len} values (multi-valued), got shape {value.shape}; "
                "pass a list or 1-D numpy array",
            )
        if len(value) > feature.max_len:
            raise RecordValidationError(
                record, feature.name,
                f"{len(value)} values but the schema's max_len is {feature.max_len}; raise max_len or trim the list",
            )
    elif not feature.sequence and value.ndim != 0:
        raise RecordValidationError(
            record, feature.name, f"expected a scalar, got shape {value.shape}; pass a single value"
        )
    if value.size == 0:
        return value.astype(feature.np_dtype)
    allowed = "biu" if feature.dtype == spec_lib.INT else "biuf"
    if value.dtype.kind not in allowed:
        bad = 0
        if value.dtype.kind == "f":
            bad = _first(np.atleast_1d(value) != np.round(np.atleast_1d(value)))
            bad = 0 if bad is None else bad
        raise RecordValidationError(
            record, feature.name,
            f"expected {feature.dtype} values, got {value.dtype} value {_item(value, bad)!r}"
            f"{_where(value, bad)}; cast the field to {feature.dtype}",
        )
    if value.dtype.kind == "u" and feature.dtype == spec_lib.INT:
        bad = _first(value > np.iinfo(np.int64).max)
        if bad is not None:
            raise RecordValidationError(
                record, feature.name,
                f"value {_item(value, bad)}{_where(value, bad)} does not fit in int64; remap it",
            )
    with np.errstate(over="ignore", invalid="ignore"):  # overflow to inf is reported below
        typed = value.astype(feature.np_dtype, copy=False)
    if typed.dtype.kind == "f":
        bad = _first(~np.isfinite(typed))
        if bad is not None:
            raise RecordValidationError(
                record, feature.name,
                f"NaN/inf value {_item(value, bad)}{_where(value, bad)} (as float32); replace "
                "missing or out-of-range values (e.g. with 0) before writing",
            )
    return typed


def _vocab_origin(feature: Feature) -> str:
    """Where a field's vocabulary size is declared, for error messages."""
    if isinstance(feature.vocab, str):
        return f"FeatureSpec.{feature.vocab}"
    return f"the schema's vocab_size of {feature.schema_name or feature.name!r}"


def _check_range(record: int, feature: Feature, value: np.ndarray, spec: FeatureSpec) -> None:
    """Vocabulary, sign, label and probability bounds of one field."""
    vocab = spec.vocab_size(feature)
    if vocab is not None:
        bad = _first((value < 0) | (value >= vocab))
        if bad is not None:
            raise RecordValidationError(
                record, feature.name,
                f"id {_item(value, bad)}{_where(value, bad)} is outside [0, {vocab}) "
                f"({_vocab_origin(feature)}={vocab}); remap ids into the vocabulary or "
                f"raise {_vocab_origin(feature)}",
            )
    if feature.non_negative:
        bad = _first(value < 0)
        if bad is not None:
            raise RecordValidationError(
                record, feature.name,
                f"value {_item(value, bad)}{_where(value, bad)} is negative; this field must be >= 0",
            )
    if feature.name == spec_lib.LABEL.name and value not in (0, 1):
        raise RecordValidationError(
            record, feature.name, f"must be 0 or 1, got {value.item()}; binarize the label"
        )
    if feature.name == spec_lib.TRUE_PROB.name and not 0.0 <= value <= 1.0:
        raise RecordValidationError(
            record, feature.name, f"must lie in [0, 1], got {value.item():g}; clip the probability"
        )


def _check_sequences(record: int, arrays: Mapping[str, np.ndarray], features: Sequence[Feature]):
    """Parallel sequence fields share one length; timestamps are sorted oldest first."""
    sequences = [f.name for f in features if f.sequence]
    if not sequences:
        return
    first = sequences[0]
    for name in sequences[1:]:
        if len(arrays[name]) != len(arrays[first]):
            raise RecordValidationError(
                record, name,
                f"has {len(arrays[name])} behaviors but {first!r} has {len(arrays[first])}; "
                "every hist_* list needs exactly one entry per behavior",
            )
    ts_name = "hist_timestamp"
    if ts_name in arrays:
        ts = arrays[ts_name]
        bad = _first(ts[1:] < ts[:-1])
        if bad is not None:
            raise RecordValidationError(
                record, ts_name,
                f"behaviors must be sorted oldest first (value {ts[bad + 1]} at position "
                f"{bad + 1} follows {ts[bad]}); sort each user's behaviors by timestamp",
            )


def validate_record(
    record: int, values: Mapping[str, Any], features: Sequence[Feature], spec: FeatureSpec
) -> Dict[str, np.ndarray]:
    """Checks one record against the spec and returns its fields as typed numpy arrays.

    Args:
      record: 0-based index of the record in the stream (used in error messages).
      values: field name -> python scalar, numpy scalar, 1-D sequence or numpy array.
      features: the fields this record type must have (e.g. ``spec.history_record_features()``).
      spec: vocabulary sizes bounding the id fields.

    Returns:
      Field name -> numpy array of the feature's dtype (0-d for scalars, 1-d for sequences).

    Raises:
      RecordValidationError: the record breaks the spec; the message says where and how to fix it.
    """
    names = [f.name for f in features]
    for name in names:
        if name not in values:
            raise RecordValidationError(
                record, name, f"missing; every record of this type needs the fields {names}"
            )
    for name in values:
        if name not in names:
            raise RecordValidationError(
                record, name,
                f"unknown field (expected exactly {names}); remove it or fix its name",
            )
    arrays = {}
    for feature in features:
        arrays[feature.name] = _to_array(record, feature, values[feature.name])
        _check_range(record, feature, arrays[feature.name], spec)
    _check_sequences(record, arrays, features)
    return arrays


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------
def _varint(n: int) -> bytes:
    """Protobuf base-128 varint of a non-negative int."""
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _float_list(value: np.ndarray) -> tf.train.FloatList:
    """A FloatList parsed from packed little-endian bytes (10x faster than ``extend``)."""
    raw = np.atleast_1d(value).astype("<f4", copy=False).tobytes()
    return tf.train.FloatList.FromString(b"\x0a" + _varint(len(raw)) + raw)


def encode_record(arrays: Mapping[str, np.ndarray], features: Sequence[Feature]) -> bytes:
    """Serializes arrays checked by ``validate_record`` as a ``tf.train.Example`` (the one encoder of
    every writer: in-process and Beam, so their bytes are identical)."""
    example = tf.train.Example()
    feature_map = example.features.feature
    for feature in features:
        value = arrays[feature.name]
        if feature.dtype == spec_lib.INT:
            feature_map[feature.name].int64_list.value.extend(np.atleast_1d(value).tolist())
        else:
            feature_map[feature.name].float_list.CopyFrom(_float_list(value))
    return example.SerializeToString()


def write_records(
    path: PathLike,
    records: Iterable[Mapping[str, Any]],
    features: Sequence[Feature],
    spec: FeatureSpec,
    progress: str | None = None,
    total: int | None = None,
) -> int:
    """Validates and writes records as ``tf.train.Example`` s, atomically.

    Records go to a temporary file in the destination directory that replaces ``path`` only
    after every record passed validation, so a failure never leaves a half-written file.

    Args:
      path: destination TFRecord file (its directory is created if needed).
      records: iterable of dicts, field name -> python scalar, numpy scalar, 1-D sequence or
        numpy array; exactly the fields in ``features``.
      features: the record layout, e.g. ``spec.history_record_features()``.
      spec: vocabulary sizes bounding the id fields.
      progress: a description to show a progress bar with (stderr), or None for none.
      total: the number of records, for the bar (optional).

    Returns:
      The number of records written.

    Raises:
      RecordValidationError: a record breaks the spec (nothing is written).
    """
    return write_sharded_records([path], records, features, spec, progress=progress, total=total)[0]


def write_sharded_records(
    paths: Sequence[PathLike],
    records: Iterable[Mapping[str, Any]],
    features: Sequence[Feature],
    spec: FeatureSpec,
    shard_of: Callable[[Mapping[str, np.ndarray]], int] | None = None,
    progress: str | None = None,
    total: int | None = None,
) -> list[int]:
    """``write_records`` into several files: each record goes to ``paths[shard_of(record)]``.

    Records keep their relative order within a file; error messages number records in the
    order of ``records`` (as ``write_records``). Atomic over all files: every file is replaced
    only after every record passed validation.

    Args:
      paths: destination TFRecord files, one per shard (all in existence afterwards, empty ones too).
      records: as in ``write_records``.
      features: the record layout.
      spec: vocabulary sizes bounding the id fields.
      shard_of: record (its validated numpy arrays) -> shard index in ``[0, len(paths))``, e.g.
        ``functools.partial(tfrec.data.sharding.record_shard, num_shards=len(paths))``; may be
        None with one path.
      progress: a description to show a progress bar with (stderr), or None for none.
      total: the number of records, for the bar (optional).

    Returns:
      The number of records written to each file, in ``paths`` order.

    Raises:
      RecordValidationError: a record breaks the spec (nothing is written).
      ValueError: several paths and no ``shard_of``.
    """
    from tqdm.auto import tqdm

    paths = [os.fspath(p) for p in paths]
    if len(paths) > 1 and shard_of is None:
        raise ValueError(f"{len(paths)} output files need a shard_of function; Received: shard_of=None")
    tmp_paths = []
    for path in paths:
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        tmp_paths.append(os.path.join(directory, f".{os.path.basename(path)}.{uuid.uuid4().hex}.tmp"))
    counts = [0] * len(paths)
    try:
        bar = tqdm(records, desc=progress, total=total, unit="rec", disable=not progress, mininterval=0.5)
        with contextlib.ExitStack() as stack:
            writers = [stack.enter_context(tf.io.TFRecordWriter(t)) for t in tmp_paths]
            stack.enter_context(bar)
            for n, values in enumerate(bar):
                arrays = validate_record(n, values, features, spec)
                shard = 0 if len(paths) == 1 else shard_of(arrays)
                writers[shard].write(encode_record(arrays, features))
                counts[shard] += 1
        for tmp_path, path in zip(tmp_paths, paths):
            os.replace(tmp_path, path)
    except BaseException:
        for tmp_path in tmp_paths:
            if os.path.exists(tmp_path):
                os.remove(tmp_path)
        raise
    return counts


def write_user_histories(path: PathLike, spec: FeatureSpec, records: Iterable[Mapping[str, Any]],
                         **progress) -> int:
    """Writes user-history records (one per user, behaviors oldest first).

    Args:
      path: destination TFRecord file.
      spec: the feature spec.
      records: dicts with the fields of ``spec.history_record_features()``.
      **progress: ``progress`` / ``total`` of ``write_records``.

    Returns:
      The number of records written.
    """
    return write_records(path, records, spec.history_record_features(), spec, **progress)


def write_examples(
    path: PathLike,
    spec: FeatureSpec,
    records: Iterable[Mapping[str, Any]],
    inline_history: bool = False,
    with_true_prob: bool = False,
    **progress,
) -> int:
    """Writes example (impression) records.

    Args:
      path: destination TFRecord file.
      spec: the feature spec.
      records: dicts with the fields of ``spec.example_record_features(inline_history,
        with_true_prob)``.
      inline_history: bool, default False. Records carry the profile and sequence fields.
      with_true_prob: bool, default False. Records carry ``true_prob`` (synthetic data).
      **progress: ``progress`` / ``total`` of ``write_records``.

    Returns:
      The number of records written.
    """
    features = spec.example_record_features(inline_history=inline_history, with_true_prob=with_true_prob)
    return write_records(path, records, features, spec, **progress)


# --------------------------------------------------------------------------------------------
# Scanning
# --------------------------------------------------------------------------------------------
def read_request_timestamps(
    paths: Paths, spec: FeatureSpec, skip_corrupt: bool = False
) -> Tuple[np.ndarray, ScanReport]:
    """Every example record's ``request_timestamp`` (int64 ``[N]``, file order), read through
    ``scan_tfrecord_files``: a damaged file is named with its record (``CorruptTFRecordError``) or,
    with ``skip_corrupt=True``, skipped and reported, never half counted.

    Args:
      paths: example files (a path, a glob, or a list of them).
      spec: the data's feature spec.
      skip_corrupt: bool, default False. Skip damaged files instead of raising.

    Returns:
      The timestamps of the good files and the ``ScanReport``.
    """
    times: Dict[str, List[np.ndarray]] = {}

    def collect(path: str, batch: Dict[str, Any]) -> None:
        times.setdefault(path, []).append(batch[spec_lib.REQUEST_TIMESTAMP.name].numpy())

    report = scan_tfrecord_files(paths, spec, [spec_lib.REQUEST_TIMESTAMP], skip_corrupt, collect)
    good = [t for path in report.good_files for t in times.get(path, [])]
    return np.concatenate([np.zeros(0, np.int64)] + good), report


def resolve_paths(paths: Paths) -> List[str]:
    """Expands a path, a glob, or a list of them into existing files (order kept, no repeats).

    Raises:
      FileNotFoundError: a path does not exist or a glob matches nothing.
    """
    patterns = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if not patterns:
        raise FileNotFoundError("No TFRecord paths given; pass a file, a glob or a list of them.")
    files: List[str] = []
    for pattern in map(os.fspath, patterns):
        if _glob.has_magic(pattern):
            matches = sorted(tf.io.gfile.glob(pattern))
            if not matches:
                raise FileNotFoundError(f"No TFRecord files match the pattern {pattern!r}.")
        elif tf.io.gfile.exists(pattern) and not tf.io.gfile.isdir(pattern):
            matches = [pattern]
        else:
            raise FileNotFoundError(f"TFRecord file {pattern!r} does not exist.")
        files.extend(m for m in matches if m not in files)
    return files


@tf.autograph.experimental.do_not_convert
def _count(n: tf.Tensor, _: tf.Tensor) -> tf.Tensor:
    return n + 1


def _parse_error_message(err: Exception) -> str:
    """A short readable reason from one of ``_PARSE_ERRORS`` (or a read's ``DataLossError``).

    A UnicodeDecodeError carries TF's message as bytes (``err.object``): decoded with the
    record's non-UTF-8 bytes escaped, then cleaned like any TF message (``clean_tf_message``)
    and cut to ``_MAX_REASON_CHARS``, since it may quote a whole garbage payload.
    """
    if isinstance(err, UnicodeDecodeError):
        text = bytes(err.object).decode("utf-8", errors="backslashreplace")
    else:
        text = err.message
    return clean_tf_message(text, _MAX_REASON_CHARS)


def _locate_parse_error(raw: tf.Tensor, parse_spec: Mapping[str, Any]) -> Tuple[int, str]:
    """Index in ``raw`` and message of the first record that fails to parse."""
    for i in range(int(raw.shape[0])):
        try:
            tf.io.parse_example(raw[i : i + 1], parse_spec)
        except _PARSE_ERRORS as err:
            return i, _parse_error_message(err)
    return 0, "the batch fails to parse"


def _scan_file(
    path: str, parse_spec: Mapping[str, Any], on_batch: Callable[[Dict[str, Any]], None] | None
) -> int:
    """Reads and parses every record of one file; returns the record count.

    Raises:
      CorruptTFRecordError: a record fails its CRC, does not parse, or the file ends mid-record.
    """
    n_records = 0
    n_bytes = 0
    dataset = tf.data.TFRecordDataset(path).batch(_SCAN_BATCH_SIZE).prefetch(1)
    try:
        for raw in dataset:
            try:
                parsed = tf.io.parse_example(raw, parse_spec)
            except _PARSE_ERRORS:
                offset, message = _locate_parse_error(raw, parse_spec)
                raise CorruptTFRecordError(
                    path, n_records + offset,
                    f"record {n_records + offset} (in records [{n_records}, "
                    f"{n_records + int(raw.shape[0])})) does not parse against the feature spec "
                    f"({message})",
                ) from None
            if on_batch is not None:
                on_batch(parsed)
            n_records += int(raw.shape[0])
            n_bytes += int(tf.reduce_sum(tf.strings.length(raw))) + _RECORD_FRAMING_BYTES * int(raw.shape[0])
    except tf.errors.DataLossError as err:
        # ignore_errors stops at the first bad record: exactly the readable prefix.
        readable = int(tf.data.TFRecordDataset(path).ignore_errors().reduce(np.int64(0), _count))
        raise CorruptTFRecordError(
            path, readable, f"record {readable} is unreadable ({_parse_error_message(err)})"
        ) from None
    size = tf.io.gfile.stat(path).length
    if n_bytes != size:
        raise CorruptTFRecordError(
            path, n_records,
            f"the file ends with {size - n_bytes} bytes that are not a complete record (truncated)",
        )
    return n_records


def _skip(report: ScanReport, err: CorruptTFRecordError) -> None:
    """Records a dropped file in the report, with a warning and a log line."""
    message = (
        f"Skipping corrupt TFRecord file {err.path!r}: lost its {err.records_readable} readable "
        f"records and the unreadable rest ({err.reason})."
    )
    warnings.warn(message, RuntimeWarning, stacklevel=3)
    logger.warning(message)
    report.skipped.append(SkippedFile(err.path, err.records_readable, err.reason))


def scan_tfrecord_files(
    paths: Paths,
    spec: FeatureSpec,
    features: Sequence[Feature],
    skip_corrupt: bool = False,
    on_batch: Callable[[str, Dict[str, Any]], None] | None = None,
) -> ScanReport:
    """Reads and parses every record of every file before training touches them.

    A file is corrupt when a record fails its CRC, a record does not parse against
    ``spec.parse_spec(features)``, or the file ends mid-record. (``tf.data``'s ``ignore_errors``
    would silently drop the rest of such a file.)

    Args:
      paths: a path, a glob, or a list of them.
      spec: the feature spec.
      features: the record layout the files must parse as.
      skip_corrupt: bool, default False. Drop corrupt files (warning + log line + report entry)
        instead of raising.
      on_batch: optional ``fn(path, parsed_batch)`` called for each parsed batch of up to 1024
        records; batches of a file later found corrupt have already been passed (callers drop
        them using the report).

    Returns:
      A ``ScanReport``.

    Raises:
      FileNotFoundError: a path does not exist or a glob matches nothing.
      CorruptTFRecordError: a file is corrupt and ``skip_corrupt`` is False.
    """
    parse_spec = spec.parse_spec(features)
    report = ScanReport()
    for path in resolve_paths(paths):
        callback = None if on_batch is None else (lambda batch, path=path: on_batch(path, batch))
        try:
            report.record_counts[path] = _scan_file(path, parse_spec, callback)
        except CorruptTFRecordError as err:
            if not skip_corrupt:
                raise
            _skip(report, err)
    return report
