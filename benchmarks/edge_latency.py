r"""kbert's int8 `.tflite` beside its peers, in one run: ratios with spread.

    python benchmarks/edge_latency.py --teacher_tflite=runs/road/benchmark/teacher_fp32.tflite \
        --student_tflite=runs/road/benchmark/student_full_int8.tflite \
        --onnx_int8=runs/road/benchmark/student_ort_dynamic_int8.onnx \
        --teacher_inputs=runs/road/benchmark/probe_inputs_teacher.npz \
        --student_inputs=runs/road/benchmark/probe_inputs_student.npz

(`python -m export.road` writes all four.) Each model runs in its own fresh process
(`export.latency_probe`), interleaved, `--repeats` rounds; printed: p50/p90 per model and
thread count, and the ratios the export issue sets goals for — student int8 / teacher fp32
(≤ 0.25) and kbert int8 / ONNX Runtime dynamic int8 (≤ 1) — as median with min–max over
the rounds (range: the least and most favourable pairing of rounds).
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from kbert.export.benchmark import Entry, markdown_table, measure  # noqa: E402

ROAD = "runs/road/benchmark"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher_tflite", default=f"{ROAD}/teacher_fp32.tflite")
    parser.add_argument("--student_tflite", default=f"{ROAD}/student_dynamic_int8.tflite",
                        help="the student's int8 .tflite (full_int8 when it passes verification)")
    parser.add_argument("--onnx_int8", default=f"{ROAD}/student_ort_dynamic_int8.onnx")
    parser.add_argument("--teacher_inputs", default=f"{ROAD}/probe_inputs_teacher.npz")
    parser.add_argument("--student_inputs", default=f"{ROAD}/probe_inputs_student.npz",
                        help="the student's ids (its vocabulary may be pruned)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    for path in (args.teacher_tflite, args.student_tflite, args.onnx_int8, args.teacher_inputs,
                 args.student_inputs):
        if not os.path.isfile(path):
            print(f"edge_latency: error: {path} not found (run `python -m export.road` first "
                  f"or pass the paths)", file=sys.stderr)
            return 2
    entries = [Entry("teacher fp32", args.teacher_tflite, inputs=args.teacher_inputs),
               Entry("student int8", args.student_tflite, inputs=args.student_inputs),
               Entry("student dynamic_int8", args.onnx_int8, runtime="ONNX Runtime",
                     inputs=args.student_inputs)]
    threads = (1, 2)
    measure(entries, None, threads, args.repeats, args.runs,
            log=lambda m: print(m, flush=True))
    print(markdown_table(entries, threads))
    teacher, student, ort = entries
    print(f"\nsize: student int8 / teacher fp32 = {student.size_mb / teacher.size_mb:.3f}")
    for t in threads:
        for name, a, b in (("student int8 / teacher fp32", student, teacher),
                           ("kbert int8 / ORT dynamic int8", student, ort)):
            ra, rb = a.results[t]["fixed_p50"], b.results[t]["fixed_p50"]
            print(f"{t} thread(s), p50 at length {a.results[t]['fixed_length']}: {name} = "
                  f"{ra['median'] / rb['median']:.3f} (range {ra['min'] / rb['max']:.3f}–"
                  f"{ra['max'] / rb['min']:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
