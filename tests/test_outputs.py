"""kbert.outputs, the output contract: inputs never overlapped, existing outputs refused
without --overwrite, only kbert's own (unchanged) files replaced, staging + rename, a kill
at any commit point leaves the old or the new output, faults as one OutputError."""

import errno
import json
import os
import subprocess
import sys
import textwrap

import pytest

from kbert import outputs
from kbert.outputs import OutputError, RunDirectory, own_files, replace_directory, replace_file
from tests.faults import CAN_MOUNT, hidden_leftovers, kill_at, small_disk, snapshot

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write(directory, files, kind="thing", **kwargs):
    with replace_directory(str(directory), kind, **kwargs) as staging:
        for name, text in files.items():
            path = os.path.join(staging, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write(text)


def write_file(path, text, kind="scores", **kwargs):
    with replace_file(str(path), kind, **kwargs) as tmp:
        with open(tmp, "w") as f:
            f.write(text)


# ----------------------------------------------------------------------------- directories
def test_new_output_is_marked_and_leaves_nothing_beside_it(tmp_path):
    write(tmp_path / "out", {"a.txt": "1", "sub/b.txt": "2"})
    assert own_files(str(tmp_path / "out"), "thing") == ["a.txt", "sub/b.txt"]
    assert own_files(str(tmp_path / "out"), "other") is None
    assert hidden_leftovers(str(tmp_path)) == []


def test_own_output_needs_overwrite_and_is_then_replaced_whole(tmp_path):
    write(tmp_path / "out", {"a.txt": "1", "old.txt": "x", "sub/c.txt": "y"})
    with pytest.raises(OutputError, match="holds kbert's earlier thing output; pass --overwrite"):
        write(tmp_path / "out", {"a.txt": "2"})
    write(tmp_path / "out", {"a.txt": "2"}, overwrite=True)
    assert sorted(os.listdir(tmp_path / "out")) == [outputs.MARKER_NAME, "a.txt"]
    assert (tmp_path / "out" / "a.txt").read_text() == "2"
    assert hidden_leftovers(str(tmp_path)) == []


@pytest.mark.parametrize("existing", [{"notes.txt": "mine"}, {"sub/x.bin": "mine"},
                                      {"sub/": None}])
def test_foreign_directory_refused_then_only_kbert_files_added(tmp_path, existing):
    out = tmp_path / "out"
    for name, text in existing.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        if text is None:
            (out / name).mkdir()
        else:
            (out / name).write_text(text)
    with pytest.raises(OutputError, match="not written by kbert"):
        write(out, {"a.txt": "1"})
    assert not (out / "a.txt").exists()
    write(out, {"a.txt": "1"}, overwrite=True)
    write(out, {"a.txt": "2", "c.txt": "3"}, overwrite=True)   # replaces only its own
    write(out, {"c.txt": "4"}, overwrite=True)
    for name, text in existing.items():
        assert (out / name).read_text() == text if text is not None else (out / name).is_dir()
    assert not (out / "a.txt").exists() and (out / "c.txt").read_text() == "4"
    assert hidden_leftovers(str(tmp_path)) == []


def test_users_empty_folder_in_a_kbert_output_survives_a_replacement(tmp_path):
    out = tmp_path / "out"
    write(out, {"a.txt": "1"})
    (out / "mine").mkdir()
    write(out, {"a.txt": "2"}, overwrite=True)
    assert (out / "mine").is_dir() and (out / "a.txt").read_text() == "2"


def test_foreign_file_with_kbert_name_is_never_replaced(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "config.json").write_text("theirs")
    with pytest.raises(OutputError, match="config.json was not written by kbert"):
        write(out, {"config.json": "ours"}, overwrite=True)
    assert (out / "config.json").read_text() == "theirs"
    assert hidden_leftovers(str(tmp_path)) == []


def test_a_kbert_file_the_user_edited_is_the_users(tmp_path):
    out = tmp_path / "out"
    write(out, {"a.txt": "1", "b.txt": "1"})
    os.utime(out / "a.txt", ns=(1, 1))           # an edit: another time (and size)
    (out / "a.txt").write_text("my edit")
    assert own_files(str(out), "thing") == ["b.txt"]
    with pytest.raises(OutputError, match="a.txt was not written by kbert"):
        write(out, {"a.txt": "2"}, overwrite=True)
    write(out, {"b.txt": "2"}, overwrite=True)
    assert (out / "a.txt").read_text() == "my edit"


def test_other_kind_counts_as_foreign(tmp_path):
    write(tmp_path / "out", {"a.txt": "1"}, kind="model")
    with pytest.raises(OutputError, match="not written by kbert as a data output"):
        write(tmp_path / "out", {"a.txt": "1"}, kind="data")


@pytest.mark.parametrize("relation", ["same", "inside", "contains", "input_file_inside"])
def test_output_overlapping_an_input_is_refused(tmp_path, relation):
    source = tmp_path / "src"
    (source / "deep").mkdir(parents=True)
    (source / "model.safetensors").write_text("weights")
    output, inputs = {
        "same": (source, [source]),
        "inside": (source / "deep" / "out", [source]),
        "contains": (tmp_path, [source]),
        "input_file_inside": (source, [source / "model.safetensors"]),
    }[relation]
    with pytest.raises(OutputError, match="input"):
        write(output, {"a.txt": "1"}, inputs=[str(i) for i in inputs], overwrite=True)
    assert (source / "model.safetensors").read_text() == "weights"


def test_failure_while_writing_keeps_previous_output(tmp_path):
    write(tmp_path / "out", {"a.txt": "good"})
    with pytest.raises(RuntimeError):
        with replace_directory(str(tmp_path / "out"), "thing", overwrite=True) as staging:
            (open(os.path.join(staging, "a.txt"), "w")).write("half")
            raise RuntimeError("boom")
    assert (tmp_path / "out" / "a.txt").read_text() == "good"
    assert hidden_leftovers(str(tmp_path)) == []


@pytest.mark.parametrize("error", [
    RuntimeError("Disable slist on flush dest failure failed (file write failed: errno = 28, "
                 "error message = 'No space left on device')"),   # what h5py raises
    OSError(errno.EROFS, os.strerror(errno.EROFS)),
    OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)),
])
def test_library_faults_become_one_line(tmp_path, error):
    """Old code: kbert.convert on a full disk ended in h5py's RuntimeError traceback."""
    with pytest.raises(OutputError, match=r"^cannot write .*out: (No space left on device|"
                                          r"Read-only file system)$"):
        with replace_directory(str(tmp_path / "out"), "thing"):
            raise error
    with pytest.raises(OutputError, match=r"^cannot write .*f.json: "):
        with replace_file(str(tmp_path / "f.json"), "thing"):
            raise error
    assert os.listdir(tmp_path) == []


