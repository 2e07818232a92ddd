"""Reproduce: tfmot's quantize_model rejects Keras 3 models, accepts tf_keras (Keras 2) ones.

    python3 scripts/repro_tfmot_keras3.py

Prints the versions, the exception text for a Keras 3 Sequential and a Keras 3 functional
model, and the result for the same model built with tf_keras. Exit status 0 when the
behaviour is as documented in BUILD_NOTES.md (Keras 3 refused, tf_keras accepted), 1 if not.
See tensorflow/model-optimization issues #1144 and #1270.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf
import keras
import tf_keras
import tensorflow_model_optimization as tfmot


def try_quantize(description, model):
    """Call quantize_model; return the exception text, or None if it quantized."""
    try:
        quantized = tfmot.quantization.keras.quantize_model(model)
    except Exception as e:  # we want to see exactly what it raises
        print(f"{description}: {type(e).__name__}: {e}")
        return str(e)
    layers = [type(layer).__name__ for layer in quantized.layers]
    output = quantized(np.linspace(-1.0, 1.0, 8, dtype="float32").reshape(2, 4))
    print(f"{description}: quantized, layers {layers}, output shape {tuple(output.shape)}")
    return None


def main():
    print(f"tensorflow {tf.__version__}, keras {keras.__version__}, "
          f"tf_keras {tf_keras.__version__}, tfmot {tfmot.__version__}")
    keras.utils.set_random_seed(0)
    sequential = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    inputs = keras.Input((4,))
    functional = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    errors = [try_quantize("Keras 3 Sequential", sequential),
              try_quantize("Keras 3 functional", functional)]
    tf_keras.utils.set_random_seed(0)
    legacy = tf_keras.Sequential([tf_keras.Input((4,)), tf_keras.layers.Dense(2)])
    legacy_error = try_quantize("tf_keras Sequential", legacy)
    as_documented = all(e is not None for e in errors) and legacy_error is None
    print("as documented" if as_documented else "NOT as documented")
    return 0 if as_documented else 1


if __name__ == "__main__":
    sys.exit(main())
