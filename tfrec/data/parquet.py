"""tf.data straight from the raw/ Parquet logs (no TFRecords): pyarrow by default, tensorflow-io optional.

The TFRecord path (``write-tfrecords`` + ``make_dataset``) stays the documented one; this reader
gives the same features (tested) for teams whose logs are Parquet. pyarrow is the default reader
because tensorflow-io 0.37.1 is no faster here and mishandles Parquet in the ways listed below
(``reader="tfio"`` keeps it available for flat columns, behind this module's checks).

Three pieces, so that teams who keep their logs in Parquet can train without ``write-tfrecords``:

* ``parquet_columns_dataset``: a typed column reader. Scalar columns (int64, int32, float,
  double, bool, string) are read with tensorflow-io (``tfio.IODataset.from_parquet`` per row,
  ``tfio.IOTensor.from_parquet`` slices per chunk); list columns (``list<int64>`` ...) with a
  pyarrow fallback of the same structure, because tensorflow-io 0.37.1 cannot read them (see
  below). Every declared column is checked against the file's schema first.
* ``histories_from_parquet``: the CSR ``UserHistories`` that ``load_user_histories`` builds from
  ``user_histories.tfrecord``, built from ``behaviors.parquet`` (+ ``users.parquet``) instead: the
  same arrays (behaviors sorted by ``(user_id, timestamp)``, ties in file order, as
  ``write-tfrecords`` sorts them), so the in-graph join of ``tfrec.data.dataset`` applies as is.
* ``make_parquet_dataset``: batches of ``(features, label)`` from ``train.parquet`` /
  ``test.parquet`` joined in graph with those histories: the same features as ``make_dataset``
  over the TFRecords of the same raw logs (``bench/parquet_vs_tfrecord.py`` checks it).

What tensorflow-io 0.37.1 does with Parquet (measured; ``tests/data/test_parquet.py`` pins the
safe parts):

* It reads the *physical* type of flat columns: INT64 -> int64, INT32 -> int32 (also int8/int16
  and uint8/uint16), FLOAT -> float32, DOUBLE -> float64, BOOLEAN -> bool, BYTE_ARRAY -> string.
  uint64 comes back as a negative int64 above 2**63, timestamps as raw int64 in the file's unit.
* List columns: the column itself is unknown (``from_parquet(path, ["hist"])`` fails with
  ``slice index 0 of dimension 0 out of bounds``); tensorflow-io lists only the leaf
  ``hist.list.element`` as a *scalar* column of ``num_rows`` values, and reading it returns the
  first ``num_rows`` flattened values of each row group with no row boundaries: silently wrong.
* Nulls are not detected: each null shifts every later value of its row group up by one row
  and the row group's last value is garbage (no error).
* Inside a tf.data graph the declared dtype is trusted: a column declared int32 that holds
  int64 (or float vs double) aborts the process (``Check failed: dtype() == expected_dtype``,
  SIGABRT); in eager mode a plain dtype is ignored and a ``tf.TensorSpec`` of the wrong dtype
  fails at ``MakeIterator``. A missing column fails with ``slice index 0 of dimension 0 out of
  bounds``, without the column's name.
* It caches each file's footer per process, keyed by the path: a file rewritten in place under
  the same path is then read with the old footer (new columns are invisible; reads abort the
  process with ``parquet::ParquetException: Unexpected end of stream`` or return values at the
  old offsets).

So this module checks the declared columns with pyarrow before handing a file to tensorflow-io
(``ParquetColumnError`` names the column and the fix), rejects nulls, refuses a file rewritten
since this process first opened it with tensorflow-io, and reads list columns with pyarrow.
"""
from __future__ import annotations

import collections
import dataclasses
import logging
import os
from typing import Callable, Dict, Iterator, Mapping, Sequence, Tuple

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import tensorflow as tf

from tfrec.data import spec as spec_lib
from tfrec.data.dataset import UserHistories, features_from_columns
from tfrec.data.spec import Feature, FeatureSpec
from tfrec.data.tfrecord import ScanReport

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike

READERS = ("auto", "tfio", "pyarrow")
# Rows per tensorflow-io read in the chunked path (one read op per column and chunk; each read
# skips from the start of its row group, so small chunks cost quadratic decoding).
DEFAULT_CHUNK_ROWS = 65536

