"""Test-wide settings (TensorFlow backend, no network, quiet logs, deterministic seeds) and
the shared pre-training data fixtures (vocabulary, tokenizer, corpus)."""

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


# --------------------------------------------------------------------------- pre-training data
@pytest.fixture(scope="session")
def vocab_file():
    from tests.harness import gt_vocab_file
    return gt_vocab_file()


@pytest.fixture(scope="session")
def tokenizer(vocab_file):
    from kbert.tokenizers import BertTokenizer
    return BertTokenizer(vocab_file, lower_case=True)


@pytest.fixture(scope="session")
def documents(tokenizer):
    from tests.harness import corpus_documents
    return corpus_documents(tokenizer.vocab)


@pytest.fixture(scope="session")
def special_ids(tokenizer):
    from tests.harness import SPECIAL_TOKENS
    return {tokenizer.token_to_id(t) for t in SPECIAL_TOKENS}


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory, documents):
    from tests.harness import write_small_corpus
    return write_small_corpus(str(tmp_path_factory.mktemp("corpus")), documents)


# --------------------------------------------------------------------------- export
@pytest.fixture(scope="session")
def app_task(tmp_path_factory):
    """The app-ready `.tflite` of a tiny fine-tuned BERT and its task files, made once."""
    from tests.export_fixtures import app_ready_task
    return app_ready_task(tmp_path_factory.mktemp("app_task"))
