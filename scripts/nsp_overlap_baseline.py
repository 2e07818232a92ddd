r"""How far word overlap alone gets on next-sentence prediction: a yardstick for the demo.

Builds NSP pairs exactly as `python -m trainers.pretrain --raw_text` does (same pipeline,
masking included), scores each pair by the Jaccard overlap of the token sets of segment A
and segment B (special and [MASK] tokens left out), picks the threshold that is best on
pairs from the training files, and prints the accuracy of that rule on the held-out pairs.
A pre-trained model's held-out NSP accuracy is worth comparing with this number.

Example:
    python scripts/nsp_overlap_baseline.py --vocab_file=runs/demo/vocab.txt
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

CORPUS = "data/corpus/python_docs_0{}.txt"
flags.DEFINE_string("vocab_file", None, "vocab.txt of the run (e.g. runs/demo/vocab.txt).")
flags.DEFINE_string("train_files", ",".join(CORPUS.format(i) for i in (0, 1, 3)),
                    "Files the threshold is fitted on.")
flags.DEFINE_string("eval_files", CORPUS.format(2), "Held-out files.")
flags.DEFINE_integer("max_seq_length", 128, "As the run's flag.")
flags.DEFINE_integer("max_predictions_per_seq", 20, "As the run's flag.")
flags.DEFINE_integer("eval_examples", 960, "Held-out pairs scored (demo: 30 batches x 32).")
flags.DEFINE_integer("train_examples", 4000, "Training pairs used to fit the threshold.")
flags.DEFINE_integer("seed", 12345, "The run's --seed (evaluation uses seed + 2).")
flags.mark_flag_as_required("vocab_file")
FLAGS = flags.FLAGS


def overlap_scores(dataset, special_ids, limit):
    """(Jaccard overlap of A and B token sets, is-random-next label) for `limit` pairs."""
    import numpy as np
    scores, labels = [], []
    for batch in dataset:
        ids, segments = batch["input_ids"].numpy(), batch["segment_ids"].numpy()
        mask = batch["input_mask"].numpy().astype(bool)
        is_random_next = batch["next_sentence_labels"].numpy()
        for row in range(ids.shape[0]):
            keep = mask[row] & ~np.isin(ids[row], special_ids)
            a = set(ids[row][keep & (segments[row] == 0)].tolist())
            b = set(ids[row][keep & (segments[row] == 1)].tolist())
            scores.append(len(a & b) / max(1, len(a | b)))
            labels.append(int(is_random_next[row]))
            if len(scores) == limit:
                return np.array(scores), np.array(labels)
    return np.array(scores), np.array(labels)


def best_threshold(scores, labels) -> tuple[float, float]:
    """(threshold, accuracy) of the rule "IsNext when overlap >= threshold" on these pairs."""
    import numpy as np
    best = (0.0, 0.0)
    for threshold in np.unique(scores):
        accuracy = float(np.mean((scores >= threshold) == (labels == 0)))
        best = max(best, (accuracy, float(threshold)))
    return best[1], best[0]


def main(argv):
    del argv
    import numpy as np

    from kbert import data
    from kbert.tokenizers import BertTokenizer
    tokenizer = BertTokenizer(FLAGS.vocab_file)
    special = np.array([tokenizer.vocab.index(t) for t in
                        ("[PAD]", "[CLS]", "[SEP]", "[MASK]", "[UNK]")], np.int32)

    def pairs(files, seed):
        return data.raw_text_dataset(
            files, tokenizer, 32, FLAGS.max_seq_length, FLAGS.max_predictions_per_seq,
            seed=seed, is_training=False)

    train_scores, train_labels = overlap_scores(pairs(FLAGS.train_files, FLAGS.seed),
                                                special, FLAGS.train_examples)
    threshold, train_accuracy = best_threshold(train_scores, train_labels)
    eval_scores, eval_labels = overlap_scores(pairs(FLAGS.eval_files, FLAGS.seed + 2),
                                              special, FLAGS.eval_examples)
    eval_accuracy = float(np.mean((eval_scores >= threshold) == (eval_labels == 0)))
    print(f"training pairs {len(train_scores)} (IsNext {np.mean(train_labels == 0):.3f}): "
          f"threshold {threshold:.4f}, accuracy {train_accuracy:.3f}")
    print(f"held-out pairs {len(eval_scores)} (IsNext {np.mean(eval_labels == 0):.3f}): "
          f"overlap-rule NSP accuracy {eval_accuracy:.3f}")


if __name__ == "__main__":
    app.run(main)
