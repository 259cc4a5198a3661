"""The benchmark's data sets, each prepared once through the product's own stages.

* ``synthetic-small`` / ``-medium`` / ``-long``: ``tfrec synthetic --version v2 --seed 0 --report`` (the
  planted click probability, its oracle and the shortcut ceilings), ``write-tfrecords`` with the
  generator's schema (item category + brand);
* ``ml-100k`` / ``ml-1m``: ``tfrec movielens`` (click = rating >= 4, global time split at the 80th
  percentile, the item side-feature schema), ``embed-items`` (all-MiniLM-L6-v2 over the item texts);

then, for every data set, ``cluster`` (K-means groups at the silhouette-chosen k, seed 0) and
``semantic-ids`` (RQ-VAE, 3 levels x 64, seed 0). The directory is ``<root>/<name>``; a data set whose
``semantic_ids.npz`` exists is ready and is never regenerated (delete its directory to regenerate).
"""
from __future__ import annotations

import json
from pathlib import Path

DATASETS = ("synthetic-small", "synthetic-medium", "synthetic-long", "ml-100k", "ml-1m")
READY = "semantic_ids.npz"  # the last stage's output


def prepare(name: str, root) -> Path:
    """The ready data directory of data set ``name`` under ``root`` (prepared when missing)."""
    from pipelines import cluster, embed_items, movielens, semantic_ids, synthetic, write_tfrecords
    from pipelines.common import GROUPS, RAW, SPEC, stage_args

    if name not in DATASETS:
        raise ValueError(f"--datasets: unknown data set {name!r}; data sets: {', '.join(DATASETS)}")
    data = Path(root) / name
    if (data / READY).exists():
        return data
    if not (data / SPEC).exists():
        if name.startswith("synthetic-"):
            if not (data / RAW / "synthetic_report.json").exists():
                synthetic.run(stage_args(synthetic, ["--size", name.split("-", 1)[1], "--version", "v2", "--seed", 0,
                                                     "--out", data, "--report"]))
            write_tfrecords.run(stage_args(write_tfrecords, ["--data", data, "--schema", data / RAW / "schema.yaml"]))
        else:
            if not (data / RAW / "items.npz").exists():
                movielens.run(stage_args(movielens, ["--out", data, "--variant", name.split("-", 1)[1]]))
                embed_items.run(stage_args(embed_items, ["--data", data, "--no-progress"]))
            write_tfrecords.run(stage_args(write_tfrecords, ["--data", data]))
    if not (data / GROUPS).exists():
        cluster.run(stage_args(cluster, ["--data", data, "--seed", 0, "--no-plot", "--examples", 0]))
    semantic_ids.run(stage_args(semantic_ids, ["--data", data, "--seed", 0, "--quiet"]))
    return data


def oracle_report(data: Path) -> dict | None:
    """The synthetic generator's report (oracle, ablation, shortcut ceilings), or None for real data."""
    path = Path(data) / "raw" / "synthetic_report.json"
    return json.loads(path.read_text()) if path.exists() else None