# Arrow types tensorflow-io reads as each TF dtype (its reader maps the physical type).
_ARROW_TYPES: Dict[tf.DType, Tuple[pa.DataType, ...]] = {
    tf.int64: (pa.int64(),),
    tf.int32: (pa.int32(),),
    tf.float32: (pa.float32(),),
    tf.float64: (pa.float64(),),
    tf.bool: (pa.bool_(),),
    tf.string: (pa.string(), pa.large_string(), pa.binary(), pa.large_binary()),
}
_ARROW_NAME = {tf.int64: "int64", tf.int32: "int32", tf.float32: "float (float32)", tf.float64: "double (float64)",
               tf.bool: "bool", tf.string: "string"}
_CAST_HINT = {tf.int64: "pa.int64() / astype('int64')", tf.int32: "pa.int32() / astype('int32')",
              tf.float32: "pa.float32() / astype('float32')", tf.float64: "pa.float64() / astype('float64')",
              tf.bool: "pa.bool_() / astype(bool)", tf.string: "pa.string() / astype(str)"}

# behaviors.parquet column -> history field (write-tfrecords' names).
BEHAVIOR_COLUMNS: Dict[str, str] = {
    "item_id": "hist_item_id", "behavior_type": "hist_behavior_type", "timestamp": "hist_timestamp",
    "duration": "hist_duration", "amount": "hist_amount",
}


class ParquetColumnError(ValueError):
    """A Parquet column is missing, has another type than declared, holds nulls or bad values.

    The message names the file, the column (and the first bad row, when there is one), the
    problem and the fix.

    Attributes:
      path: the file.
      column: the column's name.
      row: 0-based row of the first bad value in the file, or None for schema problems.
    """

    def __init__(self, path: PathLike, column: str, problem: str, fix: str, row: int | None = None):
        self.path = os.fspath(path)
        self.column = column
        self.row = row
        where = f"row {row}, " if row is not None else ""
        super().__init__(f"{self.path}: {where}column {column!r} {problem}; {fix}.")


class ParquetFileChangedError(RuntimeError):
    """A file was rewritten in place after this process first read it with tensorflow-io."""


@dataclasses.dataclass(frozen=True)
class ColumnInfo:
    """One declared column as the file holds it.

    Attributes:
      name: the column.
      dtype: the declared TF dtype (of the values, for a list column).
      is_list: a list column (``list<...>`` / ``large_list<...>``): one variable-length vector per row.
    """

    name: str
    dtype: tf.DType
    is_list: bool


# --------------------------------------------------------------------------------------------
# Schema checks
# --------------------------------------------------------------------------------------------
def _type_problem(value_type: pa.DataType, dtype: tf.DType) -> str | None:
    """Why an Arrow value type cannot be read as ``dtype`` (None: it can)."""
    if pa.types.is_dictionary(value_type):
        value_type = value_type.value_type
    allowed = _ARROW_TYPES.get(dtype)
    if allowed is None:
        return f"is declared {dtype.name}, which this reader does not support (use one of " \
               f"{sorted(d.name for d in _ARROW_TYPES)})"
    if any(value_type.equals(t) for t in allowed):
        return None
    return f"is {value_type} in the file but declared {_ARROW_NAME[dtype]}"


def _null_counts(path: PathLike, metadata: pq.FileMetaData, names: Sequence[str]) -> Dict[str, int | None]:
    """Nulls per flat column from the row-group statistics (None where a statistic is missing)."""
    index = {metadata.schema.column(j).path: j for j in range(metadata.num_columns)}
    counts: Dict[str, int | None] = {}
    for name in names:
        total: int | None = 0
        for g in range(metadata.num_row_groups):
            stats = metadata.row_group(g).column(index[name]).statistics
            if stats is None or not stats.has_null_count:
                total = None
                break
            total += stats.null_count
        counts[name] = total
    return counts


def _first_null(path: PathLike, name: str, column: pa.ChunkedArray) -> Tuple[int, str] | None:
    """(row, what) of the first null of a column (a list column: null list or null element)."""
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if column.null_count:
        return int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0]), "null"
    if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
        values = column.flatten()
        if values.null_count:
            at = int(np.flatnonzero(values.is_null().to_numpy(zero_copy_only=False))[0])
            offsets = column.offsets.to_numpy() - column.offsets[0].as_py()
            return int(np.searchsorted(offsets, at, side="right")) - 1, "null list element"
    return None


