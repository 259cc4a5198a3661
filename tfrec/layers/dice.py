"""Dice: DIN's data-adaptive activation (Zhou et al. 2018, eq. 13-14)."""
import tensorflow as tf

from tfrec.registry import register


@register
class Dice(tf.keras.layers.Layer):
    """Data-adaptive PReLU of DIN (Zhou et al. 2018, "Deep Interest Network", eq. 13-14).

    ``f(s) = p(s) * s + (1 - p(s)) * alpha * s`` with
    ``p(s) = sigmoid((s - E[s]) / sqrt(Var[s] + epsilon))``, per channel (last axis). ``alpha``
    is trainable (one per channel, initialized to 0). In training, ``E[s]`` and ``Var[s]`` are
    the mini-batch mean and (biased) variance over every axis but the last, and update moving
    averages ``m <- momentum * m + (1 - momentum) * batch`` (non-trainable weights, initialized
    to mean 0 and variance 1); in inference the moving averages are used, so a served model is
    deterministic. Gradients flow through the batch statistics, as through batch normalization.

    The statistics are taken over all positions of the input, padded ones included (the layer
    sees no mask): with padded sequences, zero the padding (or keep its share small) if it
    should not shift the batch statistics. Inference is per position and ignores padding.

    Args:
      epsilon: ``epsilon`` of eq. 14, added to the variance. Default 1e-8 (the paper's).
      momentum: momentum of the moving mean and variance. Default 0.99.

    Input shape: ``[B, ..., D]``, rank >= 2, ``D`` known.
    Output shape: same as input.
    """

    def __init__(self, epsilon: float = 1e-8, momentum: float = 0.99, **kwargs):
        super().__init__(**kwargs)
        if not epsilon > 0.0:
            raise ValueError(f"`epsilon` must be positive. Received: epsilon={epsilon}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"`momentum` must be in [0, 1). Received: momentum={momentum}")
        self.epsilon = float(epsilon)
        self.momentum = float(momentum)

    def build(self, input_shape):
        input_shape = tf.TensorShape(input_shape)
        if input_shape.rank is None or input_shape.rank < 2 or input_shape[-1] is None:
            raise ValueError(f"Dice needs inputs of rank >= 2 with a known last dimension. "
                             f"Received: input_shape={input_shape}")
        dim = int(input_shape[-1])
        self.alpha = self.add_weight(name="alpha", shape=[dim], initializer="zeros")
        self.moving_mean = self.add_weight(name="moving_mean", shape=[dim], initializer="zeros", trainable=False)
        self.moving_variance = self.add_weight(name="moving_variance", shape=[dim], initializer="ones",
                                               trainable=False)
        self.input_spec = tf.keras.layers.InputSpec(min_ndim=2, axes={-1: dim})
        super().build(input_shape)

    def call(self, inputs, training=None):
        if tf.is_tensor(training):
            return tf.cond(tf.cast(training, tf.bool), lambda: self._dice(inputs, True),
                           lambda: self._dice(inputs, False))
        return self._dice(inputs, bool(training))

    def _dice(self, inputs, training: bool):
        # Statistics in the variables' dtype: epsilon = 1e-8 is below float16 resolution.
        s = tf.cast(inputs, self.moving_mean.dtype)
        if training:
            mean, variance = tf.nn.moments(s, axes=list(range(inputs.shape.rank - 1)))  # [..., D] -> [D]
            decay = 1.0 - self.momentum
            self.moving_mean.assign_sub((self.moving_mean - tf.stop_gradient(mean)) * decay)
            self.moving_variance.assign_sub((self.moving_variance - tf.stop_gradient(variance)) * decay)
        else:
            mean, variance = self.moving_mean, self.moving_variance
        p = tf.sigmoid((s - mean) * tf.math.rsqrt(variance + self.epsilon))
        return tf.cast(p * s + (1.0 - p) * self.alpha * s, inputs.dtype)

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon, "momentum": self.momentum}
