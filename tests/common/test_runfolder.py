"""Run-folder locks and output paths that cannot destroy inputs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from chemprune.common.runfolder import (
    LOCK_NAME,
    RunFolderBusy,
    RunLock,
    check_output_path,
    same_file,
)
from chemprune.pipeline.train_state import check_new_run

HOLD = """
import sys, time
from chemprune.common.runfolder import RunLock
lock = RunLock(sys.argv[1], what="holder").acquire()
print("held", flush=True)
time.sleep(120)
"""


def _holder(folder):
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_second_writer_refused_while_the_first_lives(tmp_path):
    proc = _holder(tmp_path / "run")
    try:
        with pytest.raises(RunFolderBusy, match=rf"in use by process {proc.pid} on .*\(holder\)"):
            RunLock(tmp_path / "run").acquire()
    finally:
        proc.kill()
        proc.wait()


def test_lock_of_a_killed_process_is_taken_over(tmp_path):
    proc = _holder(tmp_path / "run")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    notes = []
    with RunLock(tmp_path / "run", what="me", log=notes.append) as lock:
        assert lock.held and lock.stale_owner["pid"] == proc.pid
        owner = json.loads((tmp_path / "run" / LOCK_NAME).read_text())
        assert owner["pid"] == os.getpid() and owner["what"] == "me"
    assert len(notes) == 1 and f"process {proc.pid}, no longer running" in notes[0]
    assert (tmp_path / "run" / LOCK_NAME).read_text() == ""  # released: empty


def test_lock_in_one_process_refuses_a_second_handle(tmp_path):
    with RunLock(tmp_path, what="first"):
        with pytest.raises(RunFolderBusy, match=r"\(first\)"):
            RunLock(tmp_path).acquire()
    with RunLock(tmp_path) as again:  # released
        assert again.held and again.stale_owner is None


def test_output_equal_to_an_input_refused(tmp_path):
    model = tmp_path / "m.pt"
    model.write_bytes(b"x")
    link = tmp_path / "link.pt"
    link.symlink_to(model)
    for out in (model, link, tmp_path / "sub" / ".." / "m.pt"):
        with pytest.raises(FileExistsError, match="is the same file as --model"):
            check_output_path(out, inputs=[("--model", model)])
    assert same_file(tmp_path / "new.pt", tmp_path / "new.pt")
    assert check_output_path(tmp_path / "new.pt", inputs=[("--model", model)]).name == "new.pt"
    with pytest.raises(FileExistsError, match="is a directory; give a file name"):
        check_output_path(tmp_path, inputs=[("--model", model)])


@pytest.mark.parametrize("files", [["best.pt"], ["history.jsonl"], ["last.pt", "best.pt"]])
def test_existing_run_of_any_kind_refused(tmp_path, files):
    for name in files:
        (tmp_path / name).write_text("x")
    with pytest.raises(FileExistsError, match="already holds"):
        check_new_run(tmp_path)
    check_new_run(tmp_path / "fresh")


def test_output_path_refused_before_any_work(tmp_path, monkeypatch):
    """Issue 35: an output that cannot be written is refused by the check, naming the option,
    not after the work by the writer ([Errno 17], a temporary file's name)."""
    note = tmp_path / "notes.txt"
    note.write_text("x")
    cases = [
        ("/proc/self/x.pt", PermissionError, r"--out /proc/self/x\.pt is under /proc"),
        ("/sys/x.pt", PermissionError, "is under /sys, a kernel filesystem"),
        ("/dev/null", FileExistsError, "is not a regular file"),
        (note / "m.pt", NotADirectoryError, f"--out {note}/m.pt: {note} is a file, not a folder"),
        (note / "a" / "m.pt", NotADirectoryError, f"{note} is a file, not a folder"),
    ]
    for out, kind, message in cases:
        with pytest.raises(kind, match=message):
            check_output_path(out)
    with pytest.raises(FileExistsError, match=f"--out-dir {note} is a file; give a folder"):
        check_output_path(note, flag="--out-dir", kind="folder")
    # missing folders are created by the writers, as before: fine when the nearest one is writable
    assert check_output_path(tmp_path / "new" / "deeper" / "m.pt").name == "m.pt"
    assert check_output_path(tmp_path / "run", kind="folder").name == "run"

    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode: False if str(p) == str(tmp_path) else real_access(p, mode)
    )
    with pytest.raises(PermissionError, match=f"--out {tmp_path}/new/m.pt: folder {tmp_path} is"):
        check_output_path(tmp_path / "new" / "m.pt")
    with pytest.raises(PermissionError, match="not writable"):
        check_output_path(tmp_path, kind="folder")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into any folder")
def test_unwritable_folder_refused(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        with pytest.raises(PermissionError, match="is not writable"):
            check_output_path(locked / "m.pt")
    finally:
        locked.chmod(0o700)
