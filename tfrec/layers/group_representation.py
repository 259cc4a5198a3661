"""GroupRepresentation: g_i = W [E_group(i); pooled item emb; s_i; e_i] (DMGIN eq. 5)."""
import tensorflow as tf

from tfrec.registry import register


@register
class GroupRepresentation(tf.keras.layers.Layer):
    """Fuses the parts of a group into one vector (DMGIN eq. 5, DESIGN.md reconstruction).

    Args:
      dim: d, the group vector size.

    Input: list of ``[B, G, D_i]`` tensors: group id embedding, pooled item embedding,
      statistics embedding s_i, evolution e_i.
    Output shape: ``[B, G, dim]``.
    """

    def __init__(self, dim: int, **kwargs):
        super().__init__(**kwargs)
        self.dim = int(dim)

    def build(self, input_shape):
        self.project = tf.keras.layers.Dense(self.dim, name="project")
        super().build(input_shape)

    def call(self, inputs):
        return self.project(tf.concat(list(inputs), axis=-1))

    def get_config(self):
        return {**super().get_config(), "dim": self.dim}
