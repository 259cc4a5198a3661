"""Stage `beam-tfrecords`: raw logs -> user-history file + example files (+ spec.json), on Apache Beam.

The scale path of `write-tfrecords`: same inputs (DATA/raw/ Parquet or CSV + dataset.json + the
feature schema raw/schema.yaml or --schema), same outputs (user_histories.tfrecord, train.tfrecord,
test.tfrecord, item_features.npz, spec.json with the measured statistics, splits.json), same record
encoder and validation. Behaviors are keyed by user_id and co-grouped with users; each user's
behaviors are sorted by (timestamp, original row order). The item table (small) is built and
validated in the launching process, like the standardize statistics (see docs/beam.md).

DirectRunner by default. Beam pipeline options go after `--`, e.g.
  tfrec beam-tfrecords --data gs://bucket/data -- --runner=DataflowRunner --project=P \\
      --region=us-central1 --temp_location=gs://bucket/tmp
With --deterministic (the default on DirectRunner) every file is globally sorted and byte-identical
to `write-tfrecords` with the same --num-shards: with N > 1, examples and histories are sharded by a
hash of user_id into the same shards (tfrec/data/sharding.py) and splits.json records the sharding.
See docs/beam.md.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

from pipelines.common import (
    HISTORIES,
    ITEM_FEATURES,
    ITEM_FEATURES_SOURCE,
    RAW,
    SCHEMA,
    SPEC,
    SPLITS,
    declared_spec,
)
from pipelines.write_tfrecords import (
    add_semantic_id_arguments,
    measure_statistics,
    semantic_id_lookup,
)

DIRECT_RUNNERS = {"directrunner", "direct", "bundlebaseddirectrunner", "fnapirunner", "prismrunner"}


def add_arguments(p):
    p.add_argument("--data", required=True,
                   help="data directory with raw/ (a local path or any Beam filesystem, e.g. gs://)")
    p.add_argument("--out", default=None, help="output directory (default: --data)")
    p.add_argument("--max-history-length", type=int, default=None,
                   help="L fed to models (default: the schema's, else dataset.json's max_history_length)")
    p.add_argument("--schema", default=None,
                   help="feature schema YAML (default: DATA/raw/schema.yaml if it exists, else the default schema: "
                        "user_segment only; see docs/data.md); a local path or any Beam filesystem")
    p.add_argument("--input-format", choices=["auto", "parquet", "csv"], default="auto",
                   help="raw file format: NAME.parquet / NAME-*.parquet or NAME.csv / NAME-*.csv "
                        "(auto: Parquet if present, else CSV)")
    p.add_argument("--runner", default=None,
                   help="Beam runner (default: --runner from the pass-through options, else DirectRunner)")
    p.add_argument("--deterministic", action=argparse.BooleanOptionalAction, default=None,
                   help="globally sorted output in --num-shards files (default: on for DirectRunner, off "
                        "otherwise); --no-deterministic writes with beam.io.WriteToTFRecord in runner order")
    p.add_argument("--num-shards", type=int, default=None,
                   help="files per output (default: 1 with --deterministic, runner-chosen without); with "
                        "more than one, files are NAME-SSSSS-of-NNNNN.tfrecord, with --deterministic sharded by a "
                        "hash of user_id as in write-tfrecords --num-shards (examples and histories co-partitioned)")
    add_semantic_id_arguments(p)
    p.add_argument("beam_args", nargs="*", metavar="-- BEAM_OPTION",
                   help="Beam pipeline options after `--` (e.g. -- --runner=FlinkRunner --flink_master=HOST:8081)")


def _runner(args) -> str:
    if args.runner:
        return args.runner
    for i, a in enumerate(args.beam_args):
        if a.startswith("--runner="):
            return a.split("=", 1)[1]
        if a == "--runner" and i + 1 < len(args.beam_args):
            return args.beam_args[i + 1]
    return "DirectRunner"


def _without_runner(beam_args):
    out, skip = [], False
    for a in beam_args:
        if skip:
            skip = False
        elif a == "--runner":
            skip = True
        elif not a.startswith("--runner="):
            out.append(a)
    return out


def _inputs(raw: str, fmt: str):
    from tfrec.data.beam import match_files

    files = {}
    for name in ("behaviors", "users", "train", "test"):
        found = None
        for ext in (["parquet", "csv"] if fmt == "auto" else [fmt]):
            paths = match_files(raw, name, ext)
            if paths:
                found = (ext, paths)
                break
        if found is None:
            exts = "parquet or csv" if fmt == "auto" else fmt
            raise FileNotFoundError(f"{raw}: no {name}.{{{exts}}} (or {name}-*.{{{exts}}} shards) found")
        files[name] = found
    return files


def build_pipeline(pipeline, args, spec_dict: dict, files: dict, out: str, deterministic: bool, num_shards,
                   semantic_ids=None, item_table=None):
    """Adds the stage's transforms to ``pipeline``; returns the final (metadata) PCollection.

    ``spec_dict``: the FeatureSpec (``to_dict``, statistics measured) whose declared features say
    which columns to read. ``semantic_ids``: a ``SemanticIDLookup`` whose codes go into every record
    (``spec_dict`` must declare them), or None. ``item_table``: the ``ItemTable`` to save as
    ``OUT/item_features.npz`` in the last step, or None."""
    import apache_beam as beam
    from apache_beam.io.filesystems import FileSystems

    from tfrec.data import beam as tb
    from tfrec.data.spec import FeatureSpec

    spec = FeatureSpec.from_dict(spec_dict)

    def write(name, records, prefix):
        if deterministic:
            return records | f"Write{name}" >> tb.WriteOrderedTFRecords(prefix, num_shards or 1)
        return records | f"Write{name}" >> tb.WriteUnorderedTFRecords(prefix, num_shards or 0)

    def prefix(stem):
        return FileSystems.join(out, stem)

    # Histories: behaviors keyed by user_id, co-grouped with users.
    b_fmt, b_paths = files["behaviors"]
    u_fmt, u_paths = files["users"]
    b_cols, u_cols = tb.table_columns(spec, "behaviors"), tb.table_columns(spec, "users")
    b_types, u_types = tb.csv_types(spec, "behaviors"), tb.csv_types(spec, "users")
    b_dtypes = tb.check_columns(b_paths, b_fmt, b_cols, b_types)
    u_dtypes = tb.check_columns(u_paths, u_fmt, u_cols, u_types)
    uid = b_cols.index("user_id")
    behaviors = (pipeline
                 | "ReadBehaviors" >> tb.ReadRows(b_paths, b_cols, b_fmt, b_types)
                 | "KeyBehaviors" >> beam.Map(lambda r: (r[2][uid], r)))
    users = (pipeline
             | "ReadUsers" >> tb.ReadRows(u_paths, u_cols, u_fmt, u_types)
             | "KeyUsers" >> beam.Map(lambda r: (r[2][0], r)))
    history_fn = tb.HistoryRecordFn(spec_dict, b_dtypes, semantic_ids, b_paths, behavior_columns=b_cols,
                                    user_dtypes=u_dtypes, users_source=_source(u_paths, "users", u_fmt),
                                    user_paths=u_paths)
    histories = ({"behaviors": behaviors, "users": users}
                 | "JoinUsers" >> beam.CoGroupByKey()
                 | "EncodeHistories" >> beam.ParDo(history_fn))
    history_stem = HISTORIES[: -len(".tfrecord")]
    written = [write("Histories", histories, prefix(history_stem))
               | "TagUsers" >> beam.Map(lambda t: (history_stem,) + t)]

    with_prob = {}
    for split in ("train", "test"):
        fmt, paths = files[split]
        present = tb.file_columns(paths[0], fmt)
        with_prob[split] = "true_prob" in present
        columns = tb.table_columns(spec, split, with_prob[split])
        types = tb.csv_types(spec, split)
        dtypes = tb.check_columns(paths, fmt, columns, types)
        examples = (pipeline
                    | f"Read{split}" >> tb.ReadRows(paths, columns, fmt, types)
                    | f"Encode{split}" >> beam.ParDo(tb.ExampleRecordFn(spec_dict, columns, dtypes, paths,
                                                                         semantic_ids)))
        files_written = write(split, examples, prefix(split))
        written.append(files_written | f"Tag{split}" >> beam.Map(lambda t, s=split: (s,) + t))

    written = written | "AllFiles" >> beam.Flatten()
    return (pipeline
            | "Once" >> beam.Create([None])
            | "WriteMetadata" >> beam.ParDo(
                tb.WriteMetadataFn(FileSystems.join(out, SPEC), FileSystems.join(out, SPLITS), spec_dict, with_prob,
                                   item_table, FileSystems.join(out, ITEM_FEATURES),
                                   prefixes={stem: prefix(stem) for stem in (history_stem, "train", "test")},
                                   num_shards=(num_shards or 1) if deterministic else None),
                written=beam.pvalue.AsList(written)))


def _source(paths, name, fmt) -> str:
    """A table's files as named in error messages: the file, or the shard pattern."""
    if len(paths) == 1:
        return paths[0]
    return f"{os.path.dirname(paths[0])}/{name}-*.{fmt}"


