"""ItemFeatureLookup: the item table (declared item side features) stored inside the model."""
from __future__ import annotations

from typing import Dict, Mapping, Optional, Sequence

import numpy as np
import tensorflow as tf

from tfrec.data import schema as schema_lib
from tfrec.data.item_table import empty_column, unknown_value
from tfrec.registry import register


@register
class ItemFeatureLookup(tf.keras.layers.Layer):
    """Maps item ids to their declared side features (``tfrec.data.item_table`` layout).

    One non-trainable weight per item feature with ``n_items + 1`` rows: row ``i`` holds item
    ``i``'s value, the last row the unknown value (categorical -1, an empty list, 0, a zero
    vector), which every id outside ``[0, n_items)`` takes. The table lives in checkpoints and in
    the exported SavedModel's variables, like the item -> group table; ``tables`` only sets the
    initial values (the config holds sizes, never the table).

    Args:
      n_items: number of item ids.
      features: the item ``FeatureDef`` s (or their ``to_dict()``).
      tables: optional feature name -> ``[n_items, ...]`` array (``ItemTable.columns``).

    Input shape: int ``[...]`` item ids.
    Output: dict feature name -> ``[...]`` (categorical int64, numeric float32),
      ``[..., max_len]`` int64 (multi_categorical) or ``[..., dim]`` float32 (dense).
    """

    def __init__(self, n_items: int, features: Sequence, tables: Optional[Mapping[str, np.ndarray]] = None,
                 **kwargs):
        super().__init__(**kwargs)
        self.n_items = int(n_items)
        self.features = tuple(schema_lib.feature_def(f) for f in features)
        self._initial = {}
        for fd in self.features:
            column = empty_column(fd, self.n_items)
            if tables is not None:
                if fd.name not in tables:
                    raise ValueError(f"item table has no column {fd.name!r}. Received columns: {sorted(tables)}")
                given = np.asarray(tables[fd.name])
                if given.shape != column.shape:
                    raise ValueError(f"item table column {fd.name!r} must have shape {column.shape}. "
                                     f"Received: {given.shape}")
                column = given.astype(column.dtype)
            self._initial[fd.name] = np.concatenate([column, np.asarray(unknown_value(fd), column.dtype)[None]])

    def build(self, input_shape):
        self.tables: Dict[str, tf.Variable] = {}
        for fd in self.features:
            value = self._initial[fd.name]
            self.tables[fd.name] = self.add_weight(
                name=f"item_{fd.name}", shape=value.shape, dtype=tf.as_dtype(value.dtype),
                initializer=tf.keras.initializers.Constant(value), trainable=False)
        super().build(input_shape)

    def _rows(self, item_ids):
        ids = tf.cast(item_ids, tf.int64)
        return tf.where((ids >= 0) & (ids < self.n_items), ids, tf.cast(self.n_items, tf.int64))

    def call(self, item_ids):
        rows = self._rows(item_ids)
        return {fd.name: tf.nn.embedding_lookup(self.tables[fd.name], rows) for fd in self.features}

    def column(self, item_ids, name: str):
        """One feature's values for ``item_ids`` (``call`` gathers every column: wasted work when a
        caller needs one, e.g. wide content vectors next to a code)."""
        if not self.built:
            self(item_ids)  # creates the tables under this layer's name
        return tf.nn.embedding_lookup(self.tables[name], self._rows(item_ids))

    def get_config(self):
        return {**super().get_config(), "n_items": self.n_items, "features": [f.to_dict() for f in self.features]}
