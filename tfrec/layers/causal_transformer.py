"""CausalTransformer: the decoder-only backbone of CHIME's compression model (CHIME sec. 4.3, "LLM as Backbone")."""
import math

import tensorflow as tf

from tfrec.registry import register

_ACTIVATIONS = {
    "gelu": lambda x: tf.nn.gelu(x, approximate=False),  # exact erf GELU, as BERT/MiniLM ("hidden_act": "gelu")
    "gelu_approximate": lambda x: tf.nn.gelu(x, approximate=True),
    "relu": tf.nn.relu,
    "silu": tf.nn.silu,
}


@register
class CausalTransformer(tf.keras.layers.Layer):
    """Stacked transformer blocks under a causal mask: CHIME's Interest Representation backbone.

    CHIME (sec. 4.3, "LLM as Backbone") feeds the behavior embeddings ``{e_t}`` of a user into a
    decoder-only transformer whose tokenizer and embedding layer are discarded: only the decoder
    layers are reused (randomly initialised, or from pretrained weights), each position ``t``
    attending to itself and the positions before it.

    Each block is laid out exactly like a BERT encoder layer (post-LayerNorm), so BERT/MiniLM
    weights load into it (``tfrec.compression.backbone.load_minilm_layers``)::

      a = softmax(Q K^T / sqrt(d_h) + causal_mask) V        per head, Q/K/V = Dense(x)
      x = LayerNorm(x + Dropout(Dense_o(a)))
      x = LayerNorm(x + Dropout(Dense_out(act(Dense_in(x)))))

    Dropout is also applied to the attention probabilities (as BERT does), only when training.

    Masking: query ``t`` attends to key ``s`` iff ``s <= t`` and ``mask[s]``, or ``s == t``. Every
    position always sees itself, so padded rows stay finite (no all-masked softmax); valid
    positions never see padded ones; padded positions' outputs are zeroed.

    Positions: CHIME discards the LLM's embedding layer, but its backbone (Qwen2.5) keeps rotary
    position embeddings inside attention. ``rope=True`` does the same here (RoPE, Su et al. 2021:
    each head's query and key rotated by angle ``t * base^(-2i/d_h)`` in the "rotate half" layout
    of Llama / Qwen, so a score depends on the positions only through ``t - s``); ``rope=False``
    (default) leaves order to the causal mask alone, which is what all-MiniLM-L6-v2's layers saw
    (BERT adds absolute positions at the embedding layer, which is discarded). Positions count
    from 0 at the first (oldest) behavior: sequences are right-padded.

    Args:
      layers: int, number of blocks.
      dim: int, model width (inputs' last dimension).
      heads: int, attention heads; must divide ``dim``.
      ffn_dim: int, width of the intermediate dense layer.
      dropout: float, default 0.0; hidden and attention-probability dropout rate.
      activation: str, default ``"gelu"`` (exact erf GELU); one of ``"gelu"``,
        ``"gelu_approximate"``, ``"relu"``, ``"silu"``.
      layer_norm_epsilon: float, default 1e-12 (BERT's).

    Input: dict with ``inputs`` float ``[B, T, dim]`` and ``mask`` bool/0-1 ``[B, T]``
      (``mask`` optional: all positions valid).
    Output shape: ``[B, T, dim]`` (zeros at padded positions).

    Sublayers (per block ``i``, addressable by name): ``block{i}_query``, ``block{i}_key``,
    ``block{i}_value``, ``block{i}_attention_output``, ``block{i}_attention_norm``,
    ``block{i}_intermediate``, ``block{i}_output``, ``block{i}_output_norm``.
    """

    def __init__(self, layers: int, dim: int, heads: int, ffn_dim: int, dropout: float = 0.0,
                 activation: str = "gelu", layer_norm_epsilon: float = 1e-12, rope: bool = False,
                 rope_base: float = 10000.0, **kwargs):
        super().__init__(**kwargs)
        if layers < 1 or dim < 1 or heads < 1 or ffn_dim < 1:
            raise ValueError("layers, dim, heads and ffn_dim must be positive. Received: "
                             f"layers={layers}, dim={dim}, heads={heads}, ffn_dim={ffn_dim}")
        if dim % heads:
            raise ValueError(f"heads must divide dim. Received: dim={dim}, heads={heads}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1). Received: dropout={dropout}")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}. Received: activation={activation!r}")
        self.layers = int(layers)
        self.dim = int(dim)
        self.heads = int(heads)
        self.ffn_dim = int(ffn_dim)
        self.dropout = float(dropout)
        self.activation = str(activation)
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.rope, self.rope_base = bool(rope), float(rope_base)
        if self.rope and (dim // heads) < 2:
            raise ValueError(f"rope needs heads of at least 2 dimensions. Received: dim={dim}, heads={heads}")

    def build(self, input_shape):
        d = input_shape["inputs"][-1]
        if d is not None and int(d) != self.dim:
            raise ValueError(f"inputs' last dimension must equal dim. Received: inputs shape "
                             f"{tuple(input_shape['inputs'])}, dim={self.dim}")

        def dense(units, name):
            return tf.keras.layers.Dense(units, name=name)

        def norm(name):
            return tf.keras.layers.LayerNormalization(epsilon=self.layer_norm_epsilon, name=name)

        self.blocks = []
        for i in range(self.layers):
            block = {
                "query": dense(self.dim, f"block{i}_query"),
                "key": dense(self.dim, f"block{i}_key"),
                "value": dense(self.dim, f"block{i}_value"),
                "attention_output": dense(self.dim, f"block{i}_attention_output"),
                "attention_norm": norm(f"block{i}_attention_norm"),
                "intermediate": dense(self.ffn_dim, f"block{i}_intermediate"),
                "output": dense(self.dim, f"block{i}_output"),
                "output_norm": norm(f"block{i}_output_norm"),
            }
            # Build now (each under its own name scope, as __call__ would) so every weight exists,
            # named e.g. ``causal_transformer/block0_query/kernel:0``, and can be loaded right after build.
            for key, sub in block.items():
                with tf.name_scope(sub.name):
                    sub.build([None, None, self.ffn_dim if key == "output" else self.dim])
            self.blocks.append(block)
        self.drop = tf.keras.layers.Dropout(self.dropout)
        super().build(input_shape)

    def _split_heads(self, x, b, t):
        # [B, T, dim] -> [B, H, T, d_h]
        return tf.transpose(tf.reshape(x, [b, t, self.heads, self.dim // self.heads]), [0, 2, 1, 3])

    def rotary(self, x, positions):
        """RoPE of ``x`` ``[..., T, d_h]`` at integer ``positions`` ``[T]`` (rotate-half layout; an odd
        last dimension passes through)."""
        half = int(x.shape[-1]) // 2
        inv = tf.pow(self.rope_base, -tf.range(half, dtype=tf.float32) / half)  # [half]
        angle = tf.cast(positions, tf.float32)[:, None] * inv[None]  # [T, half]
        cos, sin = tf.cast(tf.cos(angle), x.dtype), tf.cast(tf.sin(angle), x.dtype)
        x1, x2, rest = x[..., :half], x[..., half:2 * half], x[..., 2 * half:]
        return tf.concat([x1 * cos - x2 * sin, x1 * sin + x2 * cos, rest], axis=-1)

    def call(self, inputs, training=None):
        x = inputs["inputs"]
        shape = tf.shape(x)
        b, t = shape[0], shape[1]
        mask = inputs.get("mask")
        valid = tf.ones([b, t], tf.bool) if mask is None else tf.cast(mask, tf.bool)
        causal = tf.linalg.band_part(tf.ones([t, t], tf.bool), -1, 0)  # [T, T]: s <= t
        allowed = (causal[None] & valid[:, None, :]) | tf.eye(t, dtype=tf.bool)[None]  # [B, T(query), T(key)]
        allowed = allowed[:, None]  # [B, 1, T, T]
        scale = 1.0 / math.sqrt(self.dim // self.heads)
        # every row allows at least itself, so -1e9 (or -inf after a cast) never yields an all-masked softmax
        neg = tf.constant(-1e9, x.dtype)
        for blk in self.blocks:
            q = self._split_heads(blk["query"](x), b, t)
            k = self._split_heads(blk["key"](x), b, t)
            v = self._split_heads(blk["value"](x), b, t)
            if self.rope:
                q, k = self.rotary(q, tf.range(t)), self.rotary(k, tf.range(t))
            scores = tf.matmul(q, k, transpose_b=True) * tf.cast(scale, x.dtype)  # [B, H, T, T]
            probs = tf.nn.softmax(tf.where(allowed, scores, neg), axis=-1)
            probs = self.drop(probs, training=training)
            ctx = tf.reshape(tf.transpose(tf.matmul(probs, v), [0, 2, 1, 3]), [b, t, self.dim])  # [B, T, dim]
            x = blk["attention_norm"](x + self.drop(blk["attention_output"](ctx), training=training))
            hidden = _ACTIVATIONS[self.activation](blk["intermediate"](x))  # [B, T, ffn_dim]
            x = blk["output_norm"](x + self.drop(blk["output"](hidden), training=training))
        return x * tf.cast(valid, x.dtype)[..., None]

    def compute_output_shape(self, input_shape):
        return tf.TensorShape(input_shape["inputs"])

    def get_config(self):
        return {**super().get_config(), "layers": self.layers, "dim": self.dim, "heads": self.heads,
                "ffn_dim": self.ffn_dim, "dropout": self.dropout, "activation": self.activation,
                "layer_norm_epsilon": self.layer_norm_epsilon, "rope": self.rope, "rope_base": self.rope_base}