def resolve_spec(args, semantic_ids=None):
    """``pipelines.common.declared_spec`` (dataset.json + the schema file, ``--schema`` and
    ``--max-history-length`` as in write-tfrecords), for local or remote (``gs://`` ...) data: remote
    files are copied to a local temp directory first (error messages name the remote paths)."""
    from apache_beam.io.filesystems import FileSystems

    from tfrec.data.beam import is_local
    from tfrec.data.schema import SchemaError

    sizes = semantic_ids.spec_fields() if semantic_ids else {}
    schema = getattr(args, "schema", None)
    if is_local(args.data) and (not schema or is_local(schema)):
        return declared_spec(args.data, schema, args.max_history_length, **sizes)
    raw = FileSystems.join(args.data, RAW)
    remote_schema = schema or FileSystems.join(raw, SCHEMA)
    if schema and not FileSystems.exists(schema):
        raise FileNotFoundError(f"--schema {schema} not found")
    with tempfile.TemporaryDirectory() as tmp:
        os.makedirs(os.path.join(tmp, RAW))
        local_schema = os.path.join(tmp, RAW, SCHEMA)
        copies = [(FileSystems.join(raw, "dataset.json"), os.path.join(tmp, RAW, "dataset.json"))]
        if FileSystems.exists(remote_schema):
            copies.append((remote_schema, local_schema))
        for src, dst in copies:
            with FileSystems.open(src) as f, open(dst, "wb") as g:
                g.write(f.read())
        try:
            return declared_spec(tmp, local_schema if schema else None, args.max_history_length, **sizes)
        except SchemaError as err:
            raise SchemaError(err.where.replace(local_schema, remote_schema), err.problem) from None