@pytest.mark.skipif(not CAN_MOUNT, reason="needs root and mount (tmpfs)")
def test_full_disk_keeps_the_previous_output(tmp_path):
    with small_disk("256k") as disk:
        write(os.path.join(disk, "out"), {"a.txt": "good"})
        write_file(os.path.join(disk, "s.json"), "good")
        before = snapshot(disk)
        with pytest.raises(OutputError, match=r"cannot write .*out: No space left on device"):
            write(os.path.join(disk, "out"), {"a.txt": "x" * 400_000}, overwrite=True)
        with pytest.raises(OutputError, match=r"cannot write .*s.json: No space left on device"):
            write_file(os.path.join(disk, "s.json"), "x" * 400_000, overwrite=True)
        assert snapshot(disk) == before and hidden_leftovers(disk) == []


@pytest.mark.skipif(not CAN_MOUNT, reason="needs root and mount (tmpfs)")
def test_read_only_place_is_refused_before_any_work(tmp_path):
    ran = []
    with small_disk("64k", read_only=True) as disk:
        for writer in (replace_directory, replace_file):
            with pytest.raises(OutputError, match="Read-only file system"):
                with writer(os.path.join(disk, "out"), "thing"):
                    ran.append(writer)
        with pytest.raises(OutputError, match="Read-only file system"):
            RunDirectory(os.path.join(disk, "run"), "demo", {}).check()
    assert ran == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_unwritable_parent_is_one_error(tmp_path):
    parent = tmp_path / "locked"
    parent.mkdir()
    parent.chmod(0o500)
    try:
        with pytest.raises(OutputError, match="cannot write .*locked/out: Permission denied"):
            write(parent / "out", {"a.txt": "1"})
    finally:
        parent.chmod(0o700)


