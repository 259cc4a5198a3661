"""AUGRU: DIEN's GRU with attentional update gate (Zhou et al., AAAI 2019, eqs. 11-12), and its plain GRU."""
import tensorflow as tf

from tfrec.registry import register

AUGRU_MODES = ("gru", "augru", "agru", "aigru")


@register
class AUGRU(tf.keras.layers.Layer):
    """A masked GRU whose update gate is scaled by an attention score (DIEN, sec. 4.3).

    Equation numbers: the AAAI 2019 paper (arXiv 1809.03672). The GRU of DIEN's interest extractor
    (sec. 4.2, eqs. 2-5; reset applied after the recurrent matmul, one bias per gate, as the paper
    writes it)::

        u_t = σ(W^u i_t + U^u h_{t-1} + b^u)
        r_t = σ(W^r i_t + U^r h_{t-1} + b^r)
        h̃_t = tanh(W^h i_t + r_t ∘ (U^h h_{t-1}) + b^h)
        h_t = (1 - u_t) ∘ h_{t-1} + u_t ∘ h̃_t

    and the interest evolving layer's variants (sec. 4.3), given an attention score ``a_t`` per step:

    * ``mode="augru"`` (AUGRU, the paper's DIEN, eqs. 11-12): ``ũ_t = a_t · u_t``;
      ``h_t = (1 - ũ_t) ∘ h_{t-1} + ũ_t ∘ h̃_t``. This is the paper's form. The official code
      (mouna99/dien) instead scales the *keep* gate of TF's GRUCell convention by ``(1 - a_t)``,
      which at ``a_t = 0`` updates like a plain GRU rather than not at all (OpenVINO's and
      oneDNN's AUGRU ops copy that form): not what the paper writes, not followed here.
    * ``mode="agru"`` (AGRU, eq. 10): the attention score replaces the update gate,
      ``h_t = (1 - a_t) h_{t-1} + a_t h̃_t``.
    * ``mode="aigru"`` (AIGRU, eq. 9): the input is scaled, ``i'_t = a_t i_t``, then the plain GRU.
    * ``mode="gru"``: the plain GRU above (no attention input): the interest extractor.

    Padding: at a step whose mask is 0 the state is carried through unchanged (``h_t = h_{t-1}``),
    so any mix of left and right padding is allowed and the last output step always holds the state
    after the last valid step (zeros, the initial state, for an all-padding row). Built from stock
    TensorFlow ops only (``tf.scan`` -> a ``While`` loop), so the layer exports to TF Serving.

    Args:
      units: int, d_h, the size of the hidden state.
      mode: str, one of ``"gru"``, ``"augru"``, ``"agru"``, ``"aigru"``. Default ``"augru"``.

    Input: dict with ``sequence`` ``[B, S, D]``, ``mask`` ``[B, S]`` (1 = valid) and, unless
      ``mode="gru"``, ``attention`` ``[B, S]`` (the scores ``a_t``).
    Output shape: ``[B, S, units]``, the hidden state after every step (carried through padding);
      ``[:, -1]`` is the final state.
    """

    def __init__(self, units: int, mode: str = "augru", **kwargs):
        super().__init__(**kwargs)
        if int(units) < 1:
            raise ValueError(f"`units` must be >= 1. Received: units={units}")
        if mode not in AUGRU_MODES:
            raise ValueError(f"`mode` must be one of {list(AUGRU_MODES)}. Received: mode={mode!r}")
        self.units = int(units)
        self.mode = mode

    def build(self, input_shape):
        dim = input_shape["sequence"][-1]
        if dim is None:
            raise ValueError(f"AUGRU needs a static input width. Received: sequence shape {input_shape['sequence']}")
        # gate order in every weight: update u, reset r, candidate h̃
        self.kernel = self.add_weight(name="kernel", shape=[int(dim), 3 * self.units],
                                      initializer="glorot_uniform")
        self.recurrent_kernel = self.add_weight(name="recurrent_kernel", shape=[self.units, 3 * self.units],
                                                initializer="orthogonal")
        self.bias = self.add_weight(name="bias", shape=[3 * self.units], initializer="zeros")
        super().build(input_shape)

    def call(self, inputs):
        x = tf.convert_to_tensor(inputs["sequence"])
        mask = tf.cast(inputs["mask"], x.dtype)  # [B, S]
        if self.mode == "gru":
            attention = tf.ones_like(mask)
        elif "attention" not in inputs:
            raise ValueError(f"AUGRU(mode={self.mode!r}) needs an `attention` input [B, S]. "
                             f"Received: {sorted(inputs)}")
        else:
            attention = tf.cast(inputs["attention"], x.dtype)
        if self.mode == "aigru":
            x = x * attention[..., None]
        projected = tf.einsum("bsd,dk->bsk", x, self.kernel) + self.bias  # [B, S, 3H]
        h0 = tf.zeros([tf.shape(x)[0], self.units], x.dtype)
        elems = (tf.transpose(projected, [1, 0, 2]), tf.transpose(attention), tf.transpose(mask))  # time-major
        states = tf.scan(self._step, elems, initializer=h0)  # [S, B, H]
        return tf.transpose(states, [1, 0, 2])

    def _step(self, h, elems):
        xw, a, m = elems  # [B, 3H], [B], [B]
        hu = tf.matmul(h, self.recurrent_kernel)  # [B, 3H]
        x_u, x_r, x_h = tf.split(xw, 3, axis=-1)
        h_u, h_r, h_h = tf.split(hu, 3, axis=-1)
        u = tf.sigmoid(x_u + h_u)
        r = tf.sigmoid(x_r + h_r)
        candidate = tf.tanh(x_h + r * h_h)
        if self.mode == "augru":
            u = a[:, None] * u
        elif self.mode == "agru":
            u = a[:, None]  # broadcast over the H units
        new = (1.0 - u) * h + u * candidate
        return tf.where(m[:, None] > 0, new, h)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "mode": self.mode}
