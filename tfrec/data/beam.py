"""Apache Beam transforms for the raw-logs -> TFRecords stage (``tfrec beam-tfrecords``).

The pieces here are runner-independent (DirectRunner, Dataflow, Flink, Spark):

* ``ReadRows``: reads Parquet files (one work item per row group) or CSV files (one work item
  per file, streamed in blocks) and emits ``(file_index, row_in_file, values)`` so the original
  row order survives the shuffle. (``beam.io.ReadFromParquet`` / ``ReadFromText`` drop it, and
  the in-process writer's tie-break for equal timestamps *is* the original order.)
* ``HistoryRecordFn`` / ``ExampleRecordFn``: build the same record dicts as
  ``pipelines/write_tfrecords.py``, validate them with ``tfrec.data.tfrecord.validate_record``
  and serialize them with the same ``encode_record`` encoder, so the bytes are identical.
* ``WriteOrderedTFRecords``: deterministic output: records go to shard
  ``tfrec.data.sharding.user_shard(user_id, num_shards)`` (histories and examples alike, so the
  shards are co-partitioned by user), each shard is sorted by its key and written with Beam's
  TFRecord framing by one DoFn. Every file equals the in-process writer's of the same
  ``--num-shards`` byte for byte.

The declared feature schema (``tfrec.data.schema``) decides the columns read: the user features
from ``users`` (list columns for multi_categorical ones; in CSV ``|``-separated ids), the extra
behavior features from ``behaviors`` (``hist_<name>``), the context features from ``train`` /
``test``. ``table_columns`` / ``csv_types`` say which, for each table.

Bad rows raise ``BeamRecordError`` naming the file/row (examples) or user_id (histories), the
field and the problem (the same text as the in-process ``RecordValidationError``); a user with
behaviors but no ``users`` row, or with several, raises ``BeamDataError`` with the in-process text.
"""
from __future__ import annotations

import json
import os
import tempfile
import uuid
from collections.abc import Mapping, Sequence

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems

from tfrec.data.sharding import (
    SHARDED_STEMS,
    shard_paths,
    sharding_entry,
    stale_outputs,
    user_shard,
)
from tfrec.data.spec import HIST_SEMANTIC_ID, ITEM_SEMANTIC_ID

# The built-in columns of each raw table (the declared features add theirs: ``table_columns``);
# int columns are int64, float columns float (read as float64 from CSV, as stored from Parquet).
# Documented in docs/beam.md.
BEHAVIOR_COLUMNS = ("user_id", "item_id", "behavior_type", "timestamp", "duration", "amount")
EXAMPLE_COLUMNS = ("user_id", "item_id", "request_timestamp", "label")
OPTIONAL_EXAMPLE_COLUMNS = ("true_prob",)
FLOAT_COLUMNS = frozenset({"duration", "amount", "true_prob"})  # of the built-in columns
# CSV cell types (``csv_types``): int64, float64, or a '|'-separated list of int64 ids.
INT, FLOAT, ID_LIST = "int", "float", "list"
LIST_SEPARATOR = "|"

HISTORY_NAMES = {"item_id": "hist_item_id", "behavior_type": "hist_behavior_type", "timestamp": "hist_timestamp",
                 "duration": "hist_duration", "amount": "hist_amount"}


def table_columns(spec, table: str, with_prob: bool = False) -> tuple[str, ...]:
    """The columns the stage reads from raw table ``table`` under ``spec`` (its declared features).

    ``behaviors``: the built-in six + one per declared behavior feature; ``users``: ``user_id`` +
    one per user feature; ``train`` / ``test``: the built-in four (+ ``true_prob`` when
    ``with_prob``) + one per context feature. The in-process writer requires the same columns.
    """
    if table == "behaviors":
        return BEHAVIOR_COLUMNS + tuple(f.schema_name for f in spec.behavior_fields())
    if table == "users":
        return ("user_id",) + tuple(f.name for f in spec.user_fields())
    return (EXAMPLE_COLUMNS + (OPTIONAL_EXAMPLE_COLUMNS if with_prob else ())
            + tuple(f.name for f in spec.context_fields()))


