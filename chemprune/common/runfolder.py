"""Run folders that two writers cannot corrupt, and outputs that cannot overwrite their inputs.

:class:`RunLock` holds an exclusive ``flock`` on ``<folder>/.lock`` for as long as a command
writes into the folder; the file records the owner (PID, host, start time, command) so a second
writer is refused with a message that says who holds it. The lock lives with the process: when
the owner dies, even by ``kill -9``, the kernel releases it, so a lock left behind by a dead
process is stale by construction and the next writer takes it over (and says so).

Shared by ``chemprune`` and ``reaction-nmt``.
"""

from __future__ import annotations

import datetime
import errno
import json
import os
import socket
import stat
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

__all__ = [
    "RunFolderBusy",
    "RunLock",
    "LOCK_NAME",
    "SPECIAL_ROOTS",
    "check_output_path",
    "same_file",
]

LOCK_NAME = ".lock"


class RunFolderBusy(FileExistsError):
    """Another live process holds the run folder's lock."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


class RunLock:
    """An exclusive lock on a run folder (a context manager; re-entrant within one object).

    Args:
        folder: the run folder (created if missing).
        what: the command taking it, shown to a second writer (e.g. ``"chemprune train"``).
        log: where the stale-lock note goes.

    Raises (on ``acquire``):
        RunFolderBusy: another live process holds it; the message names its PID, host, start
            time and command.
    """

    def __init__(
        self,
        folder: os.PathLike | str,
        *,
        what: str = "chemprune",
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.what = what
        self.log = log or (lambda msg: print(msg, file=sys.stderr))
        self._fd: int | None = None
        self.stale_owner: dict[str, Any] | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def owner(self) -> dict[str, Any] | None:
        """What the lock file says about its last owner (``None`` if empty or unreadable)."""
        try:
            text = self.path.read_text(encoding="utf-8").strip()
            return json.loads(text) if text else None
        except (OSError, ValueError):
            return None

    def acquire(self) -> RunLock:
        import fcntl

        if self._fd is not None:
            return self
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            info = self.owner() or {}
            who = f"process {info.get('pid', '?')}"
            if info.get("host"):
                who += f" on {info['host']}"
            since = f" since {info['started']}" if info.get("started") else ""
            cmd = f" ({info['what']})" if info.get("what") else ""
            raise RunFolderBusy(
                f"run folder {self.folder} is in use by {who}{since}{cmd}; wait for it to "
                "finish, stop it, or choose another --out"
            ) from None
        previous = None
        try:
            previous = json.loads(os.pread(fd, 1 << 16, 0).decode("utf-8") or "null")
        except (OSError, ValueError, UnicodeDecodeError):
            previous = None
        if isinstance(previous, dict) and previous.get("pid") not in (None, os.getpid()):
            self.stale_owner = previous
            alive = previous.get("host") == socket.gethostname() and _pid_alive(
                int(previous["pid"])
            )
            state = "" if alive else ", no longer running"
            self.log(
                f"note: run folder {self.folder}: taking over the lock left by process "
                f"{previous['pid']}{state} (it was not released, e.g. after kill -9)"
            )
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "what": self.what,
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode("utf-8"), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        import fcntl

        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)  # an empty lock file: nobody holds it
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def __del__(self) -> None:  # pragma: no cover - safety net
        try:
            self.release()
        except Exception:
            pass


def same_file(a: os.PathLike | str, b: os.PathLike | str) -> bool:
    """Whether two paths name the same file (after links and ``..``; also when ``a`` does not
    exist yet but resolves to ``b``)."""
    pa, pb = Path(a), Path(b)
    try:
        if pa.exists() and pb.exists():
            return os.path.samefile(pa, pb)
    except OSError:
        pass
    return pa.resolve() == pb.resolve()


#: kernel filesystems: nothing a command writes belongs there
SPECIAL_ROOTS = (Path("/proc"), Path("/sys"))


def _under(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _check_writable_place(p: Path, flag: str, kind: str) -> None:
    """Refuse an output under /proc or /sys, an existing special file (a device, a FIFO: an
    atomic write would replace it), a path through a file, or one whose nearest existing folder
    cannot be written (missing folders are created by the writers, as before)."""
    absolute = Path(os.path.abspath(p))
    try:
        resolved = p.resolve()
    except (OSError, RuntimeError):  # a symlink loop
        resolved = absolute
    for root in SPECIAL_ROOTS:
        if _under(absolute, root) or _under(resolved, root):
            raise PermissionError(
                f"{flag} {p} is under {root}, a kernel filesystem; choose a path in an ordinary "
                "folder"
            )
    try:
        st = os.stat(p)
    except FileNotFoundError:
        st = None
    except NotADirectoryError:
        st = None  # a file on the way: named below
    except OSError as err:
        raise PermissionError(f"{flag} {p}: {(err.strerror or str(err)).lower()}") from None
    if st is not None and kind == "file" and not stat.S_ISREG(st.st_mode):
        if stat.S_ISDIR(st.st_mode):
            raise FileExistsError(f"{flag} {p} is a directory; give a file name")
        raise FileExistsError(
            f"{flag} {p} is not a regular file (a device, pipe or socket); give a file path"
        )
    # the nearest folder that exists: where the file (or the folders to it) will be created
    folder = p if (kind == "folder" and st is not None) else p.parent
    while True:
        try:
            fst = os.stat(folder)
        except FileNotFoundError:
            if folder.parent == folder:
                break
            folder = folder.parent
            continue
        except NotADirectoryError:
            folder = folder.parent  # a file further up: found on the next step
            continue
        except OSError as err:
            raise PermissionError(
                f"{flag} {p}: cannot use folder {folder}: {(err.strerror or str(err)).lower()}"
            ) from None
        if not stat.S_ISDIR(fst.st_mode):
            raise NotADirectoryError(
                f"{flag} {p}: {folder} is a file, not a folder; choose another path"
            )
        if not os.access(folder, os.W_OK | os.X_OK):
            raise PermissionError(
                f"{flag} {p}: folder {folder} is not writable (permission denied or a "
                "read-only filesystem)"
            )
        break


def check_output_path(
    out: os.PathLike | str,
    *,
    flag: str = "--out",
    inputs: Iterable[tuple[str, os.PathLike | str | None]] = (),
    kind: str = "file",
) -> Path:
    """Refuse, before any work, an output that would destroy an input or cannot be written.

    Args:
        out: the output path.
        flag: the option it came from, for the message.
        inputs: ``(flag, path)`` of every input of the command.
        kind: ``"file"`` (``out`` must not be a directory) or ``"folder"``.

    Raises:
        FileExistsError: ``out`` is one of the inputs (``"--out x.pt is the same file as
            --model; writing it would destroy the input"``), a directory where a file is meant
            (a file where a folder is), or an existing device, FIFO or socket.
        NotADirectoryError: a file stands where a folder on the way must be
            (``"--out notes.txt/m.pt: notes.txt is a file, not a folder"``).
        PermissionError: ``out`` is under ``/proc`` or ``/sys``, or the folder it goes in (the
            nearest existing one, when the writer creates the rest) cannot be written.
    """
    if kind not in ("file", "folder"):
        raise ValueError(f"kind must be 'file' or 'folder', got {kind!r}")
    p = Path(out)
    if not str(out).strip():
        raise FileNotFoundError(f"{flag} is empty; give a path")
    for in_flag, path in inputs:
        if path is not None and same_file(p, path):
            raise FileExistsError(
                f"{flag} {p} is the same file as {in_flag}; writing it would destroy the input "
                "(choose another output)"
            )
    if kind == "folder" and p.exists() and not p.is_dir():
        raise FileExistsError(f"{flag} {p} is a file; give a folder")
    _check_writable_place(p, flag, kind)
    return p
