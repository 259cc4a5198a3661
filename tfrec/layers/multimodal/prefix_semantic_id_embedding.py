"""PrefixSemanticIdEmbedding: prefix-encoded Semantic ID embeddings (SIREN eqs. 2-3)."""
import tensorflow as tf

from tfrec.layers.id_embedding import IdEmbedding
from tfrec.registry import register


@register
class PrefixSemanticIdEmbedding(tf.keras.layers.Layer):
    """``e^sem = Concat(E_prefix[c^1], E_prefix[(c^1, c^2)], ..., E_prefix[(c^1..c^K)])`` (SIREN eq. 3).

    The prefixes ``P_i`` of eq. 2 arrive as exact prefix row ids (``tfrec.data.item_content.prefix_table``:
    one row per distinct prefix observed among the items, all depths in one table), so the layer is
    one shared lookup table and a concatenation. Ids outside ``[0, num_prefixes)`` (an item without a
    code: -1) take the table's reserved unknown row.

    Args:
      num_prefixes: rows of the shared prefix table (distinct prefixes of depth 1..K).
      depth: K, the prefixes per item.
      dim: the size of each prefix embedding.

    Input shape: int ``[..., K]`` prefix ids.
    Output shape: ``[..., K * dim]``.
    """

    def __init__(self, num_prefixes: int, depth: int, dim: int, **kwargs):
        super().__init__(**kwargs)
        if num_prefixes < 1 or depth < 1 or dim < 1:
            raise ValueError(f"num_prefixes, depth and dim must be positive. Received: num_prefixes={num_prefixes}, "
                             f"depth={depth}, dim={dim}")
        self.num_prefixes = int(num_prefixes)
        self.depth = int(depth)
        self.dim = int(dim)
        self.table = IdEmbedding(self.num_prefixes, self.dim, name="prefix")

    @property
    def output_dim(self) -> int:
        return self.depth * self.dim

    def call(self, prefix_ids):
        emb = self.table(prefix_ids)  # [..., K] -> [..., K, dim]
        return tf.reshape(emb, tf.concat([tf.shape(prefix_ids)[:-1], [self.depth * self.dim]], 0))

    def get_config(self):
        return {**super().get_config(), "num_prefixes": self.num_prefixes, "depth": self.depth, "dim": self.dim}
