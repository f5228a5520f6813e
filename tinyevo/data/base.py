"""The ``Dataset`` every loader returns, the registry of loaders, and seeded splits.

Images are stored NHWC, as the IR sees them: (rows, height, width, channels). A 1-D signal is an
image of height 1. Pixels stay in their compact stored type (uint8 for MNIST, CIFAR) with a
``scale`` that turns them into floats (``x * scale``, 1/255 for bytes); trainers convert one batch
at a time, so 70,000 MNIST digits take 55 MB, not 220 MB.

The test split is for final reporting only: a search reads ``train`` and ``val``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tinyevo.errors import TinyevoError
from tinyevo.registry import Registry

DATASETS: Registry = Registry("dataset")

#: Default share of the training rows held out for validation.
VAL_SIZE = 0.1
#: Default share of all rows held out for test when a dataset has no official test split.
TEST_SIZE = 0.2


@dataclass
class Dataset:
    """Train / validation / test splits of one classification dataset."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    #: Multiply the stored ``x`` by this to get floats (1/255 for uint8 pixels, 1.0 for floats).
    scale: float = 1.0
    #: Where the data came from and how it was split (JSON-friendly), for reports.
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        for part in ("train", "val", "test"):
            x, y = getattr(self, f"x_{part}"), getattr(self, f"y_{part}")
            if x.ndim != 4 or len(x) != len(y):
                raise ValueError(f"{self.name} {part}: x must be (N, H, W, C) with one label per row, "
                                 f"got x {x.shape} and y {y.shape}")

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(height, width, channels) of one example."""
        return tuple(int(v) for v in self.x_train.shape[1:])  # type: ignore[return-value]

    def split(self, part: str) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) of ``"train"``, ``"val"`` or ``"test"``."""
        if part not in ("train", "val", "test"):
            raise ValueError(f"part must be 'train', 'val' or 'test', got {part!r}")
        return getattr(self, f"x_{part}"), getattr(self, f"y_{part}")

    def as_float(self, x: np.ndarray) -> np.ndarray:
        """Rows of ``x`` as float32 values (``x * scale``)."""
        return x.astype(np.float32) * np.float32(self.scale)

    def summary(self) -> dict:
        return {"name": self.name, "input_shape": list(self.input_shape),
                "num_classes": self.num_classes, "train_rows": len(self.y_train),
                "val_rows": len(self.y_val), "test_rows": len(self.y_test), **self.meta}


def rows_of(size: float | int, total: int, what: str) -> int:
    """A size given as a fraction of ``total`` (0 < size < 1) or as a row count."""
    if isinstance(size, float) and 0 <= size < 1:
        rows = int(round(size * total))
    elif isinstance(size, (int, np.integer)) and not isinstance(size, bool) and size >= 0:
        rows = int(size)
    else:
        raise TinyevoError(f"{what} must be a fraction in [0, 1) or a number of rows, got {size!r}")
    if not 0 <= rows < total:
        raise TinyevoError(f"{what}={size!r} leaves no training rows out of {total}; use a smaller {what}")
    return rows


def split_rows(total: int, sizes: list[int], rng: np.random.Generator) -> list[np.ndarray]:
    """Indices of disjoint parts of a seeded permutation: ``sizes`` rows each, then the rest."""
    order = rng.permutation(total)
    bounds = np.cumsum([0, *sizes])
    return [order[a:b] for a, b in zip(bounds[:-1], bounds[1:])] + [order[bounds[-1]:]]


def with_official_test(name: str, x_train, y_train, x_test, y_test, num_classes: int, seed: int,
                       val_size: float | int = VAL_SIZE, scale: float = 1.0, meta=None) -> Dataset:
    """A dataset whose test split is given; validation is a seeded share of the training rows."""
    rng = np.random.default_rng(seed)
    val, train = split_rows(len(y_train), [rows_of(val_size, len(y_train), "val_size")], rng)
    return Dataset(name, x_train[train], labels(y_train[train]), x_train[val], labels(y_train[val]),
                   x_test, labels(y_test), num_classes, scale,
                   {"split_seed": seed, "test_split": "official", **(meta or {})})


