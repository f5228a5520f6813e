"""Arrays decoded from a user's files, kept in the dataset cache folder so the next load is fast.

An entry is one ``.npz`` (no pickle) named by a hash of what was decoded and how (``key``: the
folder and the loader's options), holding the arrays and a ``fingerprint`` of the source files
(names, sizes, modification times). A later load with the same key reuses the entry only when the
fingerprint still matches; otherwise it decodes again and replaces it, so a folder keeps one entry
per set of options. The cache is never needed: an entry that cannot be read is decoded again, one
that cannot be written is skipped. The folder is that of the downloads
(``tinyevo.data.download.default_cache_dir``: ``$TINYEVO_CACHE_DIR`` or
``~/.cache/tinyevo/datasets``); deleting it is always safe.
"""
from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np

from tinyevo.data.download import default_cache_dir

FORMAT_VERSION = 1
FINGERPRINT = "_fingerprint"


def files_fingerprint(root: Path, paths) -> str:
    """A hash of the files' paths under ``root``, sizes and modification times: it changes when any
    file is added, removed, renamed or rewritten."""
    digest, prefix = hashlib.sha256(), len(str(root))
    for path in paths:
        stat = os.stat(path)
        digest.update(f"{str(path)[prefix:]}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def entry_path(kind: str, key: dict, cache_dir=None) -> Path:
    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    text = json.dumps({"format": FORMAT_VERSION, **key}, sort_keys=True, default=str)
    return folder / f"{kind}-{hashlib.sha256(text.encode()).hexdigest()[:24]}.npz"


def read_entry(path: Path, fingerprint: str) -> dict[str, np.ndarray] | None:
    """The arrays of the entry, or None when it is missing, unreadable or of other files."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            if FINGERPRINT not in archive.files or str(archive[FINGERPRINT]) != fingerprint:
                return None
            return {name: archive[name] for name in archive.files if name != FINGERPRINT}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError):
        return None


def write_entry(path: Path, fingerprint: str, arrays: dict[str, np.ndarray]) -> None:
    """Write the entry under a temporary name, then rename it into place; skipped when it cannot be."""
    partial = path.with_name(f"{path.stem}.part{os.getpid()}.npz")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(partial, **arrays, **{FINGERPRINT: np.array(fingerprint)})
        os.replace(partial, path)
    except OSError:
        pass
    finally:
        partial.unlink(missing_ok=True)


def cached_arrays(kind: str, key: dict, fingerprint: str, decode: Callable[[], dict[str, np.ndarray]],
                  cache_dir=None) -> dict[str, np.ndarray]:
    """``decode()``'s arrays, from the cache entry of ``key`` when its fingerprint matches."""
    path = entry_path(kind, key, cache_dir)
    arrays = read_entry(path, fingerprint)
    if arrays is None:
        arrays = decode()
        write_entry(path, fingerprint, arrays)
    return arrays
