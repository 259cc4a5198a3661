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
what made them (the code computing them, ``STAGES``, with its libraries' versions; the stage's
arguments; its input's content): a preparation whose stamp matches copies them instead of running the
stage, so every box prepares the data the committed cells were run on. A stale stamp runs the stage
and rewrites the lock from its outputs, to be committed; a data directory prepared earlier is only
compared with the lock, never written into it. ``lock.json`` also keeps each file's content hash
(``data_manifest``): a preparation that still ends with another fingerprint names the files that
differ.

The CHIME / LEARN compressors' user vectors are locked the same way, per data set and compressor
(``CompressorLock``, ``<name>/compressors/<stem>/``), by ``tfrec.benchmark.grid.user_vectors``.
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
SEMANTIC_ARGS = ["--seed", 0, "--quiet"]
# each lock stage: the files it writes (the ready marker, semantic_ids.npz, last) and the code that
# computes them (the stamp hashes these files' code, not the stage's whole import tree: an edit to the
# training loop must not make the lock stale) with the libraries whose kernels produce the floats
STAGES = {
    "items": {"files": (ITEMS,), "code": ("pipelines/embed_items.py", "tfrec/embeddings/text.py",
                                          "tfrec/embeddings/reference.py"),
              "libraries": ("tensorflow", "numpy", "transformers")},
    "semantic_ids": {"files": ("semantic_ids.json", "semantic_ids.npz"),
                     "code": ("pipelines/semantic_ids.py", "tfrec/grouping/rqvae.py", "tfrec/grouping/kmeans.py",
                              "tfrec/layers/mlp.py"),
                     "libraries": ("tensorflow", "numpy")},
}


def prepare(name: str, root, lock_root: Optional[Path] = None, log=print) -> Path:
    """The ready data directory of data set ``name`` under ``root`` (prepared when missing), its
    CPU-dependent stages taken from the data lock under ``lock_root`` when their stamps match (None: no
    lock, every stage runs: the default; `tfrec bench` passes ``LOCK_ROOT``). A preparation that ran a
    locked stage writes the lock from its outputs (``log`` says so: commit it); a ready directory is only
    compared with the lock (or adopted as the lock when there is none)."""
    from pipelines import cluster, embed_items, movielens, semantic_ids, synthetic, write_tfrecords
    from pipelines.common import GROUPS, RAW, SPEC, stage_args

    if name not in DATASETS:
        raise ValueError(f"--datasets: unknown data set {name!r}; data sets: {', '.join(DATASETS)}")
    data = Path(root) / name
    lock = DataLock(Path(lock_root) / name) if lock_root is not None else None
    if (data / READY).exists():
        if lock is not None:
            lock.check(data, log, adopt=True)
        return data
    ran = False
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
                    ran = True
            write_tfrecords.run(stage_args(write_tfrecords, ["--data", data]))
    if not (data / GROUPS).exists():
        cluster.run(stage_args(cluster, ["--data", data, "--seed", 0, "--no-plot", "--examples", 0]))
    if lock is None or not lock.restore("semantic_ids", data, log):
        semantic_ids.run(stage_args(semantic_ids, ["--data", data, *SEMANTIC_ARGS]))
        ran = True
    if lock is not None and ran:
        lock.write(data, log)
    elif lock is not None:
        lock.check(data, log)
    return data


def oracle_report(data: Path) -> dict | None:
    """The synthetic generator's report (oracle, ablation, shortcut ceilings), or None for real data."""
    path = Path(data) / "raw" / "synthetic_report.json"
    return json.loads(path.read_text()) if path.exists() else None


def _digest(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part + b"\0")
    return digest.hexdigest()[:16]


def stage_stamp(data: Path, stage: str) -> Optional[dict]:
    """The stamp of data lock stage ``stage`` (``items`` | ``semantic_ids``) for data directory ``data``:
    ``{"code", "libraries", "args", "input"}`` digests (the code computing the outputs, ``STAGES``; its
    libraries' versions; the stage's arguments; its input's content: the item texts, the content
    vectors). None when the stage has no input here (``items``: synthetic data has no item texts, its
    vectors come from the generator; ``semantic_ids`` before the content vectors exist)."""
    from importlib.metadata import PackageNotFoundError, version

    from pipelines.common import RAW
    from pipelines.embed_items import ITEMS_TEXT, read_items_text
    from tfrec.benchmark.cells import _npz_content

    if stage not in STAGES:
        raise ValueError(f"unknown data lock stage {stage!r}")
    if stage == "items":
        if not (data / RAW / ITEMS_TEXT).exists():
            return None
        ids, text = read_items_text(data / RAW / ITEMS_TEXT)
        args, source = [], [ids.tobytes(), json.dumps(list(text)).encode()]
    else:
        if not (data / ITEMS).exists():
            return None
        args, source = [str(a) for a in SEMANTIC_ARGS], [_npz_content(data / ITEMS)]
    libraries = []
    for lib in STAGES[stage]["libraries"]:
        try:
            libraries.append(f"{lib}=={version(lib)}".encode())
        except PackageNotFoundError:
            libraries.append(f"{lib} missing".encode())
    return {"code": stage_code(stage), "libraries": _digest(*libraries), "args": _digest(json.dumps(args).encode()),
            "input": _digest(*source)}


def stage_code(stage: str) -> str:
    """Digest of the code computing a lock stage's outputs (``STAGES``; docstrings and comments left out)."""
    from tfrec.benchmark.cells import ROOT, _code_text

    return _digest(*(f.encode() + b"|" + _code_text(ROOT / f).encode() for f in STAGES[stage]["code"]))


def stage_stamps(data: Path) -> dict:
    """``{stage: stamp}`` of every data lock stage that has an input in ``data`` (``stage_stamp``)."""
    stamps = {stage: stage_stamp(data, stage) for stage in STAGES}
    return {k: v for k, v in stamps.items() if v is not None}


def _copy(source: Path, target: Path) -> None:
    """Copy through a temporary file and a rename: a kill midway leaves no truncated target."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".lock-tmp")
    shutil.copyfile(source, tmp)
    tmp.replace(target)


class DataLock:
    """One data set's lock directory: the outputs of its CPU-dependent stages + ``lock.json`` (their
    stamps, the data's fingerprint and per-file manifest, the machine that prepared it)."""

    def __init__(self, directory: Path):
        self.dir = Path(directory)

    def read(self) -> Optional[dict]:
        path = self.dir / LOCK_FILE
        return json.loads(path.read_text()) if path.exists() else None

    def restore(self, stage: str, data: Path, log=print) -> bool:
        """Copy ``stage``'s locked outputs into ``data`` when the lock's stamp matches this input; False
        (the stage must run) otherwise, saying why when there is a lock."""
        lock = self.read()
        if lock is None or stage not in lock.get("stamps", {}):
            return False
        stamp, locked = stage_stamp(data, stage), lock["stamps"][stage]
        if stamp != locked:
            changed = [k for k in ("code", "libraries", "args", "input") if (stamp or {}).get(k) != locked.get(k)]
            log(f"data lock {self.dir}: the {stage} stage's {' and '.join(changed)} changed since the lock was "
                f"written: running it (the lock is rewritten from its outputs: commit it)")
            return False
        missing = [f for f in STAGES[stage]["files"] if not (self.dir / Path(f).name).exists()]
        if missing:
            log(f"data lock {self.dir}: {', '.join(missing)} missing from the lock: running the {stage} stage")
            return False
        for rel in STAGES[stage]["files"]:  # the ready marker last
            _copy(self.dir / Path(rel).name, data / rel)
        log(f"data lock {self.dir}: {stage} taken from the lock (prepared on {lock.get('machine', '?')})")
        return True

    def check(self, data: Path, log=print, adopt: bool = False) -> bool:
        """Whether ``data`` is the data the lock was written from (same fingerprint); logs the files that
        differ when not. Never rewrites a lock; with ``adopt``, writes one when there is none."""
        from tfrec.benchmark.cells import data_fingerprint, data_manifest

        lock = self.read()
        if lock is None:
            if adopt:
                self.write(data, log)
            return adopt
        fingerprint = data_fingerprint(data)
        if fingerprint == lock.get("fingerprint"):
            return True
        mine, theirs = data_manifest(data), lock.get("manifest", {})
        differ = sorted(r for r in set(mine) | set(theirs) if mine.get(r) != theirs.get(r))
        log(f"data lock {self.dir}: {data} differs from the data the lock was written from (fingerprint "
            f"{fingerprint} vs {lock.get('fingerprint')}; files: {', '.join(differ)}); cells run on it get other "
            f"keys than the committed ones. Prepared before the lock, or on another box without it? Delete {data} "
            "and run again to prepare it from the lock")
        return False

    def write(self, data: Path, log=print) -> None:
        """The lock from ``data``: its locked stages' outputs, stamps, fingerprint and manifest."""
        import platform

        from tfrec.benchmark.cells import data_fingerprint, data_manifest
        from tfrec.benchmark.machine import machine_info

        stamps = stage_stamps(data)
        self.dir.mkdir(parents=True, exist_ok=True)
        for stage in stamps:
            for rel in STAGES[stage]["files"]:
                _copy(data / rel, self.dir / Path(rel).name)
        body = {"dataset": data.name, "stamps": stamps, "fingerprint": data_fingerprint(data),
                "manifest": data_manifest(data), "machine": f"{machine_info()['cpu_model']} ({platform.machine()})"}
        tmp = self.dir / (LOCK_FILE + ".tmp")
        tmp.write_text(json.dumps(body, indent=1, sort_keys=True) + "\n")
        tmp.replace(self.dir / LOCK_FILE)
        log(f"data lock {self.dir}: written from {data}: commit it")


COMPRESSORS = "compressors"  # <lock>/<dataset>/compressors/<stem>/: a CHIME / LEARN compressor's output
COMPRESSOR_FILES = ("user_vectors.npz", "compressor.json")  # the vectors last: a directory without them is no output
STAMP_FILE = "stamp.json"


def vectors_digest(path) -> str:
    """16 hex digits of a user-vector file's *content* (its arrays, not the zip's bytes): what a CHIME /
    LEARN cell's key holds, so two boxes that fitted the compressor to other floats never share a key."""
    from tfrec.benchmark.cells import _npz_content

    return _digest(_npz_content(Path(path)))


def readable_digest(path) -> Optional[str]:
    """``vectors_digest``, or None for a file that is missing or not a readable ``.npz`` (truncated, a bad
    merge): such a file matches no digest."""
    import zipfile

    try:
        return vectors_digest(path)
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile):
        return None


