"""Per-request tensors computed once, then joined in tf.data: lifelong histories at short-sequence cost.

A user tower often starts with stages that have no trainable parameter: DMGIN groups a user's L raw
behaviors by item group, counts per-group statistics over all of them and gathers the k x m kept
behaviors (``DMGIN.group_history``). Their output depends only on the user's history before the
request, i.e. on ``(user_id, request_timestamp)``. Computed in the train step, they cost O(L) per
example in every step of every epoch; computed here, they cost one pass over the training examples,
and every step reads the small tensors instead (``k x m`` for DMGIN, not L).

``RequestStates.compute(dataset, fn)`` runs ``fn`` (features -> dict of tensors, stock TF ops) over
every batch of an unshuffled pass of the training data, keeps one row per distinct
``(user_id, request_timestamp)`` and holds the rows in memory as numpy arrays ``[N, ...]``.
``join`` adds them to a batch of model features in-graph (a ``StaticHashTable`` keyed by
``"<user_id>:<request_timestamp>"``), so the training pipeline can read the histories cut to the
few most recent behaviors a model still needs (``CTRModel.request_stage``). A request that was not
computed fails the pipeline with an error naming the user, the request time and the fix.

Memory: ``nbytes`` (DMGIN at k = 16, m = 16 with the default schema: 5.0 KB per request, measured by
``bench/train_throughput.py``; the raw history it replaces is 32 bytes per behavior in the reader,
320 KB at L = 10,000).
"""
from __future__ import annotations

import dataclasses
import time
from typing import Callable, Dict, Mapping

import numpy as np
import tensorflow as tf

from tfrec.data import spec as spec_lib

_SEP = ":"


def _keys(user_id: tf.Tensor, request_timestamp: tf.Tensor) -> tf.Tensor:
    return tf.strings.join([tf.strings.as_string(tf.cast(user_id, tf.int64)),
                            tf.strings.as_string(tf.cast(request_timestamp, tf.int64))], separator=_SEP)


