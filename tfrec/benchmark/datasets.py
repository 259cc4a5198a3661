"""The benchmark's data sets, each prepared once through the product's own stages.

* ``synthetic-small`` / ``-medium`` / ``-long``: ``tfrec synthetic --version v2 --seed 0 --report`` (the
  planted click probability, its oracle and the shortcut ceilings), ``write-tfrecords`` with the
  generator's schema (item category + brand);
* ``ml-100k`` / ``ml-1m``: ``tfrec movielens`` (click = rating >= 4, global time split at the 80th
  percentile, the item side-feature schema), ``embed-items`` (all-MiniLM-L6-v2 over the item texts);

then, for every data set, ``cluster`` (K-means groups at the silhouette-chosen k, seed 0) and
``semantic-ids`` (RQ-VAE, 3 levels x 64, seed 0). The directory is ``<root>/<name>``; a data set whose
``semantic_ids.npz`` exists is ready and is never regenerated (delete its directory to regenerate).

**The data lock** (``bench/data-lock/<name>/``, committed). Two stages give other floats on another
CPU: the RQ-VAE's training (measured: 61% of synthetic-medium's codes differ between oneDNN's AVX2 and
AVX-512 kernels on one Intel box; an AMD box's codes differed from both) and the text encoder (MiniLM
vectors ~2e-7 apart). Every other stage gives the same bytes (the generator, K-means, the TFRecords:
checked under those ISA settings). So a data set prepared on another box would have another
fingerprint, and none of the committed cells would be reused there. The lock keeps those two stages'
outputs (``semantic_ids.npz`` / ``.json``; ``raw/items.npz`` of the MovieLens sets) with a stamp of
what made them (the stage's code version, its arguments and its input's content): a preparation whose
stamp matches copies them instead of running the stage, so every box prepares the data the committed
cells were run on. A stale stamp (the stage's code or input changed) runs the stage and rewrites the
lock, to be committed. ``lock.json`` also keeps each file's content hash (``data_manifest``): a
preparation that still ends with another fingerprint names the files that differ.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Optional

DATASETS = ("synthetic-small", "synthetic-medium", "synthetic-long", "ml-100k", "ml-1m")
READY = "semantic_ids.npz"  # the last stage's output
LOCK_ROOT = Path(__file__).resolve().parents[2] / "bench" / "data-lock"
LOCK_FILE = "lock.json"
ITEMS = "raw/items.npz"
SEMANTIC_FILES = ("semantic_ids.npz", "semantic_ids.json")
SEMANTIC_ARGS = ["--seed", 0, "--quiet"]


def prepare(name: str, root, lock_root: Optional[Path] = None, log=print) -> Path:
    """The ready data directory of data set ``name`` under ``root`` (prepared when missing), its
    CPU-dependent stages taken from the data lock under ``lock_root`` when its stamps match (None: no
    lock, every stage runs: the default; `tfrec bench` passes ``LOCK_ROOT``). A preparation without a
    matching lock writes one (``log`` says so)."""
    from pipelines import cluster, embed_items, movielens, semantic_ids, synthetic, write_tfrecords
    from pipelines.common import GROUPS, RAW, SPEC, stage_args

    if name not in DATASETS:
        raise ValueError(f"--datasets: unknown data set {name!r}; data sets: {', '.join(DATASETS)}")
    data = Path(root) / name
    lock = DataLock(Path(lock_root) / name) if lock_root is not None else None
    if (data / READY).exists():
        if lock is not None:
            lock.check_or_write(data, log)
        return data
    if not (data / SPEC).exists():
        if name.startswith("synthetic-"):
            if not (data / RAW / "synthetic_report.json").exists():
                synthetic.run(stage_args(synthetic, ["--size", name.split("-", 1)[1], "--version", "v2", "--seed", 0,
                                                     "--out", data, "--report"]))
            write_tfrecords.run(stage_args(write_tfrecords, ["--data", data, "--schema", data / RAW / "schema.yaml"]))
        else:
            if not (data / ITEMS).exists():
                movielens.run(stage_args(movielens, ["--out", data, "--variant", name.split("-", 1)[1]]))
                if lock is None or not lock.restore("items", data, log):
                    embed_items.run(stage_args(embed_items, ["--data", data, "--no-progress"]))
            write_tfrecords.run(stage_args(write_tfrecords, ["--data", data]))
    if not (data / GROUPS).exists():
        cluster.run(stage_args(cluster, ["--data", data, "--seed", 0, "--no-plot", "--examples", 0]))
    if lock is None or not lock.restore("semantic_ids", data, log):
        semantic_ids.run(stage_args(semantic_ids, ["--data", data, *SEMANTIC_ARGS]))
    if lock is not None:
        lock.check_or_write(data, log)
    return data


def _digest(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part + b"\0")
    return digest.hexdigest()[:16]


def stage_stamp(data: Path, stage: str) -> Optional[str]:
    """The stamp of data lock stage ``stage`` (``items`` | ``semantic_ids``) for data directory ``data``:
    the stage's code version, its arguments and its input's content (the item texts; the content
    vectors); None when the stage has no input here (``items``: synthetic data has no item texts, its
    vectors come from the generator)."""
    from pipelines.common import RAW
    from pipelines.embed_items import ITEMS_TEXT, read_items_text
    from tfrec.benchmark.cells import _npz_content, tool_version

    if stage == "items":
        if not (data / RAW / ITEMS_TEXT).exists():
            return None
        ids, text = read_items_text(data / RAW / ITEMS_TEXT)
        return _digest(tool_version("pipelines.embed_items").encode(), ids.tobytes(),
                       json.dumps(list(text)).encode())
    if stage == "semantic_ids":
        return _digest(tool_version("pipelines.semantic_ids").encode(),
                       json.dumps([str(a) for a in SEMANTIC_ARGS]).encode(), _npz_content(data / ITEMS))
    raise ValueError(f"unknown data lock stage {stage!r}")


def stage_stamps(data: Path) -> dict:
    """``{stage: stamp}`` of every data lock stage that has an input in ``data`` (``stage_stamp``)."""
    stamps = {stage: stage_stamp(data, stage) for stage in DataLock.FILES}
    return {k: v for k, v in stamps.items() if v is not None}


class DataLock:
    """One data set's lock directory: the outputs of its CPU-dependent stages + ``lock.json`` (their
    stamps, the data's fingerprint and per-file manifest, the machine that prepared it)."""

    FILES = {"items": (ITEMS,), "semantic_ids": SEMANTIC_FILES}

    def __init__(self, directory: Path):
        self.dir = Path(directory)

    def read(self) -> Optional[dict]:
        path = self.dir / LOCK_FILE
        return json.loads(path.read_text()) if path.exists() else None

    def restore(self, stage: str, data: Path, log=print) -> bool:
        """Copy ``stage``'s locked outputs into ``data`` when the lock's stamp matches this input; False
        (the stage must run) otherwise."""
        lock = self.read()
        if lock is None or stage not in lock.get("stamps", {}):
            return False
        stamp = stage_stamp(data, stage)
        if stamp != lock["stamps"][stage]:
            log(f"data lock {self.dir}: the {stage} stage's code or input changed since the lock was written "
                f"(stamp {lock['stamps'][stage]} -> {stamp}): running it; commit the rewritten lock")
            return False
        for rel in self.FILES[stage]:
            target = data / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.dir / Path(rel).name, target)
        log(f"data lock {self.dir}: {stage} taken from the lock (prepared on {lock.get('machine', '?')})")
        return True

    def check_or_write(self, data: Path, log=print) -> None:
        """Write the lock from ``data`` when there is none or a stage's stamp no longer matches; else
        compare ``data``'s fingerprint with the lock's and name the files that differ."""
        from tfrec.benchmark.cells import data_fingerprint, data_manifest

        lock = self.read()
        stamps = stage_stamps(data)
        if lock is not None and lock.get("stamps") == stamps:
            if data_fingerprint(data) != lock["fingerprint"]:
                mine, theirs = data_manifest(data), lock["manifest"]
                differ = sorted(r for r in set(mine) | set(theirs) if mine.get(r) != theirs.get(r))
                log(f"data lock {self.dir}: {data} differs from the data the lock was written from "
                    f"(fingerprint {data_fingerprint(data)} vs {lock['fingerprint']}; files: {', '.join(differ)}); "
                    f"cells run on it get new keys. Prepared before the lock existed? Delete {data} to prepare "
                    f"it again from the lock")
            return
        import platform

        from tfrec.benchmark.machine import machine_info

        self.dir.mkdir(parents=True, exist_ok=True)
        for stage in stamps:
            for rel in self.FILES[stage]:
                shutil.copyfile(data / rel, self.dir / Path(rel).name)
        body = {"dataset": data.name, "stamps": stamps, "fingerprint": data_fingerprint(data),
                "manifest": data_manifest(data), "machine": f"{machine_info()['cpu_model']} ({platform.machine()})"}
        tmp = self.dir / (LOCK_FILE + ".tmp")
        tmp.write_text(json.dumps(body, indent=1, sort_keys=True) + "\n")
        tmp.replace(self.dir / LOCK_FILE)
        log(f"data lock {self.dir}: written from {data} ({'stale stamps' if lock else 'none yet'}): commit it")


def oracle_report(data: Path) -> dict | None:
    """The synthetic generator's report (oracle, ablation, shortcut ceilings), or None for real data."""
    path = Path(data) / "raw" / "synthetic_report.json"
    return json.loads(path.read_text()) if path.exists() else None