def test_leftovers_of_a_killed_run_are_cleaned(tmp_path):
    write(tmp_path / "out", {"a.txt": "good"})
    dead_pid = 2 ** 22 + 12345   # above pid_max: no such process
    stale = tmp_path / f".out.kbert-staging-{dead_pid}-abcd"
    stale.mkdir()
    (stale / "a.txt").write_text("half")
    stale_file = tmp_path / f".f.json.kbert-staging-{dead_pid}-abcd"
    stale_file.write_text("half")
    live = tmp_path / f".out.kbert-staging-{os.getpid()}-beef"   # a running writer's: kept
    live.mkdir()
    write(tmp_path / "out", {"a.txt": "new"}, overwrite=True)
    write_file(tmp_path / "f.json", "new")
    assert not stale.exists() and not stale_file.exists() and live.exists()


def test_atomic_path_leftovers_are_cleaned_by_the_next_write(tmp_path):
    """Old code: a killed export left a hidden `.model.tflite.XXXX.tmp` no run removed."""
    from kbert import fileio
    stale = tmp_path / f".m.tflite.kbert-staging-{2 ** 22 + 7}-abcd"
    stale.write_bytes(b"x" * 1000)
    fileio.atomic_write_bytes(str(tmp_path / "m.tflite"), b"model")
    assert sorted(os.listdir(tmp_path)) == ["m.tflite"]


def test_backup_of_an_interrupted_swap_is_restored(tmp_path):
    write(tmp_path / "out", {"a.txt": "good"})
    backup = tmp_path / f".out.kbert-backup-{2 ** 22 + 1}-abcd"
    os.replace(tmp_path / "out", backup)        # killed between the two renames
    outputs.clean_leftovers(str(tmp_path / "out"))
    assert (tmp_path / "out" / "a.txt").read_text() == "good"
    assert hidden_leftovers(str(tmp_path)) == []


def test_legacy_kbert_model_directory_is_own(tmp_path):
    out = tmp_path / "m"
    out.mkdir()
    (out / "config.json").write_text(json.dumps({"kbert": {}}))
    (out / "model.weights.h5").write_text("w")
    assert own_files(str(out), "model") == ["config.json", "model.weights.h5"]
    (out / "config.json").write_text(json.dumps({"model_type": "bert"}))
    assert own_files(str(out), "model") is None


# ----------------------------------------------------------------------------- single files
def test_file_output_rules(tmp_path):
    target = tmp_path / "scores.json"
    write_file(target, "1")
    assert outputs.is_own(str(target))
    with pytest.raises(OutputError, match="exists \\(kbert wrote it\\); pass --overwrite"):
        write_file(target, "2")
    write_file(target, "2", overwrite=True)
    assert target.read_text() == "2"
    os.utime(target, ns=(5, 5))                              # the user edits it
    with pytest.raises(OutputError, match="not written by kbert .*never replaces it"):
        write_file(target, "3", overwrite=True)
    mine = tmp_path / "mine.json"
    mine.write_text("user")
    with pytest.raises(OutputError, match="not written by kbert"):
        write_file(mine, "kbert", overwrite=True)
    with pytest.raises(OutputError, match="--output_json=.* is a directory"):
        write_file(tmp_path, "x", flag="--output_json", overwrite=True)
    with pytest.raises(OutputError, match="--output_json .* is the same as the input"):
        write_file(tmp_path / "t.jsonl", "x", inputs=[str(tmp_path / "t.jsonl")],
                   flag="--output_json")
    assert mine.read_text() == "user" and target.read_text() == "2"
    assert hidden_leftovers(str(tmp_path)) == []


