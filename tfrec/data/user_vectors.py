"""Precomputed per-user vectors (CHIME's compressed interest histogram, LEARN's user embedding) for any ranker.

CHIME (sec. 4.1, "Utilization Stage") compresses each user's long-term behaviors offline, and
infrequently (daily, weekly), into a low-dimensional representation that then serves as a numerical
feature of the ranking model. A ``UserVectors`` file holds those representations, one per user and
*time slice*, so that an example never sees behaviors at or after its request time through its
vector:

* ``user_id`` ``[U]`` int64, unique;
* ``boundaries`` ``[S]`` int64, strictly increasing epoch seconds: the times the compressor ran;
* ``vectors`` ``[U, S, D]`` float32, finite: ``vectors[u, s]`` summarises user ``u``'s behaviors
  strictly before ``boundaries[s]``.

**Lookup rule.** An example of user ``u`` with request time ``r`` gets ``vectors[u, s]`` for the
last slice ``s`` with ``boundaries[s] <= r`` (a request exactly at a boundary uses that slice: it
only holds behaviors strictly before ``r``). It gets the all-zeros vector when no slice qualifies
(``r < boundaries[0]``) or when ``u`` has no row; zeros mean "no vector" everywhere (the serving
requests' default too). The join runs inside tf.data with stock TF ops (``join_user_vectors``): a
``StaticHashTable`` maps ``user_id`` to its row (as ``tfrec.data.dataset.HistoryTensors`` does for
histories) and ``tf.searchsorted`` finds the slice.

**File.** ``save(path)`` writes one ``.npz`` (atomically: temp file + rename) with the three
arrays and ``info``, a JSON string ``{"format": 1, "name": ..., "meta": ...}`` (``name`` e.g.
``"chime"``; ``meta`` anything JSON-able, e.g. the compressor's run and its ``t1``). ``load(path)``
checks shapes, dtypes, finiteness, the boundaries' order and the users' uniqueness, and raises a
``ValueError`` naming the file, the field and the fix.

The ranker reads the vector as the model feature ``user_vector`` ``[B, D]`` float32 (part of the
``user_tower`` inputs when ``FeatureSpec.user_vector_dim`` = D > 0; see ``tfrec.models.base.CTRModel``).
"""
from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import tensorflow as tf

from tfrec.data import spec as spec_lib

FORMAT_VERSION = 1
_ARRAYS = ("user_id", "boundaries", "vectors")
_DTYPES = {"user_id": np.int64, "boundaries": np.int64, "vectors": np.float32}


@dataclasses.dataclass(frozen=True)
class UserVectorTensors:
    """In-graph form of ``UserVectors`` (built once by ``UserVectors.tensors()``).

    Attributes:
      row_of_user: ``StaticHashTable`` user_id -> row (``U`` for users without a row).
      boundaries: ``[S]`` int64.
      vectors: ``[U + 1, S + 1, D]`` float32: slice 0 and row ``U`` are zeros, slice ``k >= 1`` is
        the file's slice ``k - 1``, so ``k`` = the number of boundaries ``<= r``.
    """

    row_of_user: tf.lookup.StaticHashTable
    boundaries: tf.Tensor
    vectors: tf.Tensor

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[-1])


