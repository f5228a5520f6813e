"""MNIST and Fashion-MNIST: four IDX files each (LeCun's format), gzipped as distributed.

An IDX file starts with two zero bytes, a type code (0x08 = unsigned byte) and the number of
dimensions, then each dimension as a big-endian int32, then the values in C order.
"""
from __future__ import annotations

import gzip
import math
import struct
from pathlib import Path

import numpy as np

from tinyevo.data.base import DATASETS, VAL_SIZE, Dataset, with_official_test
from tinyevo.data.download import RemoteFile, dataset_file
from tinyevo.errors import TinyevoError

IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

MNIST_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/",
                 "https://storage.googleapis.com/cvdf-datasets/mnist/",
                 "http://yann.lecun.com/exdb/mnist/")
FASHION_MIRRORS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                   "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/")

# (file, sha256, md5). The MD5s are the published ones (torchvision's list, Zalando's README); the
# SHA-256 sums are those recorded by several independent downloaders, which agree with each other.
MNIST_SUMS = [
    ("train-images-idx3-ubyte.gz", "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
     "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
    ("train-labels-idx1-ubyte.gz", "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
     "d53e105ee54ea40749a09fcbcd1e9432"),
    ("t10k-images-idx3-ubyte.gz", "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
     "9fb629c4189551a2d022fa330f9573f3"),
    ("t10k-labels-idx1-ubyte.gz", "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
     "ec29112dd5afa0611ce80d1b7f02629c"),
]
FASHION_SUMS = [
    ("train-images-idx3-ubyte.gz", "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
     "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
    ("train-labels-idx1-ubyte.gz", "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
     "25c81989df183df01b3e8a0aad5dffbe"),
    ("t10k-images-idx3-ubyte.gz", "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
     "bef4ecab320f06d8554ea6380940ec79"),
    ("t10k-labels-idx1-ubyte.gz", "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
     "bb300cfdad3c16e7a12a480ee83cd310"),
]


def remote_files(sums, mirrors) -> list[RemoteFile]:
    return [RemoteFile(name, tuple(base + name for base in mirrors), sha256, md5)
            for name, sha256, md5 in sums]


MNIST_FILES = remote_files(MNIST_SUMS, MNIST_MIRRORS)
FASHION_FILES = remote_files(FASHION_SUMS, FASHION_MIRRORS)


def read_idx(path: Path) -> np.ndarray:
    """The array in an IDX file, gzipped or not; a one-line error when it is not a whole IDX file."""
    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as error:
            raise TinyevoError(f"{path}: damaged gzip file ({error}); download it again") from None
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] not in IDX_TYPES:
        raise TinyevoError(f"{path}: not an IDX file (bad magic number {raw[:4].hex()})")
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    dtype = np.dtype(IDX_TYPES[raw[2]])
    offset = 4 + 4 * ndim
    if len(raw) - offset != math.prod(dims) * dtype.itemsize:
        raise TinyevoError(f"{path}: IDX header says {dims} but the file holds {len(raw) - offset} "
                           f"bytes of values; the file is truncated or damaged")
    return np.frombuffer(raw, dtype, offset=offset).reshape(dims).astype(dtype.newbyteorder("="))


def load_idx_dataset(name: str, files: list[RemoteFile], data_dir, seed: int, val_size, cache_dir,
                     download: bool, mirrors) -> Dataset:
    if mirrors:
        files = [remote.with_mirrors(mirrors) for remote in files]
    paths = [dataset_file(remote, name, data_dir, cache_dir, download,
                          local_names=(remote.filename.removesuffix(".gz"),)) for remote in files]
    x_train, y_train, x_test, y_test = (read_idx(p) for p in paths)
    for x, y, part in ((x_train, y_train, "train"), (x_test, y_test, "t10k")):
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise TinyevoError(f"dataset {name!r}: {part} images {x.shape} and labels {y.shape} do not "
                               f"match; expected (N, H, W) images and N labels")
    return with_official_test(name, x_train[..., None], y_train, x_test[..., None], y_test, 10, seed,
                              val_size, scale=1.0 / 255,
                              meta={"source": str(paths[0].parent)})


@DATASETS.register("mnist")
def load_mnist(data_dir=None, seed: int = 0, val_size: float | int = VAL_SIZE, cache_dir=None,
               download: bool = True, mirrors=None) -> Dataset:
    """60,000 / 10,000 handwritten digits, 28x28; validation is a seeded share of the 60,000."""
    return load_idx_dataset("mnist", MNIST_FILES, data_dir, seed, val_size, cache_dir, download, mirrors)


@DATASETS.register("fashion-mnist")
def load_fashion_mnist(data_dir=None, seed: int = 0, val_size: float | int = VAL_SIZE, cache_dir=None,
                       download: bool = True, mirrors=None) -> Dataset:
    """Zalando's 60,000 / 10,000 clothing images, 28x28, in MNIST's format."""
    return load_idx_dataset("fashion-mnist", FASHION_FILES, data_dir, seed, val_size, cache_dir,
                            download, mirrors)
