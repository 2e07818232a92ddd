"""`python -m export.distill --distillation=general`: the DistilBERT recipe on raw text.

Kept apart from export/distill.py (the task road) because it reads a corpus, not task files.
Teacher and student are scored on held-out text: --validation_corpus, or else every
HOLD_OUT_EVERY-th document of --corpus, which training then leaves out.
"""

from __future__ import annotations

import json
import os

import numpy as np

HOLD_OUT_EVERY = 20
HELD_OUT_BATCHES = 8


def run_general(fv, log) -> dict:
    import kbert
    from export.distill_common import check_output_dir, make_student, output_staging
    from export import flags as export_flags
    from kbert.distillation.general import distill_general, masked_lm_scores
    from kbert.export.task_model import ExportError
    from kbert.data import raw_text_dataset
    from kbert.models import save_pretrained
    from kbert.models.saving import read_directory_config
    from kbert.tokenizers.families import tokenizer_files
    export_flags.require(fv, "teacher_model", "corpus", "output_dir")
    inputs = [fv.teacher_model, *fv.corpus.split(","), fv.student_init,
              *(fv.validation_corpus or "").split(",")]
    check_output_dir(fv.output_dir, fv.overwrite, inputs)
    try:
        teacher = kbert.load(fv.teacher_model)
    except (FileNotFoundError, ValueError) as e:
        raise ExportError(str(e)) from e
    if not hasattr(teacher, "mlm_head"):
        raise ExportError(f"--teacher_model {fv.teacher_model} has no masked-LM head; general "
                          f"distillation needs a pre-trained BertPretrainer directory")
    tokenizer = kbert.load_tokenizer(fv.teacher_model)
    student = make_student(teacher, fv)
    length = fv.max_seq_length or 128
    def data(corpus, training, seed, every=0, held_out=False):
        return raw_text_dataset(
            corpus, tokenizer, fv.train_batch_size, length, max(1, round(0.15 * length)),
            seed=seed, is_training=training, hold_out_every=every, held_out=held_out,
            sentence_objective=teacher.sentence_objective)   # the family's (RoBERTa: none)
    held_out_text = f"every {HOLD_OUT_EVERY}th document of --corpus (not trained on)"
    try:
        if fv.validation_corpus:
            held_out_text = fv.validation_corpus
            training_data = data(fv.corpus, True, fv.seed)
            held_out = data(fv.validation_corpus, False, fv.seed + 1)
        else:
            try:
                training_data = data(fv.corpus, True, fv.seed, HOLD_OUT_EVERY)
                held_out = data(fv.corpus, False, fv.seed + 1, HOLD_OUT_EVERY, held_out=True)
            except ValueError:   # too few documents to hold any out: said, never silent
                held_out_text = ("none: --corpus has too few documents to hold out every "
                                 f"{HOLD_OUT_EVERY}th; scored on its training text (pass "
                                 "--validation_corpus)")
                log(f"warning: {held_out_text}")
                training_data = data(fv.corpus, True, fv.seed)
                held_out = data(fv.corpus, False, fv.seed + 1)
        held_out = list(held_out.take(HELD_OUT_BATCHES))
    except ValueError as e:      # PretrainingDataError: too little text
        where = "--validation_corpus" if fv.validation_corpus else "--corpus"
        raise ExportError(f"{where}: {e}") from e
    log(f"teacher {teacher.encoder.config.num_hidden_layers} layers → student "
        f"{student.encoder.config.num_hidden_layers} layers, {fv.num_train_steps} steps")
    history = distill_general(teacher, student, training_data, fv.num_train_steps,
                              fv.temperature, fv.alpha_soft, fv.alpha_hard, fv.alpha_hidden,
                              fv.learning_rate, fv.warmup_proportion, log=log,
                              log_every=max(1, fv.num_train_steps // 10))
    report = {"teacher_model": os.path.abspath(fv.teacher_model), "history": history,
              "held_out": {"text": held_out_text, "batches": len(held_out)}}
    for name, model in (("teacher", teacher), ("student", student)):
        values = np.array([masked_lm_scores(model, f) for f in held_out]) if held_out else None
        report[name] = {"layers": model.encoder.config.num_hidden_layers,
                        "parameters": int(model.count_params()),
                        "mlm_loss": float(values[:, 0].mean()) if held_out else None,
                        "mlm_accuracy": float(values[:, 1].mean()) if held_out else None}
    config = read_directory_config(fv.teacher_model)
    lower = config["kbert"].get("do_lower_case", True)
    with output_staging(fv, inputs) as staging:
        save_pretrained(student, os.path.join(staging, "model"),
                        vocab_file=tokenizer_files(config.get("family", "bert"),
                                                   fv.teacher_model),
                        do_lower_case=lower,
                        extra={"task": "pretraining", "distilled_from":
                               os.path.abspath(fv.teacher_model)})
        with open(os.path.join(staging, "eval.json"), "w", encoding="utf-8") as f:
            f.write(json.dumps(report, indent=2) + "\n")
    return report