@dataclasses.dataclass(eq=False)
class UserVectors:
    """Per-user, per-time-slice vectors; see the module docstring for the format and the lookup rule.

    Attributes:
      user_id: ``[U]`` int64, unique.
      boundaries: ``[S]`` int64 epoch seconds, strictly increasing (S >= 1).
      vectors: ``[U, S, D]`` float32, finite (D >= 1).
      name: str, default ``"user_vector"``. What produced them (e.g. ``"chime"``, ``"learn"``).
      meta: JSON-able dict, default empty. Free-form facts about the producer.

    Integer ids / boundaries and floating vectors are converted to int64 / float32; anything else
    (and every other violation) raises ``ValueError`` naming the field.
    """

    user_id: np.ndarray
    boundaries: np.ndarray
    vectors: np.ndarray
    name: str = "user_vector"
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        self.user_id = _as("user_id", self.user_id, "iu", np.int64)
        self.boundaries = _as("boundaries", self.boundaries, "iu", np.int64)
        self.vectors = _as("vectors", self.vectors, "f", np.float32)
        _validate(self, "UserVectors")
        self._tensors = None
        self._rows = None

    # -- sizes -----------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.user_id)

    @property
    def n_slices(self) -> int:
        return int(self.boundaries.shape[0])

    @property
    def dim(self) -> int:
        """D, the vector width (``FeatureSpec.user_vector_dim`` of a model reading them)."""
        return int(self.vectors.shape[2])

    # -- lookup ----------------------------------------------------------------------------------
    def lookup(self, user_id, request_timestamp) -> np.ndarray:
        """Numpy reference of the in-graph join: ``[N, D]`` vectors of ``N`` (user, request time) pairs."""
        user_id = np.asarray(user_id, np.int64).reshape(-1)
        request_timestamp = np.asarray(request_timestamp, np.int64).reshape(-1)
        out = np.zeros((len(user_id), self.dim), np.float32)
        if getattr(self, "_rows", None) is None:  # built once: serving looks users up one at a time
            self._rows = {int(u): i for i, u in enumerate(self.user_id)}
        rows = self._rows
        for n, (u, r) in enumerate(zip(user_id, request_timestamp)):
            s = int(np.searchsorted(self.boundaries, r, side="right")) - 1  # last boundary <= r
            if s >= 0 and int(u) in rows:
                out[n] = self.vectors[rows[int(u)], s]
        return out

    def tensors(self) -> UserVectorTensors:
        """TF constants + the user_id -> row hash table for ``join_user_vectors`` (built once)."""
        if self._tensors is None:
            n_users = len(self.user_id)
            keys, rows = self.user_id, np.arange(n_users, dtype=np.int64)
            if not n_users:  # tables cannot be empty; user ids are >= 0, so -1 never matches
                keys, rows = np.array([-1], np.int64), np.array([0], np.int64)
            table = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(tf.constant(keys, tf.int64), tf.constant(rows, tf.int64)),
                default_value=n_users)
            # [U, S, D] -> [U + 1, S + 1, D]: a zero slice in front, a zero row behind
            padded = np.zeros((n_users + 1, self.n_slices + 1, self.dim), np.float32)
            padded[:n_users, 1:] = self.vectors
            self._tensors = UserVectorTensors(table, tf.constant(self.boundaries), tf.constant(padded))
        return self._tensors

    # -- file ------------------------------------------------------------------------------------
    def save(self, path: os.PathLike) -> None:
        """Writes ``path`` (one ``.npz``: the arrays + ``info`` JSON) atomically."""
        path = os.fspath(path)
        info = json.dumps({"format": FORMAT_VERSION, "name": self.name, "meta": self.meta})
        tmp = f"{path}.tmp"
        with open(tmp, "wb") as f:  # a file object: numpy does not append ".npz" to the name
            np.savez(f, user_id=self.user_id, boundaries=self.boundaries, vectors=self.vectors, info=np.array(info))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: os.PathLike) -> UserVectors:
        """Reads and validates a file written by ``save`` (or by any writer of the same layout).

        Raises:
          FileNotFoundError: ``path`` does not exist.
          ValueError: a missing or malformed field; the message names the file, the field and the fix.
        """
        path = os.fspath(path)
        if not os.path.exists(path):
            raise FileNotFoundError(f"user vectors {path} not found: write it with UserVectors(...).save(path) "
                                    "(the compression stage does)")
        try:
            z = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as err:
            raise ValueError(f"{path}: not a UserVectors .npz file ({err}); write it with UserVectors.save") from err
        with z:
            missing = [k for k in _ARRAYS + ("info",) if k not in z.files]
            if missing:
                raise ValueError(f"{path}: missing field(s) {missing}; a UserVectors file holds user_id [U], "
                                 f"boundaries [S], vectors [U, S, D] and info (JSON): write it with UserVectors.save")
            arrays = {k: z[k] for k in _ARRAYS}
            info_text = str(z["info"])
        for key, dtype in _DTYPES.items():
            if arrays[key].dtype != dtype:
                raise ValueError(f"{path}: field {key!r} is {arrays[key].dtype}, expected {np.dtype(dtype).name}; "
                                 f"cast it with .astype(np.{np.dtype(dtype).name}) before saving")
        try:
            info = json.loads(info_text)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: field 'info' is not JSON ({err}); write it with UserVectors.save") from err
        if not isinstance(info, dict) or info.get("format") != FORMAT_VERSION:
            raise ValueError(f"{path}: field 'info' must be a JSON object with format={FORMAT_VERSION}. "
                             f"Received: {info_text[:200]!r}")
        out = cls.__new__(cls)
        out.user_id, out.boundaries, out.vectors = arrays["user_id"], arrays["boundaries"], arrays["vectors"]
        out.name, out.meta = info.get("name", "user_vector"), info.get("meta", {})
        _validate(out, path)
        out._tensors = None
        return out


def _as(field: str, value, kinds: str, dtype) -> np.ndarray:
    """``value`` as an array of ``dtype`` when its kind is one of ``kinds``; ValueError otherwise."""
    array = np.asarray(value)
    if array.size == 0 and array.dtype.kind not in kinds:  # e.g. [] -> float64: an empty array of any kind
        return array.astype(dtype)
    if array.dtype.kind not in kinds:
        expected = "integer" if "i" in kinds else "floating-point"
        raise ValueError(f"UserVectors.{field} must hold {expected} values. Received: dtype={array.dtype}")
    return array.astype(dtype, copy=False)


