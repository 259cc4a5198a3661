"""The item table: every item's declared side features, indexed by item id.

Records and serving requests carry item ids only; the model stores this table as non-trainable
weights (``tfrec.layers.embedding.ItemFeatureLookup``) and looks up the target's and every
behavior's features in graph, so a SavedModel needs nothing beside it.

Row layout per declared item feature (``FeatureSpec.item_features``), ``n_items`` rows:

* categorical: ``[n_items]`` int64;
* multi_categorical: ``[n_items, max_len]`` int64, padded with -1 (``MULTI_PAD``);
* numeric: ``[n_items]`` float32 (raw: the transform happens in the model);
* dense: ``[n_items, dim]`` float32.

An item missing from the source gets the *unknown* value (categorical -1, an empty list, numeric 0,
a zero vector), embedded like an id the model has never seen: the OOV row.

Source: ``raw/item_features.parquet`` with an ``item_id`` column and one column per declared item
feature (list columns for multi_categorical and dense); ``write-tfrecords`` validates it and
writes ``item_features.npz`` beside the TFRecords.

Catalogue updates: the table is part of the model. A new item (or a changed category) reaches
serving with a new export (``tfrec export`` writes the next version; TF Serving picks it up);
the table's size is in the export metadata (``item_table`` in ``assets.extra/tfrec_export.json``).
Items added after the export are OOV until then.
"""
from __future__ import annotations

import dataclasses
import logging
import os
from typing import Dict, Mapping

import numpy as np

from tfrec.data.schema import FeatureDef
from tfrec.data.spec import MULTI_PAD, FeatureSpec

ITEM_ID = "item_id"
logger = logging.getLogger(__name__)


def unknown_value(fd: FeatureDef):
    """The row value of an item missing from the table (embedded as OOV / zeros)."""
    if fd.kind == "categorical":
        return MULTI_PAD
    if fd.kind == "multi_categorical":
        return np.full(fd.max_len, MULTI_PAD, np.int64)
    if fd.kind == "dense":
        return np.zeros(fd.dim, np.float32)
    return 0.0


def empty_column(fd: FeatureDef, n_items: int) -> np.ndarray:
    """A column of ``n_items`` unknown rows."""
    if fd.kind == "categorical":
        return np.full(n_items, MULTI_PAD, np.int64)
    if fd.kind == "multi_categorical":
        return np.full((n_items, fd.max_len), MULTI_PAD, np.int64)
    if fd.kind == "dense":
        return np.zeros((n_items, fd.dim), np.float32)
    return np.zeros(n_items, np.float32)