def with_seeded_test(name: str, x, y, num_classes: int, seed: int, val_size: float | int = VAL_SIZE,
                     test_size: float | int = TEST_SIZE, scale: float = 1.0, meta=None) -> Dataset:
    """Test is a seeded share of all rows, validation a seeded share of the rest."""
    rng = np.random.default_rng(seed)
    test_rows = rows_of(test_size, len(y), "test_size")
    val_rows = rows_of(val_size, len(y) - test_rows, "val_size")
    test, val, train = split_rows(len(y), [test_rows, val_rows], rng)
    return Dataset(name, x[train], labels(y[train]), x[val], labels(y[val]), x[test], labels(y[test]),
                   num_classes, scale, {"split_seed": seed, "test_split": "seeded", **(meta or {})})


def check_inputs(x: np.ndarray, where: str) -> None:
    """Inputs are real numbers, all finite: no booleans, complex numbers, objects, NaN or infinity."""
    if x.dtype == np.bool_:
        raise TinyevoError(f"{where}: x holds booleans; give numbers (e.g. x.astype(numpy.uint8))")
    if np.issubdtype(x.dtype, np.complexfloating):
        raise TinyevoError(f"{where}: x holds complex numbers; give real ones (e.g. numpy.abs(x))")
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise TinyevoError(f"{where}: x holds {x.dtype} values; give numbers (uint8 pixels or floats)")
    if np.issubdtype(x.dtype, np.floating):
        bad = int(np.count_nonzero(~np.isfinite(x)))
        if bad:
            raise TinyevoError(f"{where}: x holds {bad:,} NaN or infinite value(s); replace them "
                               f"(e.g. numpy.nan_to_num) or drop those rows")


def check_labels(y_train: np.ndarray, num_classes: int, rows: int, where: str) -> None:
    """At least two classes to tell apart, and labels numbered 0..K-1 with K no more than the rows."""
    if len(np.unique(y_train)) < 2:
        raise TinyevoError(f"{where}: the training rows hold {len(np.unique(y_train))} class(es); a "
                           f"classifier needs at least two")
    if num_classes > rows:
        raise TinyevoError(f"{where}: labels go up to {num_classes - 1:,} but there are only {rows:,} "
                           f"rows; number the classes 0..K-1 (numpy.unique(y, return_inverse=True) "
                           f"does it)")


def check_dataset(dataset: Dataset) -> Dataset:
    """``dataset`` if every loader's rules hold for it (``check_inputs``, ``check_labels``)."""
    where = dataset.meta.get("source") or dataset.name
    rows = 0
    for part in ("train", "val", "test"):
        x, y = dataset.split(part)
        check_inputs(x, where)
        rows += len(y)
        if len(y) and (y.min() < 0 or y.max() >= dataset.num_classes):
            raise TinyevoError(f"{where}: {part} labels must be 0..{dataset.num_classes - 1}, got "
                               f"{int(y.min())}..{int(y.max())}")
    check_labels(dataset.y_train, dataset.num_classes, rows, where)
    return dataset


def labels(y: np.ndarray) -> np.ndarray:
    return np.asarray(y, dtype=np.int64).reshape(-1)


def check_data_dir(data_dir, dataset: str) -> Path:
    """``data_dir`` as a Path, or a one-line error when it does not exist."""
    path = Path(data_dir).expanduser()
    if not path.exists():
        raise TinyevoError(f"data dir {str(path)!r} for dataset {dataset!r} does not exist: "
                           f"create it with the dataset's files, or leave --data-dir out to download")
    return path


def folder_entries(folder: Path) -> list[os.DirEntry]:
    """The entries of ``folder`` sorted by name, hidden ones (``.name``) left out; one line when the
    folder cannot be read. What the folder datasets (``imagefolder``, ``wavfolder``) list."""
    try:
        with os.scandir(folder) as scan:
            return sorted((e for e in scan if not e.name.startswith(".")), key=lambda e: e.name)
    except OSError as error:
        raise TinyevoError(f"cannot read folder {str(folder)!r} ({error.strerror or error})") from None
