"""SessionInteracting: DSIN's Bi-LSTM over the session interests (Feng et al. 2019, sec. 4.3)."""
import tensorflow as tf

from tfrec.registry import register


@register
class SessionInteracting(tf.keras.layers.Layer):
    """Session interest interacting layer (DSIN, Feng et al. 2019, sec. 4.3, eqs. 8-9).

    A bidirectional LSTM over the session interests ``I_1..I_K``:
    ``H_k = h_fw_k ⊕ h_bw_k`` (forward and backward hidden states concatenated, as the paper; DSIN's
    code averages them). Invalid sessions are masked: the LSTM skips them (its state passes through
    unchanged) and their outputs are zero, so padding never reaches a valid ``H_k``. The sessions
    are read in the order given (``SessionSplit``: most recent first, padding at the end); with a
    bidirectional LSTM the direction of that order only names which half is "forward".

    A plain ``RNN(LSTMCell)`` loop (stock ``While`` ops; no cuDNN kernel, whose selection graph and
    zero-length sequences we avoid): K is small (tens of sessions).

    Args:
      units: h, the hidden size of each direction (the output has 2h).

    Input: dict with ``sessions`` float ``[B, K, D]`` and ``mask`` 0/1 or bool ``[B, K]``.
    Output shape: ``[B, K, 2 * units]`` (zeros at invalid sessions).
    """

    def __init__(self, units: int, **kwargs):
        super().__init__(**kwargs)
        if units < 1:
            raise ValueError(f"SessionInteracting needs units >= 1. Received: units={units}")
        self.units = int(units)

    def build(self, input_shape):
        self.bilstm = tf.keras.layers.Bidirectional(
            tf.keras.layers.RNN(tf.keras.layers.LSTMCell(self.units), return_sequences=True),
            merge_mode="concat", name="bilstm")
        super().build(input_shape)

    def call(self, inputs, training=None):
        mask = tf.cast(inputs["mask"], tf.bool)
        out = self.bilstm(inputs["sessions"], mask=mask, training=training)  # [B, K, 2h]
        return out * tf.cast(mask, out.dtype)[..., None]

    def get_config(self):
        return {**super().get_config(), "units": self.units}