def csv_types(spec, table: str) -> dict[str, str]:
    """Column -> CSV cell type (``INT`` / ``FLOAT`` / ``ID_LIST``) of raw table ``table``.

    Declared numeric features are floats, categorical ones ints, multi_categorical user features
    ``|``-separated id lists (``3|17|42``; an empty cell is an empty list).
    """
    out = {c: FLOAT if c in FLOAT_COLUMNS else INT
           for c in BEHAVIOR_COLUMNS + EXAMPLE_COLUMNS + OPTIONAL_EXAMPLE_COLUMNS}
    fields = {"behaviors": spec.behavior_fields(), "users": spec.user_fields()}.get(table, spec.context_fields())
    for f in fields:
        out[f.schema_name or f.name] = ID_LIST if f.multi else (INT if f.dtype == "int64" else FLOAT)
    return out


class BeamDataError(ValueError):
    """Raw data the stage cannot write (e.g. a user with behaviors but no ``users`` row); the
    message is the in-process writer's, naming the file."""


class BeamRecordError(BeamDataError):
    """A raw row breaks the feature spec.

    Attributes:
      where: which record ("train.parquet row 12 (record 12)" or "user_id 7").
      field: the offending field.
    """

    def __init__(self, where: str, field: str, problem: str):
        self.where = where
        self.field = field
        super().__init__(f"{where}, field {field!r}: {problem}")


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------
def match_files(directory: str, name: str, ext: str) -> list[str]:
    """``DIR/name.ext`` or its shards ``DIR/name-*.ext``, sorted by path (the row order)."""
    out = []
    for pattern in (FileSystems.join(directory, f"{name}.{ext}"), FileSystems.join(directory, f"{name}-*.{ext}")):
        try:
            result = FileSystems.match([pattern])[0]
        except Exception:  # noqa: BLE001 - a pattern matching nothing raises on some filesystems
            continue
        out.extend(m.path for m in result.metadata_list)
    return sorted(set(out))


