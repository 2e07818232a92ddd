"""Activation lookup by the names BERT configs use.

Example:
    >>> import numpy as np
    >>> float(get_activation("gelu")(np.array(0.0, "float32")))
    0.0
"""

import keras


def _gelu_exact(x):
    return keras.activations.gelu(x, approximate=False)


def _gelu_tanh(x):
    return keras.activations.gelu(x, approximate=True)


_ACTIVATIONS = {
    "gelu": _gelu_exact,  # erf form, as Google BERT and Hugging Face "gelu"
    "gelu_new": _gelu_tanh,  # tanh approximation (Hugging Face "gelu_new")
    "gelu_approximate": _gelu_tanh,
    "relu": keras.activations.relu,
    "tanh": keras.activations.tanh,
}


def get_activation(name: str):
    """Return the activation function for a config name; raise naming the choices."""
    try:
        return _ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(_ACTIVATIONS)}")