_NULL_FIX = ("fill or drop the missing values before writing the file (tensorflow-io reads a null as the next "
             "row's value, silently shifting the rest of the row group)")


def inspect_columns(path: PathLike, columns: Mapping[str, tf.DType]) -> Dict[str, ColumnInfo]:
    """Checks declared columns against a Parquet file's schema; raises on any mismatch.

    A column matches when it exists, its (value) type is the Arrow type tensorflow-io reads as the
    declared dtype (``_ARROW_TYPES``: int64, int32, float, double, bool, string), and it holds no
    null (from the row-group statistics; columns without statistics and list columns are read
    with pyarrow to count them).

    Args:
      path: the Parquet file.
      columns: column name -> TF dtype (of the list's values, for a list column).

    Returns:
      name -> ``ColumnInfo``, in the order of ``columns``.

    Raises:
      FileNotFoundError: no such file.
      ParquetColumnError: a column is missing, of another type, nested other than a flat list,
        or holds a null.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"Parquet file {path} not found")
    parquet_file = pq.ParquetFile(path)
    schema = parquet_file.schema_arrow
    infos: Dict[str, ColumnInfo] = {}
    for name, dtype in columns.items():
        dtype = tf.as_dtype(dtype)
        if name not in schema.names:
            raise ParquetColumnError(
                path, name, f"is missing (the file has {schema.names})",
                "add the column, or fix its name in the declaration")
        arrow_type = schema.field(name).type
        is_list = pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type)
        value_type = arrow_type.value_type if is_list else arrow_type
        if pa.types.is_nested(value_type):
            raise ParquetColumnError(
                path, name, f"is {arrow_type}; only flat columns and lists of flat values are read",
                "flatten it into one column per field")
        problem = _type_problem(value_type, dtype)
        if problem:
            fix = (f"cast it when writing the file (pa.Table.cast with {_CAST_HINT[dtype]})"
                   if dtype in _CAST_HINT else "declare a supported dtype")
            if dtype in _ARROW_TYPES:
                fix += ", or declare it as the dtype the file holds"
            raise ParquetColumnError(path, name, problem + (" (list values)" if is_list else ""), fix)
        infos[name] = ColumnInfo(name, dtype, is_list)
    flat = [n for n, info in infos.items() if not info.is_list]
    counts = _null_counts(path, parquet_file.metadata, flat)
    unknown = [n for n in flat if counts[n] is None] + [n for n, info in infos.items() if info.is_list]
    if any(counts[n] for n in flat) or unknown:
        table = pq.read_table(path, columns=[n for n in infos if counts.get(n) != 0])
        for name in table.column_names:
            bad = _first_null(path, name, table.column(name))
            if bad:
                raise ParquetColumnError(path, name, f"holds a {bad[1]}", _NULL_FIX, row=bad[0])
    return infos


# --------------------------------------------------------------------------------------------
# tensorflow-io file cache guard
# --------------------------------------------------------------------------------------------
_OPENED: Dict[str, Tuple[int, int, int]] = {}  # path as given to tfio -> (inode, size, mtime_ns)


def _tfio_path(path: PathLike) -> str:
    """The path to hand tensorflow-io; raises when the file changed since tfio first opened it."""
    path = os.fspath(path)
    st = os.stat(path)
    signature = (st.st_ino, st.st_size, st.st_mtime_ns)
    seen = _OPENED.setdefault(path, signature)
    if seen != signature:
        raise ParquetFileChangedError(
            f"{path} was rewritten after this process first read it with tensorflow-io, which caches each file's "
            "footer by path for the life of the process (reading it again aborts the process or returns values "
            "at the old offsets); write the new data under a new file name, or restart the process")
    return path


def _tfio():
    import tensorflow_io as tfio  # heavy import, only for the tfio reader

    return tfio


# --------------------------------------------------------------------------------------------
# Column datasets
# --------------------------------------------------------------------------------------------
def _choose_reader(path: PathLike, infos: Mapping[str, ColumnInfo], reader: str) -> str:
    if reader not in READERS:
        raise ValueError(f"reader must be one of {READERS}. Received: reader={reader!r}")
    lists = [n for n, info in infos.items() if info.is_list]
    if reader == "tfio" and lists:
        raise ParquetColumnError(
            path, lists[0],
            "is a list column, which tensorflow-io 0.37.1 cannot read (it exposes only the leaf "
            f"'{lists[0]}.list.element' as a scalar column of num_rows values: the first num_rows flattened values of "
            f"each row group, no row boundaries; from_parquet(path, ['{lists[0]}']) fails with 'slice index 0 of "
            "dimension 0 out of bounds')",
            "read it with reader='pyarrow' (or 'auto', which picks pyarrow for files with list columns)")
    if reader == "auto":
        return "pyarrow" if lists else "tfio"
    return reader


def _element_signature(infos: Mapping[str, ColumnInfo]) -> Dict[str, Tuple[tf.TensorSpec, ...]]:
    """from_generator signature of one chunk: flat column -> (values,), list -> (values, row_splits)."""
    out = {}
    for name, info in infos.items():
        values = tf.TensorSpec([None], info.dtype)
        out[name] = (values, tf.TensorSpec([None], tf.int64)) if info.is_list else (values,)
    return out


def _numpy_column(array: pa.Array, info: ColumnInfo) -> Tuple[np.ndarray, ...]:
    """One column of a record batch as (values,) or (flat values, row_splits)."""
    def values(a: pa.Array) -> np.ndarray:
        if pa.types.is_dictionary(a.type):
            a = a.dictionary_decode()
        if info.dtype == tf.string:
            return np.asarray(a.to_pylist(), dtype=object)
        return a.to_numpy(zero_copy_only=False)

    if info.is_list:
        offsets = array.offsets.to_numpy().astype(np.int64)
        return values(array.flatten()), offsets - offsets[0]
    return (values(array),)


def _pyarrow_chunks(path: str, infos: Mapping[str, ColumnInfo], chunk_rows: int) -> tf.data.Dataset:
    """Chunks of rows read with pyarrow: name -> [n] tensor, list columns as ``RaggedTensor`` [n, None]."""
    names = list(infos)

    def generate() -> Iterator[Dict[str, Tuple[np.ndarray, ...]]]:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows, columns=names):
            yield {name: _numpy_column(batch.column(name), infos[name]) for name in names}

    dataset = tf.data.Dataset.from_generator(generate, output_signature=_element_signature(infos))

    def to_tensors(chunk):
        out = collections.OrderedDict()
        for name in names:
            if infos[name].is_list:
                out[name] = tf.RaggedTensor.from_row_splits(chunk[name][0], chunk[name][1], validate=False)
            else:
                out[name] = chunk[name][0]
        return out

    return dataset.map(to_tensors)


def _tfio_chunks(path: str, infos: Mapping[str, ColumnInfo], chunk_rows: int) -> tf.data.Dataset:
    """Chunks of rows read with ``tfio.IOTensor.from_parquet`` slices: name -> [n] tensor."""
    path = _tfio_path(path)
    n_rows = pq.ParquetFile(path).metadata.num_rows
    table = _tfio().IOTensor.from_parquet(path)
    columns = {name: table(name) for name in infos}

    def read(start):
        stop = tf.minimum(start + chunk_rows, n_rows)
        return collections.OrderedDict((name, column[start:stop]) for name, column in columns.items())

    return tf.data.Dataset.range(0, n_rows, chunk_rows).map(read)


def _tfio_rows(path: str, infos: Mapping[str, ColumnInfo]) -> tf.data.Dataset:
    """Rows read with ``tfio.IODataset.from_parquet`` (what the library offers per row)."""
    path = _tfio_path(path)
    return _tfio().IODataset.from_parquet(path, {name: info.dtype for name, info in infos.items()})


def parquet_columns_dataset(
    path: PathLike | Sequence[PathLike],
    columns: Mapping[str, tf.DType],
    reader: str = "pyarrow",
    batch_size: int | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> tf.data.Dataset:
    """A dataset of a Parquet file's declared columns, per row (or per batch of rows).

    Args:
      path: a Parquet file, or a list of them (read one after the other, in order).
      columns: column name -> TF dtype: ``tf.int64``, ``tf.int32``, ``tf.float32`` (Parquet
        float), ``tf.float64`` (double), ``tf.bool`` or ``tf.string``; for a list column the dtype
        of its values. The file must hold exactly that type (no implicit casts: tensorflow-io
        trusts the declaration and aborts the process on a mismatch).
      reader: ``"auto"`` (default: tensorflow-io, unless a declared column is a list column),
        ``"tfio"`` (tensorflow-io 0.37.1; refuses list columns) or ``"pyarrow"``.
      batch_size: None (default) for one element per row; else elements of ``batch_size`` rows
        (the last one smaller), read in chunks of ``chunk_rows`` rows.
      chunk_rows: rows per read when ``batch_size`` is given (and per pyarrow read).

    Returns:
      A ``tf.data.Dataset`` of ``OrderedDict`` s, in the order of ``columns``: per row, a scalar per
      flat column and a ``[n]`` vector per list column; per batch, ``[B]`` tensors and ``[B, None]``
      ``RaggedTensor`` s. Every reader gives the same structure and values.

    Raises:
      FileNotFoundError: no such file.
      ParquetColumnError: a declared column is missing, of another type or holds nulls; or a
        list column with ``reader="tfio"``.
      ParquetFileChangedError: tensorflow-io read the file before in this process and it was
        rewritten since.
    """
    if batch_size is not None and batch_size <= 0:
        raise ValueError(f"batch_size must be positive or None. Received: batch_size={batch_size}")
    if chunk_rows <= 0:
        raise ValueError(f"chunk_rows must be positive. Received: chunk_rows={chunk_rows}")
    if not columns:
        raise ValueError("columns is empty: declare at least one column (name -> tf.DType)")
    paths = [os.fspath(p) for p in ([path] if isinstance(path, (str, os.PathLike)) else path)]
    if not paths:
        raise ValueError("path is an empty list: pass at least one Parquet file")
    datasets = []
    for p in paths:
        infos = inspect_columns(p, columns)
        chosen = _choose_reader(p, infos, reader)
        if chosen == "pyarrow":
            dataset = _pyarrow_chunks(p, infos, chunk_rows if batch_size else min(chunk_rows, 4096))
            dataset = dataset.rebatch(batch_size) if batch_size else dataset.unbatch()
        elif batch_size:
            dataset = _tfio_chunks(p, infos, chunk_rows).rebatch(batch_size)
        else:
            dataset = _tfio_rows(p, infos)
        datasets.append(dataset)
    out = datasets[0]
    for dataset in datasets[1:]:
        out = out.concatenate(dataset)
    if batch_size and len(datasets) > 1:  # batches across file boundaries
        out = out.rebatch(batch_size)
    return out


def read_columns(path: PathLike, columns: Mapping[str, tf.DType], reader: str = "pyarrow") -> Dict[str, np.ndarray]:
    """Whole flat columns of one file as numpy arrays (checked like ``parquet_columns_dataset``).

    ``reader="tfio"`` reads each column with one ``tfio.IOTensor.from_parquet(path)(name).to_tensor()``;
    ``"pyarrow"`` with ``pq.read_table``. List columns are not accepted here.
    """
    infos = inspect_columns(path, columns)
    lists = [n for n, info in infos.items() if info.is_list]
    if lists:
        raise ParquetColumnError(path, lists[0], "is a list column", "read_columns reads flat columns only")
    if reader == "tfio":
        table = _tfio().IOTensor.from_parquet(_tfio_path(path))
        return {name: table(name).to_tensor().numpy() for name in infos}
    if reader != "pyarrow":
        raise ValueError(f"reader must be 'tfio' or 'pyarrow'. Received: reader={reader!r}")
    table = pq.read_table(path, columns=list(infos))
    out = {}
    for name, info in infos.items():
        (values,) = _numpy_column(table.column(name).combine_chunks(), info)
        out[name] = values
    return out


# --------------------------------------------------------------------------------------------
# Value checks (what the TFRecord writer checks per record, vectorized per column)
# --------------------------------------------------------------------------------------------
def check_values(path: PathLike, column: str, feature: Feature, values: np.ndarray, spec: FeatureSpec) -> None:
    """Raises ``ParquetColumnError`` at the first value the TFRecord writer would reject.

    Checks NaN/inf floats, the vocabulary range of id fields, non-negative fields, ``label`` in
    {0, 1} and ``true_prob`` in [0, 1]. ``values`` are the column's values in file order
    (multi-valued: ``[rows, max_len]`` padded with -1, pads skipped).
    """
    def fail(mask: np.ndarray, problem: Callable[[int], str], fix: str) -> None:
        if mask.any():
            flat = int(np.flatnonzero(mask.reshape(len(mask), -1).any(axis=1))[0])
            raise ParquetColumnError(path, column, problem(flat), fix, row=flat)

    if values.dtype.kind == "f":
        fail(~np.isfinite(values), lambda i: f"holds NaN/inf ({values[i]})",
             "replace missing or out-of-range values (e.g. with 0) before writing")
    valid = values != spec_lib.MULTI_PAD if feature.multi else np.ones(values.shape, bool)
    vocab = spec.vocab_size(feature)
    if vocab is not None:
        fail(valid & ((values < 0) | (values >= vocab)), lambda i: f"holds id {values[i]} outside [0, {vocab})",
             "remap ids into the vocabulary or raise the vocabulary size")
    if feature.non_negative:
        fail(values < 0, lambda i: f"holds negative value {values[i]}", "this field must be >= 0")
    if feature.name == spec_lib.LABEL.name:
        fail((values != 0) & (values != 1), lambda i: f"holds label {values[i]}", "binarize the label to 0 / 1")
    if feature.name == spec_lib.TRUE_PROB.name:
        fail((values < 0) | (values > 1), lambda i: f"holds probability {values[i]}", "clip it to [0, 1]")


def _reject_semantic_ids(spec: FeatureSpec) -> None:
    if spec.semantic_id_levels:
        raise NotImplementedError(
            "the Parquet reader does not carry Semantic IDs (write-tfrecords joins them from semantic_ids.npz); "
            "read this spec's data from the TFRecords, or use a spec with semantic_id_levels=0")


# --------------------------------------------------------------------------------------------
# User histories
# --------------------------------------------------------------------------------------------
def _users_profile(users_path: PathLike, spec: FeatureSpec, user_ids: np.ndarray) -> Dict[str, np.ndarray]:
    """Each history user's user features from users.parquet (multi-valued padded with -1)."""
    fields = spec.user_fields()
    infos = inspect_columns(users_path, {"user_id": tf.int64, **{f.name: f.tf_dtype for f in fields}})
    table = pq.read_table(users_path, columns=list(infos))
    ids = table.column("user_id").to_numpy()
    uniq, first, counts = np.unique(ids, return_index=True, return_counts=True)
    if (counts > 1).any():
        dup = int(uniq[counts > 1][0])
        raise ParquetColumnError(users_path, "user_id", f"holds user_id {dup} {int(counts.max())} times",
                                 "give each user one row", row=int(np.flatnonzero(ids == dup)[1]))
    pos = np.searchsorted(uniq, user_ids)
    known = (pos < len(uniq)) & (uniq[np.minimum(pos, len(uniq) - 1)] == user_ids)
    if not known.all():
        u = int(user_ids[~known][0])
        raise ParquetColumnError(users_path, "user_id", f"has no row for user_id {u}, who has behaviors",
                                 f"add a row with its user features {[f.name for f in fields]}")
    rows = first[pos]
    profile = {}
    for f in fields:
        column = table.column(f.name).combine_chunks()
        if f.multi:
            values, splits = _numpy_column(column, infos[f.name])
            lengths = np.diff(splits)
            if len(lengths) and lengths.max() > f.max_len:
                r = int(np.argmax(lengths))
                raise ParquetColumnError(users_path, f.name, f"holds {int(lengths[r])} values but max_len is "
                                         f"{f.max_len}", "raise max_len in the schema or trim the list", row=r)
            dense = np.full((len(lengths), f.max_len), spec_lib.MULTI_PAD, np.int64)
            dense[np.arange(f.max_len)[None, :] < lengths[:, None]] = values
            check_values(users_path, f.name, f, dense, spec)
            profile[f.name] = dense[rows]
        else:
            (values,) = _numpy_column(column, infos[f.name])
            check_values(users_path, f.name, f, values, spec)
            profile[f.name] = values[rows]
    return profile


