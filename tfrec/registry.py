"""The one registration decorator for every tfrec layer and model."""
import tensorflow as tf

from tfrec import check_keras

check_keras()  # every layer and model imports this module: tf.keras must be tf-keras here


def register(cls):
    """Registers ``cls`` as Keras-serializable under the ``tfrec`` package.

    Saved configs then resolve ``tfrec>ClassName`` without hand-written ``custom_objects``.
    """
    return tf.keras.utils.register_keras_serializable(package="tfrec")(cls)