def load_item_table(args, spec):
    """The validated item table (``ItemTable.from_parquet`` of raw/item_features.parquet, Parquet also
    with CSV input), or None when the schema declares no item feature; built in this process."""
    from apache_beam.io.filesystems import FileSystems

    from tfrec.data.beam import is_local
    from tfrec.data.item_table import ITEM_ID, ItemTable

    if not spec.item_features:
        return None
    path = FileSystems.join(args.data, RAW, ITEM_FEATURES_SOURCE)
    if not FileSystems.exists(path):
        raise FileNotFoundError(f"{path} not found: the schema declares item features "
                                f"{[fd.name for fd in spec.item_features]}; write item_id + one column per item "
                                "feature (see docs/data.md)")
    if is_local(path):
        return ItemTable.from_parquet(path, spec)
    import pyarrow.parquet as pq  # as ItemTable.from_parquet, through Beam's filesystems

    with FileSystems.open(path) as f:
        table = pq.read_table(f)
    if ITEM_ID not in table.column_names:
        raise ValueError(f"{path}: missing column 'item_id' (the item id each row describes)")
    values = {name: table.column(name).to_pylist() for name in table.column_names if name != ITEM_ID}
    return ItemTable.from_columns(spec, table.column(ITEM_ID).to_numpy(), values, path)


def statistics(spec, files, items):
    """``write_tfrecords.measure_statistics`` over the same columns: the standardized numeric features'
    columns (only those) are read whole in this process, so the float64 mean / std are bit-identical
    to the in-process writer's (docs/beam.md: a known scaling limit)."""
    from tfrec.data import beam as tb

    needed = spec.statistics_needed()
    tables = {"user": "users", "context": "train", "behavior": "behaviors"}
    columns = {}
    for table in tables.values():
        names = [n for s, n in needed if tables.get(s) == table]
        fmt, paths = files[table]
        if names:
            with_prob = "true_prob" in tb.file_columns(paths[0], fmt) if table == "train" else False
            types = tb.csv_types(spec, table)
            tb.check_columns(paths, fmt, tb.table_columns(spec, table, with_prob), types)
            columns[table] = tb.read_columns(paths, fmt, names, types)
        else:
            columns[table] = {}
    return measure_statistics(spec, columns["behaviors"], columns["users"], columns["train"], items)


