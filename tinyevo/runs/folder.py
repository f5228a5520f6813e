"""Where a run may be written (``check_out_dir``) and who is writing it (``RunLock``).

A run folder is new, empty, or a run tinyevo made (it holds one of the run's marker files, e.g. the
store): tinyevo never writes into a folder of the user's own files, never under a file, a system
folder (/proc, /sys, /dev) or a folder it may not write. Only one process writes a run at a time: it
holds ``RUN/.tinyevo.lock`` (an exclusive ``flock``, with its pid inside for the message); a lock
whose owner died is free again, since the system drops a dead process's ``flock``.
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path

from tinyevo.errors import TinyevoError

LOCK_FILE = ".tinyevo.lock"
SYSTEM_FOLDERS = (Path("/proc"), Path("/sys"), Path("/dev"))


def check_out_dir(path: str | Path, markers: tuple[str, ...], flag: str = "--out") -> Path:
    """``path`` if a run may be written there (nothing is written); else a one-line TinyevoError.
    ``markers``: files of which one is in every folder of a run of this kind."""
    path = Path(path).expanduser()
    resolved = path.resolve()
    system = next((f for f in SYSTEM_FOLDERS if resolved == f or f in resolved.parents), None)
    if system is not None:
        raise TinyevoError(f"{flag} {path} is under {system}, a system folder; give a folder of your own")
    if path.exists() and not path.is_dir():
        raise TinyevoError(f"{flag} {path} is a file, not a run folder; give {flag} a folder (new, "
                           f"or a run to resume)")
    existing = next(p for p in (resolved, *resolved.parents) if p.exists())
    if not existing.is_dir():
        raise TinyevoError(f"{flag} {path} is under {existing}, which is a file; give {flag} a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise TinyevoError(f"{flag} {path}: cannot write in {existing} (permission denied or a "
                           f"read-only file system); give {flag} a folder you can write")
    others = [p for p in path.iterdir() if p.name != LOCK_FILE] if existing == resolved else []
    if others and not any((path / m).exists() for m in markers):
        raise TinyevoError(f"{flag} {path} holds other files and no run (no {markers[0]}); tinyevo does "
                           f"not write among files it did not make: give {flag} a new or empty folder")
    return path


class RunInUse(TinyevoError):
    """Another live process holds the run's lock."""


class RunLock:
    """``with RunLock(run_dir):`` this process alone writes the run; a second one is refused with
    the owner's pid. The lock file goes when the owner releases it."""

    def __init__(self, run_dir: str | Path):
        self.path = Path(run_dir) / LOCK_FILE
        self._fd: int | None = None

    def __enter__(self) -> "RunLock":
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise RunInUse(f"{self.path.parent} is in use by another tinyevo process (pid "
                                   f"{owner}); wait for it to finish, or stop it and rerun to resume") from None
            if _same_file(fd, self.path):  # not a file its last owner removed meanwhile
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            self.path.unlink(missing_ok=True)
            os.close(self._fd)
            self._fd = None


def lock_owner(run_dir: str | Path) -> int | None:
    """The pid of the process holding the run's lock, or None when no live process holds it (no
    lock file, or a stale one left by a process that died)."""
    path = Path(run_dir) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        text = os.pread(fd, 64, 0).decode(errors="replace").strip()
        return int(text) if text.isdigit() else -1
    finally:
        os.close(fd)
    return None


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False
