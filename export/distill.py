r"""Distil a kbert teacher into a smaller student.

Task-specific (the road to the edge): a fine-tuned teacher directory → a student of the same
task, trained on --train_file with soft targets (KL at --temperature, × T²) + the hard
labels (+ an optional hidden-state loss):

    python -m export.distill --teacher_model=runs/fortunes_minilm/model \
        --train_file=data/tasks/fortunes/train.jsonl \
        --validation_file=data/tasks/fortunes/validation.jsonl \
        --test_file=data/tasks/fortunes/test.jsonl \
        --student_layers=0,2,4 --output_dir=runs/fortunes_student

General (DistilBERT-style, `--distillation=general`): a pre-trained teacher and raw text
(--corpus) → a pre-trained student (MLM soft targets + hard MLM + cosine on hidden states).

Out: <output_dir>/model/ (a kbert model directory) and <output_dir>/eval.json (teacher and
student accuracy / macro-F1 per split, the loss history, every setting).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile

from absl import app, flags

from export import flags as export_flags
from export.distill_common import check_output_dir, make_student, output_staging

FLAGS = flags.FLAGS
export_flags.define_distill_flags(FLAGS)
MODEL_DIR = "model"
PROGRESS_ENV = "KBERT_PROGRESS_FILE"

def progress_reporter():
    """`ProgressFile.update` when a parent (export.road) asks for progress through the
    KBERT_PROGRESS_FILE environment variable, else None."""
    path = os.environ.get(PROGRESS_ENV)
    if not path:
        return None
    from kbert.training.progress import ProgressFile
    return ProgressFile(path).update


def evaluate_split(model, tokenizer, path, fv, info) -> dict:
    """Accuracy / macro-F1 on a labelled file; long texts as averaged windows."""
    from kbert.distillation.evaluation import scores
    from kbert.export.labelled import label_ids, read_labelled_file, windowed_logits
    from kbert.export.task_model import classifier_logits, encoder_features
    texts, labels = read_labelled_file(path, fv.text_column, fv.label_column,
                                       quoting=fv.quoting)
    y = label_ids(labels, info.labels, path)
    logits = windowed_logits(lambda ids, mask, types: classifier_logits(
        model, encoder_features(ids, mask, types)), tokenizer, texts, info.max_seq_length, 64)
    return scores(y, logits.argmax(-1), len(info.labels))


def run_task(fv, log) -> dict:
    import kbert
    from kbert.distillation import DistillationSettings, distill_task, encoder_of
    from kbert.export.labelled import label_ids, read_labelled_file
    from kbert.export.task_model import ExportError, load_task_model
    from kbert.models import save_pretrained
    from kbert.tokenizers import BertTokenizer, write_vocab
    export_flags.require(fv, "teacher_model", "train_file", "output_dir")
    inputs = [fv.teacher_model, fv.train_file, fv.validation_file, fv.test_file,
              fv.student_init]
    check_output_dir(fv.output_dir, fv.overwrite, inputs)
    teacher, info = load_task_model(fv.teacher_model, fv.max_seq_length)
    tokenizer = kbert.load_tokenizer(fv.teacher_model)
    texts, labels = read_labelled_file(fv.train_file, fv.text_column, fv.label_column,
                                       quoting=fv.quoting)
    y = label_ids(labels, info.labels, fv.train_file)
    keep = student_vocab = student_tokenizer = None
    if fv.prune_vocabulary:
        from kbert.distillation.vocabulary import pruned_vocabulary
        if fv.student_init:
            raise ExportError("--prune_vocabulary prunes a student built from the teacher; "
                              "it cannot be combined with --student_init")
        if not info.is_wordpiece:
            raise ExportError(f"--prune_vocabulary prunes WordPiece vocabularies (BERT, "
                              f"DistilBERT); the teacher is {info.family}, whose "
                              f"{' + '.join(os.path.basename(p) for p in info.tokenizer_files)}"
                              f" cannot be cut to a subset of ids: drop the flag")
        keep = pruned_vocabulary(tokenizer, texts)
        student_vocab = [tokenizer.vocab[i] for i in keep]
        vocab_dir = tempfile.mkdtemp(prefix="kbert_pruned_vocab_")
        student_vocab_file = os.path.join(vocab_dir, "vocab.txt")
        write_vocab(student_vocab, student_vocab_file)
        student_tokenizer = BertTokenizer(student_vocab_file, lower_case=info.do_lower_case)
        log(f"vocabulary pruned to {len(keep)} of {tokenizer.vocab_size} tokens")
    student = make_student(teacher, fv, keep, student_vocab)
    t_cfg, s_cfg = encoder_of(teacher).config, encoder_of(student).config
    log(f"teacher {t_cfg.num_hidden_layers}x{t_cfg.hidden_size} → student "
        f"{s_cfg.num_hidden_layers}x{s_cfg.hidden_size}; {len(texts)} training examples")
    settings = DistillationSettings(
        temperature=fv.temperature, alpha_soft=fv.alpha_soft, alpha_hard=fv.alpha_hard,
        alpha_hidden=fv.alpha_hidden, hidden_loss=fv.hidden_loss,
        learning_rate=fv.learning_rate, warmup_proportion=fv.warmup_proportion,
        num_train_epochs=fv.num_train_epochs, batch_size=fv.train_batch_size,
        max_seq_length=info.max_seq_length, cache_teacher_logits=fv.cache_teacher_logits,
        seed=fv.seed)
    history = distill_task(teacher, student, tokenizer, texts, y, settings, log=log,
                           student_tokenizer=student_tokenizer, progress=progress_reporter())
    report = {"teacher_model": os.path.abspath(fv.teacher_model),
              "teacher": {"layers": t_cfg.num_hidden_layers, "hidden_size": t_cfg.hidden_size,
                          "parameters": int(teacher.count_params())},
              "student": {"layers": s_cfg.num_hidden_layers, "hidden_size": s_cfg.hidden_size,
                          "parameters": int(student.count_params()),
                          "init": fv.student_init or (
                              "teacher layers " + ",".join(fv.student_layers)
                              if fv.student_layers else "default")},
              "settings": {k: v for k, v in vars(settings).items()}, "history": history}
    for split, path in (("validation", fv.validation_file), ("test", fv.test_file)):
        if path:
            report["teacher"][split] = evaluate_split(teacher, tokenizer, path, fv, info)
            report["student"][split] = evaluate_split(student, student_tokenizer or tokenizer,
                                                      path, fv, info)
            report[f"{split}_student_to_teacher_accuracy"] = (
                report["student"][split]["accuracy"]
                / max(report["teacher"][split]["accuracy"], 1e-9))
            log(f"{split}: teacher accuracy {report['teacher'][split]['accuracy']:.4f}, "
                f"student {report['student'][split]['accuracy']:.4f}")
    extra = {"task": info.task, "labels": list(info.labels),
             "max_seq_length": info.max_seq_length,
             "distilled_from": os.path.abspath(fv.teacher_model)}
    if keep is not None:
        extra["pruned_vocabulary"] = {"kept": len(keep), "of": tokenizer.vocab_size}
        report["student"]["vocab_size"] = len(keep)
    with output_staging(fv, inputs) as staging:
        if hasattr(student, "save_pretrained") and getattr(student, "preprocessor", None):
            student.save_pretrained(os.path.join(staging, MODEL_DIR), extra=extra)
        else:
            save_pretrained(student, os.path.join(staging, MODEL_DIR),
                            vocab_file=([student_vocab_file] if keep is not None
                                        else list(info.tokenizer_files)),
                            do_lower_case=info.do_lower_case, extra=extra)
        with open(os.path.join(staging, "eval.json"), "w", encoding="utf-8") as f:
            f.write(json.dumps(report, indent=2) + "\n")
    if keep is not None:
        shutil.rmtree(vocab_dir, ignore_errors=True)
    return report


def run(fv) -> dict:
    log = lambda m: print(f"distill: {m}", flush=True)  # noqa: E731
    if fv.distillation == "general":
        from export.distill_general import run_general
        return run_general(fv, log)
    return run_task(fv, log)


def main(argv) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    return export_flags.run_command("distill", lambda: run(FLAGS))


if __name__ == "__main__":
    sys.exit(app.run(main))