def file_columns(path: str, fmt: str, types: Mapping[str, str] | None = None) -> dict[str, np.dtype]:
    """Column name -> numpy dtype of one file (Parquet schema, or the CSV header + ``types``, the
    ``csv_types`` of its table: int64, float64, object for id lists; int64 for other columns)."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        with FileSystems.open(path) as f:
            schema = pq.ParquetFile(f).schema_arrow
        import pyarrow as pa

        out = {}
        for field in schema:
            try:  # the dtype pyarrow's to_numpy gives this column (as the in-process writer sees it)
                out[field.name] = pa.array([], type=field.type).to_numpy(zero_copy_only=False).dtype
            except (NotImplementedError, TypeError, pa.ArrowException):
                out[field.name] = np.dtype(object)
        return out
    with FileSystems.open(path) as f:
        header = f.readline().decode("utf-8").strip().lstrip("\ufeff")
    names = [c.strip().strip('"') for c in header.split(",")] if header else []
    types = types or {}
    return {n: np.dtype({FLOAT: np.float64, ID_LIST: object}.get(types.get(n), np.int64)) for n in names}


def check_columns(paths: Sequence[str], fmt: str, required: Sequence[str],
                  types: Mapping[str, str] | None = None) -> dict[str, np.dtype]:
    """The dtypes of ``required`` columns; raises like the in-process writer when one is missing."""
    dtypes = None
    for path in paths:
        cols = file_columns(path, fmt, types)
        missing = [c for c in required if c not in cols]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}; required columns are {list(required)}")
        dtypes = dtypes or cols
    return {c: dtypes[c] for c in required}


def write_text(path: str, text: str) -> None:
    with FileSystems.create(path) as f:
        f.write(text.encode("utf-8"))


def is_local(path) -> bool:
    """A plain local path (no ``scheme://``): what ``pathlib`` / ``np.savez`` / pyarrow can open."""
    return FileSystems.get_scheme(str(path)) is None


def save_item_table(table, path: str) -> None:
    """``ItemTable.save`` to any Beam filesystem (remote: written locally, then copied)."""
    if is_local(path):
        table.save(path)
        return
    with tempfile.TemporaryDirectory() as tmp:
        local = os.path.join(tmp, "item_features.npz")
        table.save(local)
        with open(local, "rb") as src, FileSystems.create(path) as dst:
            dst.write(src.read())


def read_columns(paths: Sequence[str], fmt: str, columns: Sequence[str],
                 types: Mapping[str, str] | None = None) -> dict[str, np.ndarray]:
    """Whole columns of a table (its files concatenated in order), read in this process.

    For the standardize statistics, which must equal the in-process writer's to the last bit
    (numpy's float64 mean / std over the column in file order), so they are not a Beam combiner.
    Parquet columns come as pyarrow's ``to_numpy`` (like the in-process writer), CSV columns as
    ``types`` says (numeric: float64).
    """
    import pyarrow as pa

    parts: dict[str, list] = {c: [] for c in columns}
    for path in paths:
        with FileSystems.open(path) as f:
            if fmt == "parquet":
                import pyarrow.parquet as pq

                table = pq.read_table(f, columns=list(columns))
            else:
                import pyarrow.csv as pcsv

                kinds = {c: (pa.float64() if (types or {}).get(c) == FLOAT else pa.int64()) for c in columns}
                try:
                    table = pcsv.read_csv(f, convert_options=pcsv.ConvertOptions(column_types=kinds,
                                                                                 include_columns=list(columns)))
                except pa.ArrowInvalid as err:
                    raise ValueError(f"{path}: cannot parse CSV: {err}") from None
        for c in columns:
            parts[c].append(table.column(c).to_numpy())
    return {c: v[0] if len(v) == 1 else np.concatenate(v) for c, v in parts.items()}


# --------------------------------------------------------------------------------------------
# Reading with the original row order
# --------------------------------------------------------------------------------------------
def _column_values(column) -> list:
    """A pyarrow column as python values (None for nulls)."""
    return column.to_pylist()


def parse_id_list(cell, where: str, column: str) -> list[int]:
    """A CSV cell of ``|``-separated int ids (``3|17|42``) -> the ids; empty -> []."""
    text = "" if cell is None else str(cell).strip()
    if not text:
        return []
    try:
        return [int(v) for v in text.split(LIST_SEPARATOR)]
    except ValueError:
        raise BeamRecordError(where, column, f"{cell!r} is not a list of integer ids separated by "
                                             f"'{LIST_SEPARATOR}' (e.g. 3|17|42; an empty cell is an empty "
                                             "list); multi_categorical columns in CSV hold such lists") from None


class _ReadSplit(beam.DoFn):
    """Reads one work item (a Parquet row group or a CSV file) -> (file_index, row, values)."""

    def __init__(self, columns: Sequence[str], fmt: str, types: Mapping[str, str] | None = None):
        self.columns = tuple(columns)
        self.fmt = fmt
        self.types = {c: (types or {}).get(c, FLOAT if c in FLOAT_COLUMNS else INT) for c in self.columns}

    def process(self, item):
        file_index, path, row_group, row_offset = item
        if self.fmt == "parquet":
            import pyarrow.parquet as pq

            with FileSystems.open(path) as f:
                table = pq.ParquetFile(f).read_row_group(row_group, columns=list(self.columns))
            yield from self._rows(file_index, row_offset, table)
            return
        import pyarrow as pa
        import pyarrow.csv as pcsv

        kinds = {INT: pa.int64(), FLOAT: pa.float64(), ID_LIST: pa.string()}
        types = {c: kinds[self.types[c]] for c in self.columns}
        convert = pcsv.ConvertOptions(column_types=types, include_columns=list(self.columns))
        offset = 0
        with FileSystems.open(path) as f:
            try:
                reader = pcsv.open_csv(f, convert_options=convert)
                for batch in reader:
                    yield from self._rows(file_index, offset, batch, path)
                    offset += batch.num_rows
            except pa.ArrowInvalid as err:
                raise ValueError(f"{path}: cannot parse CSV after row {offset}: {err}") from None

    def _rows(self, file_index, offset, table, path=None):
        cols = [_column_values(table.column(c)) for c in self.columns]
        if self.fmt != "parquet":
            for j, c in enumerate(self.columns):
                if self.types[c] == ID_LIST:
                    cols[j] = [parse_id_list(v, f"{path} row {offset + i}", c) for i, v in enumerate(cols[j])]
        for i, values in enumerate(zip(*cols)):
            yield file_index, offset + i, values


def _work_items(indexed_path, fmt):
    file_index, path = indexed_path
    if fmt != "parquet":
        yield file_index, path, None, 0
        return
    import pyarrow.parquet as pq

    with FileSystems.open(path) as f:
        meta = pq.ParquetFile(f).metadata
    offset = 0
    for rg in range(meta.num_row_groups):
        yield file_index, path, rg, offset
        offset += meta.row_group(rg).num_rows


class ReadRows(beam.PTransform):
    """Rows of ``paths`` (in that order) as ``(file_index, row_in_file, values_tuple)``."""

    def __init__(self, paths: Sequence[str], columns: Sequence[str], fmt: str, types: Mapping[str, str] | None = None):
        super().__init__()
        self.paths, self.columns, self.fmt, self.types = list(paths), tuple(columns), fmt, types

    def expand(self, pbegin):
        return (pbegin
                | "Files" >> beam.Create(list(enumerate(self.paths)))
                | "WorkItems" >> beam.FlatMap(_work_items, self.fmt)
                | "Spread" >> beam.Reshuffle()
                | "Read" >> beam.ParDo(_ReadSplit(self.columns, self.fmt, self.types)))


# --------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------
def column_array(values: list, dtype: np.dtype) -> np.ndarray:
    """Like pyarrow's ``to_numpy``: the column dtype, or float64 with NaN where there are nulls."""
    if any(v is None for v in values):
        return np.asarray([np.nan if v is None else v for v in values], dtype=np.float64)
    return np.asarray(values, dtype=dtype)


def _spec(spec_dict):
    from tfrec.data.spec import FeatureSpec

    return FeatureSpec.from_dict(spec_dict)


def _problem(err) -> str:
    text = str(err)
    prefix = f"record {err.record}, field {err.field!r}: "
    return text.removeprefix(prefix)


class HistoryRecordFn(beam.DoFn):
    """(user_id, {"behaviors": [...], "users": [...]}) -> (user_id, serialized Example).

    Behaviors are ``(file_index, row, values)`` in ``behavior_columns`` order (the built-in six +
    the declared behavior features); they are sorted by (timestamp, original position) exactly
    like the in-process ``np.lexsort``. Users rows hold ``user_id`` + the user features
    (``table_columns(spec, "users")``). Like the in-process writer, every user gets a record (one
    without behaviors an empty history) and needs exactly one users row: none (a user with
    behaviors only) or several is an error naming ``users_source``.
    """

    def __init__(self, spec_dict: dict, dtypes: dict[str, np.dtype], semantic_ids=None,
                 paths: Sequence[str] = (), behavior_columns: Sequence[str] = BEHAVIOR_COLUMNS,
                 user_dtypes: dict[str, np.dtype] | None = None, users_source: str = "users.parquet",
                 user_paths: Sequence[str] = ()):
        self.spec_dict = spec_dict
        self.dtypes = dict(dtypes)
        self.semantic_ids = semantic_ids  # a SemanticIDLookup, or None
        self.paths = list(paths)
        self.behavior_columns = tuple(behavior_columns)
        self.user_dtypes = dict(user_dtypes or {})
        self.users_source = users_source
        self.user_paths = list(user_paths)

    def setup(self):
        self.spec = _spec(self.spec_dict)
        self.features = self.spec.history_record_features()
        self.user_fields = self.spec.user_fields()
        names = dict(HISTORY_NAMES)
        names.update({f.schema_name: f.name for f in self.spec.behavior_fields()})
        self.history_names = names

    def process(self, element):
        uid, groups = element
        behaviors = list(groups["behaviors"])
        users = sorted(groups["users"], key=lambda r: (r[0], r[1]))
        if len(users) > 1:  # checked for every user, as in-process (which checks the whole table first)
            rows = ", ".join(self._user_where(r) for r in users)
            raise BeamDataError(f"{self.users_source}: user_id {uid} has {len(users)} rows ({rows}); "
                                "give each user one row")
        # Every user of users (without behaviors: an empty history, so its user features reach the
        # model) and every user with behaviors (who must have a users row), as in-process.
        yield self._encode(uid, behaviors, users)

    def _encode(self, uid, behaviors, users):
        from tfrec.data.tfrecord import (
            RecordValidationError,
            encode_record,
            validate_record,
        )

        if not users:
            raise BeamDataError(f"{self.users_source}: user_id {uid} has behaviors but no row; add a row with its "
                                f"user features {[f.name for f in self.user_fields]}")
        ts_col = self.behavior_columns.index("timestamp")
        behaviors.sort(key=lambda r: (_sort_value(r[2][ts_col]), r[0], r[1]))
        record = {"user_id": int(uid)}
        profile = users[0][2]
        for j, f in enumerate(self.user_fields, start=1):
            record[f.name] = user_value(profile[j], self.user_dtypes.get(f.name, np.dtype(object)), f.multi)
        for j, col in enumerate(self.behavior_columns):
            if col in self.history_names:
                record[self.history_names[col]] = column_array([r[2][j] for r in behaviors], self.dtypes[col])
        try:
            if self.semantic_ids is not None:
                record = self.semantic_ids.with_codes(record, "hist_item_id", HIST_SEMANTIC_ID,
                                                      lambda i: self._where(behaviors[i]))
            arrays = validate_record(0, record, self.features, self.spec)
        except RecordValidationError as err:
            raise BeamRecordError(f"user-history record for user_id {int(uid)}", err.field, _problem(err)) from None
        except ValueError as err:  # an item without a Semantic ID
            raise BeamRecordError(f"user-history record for user_id {int(uid)}", "hist_item_id", str(err)) from None
        beam.metrics.Metrics.counter("tfrec", "user_histories").inc()
        return int(uid), encode_record(arrays, self.features)

    def _where(self, behavior) -> str:
        file_index, row = behavior[0], behavior[1]
        name = self.paths[file_index] if file_index < len(self.paths) else f"behaviors file {file_index}"
        return f"{name} row {row}"

    def _user_where(self, user) -> str:
        file_index, row = user[0], user[1]
        if len(self.user_paths) <= 1:
            return f"row {row}"
        return f"{os.path.basename(self.user_paths[file_index])} row {row}"


def user_value(value, dtype: np.dtype, multi: bool):
    """One user feature of a users row, as the in-process writer hands it to ``validate_record``:
    a list column's value (multi_categorical) as an array (null = empty list), a flat column's
    as a numpy scalar of the column's dtype."""
    if multi and dtype == np.dtype(object):
        return np.asarray(value if value is not None else [])
    return column_array([value], dtype)[0]


def _sort_value(v):
    return (1, 0) if v is None else (0, v)  # nulls last (like NaN in np.lexsort)


class ExampleRecordFn(beam.DoFn):
    """(file_index, row, values) -> ((file_index, row, user_id), serialized Example).

    The key sorts like (file_index, row) (the in-process order) and carries the user id last,
    which ``WriteOrderedTFRecords`` shards by.
    """

    def __init__(self, spec_dict: dict, columns: Sequence[str], dtypes: dict[str, np.dtype],
                 paths: Sequence[str], semantic_ids=None):
        self.spec_dict = spec_dict
        self.columns = tuple(columns)
        self.dtypes = dict(dtypes)
        self.paths = list(paths)
        self.semantic_ids = semantic_ids  # a SemanticIDLookup, or None

    def setup(self):
        self.spec = _spec(self.spec_dict)
        self.features = self.spec.example_record_features(with_true_prob="true_prob" in self.columns)

    def process(self, element):
        from tfrec.data.tfrecord import (
            RecordValidationError,
            encode_record,
            validate_record,
        )

        file_index, row, values = element
        record = {c: column_array([v], self.dtypes[c])[0] for c, v in zip(self.columns, values)}
        where = f"{self.paths[file_index]} row {row}"
        try:
            if self.semantic_ids is not None:
                record = self.semantic_ids.with_codes(record, "item_id", ITEM_SEMANTIC_ID, lambda _: where)
            arrays = validate_record(row, record, self.features, self.spec)
        except RecordValidationError as err:
            raise BeamRecordError(f"{where} (record {row})", err.field, _problem(err)) from None
        except ValueError as err:  # an item without a Semantic ID
            raise BeamRecordError(f"{where} (record {row})", "item_id", str(err)) from None
        yield (file_index, row, int(arrays["user_id"])), encode_record(arrays, self.features)


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------
class _WriteShardFn(beam.DoFn):
    """(shard, [(key, bytes), ...]) -> sorted by key, written to a temp file next to the shard's file.

    Yields ``(temp_path, final_path, count)``; ``WriteMetadataFn`` renames every temp file once the
    whole pipeline passed, so a failed run leaves no new TFRecord file behind.
    """

    def __init__(self, paths: Sequence[str]):
        self.paths = list(paths)

    def process(self, element):
        from apache_beam.io.tfrecordio import _TFRecordUtil

        shard, items = element
        records = sorted((kv for kv in items if kv is not None), key=lambda kv: kv[0])
        path = self.paths[shard]
        tmp = f"{path}.{uuid.uuid4().hex}.beam-tmp"
        with FileSystems.create(tmp) as f:
            for _, data in records:
                _TFRecordUtil.write_record(f, data)
        yield tmp, path, len(records)


def _shard_of(key, num_shards: int) -> int:
    """The shard of a sort key: ``user_shard`` of its user id (a history's key, or the last element
    of an example's (file, row, user_id)), so examples and histories are co-partitioned by user."""
    user_id = key if isinstance(key, int) else key[-1]
    return user_shard(int(user_id), num_shards)


class WriteOrderedTFRecords(beam.PTransform):
    """(sort_key, bytes) -> ``num_shards`` temp files, each sorted by key; emits (temp, final, count).

    Histories are keyed by user_id, examples by (file, row, user_id); both go to shard
    ``user_shard(user_id, N)`` (``tfrec.data.sharding``), so shard i of the examples and shard i
    of the histories hold the same users, and each file equals the in-process writer's
    (``write-tfrecords --num-shards N``). With ``num_shards=1`` the file is the global sort; one
    worker then holds the whole file's records (see docs/beam.md).
    """

    def __init__(self, prefix: str, num_shards: int = 1):
        super().__init__()
        self.prefix, self.num_shards = prefix, num_shards

    def expand(self, pcoll):
        n = self.num_shards
        keyed = pcoll | "ToShard" >> beam.Map(lambda kv: (_shard_of(kv[0], n), kv))
        # One marker per shard, so an empty shard still gets its (empty) file.
        markers = pcoll.pipeline | "ShardMarkers" >> beam.Create([(s, None) for s in range(n)])
        return ((keyed, markers)
                | "WithMarkers" >> beam.Flatten()
                | "GroupShards" >> beam.GroupByKey()
                | "SortAndWrite" >> beam.ParDo(_WriteShardFn(shard_paths(self.prefix, n))))


class WriteUnorderedTFRecords(beam.PTransform):
    """(sort_key, bytes) -> ``beam.io.WriteToTFRecord`` shards in runner order; emits (None, None, count).

    The runner decides which record lands in which shard, so these shards are *not* co-partitioned
    by user (shard i of the examples needs histories from every history shard): splits.json gets
    no ``"sharding"`` entry, and distributed training reads them as unsharded data.
    """

    def __init__(self, prefix: str, num_shards: int = 0):
        super().__init__()
        self.prefix, self.num_shards = prefix, num_shards

    def expand(self, pcoll):
        data = pcoll | "Bytes" >> beam.Values()
        _ = data | "Write" >> beam.io.WriteToTFRecord(
            self.prefix, file_name_suffix=".tfrecord", num_shards=self.num_shards,
            shard_name_template="-SSSSS-of-NNNNN",
            compression_type=beam.io.filesystem.CompressionTypes.UNCOMPRESSED)
        return (data | "Count" >> beam.combiners.Count.Globally()
                | "AsTriple" >> beam.Map(lambda n: (None, None, n)))


class WriteMetadataFn(beam.DoFn):
    """The last step: moves the temp TFRecord files into place, deletes the outputs' earlier files
    of another shard count, writes the item table (when the schema declares item features), then
    spec.json + splits.json.

    Side input ``written``: ``(output, temp_path, final_path, count)`` for every file written;
    ``output`` is a file stem (``user_histories``, ``train``, ``test``).
    ``item_table``: the ``ItemTable`` built in the launching process (small: n_items rows), saved
    to ``item_path``; None without item features.
    ``prefixes``: output stem -> its path prefix (``OUT/train``), whose stale files are deleted.
    ``num_shards``: the shard count of ``WriteOrderedTFRecords`` (user-sharded: with N > 1
    splits.json gets the ``"sharding"`` entry, ``tfrec.data.sharding.sharding_entry``, with the
    records per shard); None for ``WriteUnorderedTFRecords`` (runner-placed records: no entry).
    """

    def __init__(self, spec_path: str, splits_path: str, spec_dict: dict, with_prob: dict[str, bool],
                 item_table=None, item_path: str | None = None, prefixes: Mapping[str, str] | None = None,
                 num_shards: int | None = 1):
        self.spec_path, self.splits_path = spec_path, splits_path
        self.spec_dict, self.with_prob = spec_dict, dict(with_prob)
        self.item_table, self.item_path = item_table, item_path
        self.prefixes, self.num_shards = dict(prefixes or {}), num_shards

    def process(self, _, written):
        counts: dict[str, int] = {}
        per_file: dict[str, dict[str, int]] = {}
        renames = []
        for output, tmp, path, n in written:
            counts[output] = counts.get(output, 0) + int(n)
            if tmp is not None:
                renames.append((tmp, path))
                per_file.setdefault(output, {})[path] = int(n)
        for tmp, path in sorted(renames, key=lambda r: r[1]):
            if not FileSystems.exists(tmp) and FileSystems.exists(path):
                continue  # a retried bundle: already moved
            if FileSystems.exists(path):
                FileSystems.delete([path])
            FileSystems.rename([tmp], [path])
        for prefix in sorted(self.prefixes.values()):
            self._delete_stale(prefix, self.num_shards or 0)
        splits = {s: {"examples": int(counts[s]), "true_prob": self.with_prob[s]} for s in ("train", "test")}
        if self.num_shards is not None and self.num_shards > 1:
            shard_counts = {stem: [per_file[stem][p] for p in shard_paths(self.prefixes[stem], self.num_shards)]
                            for stem in SHARDED_STEMS}
            splits["sharding"] = sharding_entry(self.num_shards, shard_counts)
        if self.item_table is not None:
            save_item_table(self.item_table, self.item_path)
        write_text(self.spec_path, json.dumps(self.spec_dict, indent=2))
        write_text(self.splits_path, json.dumps(splits, indent=2))
        yield splits

    @staticmethod
    def _delete_stale(prefix: str, num_shards: int) -> None:
        """Deletes ``prefix``'s earlier outputs a write of ``num_shards`` files leaves stale."""
        try:
            found = FileSystems.match([f"{prefix}*.tfrecord"])[0].metadata_list
        except Exception:  # noqa: BLE001 - a pattern matching nothing raises on some filesystems
            return
        by_name = {m.path.rstrip("/").rsplit("/", 1)[-1]: m.path for m in found}
        stem = prefix.rstrip("/").rsplit("/", 1)[-1]
        stale = [by_name[name] for name in stale_outputs(by_name, stem, num_shards)]
        if stale:
            FileSystems.delete(stale)