class CompressorLock:
    """The locked output of one CHIME / LEARN compressor on one data set
    (``<lock root>/<dataset>/compressors/<stem>/``: ``user_vectors.npz``, ``compressor.json`` and
    ``stamp.json``).

    The compressor trains a transformer and quantizes its output; like the RQ-VAE, it gives other floats
    on another CPU (measured on ML-1M: CHIME's initial loss 10.0527 on the Intel box, 10.0488 on the AMD
    one; level-1 codebook perplexity 2.56 vs 3.64). The grid therefore takes the vectors from here when
    the stamp's ``key`` (the compressor's ingredients: config, t1, data fingerprint, code) is the one it
    would fit, and fits (then rewrites the lock: commit it) only when it is not. The stamp also keeps
    the vectors' content digest (``vectors_digest``), which the cells' keys hold, and the machine."""

    def __init__(self, dataset_dir: Path, stem: str):
        self.dir = Path(dataset_dir) / COMPRESSORS / stem

    def read(self) -> Optional[dict]:
        path = self.dir / STAMP_FILE
        return json.loads(path.read_text()) if path.exists() else None

    def digest(self, key: str) -> Optional[str]:
        """The locked vectors' content digest when the lock holds compressor ``key``'s output (its file
        matching its stamp), else None."""
        stamp = self.read()
        if stamp is None or stamp.get("key") != key or not (self.dir / COMPRESSOR_FILES[1]).exists():
            return None
        locked = stamp.get("vectors")
        return locked if locked and readable_digest(self.dir / COMPRESSOR_FILES[0]) == locked else None

    def restore(self, key: str, out: Path, log=print) -> bool:
        """Make ``out`` hold the locked output of compressor ``key`` (a local fit with other vectors is
        replaced); False when the lock does not hold ``key`` (or its file does not match its stamp)."""
        import os

        locked = self.digest(key)
        if locked is None:
            stamp = self.read()
            if stamp is not None and stamp.get("key") != key:
                log(f"compressor lock {self.dir}: written for compressor key {stamp.get('key')}, this one is {key} "
                    "(its config, t1, data or code changed): fitting it (the lock is rewritten: commit it)")
            elif stamp is not None:
                log(f"compressor lock {self.dir}: its files do not match its stamp: taking the fit here instead "
                    "(the lock is rewritten: commit it)")
            return False
        out = Path(out)
        if (out / COMPRESSOR_FILES[1]).exists() and readable_digest(out / COMPRESSOR_FILES[0]) == locked:
            return True
        if out.exists():
            log(f"compressor lock {self.dir}: {out} was fitted here to other vectors: replacing it with the "
                "locked ones")
        tmp = out.with_name(f".{out.name}.{os.getpid()}.lock-tmp")  # one per process: concurrent grids
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for name in COMPRESSOR_FILES:
            shutil.copyfile(self.dir / name, tmp / name)
        shutil.rmtree(out, ignore_errors=True)
        try:
            tmp.rename(out)
        except OSError:  # another process restored it meanwhile
            shutil.rmtree(tmp, ignore_errors=True)
            if readable_digest(out / COMPRESSOR_FILES[0]) != locked:
                raise
        log(f"compressor lock {self.dir}: taken from the lock (fitted on {self.read().get('machine', '?')})")
        return True

    def write(self, key: str, out: Path, log=print) -> str:
        """The lock from the fitted output in ``out`` (compressor ``key``); returns its vectors' digest."""
        import platform

        from tfrec.benchmark.machine import machine_info

        digest = vectors_digest(Path(out) / COMPRESSOR_FILES[0])
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / STAMP_FILE).unlink(missing_ok=True)  # a kill midway leaves no stamp over other files
        for name in COMPRESSOR_FILES:
            _copy(Path(out) / name, self.dir / name)
        stamp = {"key": key, "vectors": digest, "machine": f"{machine_info()['cpu_model']} ({platform.machine()})"}
        tmp = self.dir / (STAMP_FILE + ".tmp")
        tmp.write_text(json.dumps(stamp, indent=1, sort_keys=True) + "\n")
        tmp.replace(self.dir / STAMP_FILE)
        log(f"compressor lock {self.dir}: written from {out}: commit it")
        return digest
