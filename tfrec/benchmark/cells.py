"""Cell keys and the on-disk cell store that makes the grid resumable.

A cell is one (row, data set, seed, learning rate) under one budget. Its key hashes everything its
result depends on:

* the row's model type and full config (YAML + overrides, resolved against the data);
* the data: ``data_fingerprint`` (the spec, splits, item / group / Semantic-ID tables, the data set's
  description and the TFRecord files' names and sizes) and the time windows;
* the seed, the learning rate and the budget's training fields (caps, epochs, patience, batch);
* the per-user vector file a CHIME / LEARN row reads (its SHA-256);
* the **code version**: a hash of the source files the cell runs -- the benchmark, the training and
  evaluation pipeline, and the model's own module with everything it imports inside tfrec (found by
  reading the imports, ``code_version``). Editing DMGIN's layers re-runs DMGIN's cells and no other
  model's; editing the data pipeline re-runs every cell.

``CellStore`` keeps one directory per finished cell, ``<root>/<dataset>/<row>/seed<S>-lr<LR>-<key>/``,
holding ``cell.json`` (metrics, costs, the key's ingredients) and ``predictions.csv.gz`` (``user_id,
label, prediction`` for every test example, so anyone can recompute the metrics). ``cell.json`` is
written last, atomically: a directory without it is an interrupted cell and is run again. A cell that
failed leaves ``failed.json`` (the error) instead, retried on the next run.
"""
from __future__ import annotations

import ast
import hashlib
import json
import os
import sys
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Optional

from tfrec.benchmark.machine import MACHINE_FILE

ROOT = Path(__file__).resolve().parents[2]
CELL_FILE = "cell.json"
FAILED_FILE = "failed.json"
PREDICTIONS_FILE = "predictions.csv.gz"
# the modules every cell runs (their tfrec / pipelines imports are followed)
COMMON_ENTRIES = ("tfrec.benchmark.cell", "pipelines.train", "pipelines.evaluate", "tfrec.export.saved_model")
# packages whose __init__ imports every member: following it would tie every model to every other
FAN_OUT_PACKAGES = {"tfrec.models": ("tfrec.models.base",),
                    # re-exports every model's config: a model imports its own module (tfrec.configs.din)
                    "tfrec.configs": ("tfrec.configs.base",)}
# the key and store machinery itself (and the benchmark package's docstring): not part of a result
NOT_RESULTS = {"tfrec.benchmark", "tfrec.benchmark.cells"}
# the libraries whose versions are part of every key
LIBRARIES = ("tensorflow", "tf-keras", "numpy")


def _module_file(name: str) -> Optional[Path]:
    base = ROOT.joinpath(*name.split("."))
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


def _imports(path: Path, name: str) -> set:
    """The tfrec / pipelines modules ``path`` (module ``name``) imports, anywhere in the file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            out.add(module)
            out.update(f"{module}.{alias.name}" for alias in node.names)  # a submodule imported by name
    return {m for m in out if m.split(".")[0] in ("tfrec", "pipelines") and _module_file(m) is not None}


def source_closure(entries: Iterable[str]) -> list:
    """The source files of ``entries`` and every tfrec / pipelines module they import, transitively
    (a module's parent packages included), sorted. ``tfrec.models``' ``__init__`` (which imports every
    model into its registry) stands for its base class only and is itself left out, so adding a model
    to the zoo re-runs no other model's cells."""
    seen, todo = set(), list(entries)
    while todo:
        name = todo.pop()
        if name in seen or name in NOT_RESULTS:
            continue
        seen.add(name)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]
        if name in FAN_OUT_PACKAGES:
            todo += list(FAN_OUT_PACKAGES[name])
            continue
        path = _module_file(name)
        if path is not None:
            todo += sorted(_imports(path, name) - seen)
    files = {_module_file(n) for n in seen if n not in FAN_OUT_PACKAGES}  # (a registry: adding a model changes it)
    return sorted(str(f.relative_to(ROOT)) for f in files if f is not None)