def histories_from_parquet(
    behaviors_path: PathLike,
    spec: FeatureSpec,
    users_path: PathLike | None = None,
    reader: str = "pyarrow",
) -> UserHistories:
    """The ``UserHistories`` (CSR) of ``behaviors.parquet``, as ``load_user_histories`` would load them
    from the ``user_histories.tfrecord`` that ``write-tfrecords`` writes from the same raw logs.

    One row per user with at least one behavior (ascending user_id, as ``write-tfrecords`` writes
    them); each row's behaviors sorted by timestamp, ties in file order (``np.lexsort``, stable).
    Values are checked as the TFRecord writer checks them (ids in their vocabulary, non-negative
    timestamps / durations / amounts, finite floats). Users with a row in ``users.parquet`` but no
    behavior get no row (cold start when they appear in examples), as with ``write-tfrecords``.

    Args:
      behaviors_path: ``behaviors.parquet``: user_id, item_id, behavior_type, timestamp (int64),
        duration, amount (float32) and one column per declared behavior feature.
      spec: the feature spec (its user / behavior features name the extra columns).
      users_path: ``users.parquet`` (user_id + one column per user feature); default: the
        ``users.parquet`` beside ``behaviors_path``.
      reader: ``"pyarrow"`` (default) or ``"tfio"`` for the behaviors (users.parquet, small and
        possibly with list columns, is always read with pyarrow).

    Returns:
      The ``UserHistories``; its ``scan`` reports ``behaviors_path`` with one record per user.

    Raises:
      ParquetColumnError: a column is missing, of another type, null, or holds a value the
        TFRecord writer would reject; a user with behaviors has no users.parquet row.
      NotImplementedError: the spec declares Semantic IDs.
    """
    _reject_semantic_ids(spec)
    behaviors_path = os.fspath(behaviors_path)
    if users_path is None:
        users_path = os.path.join(os.path.dirname(behaviors_path), "users.parquet")
    columns = dict(BEHAVIOR_COLUMNS)
    columns.update({f.schema_name: f.name for f in spec.behavior_fields()})
    features = {f.name: f for f in spec.history_sequence_features()}
    declared = {"user_id": tf.int64, **{src: features[dst].tf_dtype for src, dst in columns.items()}}
    data = read_columns(behaviors_path, declared, reader=reader)
    check_values(behaviors_path, "user_id", spec_lib.USER_ID, data["user_id"], spec)
    for src, dst in columns.items():
        check_values(behaviors_path, src, features[dst], data[src], spec)
    order = np.lexsort((data["timestamp"], data["user_id"]))
    uid = data["user_id"][order]
    starts = np.flatnonzero(np.r_[True, uid[1:] != uid[:-1]]) if len(uid) else np.zeros(0, np.int64)
    user_ids = uid[starts].astype(np.int64)
    row_splits = np.r_[starts, len(uid)].astype(np.int64)
    sequences = {dst: data[src][order] for src, dst in columns.items()}
    profile = _users_profile(users_path, spec, user_ids)
    return UserHistories(
        user_ids=user_ids,
        profile=profile,
        row_splits=row_splits,
        sequences=sequences,
        scan=ScanReport(record_counts={behaviors_path: len(user_ids)}),
    )


