"""Stage `beam-tfrecords`: raw logs -> user-history file + example files (+ spec.json), on Apache Beam.

The scale path of `write-tfrecords`: same inputs (DATA/raw/ Parquet or CSV + dataset.json), same
outputs (user_histories.tfrecord, train.tfrecord, test.tfrecord, spec.json, splits.json), same
record encoder and validation. Behaviors are keyed by user_id and co-grouped with users; each
user's behaviors are sorted by (timestamp, original row order).

DirectRunner by default. Beam pipeline options go after `--`, e.g.
  tfrec beam-tfrecords --data gs://bucket/data -- --runner=DataflowRunner --project=P \\
      --region=us-central1 --temp_location=gs://bucket/tmp
With --deterministic (the default on DirectRunner) every file is globally sorted and, with one
shard, byte-identical to `write-tfrecords`. See docs/beam.md.
"""
from __future__ import annotations

import argparse
import json
import time

from pipelines.common import HISTORIES, RAW, SPEC, SPLITS
from pipelines.write_tfrecords import add_semantic_id_arguments, semantic_id_lookup

DIRECT_RUNNERS = {"directrunner", "direct", "bundlebaseddirectrunner", "fnapirunner", "prismrunner"}


def add_arguments(p):
    p.add_argument("--data", required=True,
                   help="data directory with raw/ (a local path or any Beam filesystem, e.g. gs://)")
    p.add_argument("--out", default=None, help="output directory (default: --data)")
    p.add_argument("--max-history-length", type=int, default=None,
                   help="L fed to models (default: dataset.json's max_history_length)")
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
                        "more than one, files are NAME-SSSSS-of-NNNNN.tfrecord")
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
                   semantic_ids=None):
    """Adds the stage's transforms to ``pipeline``; returns the final (metadata) PCollection.

    ``semantic_ids``: a ``SemanticIDLookup`` whose codes go into every record (``spec_dict``
    must declare them), or None."""
    import apache_beam as beam
    from apache_beam.io.filesystems import FileSystems

    from tfrec.data import beam as tb

    def write(name, records, prefix):
        if deterministic:
            return records | f"Write{name}" >> tb.WriteOrderedTFRecords(prefix, num_shards or 1)
        return records | f"Write{name}" >> tb.WriteUnorderedTFRecords(prefix, num_shards or 0)

    def prefix(filename):
        return FileSystems.join(out, filename[: -len(".tfrecord")])

    # Histories: behaviors keyed by user_id, co-grouped with users.
    b_fmt, b_paths = files["behaviors"]
    u_fmt, u_paths = files["users"]
    b_dtypes = tb.check_columns(b_paths, b_fmt, tb.BEHAVIOR_COLUMNS)
    tb.check_columns(u_paths, u_fmt, tb.USER_COLUMNS)
    uid = tb.BEHAVIOR_COLUMNS.index("user_id")
    behaviors = (pipeline
                 | "ReadBehaviors" >> tb.ReadRows(b_paths, tb.BEHAVIOR_COLUMNS, b_fmt)
                 | "KeyBehaviors" >> beam.Map(lambda r: (r[2][uid], r)))
    users = (pipeline
             | "ReadUsers" >> tb.ReadRows(u_paths, tb.USER_COLUMNS, u_fmt)
             | "KeyUsers" >> beam.Map(lambda r: (r[2][0], r)))
    histories = ({"behaviors": behaviors, "users": users}
                 | "JoinUsers" >> beam.CoGroupByKey()
                 | "EncodeHistories" >> beam.ParDo(tb.HistoryRecordFn(spec_dict, b_dtypes, semantic_ids, b_paths)))
    written = [write("Histories", histories, prefix(HISTORIES)) | "TagUsers" >> beam.Map(lambda t: ("users",) + t)]

    with_prob = {}
    for split in ("train", "test"):
        fmt, paths = files[split]
        present = tb.file_columns(paths[0], fmt)
        with_prob[split] = "true_prob" in present
        columns = tb.EXAMPLE_COLUMNS + (tb.OPTIONAL_EXAMPLE_COLUMNS if with_prob[split] else ())
        dtypes = tb.check_columns(paths, fmt, columns)
        examples = (pipeline
                    | f"Read{split}" >> tb.ReadRows(paths, columns, fmt)
                    | f"Encode{split}" >> beam.ParDo(tb.ExampleRecordFn(spec_dict, columns, dtypes, paths,
                                                                         semantic_ids)))
        files_written = write(split, examples, prefix(f"{split}.tfrecord"))
        written.append(files_written | f"Tag{split}" >> beam.Map(lambda t, s=split: (s,) + t))

    written = written | "AllFiles" >> beam.Flatten()
    return (pipeline
            | "Once" >> beam.Create([None])
            | "WriteMetadata" >> beam.ParDo(
                tb.WriteMetadataFn(FileSystems.join(out, SPEC), FileSystems.join(out, SPLITS), spec_dict, with_prob),
                written=beam.pvalue.AsList(written)))


def run(args):
    import apache_beam as beam
    from apache_beam.io.filesystems import FileSystems
    from apache_beam.options.pipeline_options import PipelineOptions

    from tfrec.data.beam import BeamRecordError
    from tfrec.data.spec import FeatureSpec

    t0 = time.time()
    out = args.out or args.data
    raw = FileSystems.join(args.data, RAW)
    meta_path = FileSystems.join(raw, "dataset.json")
    if not FileSystems.exists(meta_path):
        raise FileNotFoundError(f"{meta_path} not found (see docs/beam.md for the raw format)")
    with FileSystems.open(meta_path) as f:
        meta = json.loads(f.read().decode("utf-8"))
    semantic_ids = semantic_id_lookup(args, args.data, meta["n_items"])
    spec = FeatureSpec(n_items=meta["n_items"], n_user_segments=meta.get("n_user_segments", 8),
                       max_history_length=args.max_history_length or meta["max_history_length"],
                       **(semantic_ids.spec_fields() if semantic_ids else {}))
    files = _inputs(raw, args.input_format)

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
        build_pipeline(p, args, spec.to_dict(), files, out, deterministic, args.num_shards, semantic_ids)
        result = p.run()
        result.wait_until_finish()
    except BaseException as err:
        _remove_temp_files(out)
        if isinstance(err, BeamRecordError) or not isinstance(err, Exception):
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
    """Our BeamRecordError / input ValueError inside a runner's wrapped exception, if any."""
    from tfrec.data.beam import BeamRecordError

    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, BeamRecordError):
            return err
        err = err.__cause__ or err.__context__
    return None
