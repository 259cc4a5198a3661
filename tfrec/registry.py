"""The one registration decorator for every tfrec layer and model."""
import tensorflow as tf

from tfrec import check_keras

check_keras()  # every layer and model imports this module: tf.keras must be tf-keras here


def _autograph_skips_tf_keras() -> None:
    """Keeps autograph out of tf-keras' own code, as TensorFlow does for ``keras``.

    TF 2.16's autograph exempts the ``keras`` package (``DoNotConvert('keras')``) but not its
    split-out twin ``tf_keras``, so every ``model.fit`` transpiled ~1,600 tf-keras internals
    (layer ``__call__``, the optimizer, the loss container) on its first step: measured 30-150 s
    of tracing for a tiny DIN on the 2-core box. tf-keras is written for graph mode without
    autograph (it is the code ``keras`` was), so exempting it changes no graph, only the time.
    """
    from tensorflow.python.autograph.core import config

    rule = config.DoNotConvert("tf_keras")
    if not any(getattr(r, "_prefix", None) == "tf_keras" for r in config.CONVERSION_RULES):
        config.CONVERSION_RULES = (rule,) + tuple(config.CONVERSION_RULES)


_autograph_skips_tf_keras()


def register(cls):
    """Registers ``cls`` as Keras-serializable under the ``tfrec`` package.

    Saved configs then resolve ``tfrec>ClassName`` without hand-written ``custom_objects``.
    """
    return tf.keras.utils.register_keras_serializable(package="tfrec")(cls)