@dataclasses.dataclass
class ItemTable:
    """Per-item values of the declared item features.

    Attributes:
      n_items: rows (item ids ``0..n_items-1``).
      columns: feature name -> array with the row layout of the module docstring.
      listed: ``[n_items]`` bool, the items the source listed (the others hold the unknown value).
    """

    n_items: int
    columns: Dict[str, np.ndarray]
    listed: np.ndarray

    @property
    def n_missing(self) -> int:
        """Items the source did not list."""
        return int(self.n_items - self.listed.sum())

    @classmethod
    def empty(cls, spec: FeatureSpec) -> "ItemTable":
        return cls(spec.n_items, {fd.name: empty_column(fd, spec.n_items) for fd in spec.item_features},
                   np.zeros(spec.n_items, bool))

    @classmethod
    def from_columns(cls, spec: FeatureSpec, item_id, values: Mapping[str, object], source: str = "item table"
                     ) -> "ItemTable":
        """Validates raw columns (one entry per listed item) against the spec's item features.

        Args:
          spec: the FeatureSpec declaring the item features.
          item_id: ``[R]`` item ids in ``[0, n_items)``, each at most once.
          values: feature name -> ``R`` values (scalars, or lists for multi_categorical / dense).
          source: named in error messages (e.g. the Parquet file).

        Raises:
          ValueError: a missing column, a duplicate or out-of-range item id, a value outside the
            vocabulary, a list longer than ``max_len``, a vector of the wrong size, a non-finite
            number; the message names the source, the row, the feature and the fix.
        """
        item_id = np.asarray(item_id)
        if item_id.size == 0:
            item_id = item_id.astype(np.int64)
        if item_id.dtype.kind not in "iu":
            raise ValueError(f"{source}: column 'item_id' must hold integer item ids, got {item_id.dtype}")
        bad = np.flatnonzero((item_id < 0) | (item_id >= spec.n_items))
        if len(bad):
            raise ValueError(f"{source}: row {int(bad[0])}, item_id {int(item_id[bad[0]])} is outside "
                             f"[0, {spec.n_items}); remap item ids like the behaviors' (or raise n_items)")
        uniq, counts = np.unique(item_id, return_counts=True)
        if (counts > 1).any():
            dup = int(uniq[counts > 1][0])
            raise ValueError(f"{source}: item_id {dup} is listed {int(counts[counts > 1][0])} times; "
                             "give each item one row")
        columns = {}
        for fd in spec.item_features:
            if fd.name not in values:
                raise ValueError(f"{source}: missing column {fd.name!r} (declared item feature, kind {fd.kind}); "
                                 f"add it or remove the feature from the schema")
            column = empty_column(fd, spec.n_items)
            column[item_id] = _typed(fd, values[fd.name], len(item_id), source, item_id)
            columns[fd.name] = column
        undeclared = sorted(set(values) - {fd.name for fd in spec.item_features})
        if undeclared:
            logger.warning("%s: column(s) %s are not declared item features; ignored", source, undeclared)
        listed = np.zeros(spec.n_items, bool)
        listed[item_id] = True
        return cls(spec.n_items, columns, listed)

    @classmethod
    def from_parquet(cls, path: os.PathLike, spec: FeatureSpec) -> "ItemTable":
        """Reads ``raw/item_features.parquet`` (``item_id`` + one column per declared item feature)."""
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        if ITEM_ID not in table.column_names:
            raise ValueError(f"{path}: missing column 'item_id' (the item id each row describes)")
        values = {name: table.column(name).to_pylist() for name in table.column_names if name != ITEM_ID}
        return cls.from_columns(spec, table.column(ITEM_ID).to_numpy(), values, str(path))

    def save(self, path: os.PathLike) -> None:
        """Writes the table as ``.npz`` atomically (temp file + rename)."""
        path = os.fspath(path)
        tmp = f"{path}.tmp.npz"
        np.savez(tmp, n_items=np.int64(self.n_items), listed=self.listed,
                 **{f"feature__{k}": v for k, v in self.columns.items()})
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: os.PathLike, spec: FeatureSpec) -> "ItemTable":
        """Reads a table written by ``save`` and checks it against the spec's item features (names,
        shapes and dtypes: a table written under another schema is an error, never a silent cast)."""
        with np.load(path) as z:
            n_items = int(z["n_items"])
            columns = {k[len("feature__"):]: z[k] for k in z.files if k.startswith("feature__")}
            listed = z["listed"]
        if n_items != spec.n_items:
            raise ValueError(f"{path}: item table has {n_items} items but spec.json says n_items={spec.n_items}; "
                             "re-run write-tfrecords")
        for fd in spec.item_features:
            expected = empty_column(fd, n_items)
            got = columns.get(fd.name)
            if got is None or got.shape != expected.shape or got.dtype != expected.dtype:
                found = "missing" if got is None else f"{got.dtype} {got.shape}"
                raise ValueError(f"{path}: item feature {fd.name!r} ({fd.kind}) is {found}, expected "
                                 f"{expected.dtype} {expected.shape}; the table was written with another schema: "
                                 "re-run write-tfrecords")
            if fd.is_id and fd.vocab_size and got.max(initial=-1) >= fd.vocab_size:
                raise ValueError(f"{path}: item feature {fd.name!r} holds id {int(got.max())} but the schema's "
                                 f"vocab_size is {fd.vocab_size}; re-run write-tfrecords")
        return cls(n_items, {fd.name: columns[fd.name] for fd in spec.item_features}, listed)

    def statistics(self, fd: FeatureDef) -> tuple[float, float]:
        """(mean, std) of a numeric column over the listed items (for ``standardize``)."""
        return column_statistics(self.columns[fd.name][self.listed], fd)


