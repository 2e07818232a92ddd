"""Peak memory of trainers.prepare_corpus and trainers.create_pretraining_data against
input size (issue 19): each command runs on a generated input while its process tree's
resident memory (the sum of VmRSS over the process and its children) is sampled every
0.5 s; prints the peak and the wall time, writes the samples as CSV.

Inputs are generated from data/corpus (documents repeated with their sentences rotated):
  dump:  a MediaWiki XML dump (schema 0.11, multistream bz2) of about N MB of XML, the
         documents dressed in templates, references, links, a table and a category;
  text:  google-research/bert-format text of about N MB.
`--what=pretrain_raw_text` runs `trainers.pretrain --raw_text` (tiny model, 20 steps) on the
text input: what it holds while reading a corpus, whatever its size.

Usage:
    python benchmarks/streaming_memory.py --what=prepare_corpus --mb=100 --work=/tmp/mem
    python benchmarks/streaming_memory.py --what=create_pretraining_data --mb=100 \
        --work=/tmp/mem [--python_path=/other/checkout --label=old]
    python benchmarks/streaming_memory.py --work=/tmp/mem --plot=docs/streaming_memory.png
"""

from __future__ import annotations

import argparse
import bz2
import csv
import glob
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def _documents():
    docs = []
    for path in sorted(glob.glob(os.path.join(ROOT, "data", "corpus", "python_docs_*.txt"))):
        for block in open(path, encoding="utf-8").read().split("\n\n"):
            if block.strip():
                docs.append(block.strip().split("\n"))
    return docs


