"""HierarchicalClustering: TWIN-V2's per-user hierarchical k-means of the behavior window, in graph."""
from __future__ import annotations

import tensorflow as tf

from tfrec.grouping.hierarchical_clustering import TIE_ATOL, TIE_RTOL, branching_thresholds
from tfrec.registry import register


def _tolerance(best):
    """``tfrec.grouping.hierarchical_clustering.tie_tolerance`` in graph."""
    return TIE_RTOL * tf.abs(best) + TIE_ATOL


@register
class HierarchicalClustering(tf.keras.layers.Layer):
    """TWIN V2's hierarchical clustering (Si et al., CIKM 2024, sec. 3.2, Algorithm 1) on fixed shapes.

    Group the behaviors by a key (the paper: play-completion ratio), then split every cluster of
    more than gamma (``cluster_size``) behaviors by k-means into ``k = clip(floor(n^e), 2,
    max_branching)`` children (Algorithm 1's adaptive k, ``e = branching_exponent``), level by level,
    ``max_depth`` levels. Deterministic: farthest-point seeds (the member farthest from the cluster
    mean, then the member farthest from the seeds so far; a seed at distance 0 is dropped, so
    duplicates are never split apart), ``iterations`` Lloyd steps (ties to the lower seed; an emptied
    centroid stays), squared Euclidean distances in float64, equal within the numpy path's
    ``tie_tolerance`` (so summation order, which differs between numpy, TensorFlow and CPUs, never
    decides a tie). Per cluster: size n, representative = the
    member closest to the cluster mean (ties: the more recent member). At most M = ``max_clusters``
    kept (the largest; ties: the more recent last member), ordered by their most recent member and
    right-aligned. The numpy reference ``tfrec.grouping.hierarchical_clustering.cluster_history``
    (the input-pipeline path) gives identical outputs (tested); its docstring states every rule.

    Stock ops only (segment sums / maxima, ``gather``, ``top_k``, ``argsort``). Memory per level and
    Lloyd step: ``[B, N, D]`` float64 per seed (looped), plus ``[B, N * max_branching]`` int32.

    Args:
      num_groups: G, group keys lie in ``[0, G)`` (others are clipped).
      cluster_size: gamma, the largest cluster left unsplit (paper: 20). Default 20.
      max_clusters: M, cluster slots of the output. Default 256.
      max_depth: levels of k-means splits after the grouping. Default 4.
      iterations: Lloyd steps per split. Default 5.
      max_branching: the largest k of one split. Default 8.
      branching_exponent: e of ``k = floor(n^e)`` (paper: 0.3). Default 0.3.

    Input: dict with ``vectors`` float ``[B, N, D]`` (content vectors), ``groups`` int ``[B, N]``,
      ``mask`` ``[B, N]`` (nonzero = real behavior).
    Output: dict with ``assignment`` int32 ``[B, N]`` (each behavior's output slot; -1 for padding
      and dropped clusters), ``representative`` int32 ``[B, M]`` (window positions, 0 in empty
      slots), ``size`` float32 ``[B, M]`` (n, 0 in empty slots), ``mask`` float32 ``[B, M]``.
    """

    def __init__(self, num_groups: int, cluster_size: int = 20, max_clusters: int = 256, max_depth: int = 4,
                 iterations: int = 5, max_branching: int = 8, branching_exponent: float = 0.3, **kwargs):
        super().__init__(**kwargs)
        for name, value in (("num_groups", num_groups), ("cluster_size", cluster_size),
                            ("max_clusters", max_clusters), ("iterations", iterations)):
            if value < 1:
                raise ValueError(f"HierarchicalClustering needs {name} >= 1. Received: {name}={value}")
        if max_depth < 0 or max_branching < 2:
            raise ValueError("HierarchicalClustering needs max_depth >= 0 and max_branching >= 2. "
                             f"Received: max_depth={max_depth}, max_branching={max_branching}")
        if not 0.0 < branching_exponent <= 1.0:
            raise ValueError(f"HierarchicalClustering needs 0 < branching_exponent <= 1. "
                             f"Received: branching_exponent={branching_exponent}")
        self.num_groups, self.cluster_size, self.max_clusters = int(num_groups), int(cluster_size), int(max_clusters)
        self.max_depth, self.iterations, self.max_branching = int(max_depth), int(iterations), int(max_branching)
        self.branching_exponent = float(branching_exponent)
        self.thresholds = branching_thresholds(self.max_branching, self.branching_exponent)

    # -- helpers (flat segments: segment b * S + s, one dummy segment B * S for the rest) ----------
    @staticmethod
    def _segments(ids, slots, use):
        """Flat segment ids ``[B, N]`` and their count (``B * slots + 1``, the last = dummy)."""
        b = tf.shape(ids)[0]
        rows = tf.range(b)[:, None]
        return tf.where(use, rows * slots + tf.maximum(ids, 0), b * slots), b * slots + 1

    @staticmethod
    def _last_extreme(values, seg, nseg, pos, smallest: bool):
        """Per segment, the position of the max (min) of ``values``, ties (within the numpy path's
        ``tie_tolerance``) to the larger position; 0 for an empty segment."""
        if smallest:
            best = tf.gather(tf.math.unsorted_segment_min(values, seg, nseg), seg)
            hit = values <= best + _tolerance(best)
        else:
            best = tf.gather(tf.math.unsorted_segment_max(values, seg, nseg), seg)
            hit = values >= best - _tolerance(best)
        return tf.maximum(tf.math.unsorted_segment_max(tf.where(hit, pos, -1), seg, nseg), 0)

    @staticmethod
    def _compact(raw, space):
        """Dense ranks (ascending) of the ids ``raw`` ``[B, N]`` in ``[0, space)``; -1 kept."""
        use = raw >= 0
        b = tf.shape(raw)[0]
        seg = tf.where(use, tf.range(b)[:, None] * space + tf.maximum(raw, 0), b * space)
        present = tf.math.unsorted_segment_max(tf.ones_like(raw), seg, b * space + 1)[:-1]
        present = tf.reshape(tf.maximum(present, 0), [b, space])
        rank = tf.cumsum(present, axis=1) - 1
        return tf.where(use, tf.gather(rank, tf.maximum(raw, 0), batch_dims=1), -1)

    def _branching(self, sizes):
        k = 2 + tf.add_n([tf.zeros_like(sizes)] + [tf.cast(sizes >= t, sizes.dtype) for t in self.thresholds])
        return tf.where(sizes > self.cluster_size, k, tf.ones_like(sizes))

    def _split(self, x, cid, pos):
        """One level: k-means split of every cluster above gamma; new compacted ids ``[B, N]``."""
        b, n = tf.shape(x)[0], tf.shape(x)[1]
        kmax = self.max_branching
        valid = cid >= 0
        seg, nseg = self._segments(cid, n, valid)
        count = tf.reshape(tf.math.unsorted_segment_sum(tf.ones_like(cid), seg, nseg)[:-1], [b, n])
        k_cluster = self._branching(count)  # [B, S]
        splits = k_cluster > 1
        split_rank = tf.cumsum(tf.cast(splits, tf.int32), axis=1) - 1
        k_point = tf.gather(k_cluster, tf.maximum(cid, 0), batch_dims=1)
        splitting = valid & (k_point > 1)
        # at most N // (gamma + 1) clusters can exceed gamma: their compact split slots
        p = tf.maximum(n // (self.cluster_size + 1), 1)
        sseg, snseg = self._segments(tf.gather(split_rank, tf.maximum(cid, 0), batch_dims=1), p, splitting)
        k_seg = tf.math.unsorted_segment_max(tf.where(splitting, k_point, 0), sseg, snseg)  # [S'] (empty: min int)
        count_seg = tf.math.unsorted_segment_sum(tf.ones_like(x[..., 0]), sseg, snseg)
        mean = tf.math.unsorted_segment_sum(x, sseg, snseg) / tf.maximum(count_seg, 1.0)[:, None]
        flat_x = tf.reshape(x, [-1, tf.shape(x)[2]])
        flat_x = tf.concat([flat_x, tf.zeros([1, tf.shape(x)[2]], x.dtype)], 0)  # a row for an empty batch's dummy slot
        seg_row = tf.minimum(tf.range(snseg) // p, tf.maximum(b - 1, 0))  # the user of each split slot

        def seed_vectors(positions):  # [S'] window positions -> [S', D]
            return tf.gather(flat_x, seg_row * n + positions)

        def sq_dist(centers):  # centers [S', D] -> each point's squared distance to its segment's center
            return tf.reduce_sum(tf.square(x - tf.gather(centers, sseg)), -1)

        seeds = [self._last_extreme(sq_dist(mean), sseg, snseg, pos, smallest=False)]
        active = [tf.ones([snseg], tf.bool)]
        nearest = sq_dist(seed_vectors(seeds[0]))
        for j in range(1, kmax):
            far = tf.math.unsorted_segment_max(nearest, sseg, snseg)
            seeds.append(self._last_extreme(nearest, sseg, snseg, pos, smallest=False))
            active.append((j < k_seg) & (far > 0))
            nearest = tf.minimum(nearest, sq_dist(seed_vectors(seeds[-1])))
        centroids = tf.stack([seed_vectors(s) for s in seeds], 1)  # [S', kmax, D]
        active = tf.stack(active, 1)  # [S', kmax]
        point_active = tf.gather(active, sseg)  # [B, N, kmax]
        choices = tf.range(kmax)
        labels = tf.zeros_like(cid)
        for _ in range(self.iterations):
            dist = tf.stack([sq_dist(centroids[:, j]) for j in range(kmax)], -1)  # [B, N, kmax]
            dist = tf.where(point_active, dist, tf.constant(float("inf"), tf.float64))
            low = tf.reduce_min(dist, -1, keepdims=True)
            labels = tf.reduce_min(tf.where(dist <= low + _tolerance(low), choices, kmax), -1)  # ties: lower seed
            lseg = sseg * kmax + labels
            sums = tf.reshape(tf.math.unsorted_segment_sum(x, lseg, snseg * kmax), tf.shape(centroids))
            counts = tf.reshape(tf.math.unsorted_segment_sum(tf.ones_like(x[..., 0]), lseg, snseg * kmax), [-1, kmax])
            centroids = tf.where((counts > 0)[..., None], sums / tf.maximum(counts, 1.0)[..., None], centroids)
        labels = tf.where(splitting, labels, 0)
        return self._compact(tf.where(valid, cid * kmax + labels, -1), n * kmax)

    def call(self, inputs):
        return self._cluster(inputs)

    # Not converted by autograph: every loop runs a static number of times (Python-level), and
    # converting the unrolled graph costs seconds of tracing per signature at export.
    @tf.autograph.experimental.do_not_convert
    def _cluster(self, inputs):
        x = tf.cast(inputs["vectors"], tf.float64)
        valid = tf.cast(inputs["mask"], tf.bool)
        b, n = tf.shape(x)[0], tf.shape(x)[1]
        pos = tf.broadcast_to(tf.range(n)[None, :], [b, n])
        groups = tf.clip_by_value(tf.cast(inputs["groups"], tf.int32), 0, self.num_groups - 1)
        cid = self._compact(tf.where(valid, groups, -1), self.num_groups)
        for _ in range(self.max_depth):
            cid = self._split(x, cid, pos)

        # per cluster (ids < N): size, most recent member, representative
        m = self.max_clusters
        used = cid >= 0
        seg, nseg = self._segments(cid, n, used)
        size = tf.math.unsorted_segment_sum(tf.ones_like(cid), seg, nseg)
        last = tf.math.unsorted_segment_max(tf.where(used, pos, -1), seg, nseg)
        mean = tf.math.unsorted_segment_sum(x, seg, nseg) / tf.maximum(tf.cast(size, tf.float64), 1.0)[:, None]
        dist = tf.reduce_sum(tf.square(x - tf.gather(mean, seg)), -1)
        rep = self._last_extreme(dist, seg, nseg, pos, smallest=True)
        width = tf.maximum(n, m)  # at least M candidate slots for top_k

        def per_user(v, fill):  # [B * N + 1] -> [B, width]
            v = tf.reshape(v[:-1], [b, n])
            return tf.pad(v, [[0, 0], [0, width - n]], constant_values=fill)

        size, last, rep = per_user(size, 0), per_user(last, -1), per_user(rep, 0)
        # keep the M largest clusters (ties: the more recent last member; keys are distinct)
        key = tf.where(size > 0, size * (n + 1) + last, -1)
        top_key, top = tf.math.top_k(key, k=m)
        kept = top_key >= 0
        # kept clusters by their last member, oldest first; empty slots (-1) go left
        order = tf.argsort(tf.where(kept, tf.gather(last, top, batch_dims=1), -1), axis=1, stable=True)
        cluster = tf.gather(top, order, batch_dims=1)  # [B, M] cluster id of each slot
        slot_valid = tf.gather(kept, order, batch_dims=1)
        # cluster id -> slot
        slot_seg, slot_nseg = self._segments(cluster, width, slot_valid)
        slots = tf.broadcast_to(tf.range(m)[None, :], [b, m])
        slot_of = tf.math.unsorted_segment_max(slots, slot_seg, slot_nseg)[:-1]
        slot_of = tf.reshape(tf.where(slot_of < 0, -1, slot_of), [b, width])
        assignment = tf.where(used, tf.gather(slot_of, tf.maximum(cid, 0), batch_dims=1), -1)
        zeros = tf.zeros([b, m], tf.int32)
        return {"assignment": assignment,
                "representative": tf.where(slot_valid, tf.gather(rep, cluster, batch_dims=1), zeros),
                "size": tf.cast(tf.where(slot_valid, tf.gather(size, cluster, batch_dims=1), zeros), tf.float32),
                "mask": tf.cast(slot_valid, tf.float32)}

    def get_config(self):
        return {**super().get_config(), "num_groups": self.num_groups, "cluster_size": self.cluster_size,
                "max_clusters": self.max_clusters, "max_depth": self.max_depth, "iterations": self.iterations,
                "max_branching": self.max_branching, "branching_exponent": self.branching_exponent}