def column_statistics(values: np.ndarray, fd: FeatureDef) -> tuple[float, float]:
    """(mean, std) of a numeric column (std 1 when constant or empty)."""
    x = np.asarray(values, np.float64)
    if not len(x):
        return 0.0, 1.0
    std = float(x.std())
    return float(x.mean()), std if std > 0 else 1.0


def _typed(fd: FeatureDef, raw, n: int, source: str, item_id: np.ndarray) -> np.ndarray:
    """One column's listed values as the table layout, validated."""
    def fail(row, problem):
        raise ValueError(f"{source}: row {row} (item_id {int(item_id[row])}), feature {fd.name!r}: {problem}")

    raw = list(raw) if not isinstance(raw, np.ndarray) else raw
    if len(raw) != n:
        raise ValueError(f"{source}: column {fd.name!r} has {len(raw)} values for {n} items")
    if fd.kind in ("categorical", "numeric"):
        for row, v in enumerate(raw):
            if v is None or isinstance(v, (list, tuple, np.ndarray)):
                fail(row, f"expected one {fd.kind} value, got {v!r}")
        arr = np.asarray(raw)
        if fd.kind == "categorical":
            if arr.dtype.kind not in "iu":
                fail(0, f"categorical values must be integer ids, got {arr.dtype}; map them to ids first")
            arr = arr.astype(np.int64)
            if fd.vocab_size:
                bad = np.flatnonzero((arr < 0) | (arr >= fd.vocab_size))
                if len(bad):
                    fail(int(bad[0]), f"id {int(arr[bad[0]])} is outside [0, {fd.vocab_size}) (vocab_size); "
                                      "remap it or raise vocab_size")
            return arr
        arr = arr.astype(np.float32)
        bad = np.flatnonzero(~np.isfinite(arr))
        if len(bad):
            fail(int(bad[0]), f"non-finite value {arr[bad[0]]}; fill missing values before writing")
        return arr
    width = fd.max_len if fd.kind == "multi_categorical" else fd.dim
    out = np.full((n, width), MULTI_PAD, np.int64) if fd.kind == "multi_categorical" else np.zeros((n, width), np.float32)
    for row, v in enumerate(raw):
        v = [] if v is None and fd.kind == "multi_categorical" else v
        if v is None or not isinstance(v, (list, tuple, np.ndarray)):
            fail(row, f"expected a list, got {v!r}")
        arr = np.asarray(v)
        if fd.kind == "multi_categorical":
            if len(arr) > fd.max_len:
                fail(row, f"{len(arr)} values but max_len is {fd.max_len}; raise max_len in the schema")
            if len(arr) and arr.dtype.kind not in "iu":
                fail(row, f"values must be integer ids, got {arr.dtype}")
            if len(arr) and fd.vocab_size and ((arr < 0) | (arr >= fd.vocab_size)).any():
                fail(row, f"id outside [0, {fd.vocab_size}) in {arr.tolist()}; remap it or raise vocab_size")
            out[row, : len(arr)] = arr
        else:
            if arr.shape != (fd.dim,):
                fail(row, f"a vector of {arr.shape[0] if arr.ndim == 1 else arr.shape} values, expected dim={fd.dim}")
            arr = arr.astype(np.float32)
            if not np.isfinite(arr).all():
                fail(row, "non-finite value in the vector; fill missing values before writing")
            out[row] = arr
    return out
