"""Writing an exported model: checks (before any work) that the target can be written, then an atomic
write: a temporary file in the same folder renamed over the target, so an error leaves no file behind;
a C library is written into a temporary folder renamed into place."""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from tinyevo.errors import TinyevoError


def check_output_path(out: str | Path) -> Path:
    """``out`` as a Path, after checking (before any work) that a file can be written there."""
    path = Path(out).expanduser()
    folder = path.parent
    if path.is_dir():
        raise TinyevoError(f"cannot write {path}: it is a folder; give a file name inside it")
    if not folder.exists():
        raise TinyevoError(f"cannot write {path}: folder {folder} does not exist; create it first")
    if not folder.is_dir():
        raise TinyevoError(f"cannot write {path}: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise TinyevoError(f"cannot write {path}: folder {folder} is not writable")
    return path


def check_output_folder(out: str | Path) -> Path:
    """``out`` as the folder of a C library: new, empty, or a library written before (replaced)."""
    path = Path(out).expanduser()
    if path.exists() and not path.is_dir():
        raise TinyevoError(f"cannot write {path}: it is a file; give --out a folder for the C library")
    if path.is_dir() and any(path.iterdir()) and not (path / "metadata.json").is_file():
        raise TinyevoError(f"cannot write {path}: the folder is not empty and holds no tinyevo C "
                           f"library; give a new folder")
    folder = path.parent
    if not folder.is_dir():
        raise TinyevoError(f"cannot write {path}: folder {folder} does not exist; create it first")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise TinyevoError(f"cannot write {path}: folder {folder} is not writable")
    return path


def write_folder_atomically(path: Path, files: dict[str, bytes]) -> None:
    """Write ``files`` (name -> bytes) into a temporary folder beside ``path``, then rename it to
    ``path`` (a library already there is replaced only once the new one is complete)."""
    try:
        temporary = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part"))
    except OSError as error:
        raise TinyevoError(f"cannot write {path}: {error.strerror}") from None
    old = None
    try:
        for name, data in files.items():
            (temporary / name).write_bytes(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o777 & ~umask)  # mkdtemp makes it private; give it a normal folder's mode
        if path.exists():
            old = path.parent / f".{path.name}.old.{os.getpid()}"
            os.replace(path, old)
        os.replace(temporary, path)
    except BaseException as error:
        shutil.rmtree(temporary, ignore_errors=True)
        if old is not None and not path.exists():
            with contextlib.suppress(OSError):
                os.replace(old, path)
        if isinstance(error, OSError):
            raise TinyevoError(f"cannot write {path}: {error.strerror or error}") from None
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it over ``path``."""
    try:
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    except OSError as error:
        raise TinyevoError(f"cannot write {path}: {error.strerror}") from None
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # mkstemp makes it private; give it a normal file's mode
        os.replace(temporary, path)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        if isinstance(error, OSError):
            raise TinyevoError(f"cannot write {path}: {error.strerror or error}") from None
        raise