def run(args):
    import apache_beam as beam
    from apache_beam.io.filesystems import FileSystems
    from apache_beam.options.pipeline_options import PipelineOptions

    from tfrec.data.beam import BeamDataError

    t0 = time.time()
    out = args.out or args.data
    raw = FileSystems.join(args.data, RAW)
    meta_path = FileSystems.join(raw, "dataset.json")
    if not FileSystems.exists(meta_path):
        raise FileNotFoundError(f"{meta_path} not found (see docs/beam.md for the raw format)")
    with FileSystems.open(meta_path) as f:
        meta = json.loads(f.read().decode("utf-8"))
    semantic_ids = semantic_id_lookup(args, args.data, meta["n_items"])
    spec = resolve_spec(args, semantic_ids)
    files = _inputs(raw, args.input_format)
    items = load_item_table(args, spec)
    spec = spec.with_statistics(statistics(spec, files, items))

    runner = _runner(args)
    deterministic = args.deterministic
    if deterministic is None:
        deterministic = runner.lower() in DIRECT_RUNNERS
    if args.num_shards is not None and args.num_shards < (1 if deterministic else 0):
        raise ValueError(f"--num-shards must be >= 1 with --deterministic (0 = runner-chosen without); "
                         f"got {args.num_shards}")
    beam_args = [f"--runner={runner}"] + _without_runner(args.beam_args)
    if not FileSystems.exists(out):
        FileSystems.mkdirs(out)
    options = PipelineOptions(beam_args)
    try:
        p = beam.Pipeline(options=options)
        build_pipeline(p, args, spec.to_dict(), files, out, deterministic, args.num_shards, semantic_ids, items)
        result = p.run()
        result.wait_until_finish()
    except BaseException as err:
        _remove_temp_files(out)
        if isinstance(err, BeamDataError) or not isinstance(err, Exception):
            raise
        # Runners wrap DoFn errors; surface ours with its own message.
        cause = _find_record_error(err)
        if cause is not None:
            raise cause from None
        raise
    with FileSystems.open(FileSystems.join(out, SPLITS)) as f:
        splits = json.loads(f.read().decode("utf-8"))
    counts = f"{splits['train']['examples']} train / {splits['test']['examples']} test examples"
    n_users = _counter(result, "user_histories")
    if n_users is not None:
        counts = f"{n_users} user histories, " + counts
    if semantic_ids is not None:
        print(f"Semantic IDs: {semantic_ids.levels} levels (codes < {semantic_ids.vocab}) from {semantic_ids.source}")
    if items is not None:
        print(f"item table: {len(spec.item_features)} features x {items.n_items} items "
              f"({items.n_missing} items not listed in {ITEM_FEATURES_SOURCE}: unknown values)")
    print(f"wrote {counts} to {out} with {runner} "
          f"({'deterministic' if deterministic else 'runner-ordered'}) ({time.time() - t0:.1f}s)")


def _remove_temp_files(out):
    """Deletes the temp TFRecord files of a failed deterministic run (``NAME*.beam-tmp``)."""
    from apache_beam.io.filesystems import FileSystems

    for name in (HISTORIES, "train.tfrecord", "test.tfrecord"):
        pattern = FileSystems.join(out, name[: -len(".tfrecord")] + "*.beam-tmp")
        try:
            paths = [m.path for m in FileSystems.match([pattern])[0].metadata_list]
            if paths:
                FileSystems.delete(paths)
        except Exception:  # noqa: BLE001 - best effort cleanup
            pass


def _counter(result, name):
    """A Beam counter's committed (else attempted) value, or None where the runner has no metrics."""
    from apache_beam.metrics.metric import MetricsFilter

    try:
        found = result.metrics().query(MetricsFilter().with_name(name))["counters"]
    except Exception:  # noqa: BLE001 - metrics are best effort (runner-dependent)
        return None
    if not found:
        return None
    try:
        return sum(c.committed for c in found)
    except TypeError:
        return sum(c.attempted for c in found)


def _find_record_error(err):
    """Our BeamDataError (BeamRecordError ...) inside a runner's wrapped exception, if any."""
    from tfrec.data.beam import BeamDataError

    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, BeamDataError):
            return err
        err = err.__cause__ or err.__context__
    return None