@dataclasses.dataclass(eq=False)
class RequestStates:
    """One row of precomputed tensors per distinct ``(user_id, request_timestamp)``.

    Attributes:
      user_id: ``[N]`` int64.
      request_timestamp: ``[N]`` int64.
      values: name -> ``[N, ...]`` numpy array (row n belongs to ``(user_id[n], request_timestamp[n])``).
      seconds: wall time ``compute`` took.
    """

    user_id: np.ndarray
    request_timestamp: np.ndarray
    values: Dict[str, np.ndarray]
    seconds: float = 0.0

    def __post_init__(self):
        self._table = None
        self._variables = None

    def __len__(self) -> int:
        return len(self.user_id)

    @property
    def nbytes(self) -> int:
        """Bytes held by the rows (values and keys)."""
        return int(sum(v.nbytes for v in self.values.values()) + self.user_id.nbytes + self.request_timestamp.nbytes)

    def line(self) -> str:
        return (f"request states: {len(self):,} requests computed once in {self.seconds:.1f} s, "
                f"{self.nbytes / max(len(self), 1) / 1024:.1f} KB per request ({self.nbytes / 2**20:.1f} MB)")

    @classmethod
    def compute(cls, dataset: tf.data.Dataset, fn: Callable[[Mapping[str, tf.Tensor]], Dict[str, tf.Tensor]]
                ) -> "RequestStates":
        """Runs ``fn`` over every batch of ``dataset`` (``(features, label)`` batches; one pass, in
        parallel in tf.data) and keeps the first row of each distinct ``(user_id, request_timestamp)``
        (``fn`` must depend only on them: the history before the request).

        Raises:
          ValueError: the dataset is empty, or ``fn`` returns a tensor without the batch dimension.
        """
        t0 = time.perf_counter()

        def stage(*element):
            x = tf.keras.utils.unpack_x_y_sample_weight(element)[0]
            return (x[spec_lib.USER_ID.name], x[spec_lib.REQUEST_TIMESTAMP.name]), fn(x)

        users, times, parts = [], [], {}
        for (user, ts), values in dataset.map(stage, num_parallel_calls=tf.data.AUTOTUNE).as_numpy_iterator():
            users.append(user.astype(np.int64))
            times.append(ts.astype(np.int64))
            for name, value in values.items():
                if value.ndim == 0 or value.shape[0] != user.shape[0]:
                    raise ValueError(f"RequestStates.compute: {name!r} has shape {value.shape}, not [batch, ...]")
                parts.setdefault(name, []).append(value)
        if not users:
            raise ValueError("RequestStates.compute: the dataset has no examples")
        user_id, request_ts = np.concatenate(users), np.concatenate(times)
        _, first = np.unique(np.stack([user_id, request_ts], axis=1), axis=0, return_index=True)
        first = np.sort(first)
        values = {}
        for name, chunks in parts.items():
            width = max(c.shape[1] for c in chunks) if chunks[0].ndim > 1 else None
            if width is not None and any(c.shape[1] != width for c in chunks):
                raise ValueError(f"RequestStates.compute: {name!r} changes its second dimension across batches "
                                 f"({sorted({c.shape[1] for c in chunks})}); give it a fixed size")
            values[name] = np.concatenate(chunks)[first]
        return cls(user_id[first], request_ts[first], values, seconds=time.perf_counter() - t0)

    def _tensors(self):
        """The key table and the rows as non-trainable variables, built once and eagerly: a tf.data
        function captures a variable by handle, whereas a captured constant of this size is copied into
        the dataset's graph (and again whenever Keras rewrites it), which cost minutes and gigabytes."""
        if self._table is None:
            with tf.init_scope():
                self._table = tf.lookup.StaticHashTable(
                    tf.lookup.KeyValueTensorInitializer(_keys(tf.constant(self.user_id),
                                                              tf.constant(self.request_timestamp)),
                                                        tf.range(len(self), dtype=tf.int64)), default_value=-1)
                self._variables = {name: tf.Variable(v, trainable=False, name=f"request_state_{name}")
                                   for name, v in self.values.items()}
        return self._table, self._variables

    def join(self, features: Mapping[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        """``features`` plus every precomputed tensor of each example's ``(user_id, request_timestamp)``.

        Raises (when the pipeline runs):
          tf.errors.InvalidArgumentError: an example's request was not computed (the message names it).
        """
        table, values = self._tensors()
        user, ts = features[spec_lib.USER_ID.name], features[spec_lib.REQUEST_TIMESTAMP.name]
        row = table.lookup(_keys(user, ts))
        user, ts = tf.cast(user, tf.int64), tf.cast(ts, tf.int64)
        # the first missing example, or the sentinel B (-1, -1) when none is missing
        first = tf.concat([tf.where(row < 0)[:, 0], tf.shape(row, out_type=tf.int64)], 0)[0]
        check = tf.debugging.Assert(
            tf.reduce_all(row >= 0),
            ["no precomputed request state for user_id", tf.gather(tf.concat([user, [-1]], 0), first),
             "request_timestamp", tf.gather(tf.concat([ts, [-1]], 0), first),
             ": the states were computed from other data; recompute them (RequestStates.compute) from the "
             "examples this pipeline reads"], summarize=3)
        with tf.control_dependencies([check]):
            row = tf.identity(row)
        out = dict(features)
        out.update({name: tf.gather(value, row) for name, value in values.items()})
        return out

    def join_dataset(self, dataset: tf.data.Dataset) -> tf.data.Dataset:
        """Maps ``join`` over a ``(features, label[, weight])`` dataset."""

        self._tensors()

        def stage(*element):
            x, y, w = tf.keras.utils.unpack_x_y_sample_weight(element)
            return tf.keras.utils.pack_x_y_sample_weight(self.join(x), y, w)

        return dataset.map(stage, num_parallel_calls=tf.data.AUTOTUNE)


__all__ = ["RequestStates"]