def test_writers_in_one_directory_do_not_lose_each_others_records(tmp_path):
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {ROOT!r})
        from kbert.outputs import replace_file
        for i in range(15):
            with replace_file(f"{tmp_path}/{{sys.argv[1]}}{{i}}.txt", "t") as tmp:
                open(tmp, "w").write(str(i))
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script, tag]) for tag in "ab"]
    assert [p.wait() for p in procs] == [0, 0]
    assert sorted(outputs.read_marker(str(tmp_path))["entries"]) == sorted(
        f"{t}{i}.txt" for t in "ab" for i in range(15))


WRITER = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, sys.argv[1])
    from kbert.outputs import replace_directory, replace_file
    if sys.argv[2] == "file":
        with replace_file(sys.argv[3], "scores", overwrite=True) as tmp:
            open(tmp, "w").write("new")
    else:
        with replace_directory(sys.argv[3], "thing", overwrite=True) as staging:
            for name in ("a.txt", "sub/b.txt"):
                os.makedirs(os.path.dirname(os.path.join(staging, name)), exist_ok=True)
                open(os.path.join(staging, name), "w").write("new")
""")


@pytest.mark.parametrize("kind,point", [
    ("file", "file:staged"), ("file", "file:pending"), ("file", "file:renamed"),
    ("dir", "dir:staged"), ("dir", "dir:swap"), ("dir", "dir:half-swapped"),
    ("dir", "dir:swapped"), ("dir_with_user_file", "dir:half-swapped"),
    ("dir_with_user_file", "dir:swapped")])
def test_kill_at_each_commit_point_leaves_old_or_new_and_the_next_run_cleans(tmp_path, kind,
                                                                             point):
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    work = tmp_path / "work"
    work.mkdir()
    target = work / ("s.json" if kind == "file" else "out")
    if kind == "file":
        write_file(target, "old")
    else:
        write(target, {"a.txt": "old", "sub/b.txt": "old"})
        if kind == "dir_with_user_file":
            (target / "notes.txt").write_text("mine")
    result = subprocess.run(kill_at(point, [str(script), ROOT, kind.split("_")[0],
                                            str(target)]), capture_output=True, text=True)
    assert result.returncode == -9, result.stderr
    # What the kill left: the old output or the new, whole (leftovers are hidden).
    texts = {target.read_text()} if kind == "file" else {
        (target / n).read_text() for n in ("a.txt", "sub/b.txt") if (target / n).exists()}
    if kind != "file" and point == "dir:half-swapped":
        outputs.clean_leftovers(str(target))       # what the next run does first
        texts = {(target / n).read_text() for n in ("a.txt", "sub/b.txt")}
    assert texts in ({"old"}, {"new"}), texts
    if kind == "dir_with_user_file":
        assert (target / "notes.txt").read_text() == "mine"
    # The next run cleans up, sees kbert's file as kbert's, and replaces it.
    if kind == "file":
        write_file(target, "next", overwrite=True)
        assert target.read_text() == "next"
    else:
        write(target, {"a.txt": "next"}, overwrite=True)
        assert (target / "a.txt").read_text() == "next" and not (target / "sub").exists()
    assert hidden_leftovers(str(work)) == []


# ----------------------------------------------------------------------------- run directories
def test_run_directory_resumes_refuses_other_settings_and_restarts_with_overwrite(tmp_path):
    root = str(tmp_path / "run")
    run = RunDirectory(root, "demo", {"lr": 0.1}).open()
    assert not run.resuming
    run.write_text("eval.json", "{}")
    run.write_text("eval.json", '{"again": 1}')           # this run's own file
    os.makedirs(run.claim("checkpoints"), exist_ok=True)
    (tmp_path / "run" / "checkpoints" / "ckpt-1").write_text("c")
    (tmp_path / "run" / "notes.txt").write_text("mine")
    assert RunDirectory(root, "demo", {"lr": 0.1}).open().resuming
    with pytest.raises(OutputError, match=r"other settings \(lr\).*--overwrite"):
        RunDirectory(root, "demo", {"lr": 0.2}).check()
    fresh = RunDirectory(root, "demo", {"lr": 0.2}, overwrite=True).open()
    assert not fresh.resuming
    assert sorted(os.listdir(root)) == [outputs.MARKER_NAME, "notes.txt"]


def test_run_directory_in_a_users_folder(tmp_path):
    root = tmp_path / "run"
    root.mkdir()
    (root / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="not written by kbert; .*--overwrite"):
        RunDirectory(str(root), "demo", {}).check()
    (root / "eval.json").write_text("theirs")
    with pytest.raises(OutputError, match="eval.json was not written by kbert"):
        RunDirectory(str(root), "demo", {}, overwrite=True, names=["eval.json"]).check()
    run = RunDirectory(str(root), "demo", {}, overwrite=True, names=["model"]).open()
    with pytest.raises(OutputError, match="eval.json was not written by kbert"):
        run.write_text("eval.json", "{}")
    assert (root / "eval.json").read_text() == "theirs"


def test_a_folder_the_library_removed_is_released_and_a_users_one_is_kept(tmp_path):
    """Old code: re-running trainers.finetune in a finished run deleted the user's backup/."""
    root = str(tmp_path / "run")
    run = RunDirectory(root, "demo", {}, names=["backup"]).open()
    backup = run.claim("backup")
    os.rmdir(backup)                          # Keras removes its backup at the end of fit
    run.release_missing()
    os.mkdir(backup)                          # then the user makes a folder of that name
    with open(os.path.join(backup, "x"), "w") as f:
        f.write("mine")
    with pytest.raises(OutputError, match="backup was not written by kbert"):
        RunDirectory(root, "demo", {}, names=["backup"]).check()
    with pytest.raises(OutputError, match="backup was not written by kbert"):
        RunDirectory(root, "demo", {}, names=["backup"], overwrite=True).open()
    assert open(os.path.join(backup, "x")).read() == "mine"


