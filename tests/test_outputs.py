"""kbert.outputs: foreign outputs refused, only kbert's files replaced, no overlap with inputs,
hidden staging/backup names cleaned, environment faults as one OutputError."""

import errno
import json
import os

import pytest

from kbert import outputs
from kbert.outputs import OutputError, own_files, replace_directory


def write(directory, files, kind="thing", **kwargs):
    with replace_directory(str(directory), kind, **kwargs) as staging:
        for name, text in files.items():
            path = os.path.join(staging, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write(text)


def hidden_leftovers(parent):
    return [n for n in os.listdir(parent) if ".kbert-" in n]


def test_new_output_is_marked_and_leaves_nothing_beside_it(tmp_path):
    write(tmp_path / "out", {"a.txt": "1", "sub/b.txt": "2"})
    assert own_files(str(tmp_path / "out"), "thing") == ["a.txt", "sub/b.txt"]
    assert own_files(str(tmp_path / "out"), "other") is None
    assert hidden_leftovers(tmp_path) == []


def test_own_output_is_replaced_whole(tmp_path):
    write(tmp_path / "out", {"a.txt": "1", "old.txt": "x"})
    write(tmp_path / "out", {"a.txt": "2"})
    assert sorted(os.listdir(tmp_path / "out")) == [outputs.MARKER_NAME, "a.txt"]
    assert (tmp_path / "out" / "a.txt").read_text() == "2"
    assert hidden_leftovers(tmp_path) == []


@pytest.mark.parametrize("existing", [{"notes.txt": "mine"}, {"sub/x.bin": "mine"}])
def test_foreign_directory_refused_then_only_kbert_files_added(tmp_path, existing):
    out = tmp_path / "out"
    for name, text in existing.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(text)
    with pytest.raises(OutputError, match="not written by kbert"):
        write(out, {"a.txt": "1"})
    assert not (out / "a.txt").exists()
    write(out, {"a.txt": "1"}, overwrite=True)
    write(out, {"a.txt": "2", "c.txt": "3"}, overwrite=True)   # replaces only its own
    write(out, {"c.txt": "4"}, overwrite=True)
    for name, text in existing.items():
        assert (out / name).read_text() == text
    assert not (out / "a.txt").exists() and (out / "c.txt").read_text() == "4"
    assert hidden_leftovers(tmp_path) == []


def test_foreign_file_with_kbert_name_is_never_replaced(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "config.json").write_text("theirs")
    with pytest.raises(OutputError, match="config.json was not written by kbert"):
        write(out, {"config.json": "ours"}, overwrite=True)
    assert (out / "config.json").read_text() == "theirs"
    assert hidden_leftovers(tmp_path) == []


def test_other_kind_counts_as_foreign(tmp_path):
    write(tmp_path / "out", {"a.txt": "1"}, kind="model")
    with pytest.raises(OutputError, match="not written by kbert as a data output"):
        write(tmp_path / "out", {"a.txt": "1"}, kind="data")


def test_replace_own_false_needs_overwrite(tmp_path):
    write(tmp_path / "out", {"a.txt": "1"}, replace_own=False)
    with pytest.raises(OutputError, match="--overwrite"):
        write(tmp_path / "out", {"a.txt": "2"}, replace_own=False)
    write(tmp_path / "out", {"a.txt": "2"}, replace_own=False, overwrite=True)
    assert (tmp_path / "out" / "a.txt").read_text() == "2"


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
        with replace_directory(str(tmp_path / "out"), "thing") as staging:
            (open(os.path.join(staging, "a.txt"), "w")).write("half")
            raise RuntimeError("boom")
    assert (tmp_path / "out" / "a.txt").read_text() == "good"
    assert hidden_leftovers(tmp_path) == []


def test_disk_full_is_one_error_naming_path_and_cause(tmp_path):
    write(tmp_path / "out", {"a.txt": "good"})
    with pytest.raises(OutputError) as error:
        with replace_directory(str(tmp_path / "out"), "thing"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert str(error.value) == f"cannot write {tmp_path / 'out'}: No space left on device"
    assert (tmp_path / "out" / "a.txt").read_text() == "good"
    assert hidden_leftovers(tmp_path) == []


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
    live = tmp_path / f".out.kbert-staging-{os.getpid()}-beef"   # a running writer's: kept
    live.mkdir()
    write(tmp_path / "out", {"a.txt": "new"})
    assert not stale.exists() and live.exists()


def test_backup_of_an_interrupted_swap_is_restored(tmp_path):
    write(tmp_path / "out", {"a.txt": "good"})
    backup = tmp_path / f".out.kbert-backup-{2 ** 22 + 1}-abcd"
    os.replace(tmp_path / "out", backup)        # killed between the two renames
    outputs.clean_leftovers(str(tmp_path / "out"))
    assert (tmp_path / "out" / "a.txt").read_text() == "good"
    assert hidden_leftovers(tmp_path) == []


def test_legacy_kbert_model_directory_is_own(tmp_path):
    out = tmp_path / "m"
    out.mkdir()
    (out / "config.json").write_text(json.dumps({"kbert": {}}))
    (out / "model.weights.h5").write_text("w")
    assert own_files(str(out), "model") == ["config.json", "model.weights.h5"]
    (out / "config.json").write_text(json.dumps({"model_type": "bert"}))
    assert own_files(str(out), "model") is None


@pytest.mark.parametrize("error", [
    RuntimeError("Disable slist on flush dest failure failed (file write failed: errno = 28, "
                 "error message = 'No space left on device')"),   # what h5py raises
    OSError(errno.EROFS, os.strerror(errno.EROFS)),
])
def test_library_faults_become_one_line(tmp_path, error):
    """Old code: kbert.convert on a full disk ended in h5py's RuntimeError traceback."""
    with pytest.raises(OutputError, match=r"^cannot write .*out: (No space left on device|"
                                          r"Read-only file system)$"):
        with replace_directory(str(tmp_path / "out"), "thing"):
            raise error
    assert os.listdir(tmp_path) == []