def _rotated(docs, i):
    d = docs[i % len(docs)]
    r = (i // len(docs)) % max(1, len(d))
    return d[r:] + d[:r]


def make_text(path: str, mb: int) -> None:
    docs, written, i = _documents(), 0, 0
    with open(path, "w", encoding="utf-8") as f:
        while written < mb << 20:
            text = "\n".join(_rotated(docs, i)) + "\n\n"
            f.write(text)
            written += len(text.encode())
            i += 1


def make_dump(path: str, mb: int) -> None:
    from tests.corpus_fixtures import Page, _page_xml, dump_parts
    docs, written, i = _documents(), 0, 0
    header, _, footer = dump_parts([], "0.11")
    with open(path, "wb") as f:
        f.write(bz2.compress(header.encode()))
        while written < mb << 20:
            group = []
            for _ in range(100):
                lines = _rotated(docs, i)
                body = ("{{Infobox software|name=X|license=PSF}}\n'''" + lines[0]
                        + "'''<ref>{{cite web|url=http://x.org}}</ref>\n"
                        + "\n".join(f"[[Link|{l}]]" if j % 5 == 0 else l
                                    for j, l in enumerate(lines[1:]))
                        + "\n== See also ==\n* [[Python]]\n{| class=wikitable\n|-\n"
                          "| a || b\n|}\n[[Category:Software]]\n")
                group.append(_page_xml(Page(f"Page {i}", body), i + 1))
                i += 1
            data = "".join(group).encode()
            written += len(data)
            f.write(bz2.compress(data, 6))
        f.write(bz2.compress(footer.encode()))


def _tree_rss_kb(pid: int) -> int:
    """VmRSS of `pid` and every descendant, in kB."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parent = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(parent, []).append(int(entry))
            except (OSError, ValueError, IndexError):
                pass
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo.extend(children.get(p, []))
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def run_sampled(command: list[str], csv_path: str, env: dict) -> tuple[float, int, int]:
    """(seconds, peak tree RSS kB, exit code) of `command`; samples written to csv_path."""
    started = time.time()
    process = subprocess.Popen(command, env=env, cwd=env["PYTHONPATH"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = 0
    with open(csv_path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["seconds", "rss_mb"])
        while process.poll() is None:
            rss = _tree_rss_kb(process.pid)
            peak = max(peak, rss)
            out.writerow([round(time.time() - started, 2), round(rss / 1024, 1)])
            time.sleep(0.5)
    return time.time() - started, peak, process.returncode


NAMES = {"new": "streamed", "w2": "streamed, 2 workers", "old": "before: lists in memory",
         "before": "before: the corpus as a list"}


def plot(work: str, output: str) -> None:
    """RSS over time of every run's CSV in `work`, one panel per command, as a PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    commands = [c for c in ("prepare_corpus", "create_pretraining_data", "pretrain_raw_text")
                if glob.glob(os.path.join(work, f"{c}_*.csv"))]
    figure, axes = plt.subplots(1, len(commands), figsize=(5.5 * len(commands), 4))
    axes = [axes] if len(commands) == 1 else axes
    for axis, command in zip(axes, commands):
        for path in sorted(glob.glob(os.path.join(work, f"{command}_*.csv"))):
            rows = list(csv.DictReader(open(path)))
            if not rows:
                continue
            mb, label = os.path.basename(path)[len(command) + 1:-4].split("_", 1)
            axis.plot([float(r["seconds"]) for r in rows], [float(r["rss_mb"]) for r in rows],
                      label=f"{mb} MB input ({NAMES.get(label, label)})")
        axis.set_title("trainers.pretrain --raw_text" if command == "pretrain_raw_text"
                       else f"trainers.{command}")
        axis.set_xlabel("seconds")
        axis.set_ylabel("process tree RSS (MB)")
        axis.set_ylim(bottom=0)
        axis.legend()
    figure.tight_layout()
    figure.savefig(output, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--what", choices=["prepare_corpus", "create_pretraining_data",
                                           "pretrain_raw_text"])
    parser.add_argument("--mb", type=int, default=100)
    parser.add_argument("--work", default="/tmp/kbert_memory")
    parser.add_argument("--python_path", default=ROOT,
                        help="checkout whose code runs (another branch, for a baseline)")
    parser.add_argument("--label", default="new")
    parser.add_argument("--extra", default="", help="extra flags, space-separated")
    parser.add_argument("--plot", default=None, help="only plot the CSVs in --work to this PNG")
    args = parser.parse_args()
    if args.plot:
        plot(args.work, args.plot)
        return
    os.makedirs(args.work, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=args.python_path, TF_CPP_MIN_LOG_LEVEL="3")
    if args.what == "prepare_corpus":
        source = os.path.join(args.work, f"dump{args.mb}.xml.bz2")
        if not os.path.exists(source):
            make_dump(source, args.mb)
        out = os.path.join(args.work, f"corpus{args.mb}_{args.label}")
        command = [sys.executable, "-m", "trainers.prepare_corpus", f"--input_file={source}",
                   f"--output_dir={out}", "--overwrite"]
    elif args.what == "pretrain_raw_text":
        source = os.path.join(args.work, f"text{args.mb}.txt")
        if not os.path.exists(source):
            make_text(source, args.mb)
        from tests.harness import gt_vocab_file
        out = os.path.join(args.work, f"pretrain{args.mb}_{args.label}")
        command = [sys.executable, "-m", "trainers.pretrain", "--raw_text",
                   f"--input_file={source}", f"--vocab_file={gt_vocab_file()}",
                   f"--output_dir={out}", "--model_size=tiny", "--max_seq_length=64",
                   "--max_predictions_per_seq=8", "--train_batch_size=8",
                   "--num_train_steps=20", "--num_warmup_steps=1", "--eval_steps=0",
                   "--overwrite"]
    else:
        source = os.path.join(args.work, f"text{args.mb}.txt")
        if not os.path.exists(source):
            make_text(source, args.mb)
        from tests.harness import gt_vocab_file
        out = os.path.join(args.work, f"records{args.mb}_{args.label}")
        command = [sys.executable, "-m", "trainers.create_pretraining_data",
                   f"--input_file={source}", f"--vocab_file={gt_vocab_file()}",
                   f"--output_dir={out}", "--max_seq_length=128",
                   "--max_predictions_per_seq=20", "--dupe_factor=1",
                   "--num_output_shards=4", "--overwrite"]
    command += args.extra.split()
    size = os.path.getsize(source) / 2 ** 20
    seconds, peak, code = run_sampled(
        command, os.path.join(args.work, f"{args.what}_{args.mb}_{args.label}.csv"), env)
    print(f"{args.what} {args.label} input {size:.1f} MB ({args.mb} MB generated): "
          f"exit {code}, {seconds:.1f} s, peak tree RSS {peak / 1024:.1f} MB", flush=True)


if __name__ == "__main__":
    main()
