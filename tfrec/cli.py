"""The ``tfrec`` command: one subcommand per pipeline stage (see ``tfrec <stage> --help``)."""
from __future__ import annotations

import argparse
import importlib
import os
import sys

import tfrec  # (selects tf-keras before TensorFlow loads; does not load it)

STAGES = {
    "synthetic": ("pipelines.synthetic", "generate a synthetic data set with a known click probability"),
    "movielens": ("pipelines.movielens", "real MovieLens-100K / -1M (from the recbole wheels) -> raw logs, side features, schema"),
    "semantic-ids": ("pipelines.semantic_ids", "RQ-VAE Semantic IDs of the items + codebook report"),
    "write-tfrecords": ("pipelines.write_tfrecords", "raw logs -> user-history + example TFRecords"),
    "beam-tfrecords": ("pipelines.beam_tfrecords", "raw logs -> TFRecords on Apache Beam (Direct/Dataflow/Flink/Spark)"),
    "embed-items": ("pipelines.embed_items", "item texts -> content embeddings with all-MiniLM-L6-v2 in TF (raw/items.npz)"),
    "cluster": ("pipelines.cluster", "K-means item groups + cluster balance report"),
    "chime-compress": ("pipelines.chime_compress", "CHIME / LEARN compressor -> every user's long-term vector per time slice"),
    "train": ("pipelines.train", "train a model with model.fit (one process, or under a tf.distribute strategy)"),
    "launch": ("pipelines.launch", "run a tfrec command as a local cluster: N workers (+ parameter servers) on 127.0.0.1"),
    "evaluate": ("pipelines.evaluate", "AUC / GAUC / logloss as JSON"),
    "predict": ("pipelines.predict", "per-example predictions as CSV or Parquet"),
    "export": ("pipelines.export", "export a SavedModel with user_tower / score / serving_default"),
    "serve": ("tfrec.serving.server", "local stand-in for TF Serving: its gRPC API over saved_models/"),
    "precompute": ("pipelines.precompute", "batch user_tower over every user -> user-state cache"),
    "query": ("pipelines.query", "score candidates for one user through the serving client"),
    "bench": ("pipelines.bench", "the benchmark grid: every model x data set x seed, cached cells, tables, plots"),
    "demo": ("pipelines.demo", "the main job end to end on embedded defaults"),
}


EPILOG = """TensorFlow's C++ log lines are hidden (TF_CPP_MIN_LOG_LEVEL=3) unless you set
TF_CPP_MIN_LOG_LEVEL yourself (e.g. TF_CPP_MIN_LOG_LEVEL=0 tfrec train ...) or pass --tf-log."""


def _stage_parser(sub, name: str):
    """Adds STAGE's subparser, importing its module (and only it)."""
    module, help_text = STAGES[name]
    mod = importlib.import_module(module)
    p = sub.add_parser(name, help=help_text, description=(mod.__doc__ or help_text).strip(),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    mod.add_arguments(p)
    p.set_defaults(_module=mod)
    return p


def build_parser(stage: str | None = None) -> argparse.ArgumentParser:
    """The CLI parser. With ``stage`` only that stage's module is imported (the others appear in
    the list by name), so ``tfrec STAGE --help`` and ``tfrec --help`` never import every stage
    (nor TensorFlow: stage modules import it when they run)."""
    parser = argparse.ArgumentParser(prog="tfrec", description=__doc__, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tf-log", action="store_true", help="show TensorFlow's C++ log lines")
    sub = parser.add_subparsers(dest="stage", required=True, metavar="STAGE")
    for name, (_, help_text) in STAGES.items():
        if name == stage:
            _stage_parser(sub, name)
        else:
            sub.add_parser(name, help=help_text, add_help=False)
    return parser


def _requested_stage(argv) -> str | None:
    """The first argument naming a stage (options before it are the CLI's own)."""
    for arg in argv:
        if not arg.startswith("-"):
            return arg if arg in STAGES else None
    return None


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if os.environ.get("TFREC_LAUNCHER_PID"):  # a task of `tfrec launch`
        from tfrec.distribute.launch import task_setup

        task_setup()
    if not tfrec.TF_LOG_LEVEL_FROM_USER:  # before TensorFlow loads (tfrec itself does not load it)
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0" if "--tf-log" in argv else "3"
    args = build_parser(_requested_stage(argv)).parse_args(argv)
    try:
        args._module.run(args)
    except (ValueError, FileNotFoundError, FileExistsError, IOError) as err:
        print(f"tfrec {args.stage}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
