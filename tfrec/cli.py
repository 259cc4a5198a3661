"""The ``tfrec`` command: one subcommand per pipeline stage (see ``tfrec <stage> --help``)."""
from __future__ import annotations

import argparse
import importlib
import sys

import tfrec  # noqa: F401  (selects tf-keras before TensorFlow loads)

STAGES = {
    "synthetic": ("pipelines.synthetic", "generate a synthetic data set with a known click probability"),
    "movielens": ("pipelines.movielens", "real MovieLens-100K (from the recbole wheel) -> raw logs + item text"),
    "semantic-ids": ("pipelines.semantic_ids", "RQ-VAE Semantic IDs of the items + codebook report"),
    "write-tfrecords": ("pipelines.write_tfrecords", "raw logs -> user-history + example TFRecords"),
    "beam-tfrecords": ("pipelines.beam_tfrecords", "raw logs -> TFRecords on Apache Beam (Direct/Dataflow/Flink/Spark)"),
    "embed-items": ("pipelines.embed_items", "item texts -> content embeddings with all-MiniLM-L6-v2 in TF (raw/items.npz)"),
    "cluster": ("pipelines.cluster", "K-means item groups + cluster balance report"),
    "train": ("pipelines.train", "train a model with model.fit"),
    "evaluate": ("pipelines.evaluate", "AUC / GAUC / logloss as JSON"),
    "predict": ("pipelines.predict", "per-example predictions as CSV or Parquet"),
    "export": ("pipelines.export", "export a SavedModel with user_tower / score / serving_default"),
    "serve": ("tfrec.serving.server", "local stand-in for TF Serving: its gRPC API over saved_models/"),
    "precompute": ("pipelines.precompute", "batch user_tower over every user -> user-state cache"),
    "query": ("pipelines.query", "score candidates for one user through the serving client"),
    "demo": ("pipelines.demo", "the main job end to end on embedded defaults"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tfrec", description=__doc__)
    sub = parser.add_subparsers(dest="stage", required=True, metavar="STAGE")
    for name, (module, help_text) in STAGES.items():
        mod = importlib.import_module(module)
        p = sub.add_parser(name, help=help_text, description=(mod.__doc__ or help_text).strip(),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        mod.add_arguments(p)
        p.set_defaults(_module=mod)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args._module.run(args)
    except (ValueError, FileNotFoundError, FileExistsError, IOError) as err:
        print(f"tfrec {args.stage}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
