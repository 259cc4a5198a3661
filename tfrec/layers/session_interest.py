"""SessionInterest: DSIN's session interest extractor (Feng et al. 2019, sec. 4.2)."""
import numpy as np
import tensorflow as tf

from tfrec.layers.intra_group_attention import masked_mean
from tfrec.registry import register

ENCODINGS = ("bias", "sinusoidal", "none")


@register
class SessionInterest(tf.keras.layers.Layer):
    """Session interest extractor layer (DSIN, Feng et al. 2019, sec. 4.2, eqs. 2-7).

    Per session ``Q_k`` (``T`` behavior tokens of size ``D``), shared across the K sessions:

    * **Bias encoding** (eq. 2, ``encoding="bias"``): ``Q_k <- Q_k + BE_k`` with
      ``BE_(k,t,c) = w^K_k + w^T_t + w^C_c`` (a session bias, a position-in-session bias and a unit
      bias, all learned, zero-initialised). ``"sinusoidal"`` is the paper's DSIN-PE ablation (the
      Transformer's positional encoding over the position ``t`` within the session), ``"none"`` adds
      nothing.
    * **Self-attention** (eqs. 3-6): a Transformer encoder block within each session:
      ``h = Q + MHSA(Q)``, ``I^Q_k = h + FFN(h)``, ``FFN = Dense(D)(ReLU(Dense(ffn_dim)))``; with
      ``layer_norm`` each sum is followed by a LayerNorm (Vaswani et al.'s post-LN block).
      A token attends only to the valid tokens of its own session (never across sessions, so memory
      is ``O(B K T^2)``, not quadratic in the history).
    * **Pooling** (eq. 7): ``I_k = Avg(I^Q_k)`` over the session's valid tokens.

    Ours where the paper is silent: residual connections as in Vaswani et al. and DSIN's code; no
    LayerNorm by default (DSIN's code: ``use_layer_norm=False``; a LayerNorm would also erase the
    session and position biases, scalars over the units, from the residual path); a token may
    attend to itself (DSIN's code masks the diagonal, DeepCTR's ``blinding``). The K and T of the
    bias encoding are the input's static sizes (the weights are built for them).

    Args:
      num_heads: H, heads of the self-attention.
      key_dim: the query / key / value size per head.
      ffn_dim: hidden units of the FFN.
      encoding: ``"bias"`` (BE, DSIN), ``"sinusoidal"`` (DSIN-PE) or ``"none"``. Default ``"bias"``.
      dropout: dropout on the attention and FFN outputs (training only). Default 0.
      layer_norm: a LayerNorm after each residual sum. Default False.

    Input: dict with ``behaviors`` float ``[B, K, T, D]`` (static K, T, D) and ``mask`` 0/1 or bool
      ``[B, K, T]`` (1 = a behavior).
    Output shape: ``[B, K, D]``: ``I_k``, zeros for sessions without a valid behavior. Padding tokens
      never change the output.
    """

    def __init__(self, num_heads: int, key_dim: int, ffn_dim: int, encoding: str = "bias", dropout: float = 0.0,
                 layer_norm: bool = False, **kwargs):
        super().__init__(**kwargs)
        if num_heads < 1 or key_dim < 1 or ffn_dim < 1:
            raise ValueError("SessionInterest needs num_heads, key_dim and ffn_dim >= 1. Received: "
                             f"num_heads={num_heads}, key_dim={key_dim}, ffn_dim={ffn_dim}")
        if encoding not in ENCODINGS:
            raise ValueError(f"SessionInterest.encoding must be one of {list(ENCODINGS)}. Received: encoding={encoding!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"SessionInterest.dropout must lie in [0, 1). Received: dropout={dropout}")
        self.num_heads = int(num_heads)
        self.key_dim = int(key_dim)
        self.ffn_dim = int(ffn_dim)
        self.encoding = encoding
        self.dropout = float(dropout)
        self.layer_norm = bool(layer_norm)

    def build(self, input_shape):
        k, t, d = (int(s) for s in input_shape["behaviors"][1:])
        if self.encoding == "bias":
            zeros = tf.keras.initializers.Zeros()
            self.session_bias = self.add_weight(name="session_bias", shape=[k], initializer=zeros)  # w^K
            self.position_bias = self.add_weight(name="position_bias", shape=[t], initializer=zeros)  # w^T
            self.unit_bias = self.add_weight(name="unit_bias", shape=[d], initializer=zeros)  # w^C
        self.attention = tf.keras.layers.MultiHeadAttention(self.num_heads, self.key_dim, output_shape=d,
                                                            name="mhsa")
        self.attention_norm = self.ffn_norm = None
        if self.layer_norm:
            self.attention_norm = tf.keras.layers.LayerNormalization(name="attention_norm")
            self.ffn_norm = tf.keras.layers.LayerNormalization(name="ffn_norm")
        self.ffn_hidden = tf.keras.layers.Dense(self.ffn_dim, activation="relu", name="ffn_hidden")
        self.ffn_output = tf.keras.layers.Dense(d, name="ffn_output")
        self.drop = tf.keras.layers.Dropout(self.dropout)
        super().build(input_shape)

    def encode(self, behaviors) -> tf.Tensor:
        """The session tokens with the position encoding added, ``[B, K, T, D]`` (eq. 2 for ``"bias"``)."""
        if self.encoding == "bias":
            return (behaviors + self.session_bias[:, None, None] + self.position_bias[None, :, None]
                    + self.unit_bias[None, None, :])
        if self.encoding == "sinusoidal":
            t, d = behaviors.shape[2], behaviors.shape[3]
            return behaviors + tf.constant(sinusoidal_encoding(t, d), behaviors.dtype)[None, None]
        return behaviors

    def call(self, inputs, training=None):
        x = self.encode(inputs["behaviors"])
        k, t, d = x.shape[1], x.shape[2], x.shape[3]
        mask = tf.cast(inputs["mask"], tf.bool)
        flat = tf.reshape(x, [-1, t, d])  # [B, K, T, D] -> [B*K, T, D]
        flat_mask = tf.reshape(mask, [-1, t])
        attention_mask = flat_mask[:, None, :] & flat_mask[:, :, None]  # [B*K, T, T]: within a session only
        a = self.attention(flat, flat, attention_mask=attention_mask, training=training)
        h = flat + self.drop(a, training=training)
        if self.attention_norm is not None:
            h = self.attention_norm(h)
        h = h + self.drop(self.ffn_output(self.ffn_hidden(h)), training=training)
        if self.ffn_norm is not None:
            h = self.ffn_norm(h)
        pooled = masked_mean(h, flat_mask, axis=1)  # [B*K, D]
        return tf.reshape(pooled, [-1, k, d])

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads, "key_dim": self.key_dim,
                "ffn_dim": self.ffn_dim, "encoding": self.encoding, "dropout": self.dropout,
                "layer_norm": self.layer_norm}


def sinusoidal_encoding(length: int, dim: int) -> np.ndarray:
    """The Transformer's position encoding ``[length, dim]``: ``sin(t / 10000^(2i/dim))`` at even
    units ``2i``, ``cos`` of the same angle at odd units ``2i + 1`` (Vaswani et al. 2017, sec. 3.5)."""
    t = np.arange(length)[:, None]
    i = np.arange(dim)[None, :]
    angle = t / np.power(10000.0, (i - i % 2) / dim)
    return np.where(i % 2 == 0, np.sin(angle), np.cos(angle)).astype(np.float32)
