"""CIFAR-10, "python version": five training batches and a test batch of 10,000 32x32 colour images.

Each batch is a Python pickle (the official format) of a dict with ``b"data"`` (N x 3072 bytes,
the red plane, then green, then blue, each row-major) and ``b"labels"``. Batches are read straight
from the tarball, or from ``cifar-10-batches-py/`` when the user has extracted it. The unpickler
only builds dicts, lists, strings and numpy arrays: a batch cannot run code.
"""
from __future__ import annotations

import codecs
import io
import pickle
import tarfile
from pathlib import Path

import numpy as np

from tinyevo.data.base import DATASETS, VAL_SIZE, Dataset, check_data_dir, with_official_test
from tinyevo.data.download import RemoteFile, fetch, local_file
from tinyevo.errors import TinyevoError

try:  # numpy >= 2
    from numpy._core.multiarray import _reconstruct
except ImportError:  # numpy 1.x
    from numpy.core.multiarray import _reconstruct

FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]
TEST_BATCH = "test_batch"
# MD5 as published on the CIFAR page; SHA-256 as Keras and other downloaders record it.
REMOTE = RemoteFile("cifar-10-python.tar.gz", ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",),
                    sha256="6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
                    md5="c58f30108f718f92721af3b95e74349a")

# What a batch written by Python 2 (the official files) or by Python 3 (protocol 2) refers to.
_ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}


class BatchUnpickler(pickle.Unpickler):
    """Unpickles only what a CIFAR batch holds."""

    def find_class(self, module, name):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"a CIFAR batch does not contain {module}.{name}")
        if name == "_reconstruct":
            return _reconstruct
        if name == "encode":
            return codecs.encode
        return getattr(np, name)


def read_batch(raw: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    """(images NHWC uint8, labels) of one pickled batch."""
    try:
        batch = BatchUnpickler(io.BytesIO(raw), encoding="bytes").load()
        data, labels = np.asarray(batch[b"data"], dtype=np.uint8), np.asarray(batch[b"labels"])
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError) as error:
        raise TinyevoError(f"{where}: not a CIFAR-10 python batch ({error})") from None
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
        raise TinyevoError(f"{where}: expected N x 3072 pixels and N labels, got {data.shape} "
                           f"and {labels.shape}")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def batches_from_tar(path: Path) -> dict[str, bytes]:
    try:
        with tarfile.open(path, "r:*") as archive:
            members = {Path(m.name).name: m for m in archive.getmembers() if m.isfile()}
            return {name: archive.extractfile(members[name]).read()
                    for name in [*TRAIN_BATCHES, TEST_BATCH] if name in members}
    except (tarfile.TarError, OSError, EOFError) as error:
        raise TinyevoError(f"{path}: damaged CIFAR-10 archive ({error}); download it again") from None


def batches_from_folder(folder: Path) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in [*TRAIN_BATCHES, TEST_BATCH]
            if (folder / name).is_file()}


def find_batches(data_dir, cache_dir, download: bool, mirrors) -> tuple[dict[str, bytes], str]:
    """The raw batches and where they came from: data_dir (tarball or extracted folder) or the cache."""
    if data_dir is None:
        remote = REMOTE.with_mirrors(mirrors) if mirrors else REMOTE
        path = fetch(remote, cache_dir, download)
        return batches_from_tar(path), str(path)
    folder = check_data_dir(data_dir, "cifar10")
    for candidate in (folder / FOLDER, folder):
        if (candidate / TEST_BATCH).is_file():
            return batches_from_folder(candidate), str(candidate)
    path = local_file(folder, [REMOTE.filename], "cifar10", REMOTE.urls[0])
    return batches_from_tar(path), str(path)


@DATASETS.register("cifar10")
def load_cifar10(data_dir=None, seed: int = 0, val_size: float | int = VAL_SIZE, cache_dir=None,
                 download: bool = True, mirrors=None) -> Dataset:
    """50,000 / 10,000 images of 10 classes; validation is a seeded share of the 50,000."""
    raw, source = find_batches(data_dir, cache_dir, download, mirrors)
    missing = [name for name in [*TRAIN_BATCHES, TEST_BATCH] if name not in raw]
    if missing:
        raise TinyevoError(f"cifar10: {source} lacks {', '.join(missing)}; expected the five data "
                           f"batches and test_batch of {REMOTE.filename}")
    train = [read_batch(raw[name], f"{source}:{name}") for name in TRAIN_BATCHES]
    x_test, y_test = read_batch(raw[TEST_BATCH], f"{source}:{TEST_BATCH}")
    x_train = np.concatenate([x for x, _ in train])
    y_train = np.concatenate([y for _, y in train])
    return with_official_test("cifar10", x_train, y_train, x_test, y_test, 10, seed, val_size,
                              scale=1.0 / 255, meta={"source": source})
