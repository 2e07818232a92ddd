"""Test-wide settings: TensorFlow backend, no network, quiet logs, deterministic seeds."""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seed_and_policy():
    import keras
    keras.utils.set_random_seed(1234)
    yield
    keras.config.set_dtype_policy("float32")
