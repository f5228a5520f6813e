"""Download a published file once, check its checksum, keep it in a cache folder.

A download is written to a temporary name beside its target and renamed into place only when its
SHA-256 (or, where only that is published, MD5) matches, so a corrupt or truncated download is
reported and never cached. The cache folder is ``$TINYEVO_CACHE_DIR`` or
``~/.cache/tinyevo/datasets``.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from tinyevo.data.base import check_data_dir
from tinyevo.errors import TinyevoError

CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class RemoteFile:
    """A file as published: its name, mirrors tried in order, and its checksums."""

    filename: str
    urls: tuple[str, ...]
    sha256: str | None = None
    md5: str | None = None

    def with_mirrors(self, bases: list[str] | tuple[str, ...]) -> "RemoteFile":
        """The same file fetched from other base URLs (``base + filename``)."""
        urls = tuple(base.rstrip("/") + "/" + self.filename for base in bases)
        return RemoteFile(self.filename, urls, self.sha256, self.md5)


def default_cache_dir() -> Path:
    configured = os.environ.get("TINYEVO_CACHE_DIR")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "tinyevo" / "datasets"


def file_digest(path: Path, algorithm: str) -> str:
    value = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        while block := handle.read(CHUNK_BYTES):
            value.update(block)
    return value.hexdigest()


def checksum_problem(path: Path, remote: RemoteFile) -> str | None:
    """None when ``path`` matches the published checksum (SHA-256 first), else what differs."""
    for algorithm in ("sha256", "md5"):
        expected = getattr(remote, algorithm)
        if expected:
            actual = file_digest(path, algorithm)
            if actual == expected.lower():
                return None
            return f"{algorithm} is {actual}, expected {expected.lower()}"
    return None


def fetch(remote: RemoteFile, cache_dir=None, download: bool = True, timeout_s: float = 60.0) -> Path:
    """The path of ``remote`` in the cache, downloading (and checking) it when it is not there."""
    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    target = folder / remote.filename
    if target.exists():
        if checksum_problem(target, remote) is None:
            return target
        target.unlink()  # a damaged cached copy is fetched again
    if not download:
        raise TinyevoError(f"{remote.filename} is not in the cache folder {str(folder)!r} and downloads "
                           f"are off: download it from {remote.urls[0]} and pass its folder as --data-dir")
    folder.mkdir(parents=True, exist_ok=True)
    problems = []
    for url in remote.urls:
        problem = _download(url, target, remote, timeout_s)
        if problem is None:
            return target
        problems.append(problem)
    raise TinyevoError(f"could not download {remote.filename}: {'; '.join(problems)}; download it "
                       f"yourself into a folder and pass that folder as --data-dir")


def _download(url: str, target: Path, remote: RemoteFile, timeout_s: float) -> str | None:
    """Download ``url`` to ``target``; None on success, else why it failed (nothing is left behind)."""
    partial = target.with_name(f"{target.name}.part{os.getpid()}")
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "tinyevo"})
        with urllib.request.urlopen(request, timeout=timeout_s) as response, open(partial, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=remote.filename, disable=None,
                      leave=False) as progress:
                while block := response.read(CHUNK_BYTES):
                    out.write(block)
                    progress.update(len(block))
        problem = checksum_problem(partial, remote)
        if problem is not None:
            return f"{url}: checksum mismatch ({problem}), the corrupt download was deleted"
        os.replace(partial, target)
        return None
    except (OSError, ValueError, http.client.HTTPException) as error:
        return f"{url}: {error}"
    finally:
        partial.unlink(missing_ok=True)


def local_file(data_dir, names: list[str], dataset: str, source: str) -> Path:
    """The first of ``names`` found in the user's ``data_dir``, or a one-line error saying what is missing."""
    folder = check_data_dir(data_dir, dataset)
    for name in names:
        if (folder / name).exists():
            return folder / name
    raise TinyevoError(f"dataset {dataset!r}: {' or '.join(names)} not found in {str(folder)!r}; "
                       f"download it from {source} or leave --data-dir out to download it")


def dataset_file(remote: RemoteFile, dataset: str, data_dir=None, cache_dir=None, download: bool = True,
                 local_names: tuple[str, ...] = ()) -> Path:
    """A file of a dataset: from ``data_dir`` when given (no download), else from the cache."""
    if data_dir is not None:
        return local_file(data_dir, [remote.filename, *local_names], dataset, remote.urls[0])
    return fetch(remote, cache_dir, download)