# --------------------------------------------------------------------------------------------
# Examples joined with the histories
# --------------------------------------------------------------------------------------------
def example_columns(spec: FeatureSpec, include_true_prob: bool) -> Dict[str, Feature]:
    """train/test.parquet column -> record field of an example (Semantic IDs excluded)."""
    fields = [f for f in spec.example_record_features(with_true_prob=include_true_prob)
              if not f.name.startswith(spec_lib.ITEM_SEMANTIC_ID)]
    return {f.name: f for f in fields}


def make_join_fn(spec: FeatureSpec, history: UserHistories, include_true_prob: bool):
    """The per-batch map of ``make_dataset`` after ``parse_example``: column batch -> (features, label),
    through the TFRecord reader's own ``dataset.features_from_columns``."""
    tensors = history.tensors

    def join(parsed: Mapping[str, tf.Tensor]) -> Tuple[Dict[str, tf.Tensor], tf.Tensor]:
        return features_from_columns(parsed, spec, tensors, include_true_prob)

    return join


def make_parquet_dataset(
    example_paths: PathLike | Sequence[PathLike],
    spec: FeatureSpec,
    history: UserHistories,
    batch_size: int = 256,
    include_true_prob: bool = False,
    reader: str = "pyarrow",
    per_row: bool = False,
    shuffle: bool = False,
    shuffle_buffer: int = 10000,
    seed: int = 0,
    drop_remainder: bool = False,
    validate: bool = True,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> tf.data.Dataset:
    """Batches of ``(features, label)`` from example Parquet files, joined in graph with ``history``.

    The features are those of ``tfrec.data.dataset.make_dataset`` (same join, same cut at the
    request time, same padding) for the same examples in the same order (files one after the
    other; ``make_dataset`` interleaves several TFRecord files record by record instead).

    Args:
      example_paths: ``train.parquet`` / ``test.parquet`` (a path or a list): user_id, item_id,
        request_timestamp, label (int64)[, true_prob (float32)] + one column per context feature.
      spec: the feature spec.
      history: from ``histories_from_parquet`` (or ``load_user_histories``).
      batch_size: int, default 256.
      include_true_prob: add ``true_prob`` [B] float32 (the files must carry it).
      reader: ``"tfio"`` (default) or ``"pyarrow"``.
      per_row: read row by row (``tfio.IODataset.from_parquet``, which reads 4,096 rows at a time)
        and batch, instead of reading chunks of ``chunk_rows`` rows and re-batching them.
      shuffle, shuffle_buffer, seed: shuffle the rows (within and across files, one buffer; the
        chunks are split into rows for it).
      drop_remainder: drop the last partial batch.
      validate: read every example column once up front and check it as the TFRecord writer
        would (vocabulary, label, true_prob ...) and count cold-start users; False skips it
        (the schema and null checks still run).
      chunk_rows: rows per read in the chunked path.

    Raises:
      ParquetColumnError: a column is missing, of another type, null or out of range.
      NotImplementedError: the spec declares Semantic IDs.
    """
    _reject_semantic_ids(spec)
    if batch_size <= 0 or shuffle_buffer <= 0:
        raise ValueError(f"batch_size and shuffle_buffer must be positive. Received: batch_size={batch_size}, "
                         f"shuffle_buffer={shuffle_buffer}")
    paths = [os.fspath(p) for p in ([example_paths] if isinstance(example_paths, (str, os.PathLike))
                                    else example_paths)]
    fields = example_columns(spec, include_true_prob)
    columns = {name: f.tf_dtype for name, f in fields.items()}
    if validate:
        users = []
        for path in paths:
            data = read_columns(path, columns)
            for name, feature in fields.items():
                check_values(path, name, feature, data[name], spec)
            users.append(data[spec_lib.USER_ID.name])
        users = np.concatenate(users)
        n_cold = int((~np.isin(users, history.user_ids)).sum())
        if n_cold:
            logger.warning("%d of %d examples (%.1f%%) have no user-history record: they get an empty history and "
                           "unknown user features (cold start).", n_cold, len(users), 100.0 * n_cold / len(users))
    if per_row:
        dataset = parquet_columns_dataset(paths, columns, reader=reader, chunk_rows=chunk_rows)
    elif shuffle:
        dataset = parquet_columns_dataset(paths, columns, reader=reader, batch_size=chunk_rows,
                                          chunk_rows=chunk_rows).unbatch()
    else:
        dataset = parquet_columns_dataset(paths, columns, reader=reader, batch_size=batch_size, chunk_rows=chunk_rows)
    if per_row or shuffle:
        if shuffle:
            dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
        dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    elif drop_remainder:
        dataset = dataset.filter(lambda b: tf.shape(b[spec_lib.USER_ID.name])[0] == batch_size)
    dataset = dataset.map(make_join_fn(spec, history, include_true_prob), num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


__all__ = [
    "BEHAVIOR_COLUMNS",
    "ColumnInfo",
    "ParquetColumnError",
    "ParquetFileChangedError",
    "check_values",
    "example_columns",
    "histories_from_parquet",
    "inspect_columns",
    "make_join_fn",
    "make_parquet_dataset",
    "parquet_columns_dataset",
    "read_columns",
]