def _code_text(path: Path) -> str:
    """The code of a source file without its comments and docstrings (its AST, docstrings dropped): a
    reworded docstring or comment re-runs no cell."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(body, list) and body and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree, include_attributes=False)


def code_version(*entries: str) -> str:
    """SHA-256 (16 hex digits) of the code a cell runs: the common entries plus ``entries`` (a model's
    module), every tfrec / pipelines module they import, and the versions of ``LIBRARIES``."""
    return _code_version(COMMON_ENTRIES + tuple(entries))


@lru_cache(maxsize=None)
def _code_version(entries: tuple) -> str:
    from importlib.metadata import PackageNotFoundError, version

    digest = hashlib.sha256()
    for rel in source_closure(entries):
        digest.update(rel.encode() + b"\0" + _code_text(ROOT / rel).encode() + b"\0")
    for lib in LIBRARIES:
        try:
            digest.update(f"{lib}=={version(lib)}\0".encode())
        except PackageNotFoundError:
            digest.update(f"{lib} missing\0".encode())
    return digest.hexdigest()[:16]


def tool_version(entry: str) -> str:
    """SHA-256 (16 hex digits) of a stage's code alone (e.g. ``pipelines.chime_compress``: CHIME's
    compressor), as ``code_version`` computes it but without the common entries."""
    return _code_version((entry,))


def model_module(model_type: str) -> str:
    from tfrec.models import MODELS

    return MODELS[model_type].__module__


# what a preparation stage writes about its own run (its wall time), not about the data
VOLATILE_KEYS = ("seconds",)
# reports about the data that no model reads, whose floats move in the last digits between machines
# (the synthetic generator's oracle / ceiling AUCs: 1e-7 to 1e-4 apart between two boxes); the tables
# take them from ``dataset-<budget>.json``, and every cell measures its own oracle on its test window
REPORT_FILES = ("raw/synthetic_report.json",)


def _stable_json(value):
    """``value`` with every run-time entry (a key in ``VOLATILE_KEYS``) dropped."""
    if isinstance(value, dict):
        return {k: _stable_json(v) for k, v in value.items() if k not in VOLATILE_KEYS}
    if isinstance(value, list):
        return [_stable_json(v) for v in value]
    return value


def _json_content(text: str) -> bytes:
    try:
        return json.dumps(_stable_json(json.loads(text)), sort_keys=True).encode()
    except ValueError:
        return text.encode()


def _npz_content(path: Path) -> bytes:
    """The arrays of an ``.npz`` (names, dtypes, shapes, values): not the zip's bytes, which carry the
    write time. A 0-d string array holding JSON (a stage's report) is read as JSON, as above."""
    import numpy as np

    digest = hashlib.sha256()
    with np.load(path, allow_pickle=False) as arrays:
        for name in sorted(arrays.files):
            array = arrays[name]
            if array.ndim == 0 and array.dtype.kind == "U":  # its width follows the text's length
                kind, body = "text", _json_content(str(array))
            else:
                kind, body = str(array.dtype.descr), np.ascontiguousarray(array).tobytes()
            digest.update(f"{name}|{kind}|{array.shape}|".encode() + body + b"\0")
    return digest.digest()


def _data_contents(data_dir):
    """``(relative path, content bytes)`` of every file of a data directory, in path order, as
    ``data_fingerprint`` hashes them."""
    data = Path(data_dir)
    for path in sorted(p for p in data.rglob("*") if p.is_file()):
        rel = path.relative_to(data).as_posix()
        if rel in REPORT_FILES:
            continue
        small = path.suffix in (".json", ".yaml", ".npz") and path.stat().st_size < 64 << 20
        if not small:
            body = str(path.stat().st_size).encode()
        elif path.suffix == ".npz":
            try:
                body = _npz_content(path)
            except ValueError:  # object arrays (pickles): the bytes, as before
                body = path.read_bytes()
        elif path.suffix == ".json":
            body = _json_content(path.read_text())
        else:
            body = path.read_bytes()
        yield rel, body


def data_fingerprint(data_dir) -> str:
    """SHA-256 (16 hex digits) of a data directory's *content*: its small metadata files (JSON, YAML,
    the ``.npz`` tables' arrays) and every other file's name and size (the TFRecords: hashing gigabytes
    per run would cost minutes).

    Preparing the same data set again, in another process or on another day, gives the same
    fingerprint: an ``.npz`` is hashed by its arrays (the zip's bytes carry the write time), the
    stages' wall-time entries (``seconds``) and the generator's report (``REPORT_FILES``) are left out,
    so a new checkout that re-prepares the data reuses the committed cells; a change of any code, group,
    item feature or split does not. (Another CPU trains the RQ-VAE and runs the text encoder to other
    floats; the benchmark's data lock, ``tfrec.benchmark.datasets``, carries those stages' outputs.)"""
    digest = hashlib.sha256()
    for rel, body in _data_contents(data_dir):
        digest.update(rel.encode() + b"\0" + body + b"\0")
    return digest.hexdigest()[:16]


def data_manifest(data_dir) -> dict:
    """``{relative path: 16 hex digits}`` of each file's content as ``data_fingerprint`` reads it: which
    files two preparations of a data set disagree on."""
    return {rel: hashlib.sha256(body).hexdigest()[:16] for rel, body in _data_contents(data_dir)}


def cell_key(ingredients: dict) -> str:
    """16 hex digits of SHA-256 over the canonical JSON of the cell's ingredients."""
    blob = json.dumps(ingredients, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def lr_tag(learning_rate: float) -> str:
    return f"{learning_rate:g}"


class CellStore:
    """Finished cells on disk under ``root`` (see the module doc)."""

    def __init__(self, root):
        self.root = Path(root)

    def cell_dir(self, dataset: str, row: str, seed: int, learning_rate: float, key: str) -> Path:
        return self.root / dataset / row / f"seed{seed}-lr{lr_tag(learning_rate)}-{key}"

    def get(self, dataset: str, row: str, seed: int, learning_rate: float, key: str) -> Optional[dict]:
        path = self.cell_dir(dataset, row, seed, learning_rate, key) / CELL_FILE
        return json.loads(path.read_text()) if path.exists() else None

    def failure(self, dataset: str, row: str, seed: int, learning_rate: float, key: str) -> Optional[dict]:
        path = self.cell_dir(dataset, row, seed, learning_rate, key) / FAILED_FILE
        return json.loads(path.read_text()) if path.exists() else None

    def cells(self, dataset: Optional[str] = None) -> list:
        """Every finished cell (``cell.json`` contents, with ``dir`` and, where the grid measured it,
        ``machine``: ``machine.json``, the machine and its speed probe), any key."""
        out = []
        pattern = f"{dataset}/*/*/{CELL_FILE}" if dataset else f"*/*/*/{CELL_FILE}"
        for path in sorted(self.root.glob(pattern)):
            cell = json.loads(path.read_text())
            cell["dir"] = str(path.parent)
            if (path.parent / MACHINE_FILE).exists():
                cell["machine"] = json.loads((path.parent / MACHINE_FILE).read_text())
            out.append(cell)
        return out

    @staticmethod
    def write_json(path: Path, value: dict) -> None:
        """Atomic write (temp file + rename in the same directory)."""
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(value, indent=2, default=str))
        os.replace(tmp, path)


class CellLock:
    """An exclusive lock on a cell directory (``lock``: the owner's pid, created with O_EXCL), so two
    ``tfrec bench`` processes never run the same cell. A lock whose pid is gone is stale and taken over."""

    NAME = "lock"

    def __init__(self, directory):
        self.path = Path(directory) / self.NAME

    def acquire(self) -> bool:
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                if self.holder_alive():
                    return False
                self.path.unlink(missing_ok=True)  # stale: its process died
                continue
            with os.fdopen(fd, "w") as f:
                f.write(str(os.getpid()))
            return True
        return False

    def holder_alive(self) -> bool:
        try:
            pid = int(self.path.read_text().strip() or 0)
        except (OSError, ValueError):
            return False
        if pid <= 0:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def release(self) -> None:
        self.path.unlink(missing_ok=True)


if __name__ == "__main__":  # print a model's source closure: python -m tfrec.benchmark.cells dmgin
    import tfrec  # noqa: F401

    for arg in sys.argv[1:]:
        print("\n".join(source_closure(COMMON_ENTRIES + (model_module(arg),))))
        print(code_version(model_module(arg)))
