"""BehaviorGrouping: regroup a raw lifelong behavior sequence by K-means group, in-graph."""
import tensorflow as tf

from tfrec.registry import register


@register
class BehaviorGrouping(tf.keras.layers.Layer):
    """Reorganizes a padded behavior sequence into interest groups (DMGIN, "Interest-Driven
    Entity Clustering Module": tens of thousands of behaviors -> hundreds of group units).

    For each user, every valid behavior belongs to the group of its item. The ``max_groups``
    groups with the most recent behavior are kept (ties: lower group id first); each keeps its
    ``max_per_group`` most recent behaviors (as positions into the raw sequence) and its maximum
    timestamp. Every behavior also gets the slot of its group (or ``max_groups`` when its group
    was not kept), so group statistics can run over the *whole* history, not only the m kept.
    Stock TF ops only (segment max, top_k, argsort, scatter via segment max), deterministic.

    Args:
      num_groups: number of group ids, including the reserved unknown group 0.
      max_groups: G, groups kept per user.
      max_per_group: m, behaviors kept per group.

    Input: dict with ``group_id`` int ``[B, L]``, ``timestamp`` int64 ``[B, L]`` (oldest first)
      and ``length`` int ``[B]``.
    Output: dict with
      ``positions`` int32 ``[B, G, m]``: index into L, most recent first, -1 where empty;
      ``behavior_mask`` bool ``[B, G, m]``;
      ``group_id`` int32 ``[B, G]`` and ``group_mask`` bool ``[B, G]`` (groups most recent first);
      ``max_timestamp`` int64 ``[B, G]`` (-1 where empty);
      ``slot`` int32 ``[B, L]``: the group slot of each behavior, ``G`` if not kept or padding.
    """

    def __init__(self, num_groups: int, max_groups: int, max_per_group: int, **kwargs):
        super().__init__(**kwargs)
        for name, value in (("num_groups", num_groups), ("max_groups", max_groups),
                            ("max_per_group", max_per_group)):
            if int(value) <= 0:
                raise ValueError(f"`{name}` must be positive. Received: {name}={value}")
        self.num_groups = int(num_groups)
        self.max_groups = int(max_groups)
        self.max_per_group = int(max_per_group)

    def call(self, inputs):
        group = tf.cast(inputs["group_id"], tf.int32)
        ts = tf.cast(inputs["timestamp"], tf.int64)
        length = tf.cast(inputs["length"], tf.int32)
        batch, seq_len = tf.shape(group)[0], tf.shape(group)[1]
        ng, g, m = self.num_groups, self.max_groups, self.max_per_group
        pos = tf.range(seq_len)[None, :]
        valid = pos < length[:, None]  # [B, L]
        row = tf.range(batch)[:, None]

        # Per (user, group) maximum timestamp; invalid behaviors go to a dump segment.
        seg = tf.where(valid, row * ng + group, batch * ng)
        valid_ts = tf.where(valid, ts, tf.constant(-1, tf.int64))
        max_ts = tf.math.unsorted_segment_max(valid_ts, seg, batch * ng + 1)[:-1]
        max_ts = tf.reshape(tf.maximum(max_ts, -1), [batch, ng])  # empty groups -> -1

        # Keep the G most recent groups: [B, NG] -> [B, G'].
        kept = min(g, ng)
        top_ts, top_group = tf.math.top_k(max_ts, k=kept, sorted=True)
        if kept < g:
            top_ts = tf.pad(top_ts, [[0, 0], [0, g - kept]], constant_values=-1)
            top_group = tf.pad(top_group, [[0, 0], [0, g - kept]])
        group_mask = top_ts >= 0

        # Slot of every group (G where not kept), then of every behavior: [B, NG] -> [B, L].
        slot_values = tf.where(group_mask, tf.range(g)[None, :], g)
        slot_seg = tf.where(group_mask, row * ng + top_group, batch * ng)
        slot_of_group = tf.math.unsorted_segment_min(slot_values, slot_seg, batch * ng + 1)[:-1]
        slot_of_group = tf.reshape(tf.minimum(slot_of_group, g), [batch, ng])
        slot = tf.where(valid, tf.gather(slot_of_group, group, batch_dims=1), g)

        # Rank within the group, most recent first: sort by (slot, position descending).
        key = tf.cast(slot, tf.int64) * tf.cast(seq_len, tf.int64) + tf.cast(seq_len - 1 - pos, tf.int64)
        order = tf.argsort(key, axis=1, stable=True)  # [B, L] positions in sorted order
        sorted_slot = tf.gather(slot, order, batch_dims=1)
        counts = tf.math.reduce_sum(tf.one_hot(slot, g + 1, dtype=tf.int32), axis=1)  # [B, G+1]
        starts = tf.math.cumsum(counts, axis=1, exclusive=True)
        rank = pos - tf.gather(starts, sorted_slot, batch_dims=1)
        keep = (sorted_slot < g) & (rank < m)

        # Scatter positions into [B, G, m] with a segment max (each cell receives <= 1 value).
        cell = tf.where(keep, row * (g * m) + sorted_slot * m + rank, batch * g * m)
        positions = tf.math.unsorted_segment_max(order + 1, cell, batch * g * m + 1)[:-1]
        positions = tf.reshape(tf.maximum(positions, 0) - 1, [batch, g, m])
        return {
            "positions": positions,
            "behavior_mask": positions >= 0,
            "group_id": tf.where(group_mask, top_group, 0),
            "group_mask": group_mask,
            "max_timestamp": top_ts,
            "slot": slot,
        }

    def get_config(self):
        return {**super().get_config(), "num_groups": self.num_groups, "max_groups": self.max_groups,
                "max_per_group": self.max_per_group}