def test_set_aside_keeps_damaged_state(tmp_path):
    run = RunDirectory(str(tmp_path / "run"), "demo", {}).open()
    run.write_text("state.json", "{trunc")
    moved = run.set_aside("state.json", "does not load")
    assert open(moved).read() == "{trunc" and not run.owns("state.json")
    assert run.owns(os.path.basename(moved))


def test_a_run_that_wrote_nothing_does_not_block_the_corrected_run(tmp_path):
    """Old code: --max_seq_length above the model's positions left a run directory that then
    refused the corrected run."""
    root = str(tmp_path / "run")
    RunDirectory(root, "demo", {"max_seq_length": 1000}).open()     # then the run failed
    assert not RunDirectory(root, "demo", {"max_seq_length": 128}).open().resuming


def test_overwrite_keeps_the_earlier_run_until_the_new_one_ends(tmp_path):
    """Old code: --overwrite removed the earlier run first; a full disk then lost both."""
    root = str(tmp_path / "run")
    first = RunDirectory(root, "demo", {"lr": 0.1}).open()
    first.write_text("eval.json", "first")
    (tmp_path / "run" / "notes.txt").write_text("mine")
    before = snapshot(root)
    second = RunDirectory(root, "demo", {"lr": 0.2}, overwrite=True).open()
    assert not os.path.exists(os.path.join(root, "eval.json"))      # aside while it runs
    with pytest.raises(OSError):
        with second.guard():
            second.write_text("eval.json", "second, half")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert {k: v for k, v in snapshot(root).items() if k != outputs.MARKER_NAME} == {
        k: v for k, v in before.items() if k != outputs.MARKER_NAME}
    assert (tmp_path / "run" / "eval.json").read_text() == "first"
    assert RunDirectory(root, "demo", {"lr": 0.1}).check()               # the first run, whole
    third = RunDirectory(root, "demo", {"lr": 0.3}, overwrite=True).open()
    with third.guard():
        third.write_text("eval.json", "third")
    assert (tmp_path / "run" / "eval.json").read_text() == "third"
    assert (tmp_path / "run" / "notes.txt").read_text() == "mine"
    assert [n for n in os.listdir(tmp_path) if "kbert-" in n] == []         # nothing aside