def _validate(uv: UserVectors, where: str) -> None:
    """Shapes, finiteness, order and uniqueness; ValueError naming ``where``, the field and the fix."""
    def fail(field: str, problem: str, fix: str):
        raise ValueError(f"{where}: field {field!r} {problem}; {fix}")

    if uv.user_id.ndim != 1:
        fail("user_id", f"must be 1-D [U]. Received: shape={uv.user_id.shape}", "give one id per row")
    if uv.boundaries.ndim != 1 or uv.boundaries.shape[0] < 1:
        fail("boundaries", f"must be 1-D [S] with S >= 1. Received: shape={uv.boundaries.shape}",
             "give the epoch seconds of each time slice")
    if uv.vectors.ndim != 3 or uv.vectors.shape[2] < 1:
        fail("vectors", f"must be 3-D [U, S, D] with D >= 1. Received: shape={uv.vectors.shape}",
             "give one [S, D] block per user")
    if uv.vectors.shape[:2] != (uv.user_id.shape[0], uv.boundaries.shape[0]):
        fail("vectors", f"has shape {uv.vectors.shape}, expected [U={uv.user_id.shape[0]}, "
                        f"S={uv.boundaries.shape[0]}, D]", "one row per user_id and one slice per boundary")
    steps = np.diff(uv.boundaries)
    if np.any(steps <= 0):
        i = int(np.flatnonzero(steps <= 0)[0])
        fail("boundaries", f"must be strictly increasing; boundaries[{i + 1}]={int(uv.boundaries[i + 1])} follows "
                           f"{int(uv.boundaries[i])}",
             "sort the slices by time and drop duplicates (with their vectors)")
    order = np.sort(uv.user_id)
    dup = np.flatnonzero(order[1:] == order[:-1])
    if len(dup):
        fail("user_id", f"must be unique; user_id {int(order[dup[0]])} has more than one row",
             "keep one row per user")
    if len(uv.user_id) and uv.user_id.min() < 0:
        fail("user_id", f"must be >= 0 like every user id. Received: min={int(uv.user_id.min())}", "remap the ids")
    bad = ~np.isfinite(uv.vectors)
    if bad.any():
        u, s, _ = (int(i) for i in np.argwhere(bad)[0])
        fail("vectors", f"holds {int(bad.sum())} NaN/inf value(s), the first at user_id {int(uv.user_id[u])}, "
                        f"slice {s}", "fix the compression stage or replace them with 0 (= no vector)")
    if not isinstance(uv.name, str) or not uv.name:
        fail("name", f"must be a non-empty str. Received: {uv.name!r}", 'name the producer, e.g. "chime"')
    if not isinstance(uv.meta, Mapping):
        fail("meta", f"must be a dict. Received: {type(uv.meta).__name__}", "pass a JSON-able dict")
    try:
        json.dumps(uv.meta)
    except (TypeError, ValueError) as err:
        fail("meta", f"is not JSON-able ({err})", "keep to str / numbers / lists / dicts (cast numpy values)")


def join_user_vectors(features: Mapping[str, tf.Tensor], tensors: UserVectorTensors) -> dict[str, tf.Tensor]:
    """Adds ``user_vector`` ``[B, D]`` float32 to a batch of model features (stock TF ops only).

    Each example gets its user's vector of the last slice whose boundary is ``<= request_timestamp``,
    zeros when there is none or the user has no row (the module docstring's lookup rule).

    Args:
      features: a features dict with ``user_id`` and ``request_timestamp`` ``[B]`` int64.
      tensors: ``UserVectors.tensors()``.

    Returns:
      A new dict: ``features`` plus ``user_vector``.
    """
    user_id = tf.cast(features[spec_lib.USER_ID.name], tf.int64)
    request_timestamp = tf.cast(features[spec_lib.REQUEST_TIMESTAMP.name], tf.int64)
    row = tensors.row_of_user.lookup(user_id)  # [B]; U = no row (zeros)
    # k = the number of boundaries <= r: slice k - 1 of the file, 0 = before the first boundary (zeros)
    k = tf.searchsorted(tensors.boundaries[None, :], request_timestamp[None, :], side="right", out_type=tf.int64)[0]
    vector = tf.gather_nd(tensors.vectors, tf.stack([row, k], axis=-1))  # [B, D]
    return {**features, spec_lib.USER_VECTOR: vector}


__all__ = ["UserVectorTensors", "UserVectors", "join_user_vectors"]
