"""ItemGroupLookup: the K-means item -> group table, stored inside the model (and SavedModel)."""
import numpy as np
import tensorflow as tf

from tfrec.registry import register


def lookup_groups(table, item_ids):
    """``table[item_ids]`` with group 0 for ids outside ``[0, len(table))``: the lookup of
    ``ItemGroupLookup``, on its weight or on a constant copy of it (an input pipeline's)."""
    ids = tf.cast(item_ids, tf.int64)
    known = (ids >= 0) & (ids < tf.shape(table, out_type=tf.int64)[0])
    groups = tf.gather(table, tf.where(known, ids, tf.zeros_like(ids)))
    return tf.where(known, groups, tf.zeros_like(groups))


@register
class ItemGroupLookup(tf.keras.layers.Layer):
    """Maps item ids to their K-means group (DMGIN, Interest-Driven Entity Clustering Module).

    Groups are ``1..num_groups-1``; group 0 is reserved for unknown items (ids outside
    ``[0, n_items)`` or items the clustering never saw). The table is a non-trainable int32
    weight, so it lives in checkpoints and in the exported SavedModel's variables; ``table``
    only sets its initial value (the config holds sizes, never the table itself).

    Args:
      n_items: number of item ids.
      num_groups: groups including the reserved group 0.
      table: optional ``[n_items]`` int array of group ids in ``[0, num_groups)``.

    Input shape: int ``[...]`` item ids.
    Output shape: int32 ``[...]`` group ids.
    """

    def __init__(self, n_items: int, num_groups: int, table=None, **kwargs):
        super().__init__(**kwargs)
        self.n_items = int(n_items)
        self.num_groups = int(num_groups)
        if table is not None:
            table = np.asarray(table, dtype=np.int32)
            if table.shape != (self.n_items,):
                raise ValueError(f"item->group table must have shape ({self.n_items},). Received: {table.shape}")
            if table.min() < 0 or table.max() >= self.num_groups:
                raise ValueError(
                    f"item->group table values must lie in [0, {self.num_groups}). "
                    f"Received: min={table.min()}, max={table.max()}")
        self._initial_table = table

    def build(self, input_shape):
        init = (tf.keras.initializers.Constant(self._initial_table) if self._initial_table is not None
                else "zeros")
        self.table = self.add_weight(name="item_to_group", shape=[self.n_items], dtype=tf.int32,
                                     initializer=init, trainable=False)
        super().build(input_shape)

    def call(self, item_ids):
        return lookup_groups(self.table, item_ids)

    def get_config(self):
        return {**super().get_config(), "n_items": self.n_items, "num_groups": self.num_groups}
