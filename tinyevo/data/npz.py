"""A user's own data: a NumPy ``.npz`` file with ``x`` (inputs) and ``y`` (integer class labels).

``x`` may be (N, H, W, C) images, (N, H, W) single-channel images, or (N, L) 1-D signals (read as
height 1, one channel). uint8 inputs are read as pixels 0..255 (scale 1/255), floats as they are.
When the file also holds ``x_test`` and ``y_test`` they are the test split; otherwise the test
split is a seeded share of the rows. Validation is a seeded share of the training rows. The file
is read with ``allow_pickle=False``: it cannot run code.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from tinyevo.data.base import (DATASETS, TEST_SIZE, VAL_SIZE, Dataset, check_data_dir, check_inputs,
                               check_labels, with_official_test, with_seeded_test)
from tinyevo.errors import TinyevoError


def npz_path(path, data_dir) -> Path:
    """The file to read: ``path`` (relative to ``data_dir`` when both are given) or ``data_dir`` itself."""
    if path is None and data_dir is not None and str(data_dir).endswith(".npz"):
        path, data_dir = data_dir, None
    if path is None:
        raise TinyevoError("dataset 'npz' needs the file: pass path=FILE.npz (or --data-dir FILE.npz)")
    path = Path(path).expanduser()
    if data_dir is not None and not path.is_absolute():
        path = check_data_dir(data_dir, "npz") / path
    if not path.is_file():
        raise TinyevoError(f"npz file {str(path)!r} does not exist; give the path of a .npz with "
                           f"arrays x and y")
    return path


def as_images(x: np.ndarray, where: str) -> np.ndarray:
    """(N, H, W, C) from (N, H, W, C), (N, H, W) or (N, L)."""
    if x.ndim and not len(x):
        raise TinyevoError(f"{where}: x has no rows; give at least one example per class")
    if x.ndim == 2:
        return x[:, None, :, None]
    if x.ndim == 3:
        return x[..., None]
    if x.ndim == 4:
        return x
    raise TinyevoError(f"{where}: x has shape {x.shape}; expected (N, H, W, C), (N, H, W) or (N, L)")


def class_labels(y: np.ndarray, rows: int, where: str) -> np.ndarray:
    if y.ndim != 1 or len(y) != rows:
        raise TinyevoError(f"{where}: y must hold one label per row of x ({rows}), got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer) or (len(y) and y.min() < 0):
        raise TinyevoError(f"{where}: y must be non-negative integer class labels, got {y.dtype}")
    return y.astype(np.int64)


def read_arrays(path: Path, what: str = ".npz file") -> dict[str, np.ndarray]:
    """Every array of a .npz (or .npy) file, read without pickle; one line when it is not one. Its
    message never suggests loading pickled data: that would run code from the file."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            if isinstance(archive, np.ndarray):
                raise ValueError("a single .npy array, not an archive of named arrays")
            return {key: archive[key] for key in archive.files}
    except PermissionError:
        raise TinyevoError(f"{path}: permission denied; make the {what} readable") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError) as error:
        reason = ("not a NumPy .npz archive" if "pickle" in str(error) else
                  " ".join(str(error).split())[:120] or type(error).__name__)
        raise TinyevoError(f"{path}: not a readable {what} ({reason}); save it with "
                           f"numpy.savez") from None


def read_npz(path: Path) -> dict[str, np.ndarray]:
    arrays = read_arrays(path)
    missing = {"x", "y"} - set(arrays)
    if missing:
        raise TinyevoError(f"{path}: lacks array(s) {sorted(missing)}; save it with "
                           f"numpy.savez(path, x=inputs, y=labels)")
    return arrays


@DATASETS.register("npz")
def load_npz(data_dir=None, seed: int = 0, path=None, val_size: float | int = VAL_SIZE,
             test_size: float | int = TEST_SIZE, num_classes: int | None = None,
             name: str | None = None) -> Dataset:
    """Load ``path``, e.g. the shared MNIST with a seeded 60,000 / 10,000 split:
    ``load_dataset("npz", path="../shared/datasets/mnist70k.npz", test_size=10000)``."""
    file = npz_path(path, data_dir)
    arrays = read_npz(file)
    x = as_images(arrays["x"], str(file))
    y = class_labels(arrays["y"], len(x), str(file))
    check_inputs(x, str(file))  # before the pixels become floats
    has_test = "x_test" in arrays and "y_test" in arrays
    x_test = as_images(arrays["x_test"], str(file)) if has_test else x[:0]
    y_test = class_labels(arrays["y_test"], len(x_test), str(file)) if has_test else y[:0]
    check_inputs(x_test, str(file))
    if x_test.shape[1:] != x.shape[1:]:
        raise TinyevoError(f"{file}: x_test rows are {x_test.shape[1:]} but x rows are {x.shape[1:]}")
    classes = int(num_classes or max(y.max(initial=0), y_test.max(initial=0)) + 1)
    scale, x, x_test = pixel_scale(x, x_test)
    common = dict(scale=scale, meta={"source": str(file)})
    if has_test:
        return with_official_test(name or file.stem, x, y, x_test, y_test, classes, seed, val_size, **common)
    return with_seeded_test(name or file.stem, x, y, classes, seed, val_size, test_size, **common)


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    """Save ``arrays`` (x, y[, x_test, y_test]) as a .npz this loader reads, checked first (as
    ``load_dataset`` checks every dataset), written atomically; a file already there must hold the
    same arrays (a run's data cannot change)."""
    path = Path(path)
    where = "data"
    x = as_images(np.asarray(arrays["x"]), where)
    y = class_labels(np.asarray(arrays["y"]), len(x), where)
    check_inputs(x, where)
    rows, top = len(y), int(y.max(initial=0))
    if "x_test" in arrays:
        x_test = as_images(np.asarray(arrays["x_test"]), f"{where} (test)")
        y_test = class_labels(np.asarray(arrays["y_test"]), len(x_test), f"{where} (test)")
        check_inputs(x_test, f"{where} (test)")
        rows, top = rows + len(y_test), max(top, int(y_test.max(initial=0)))
        if x_test.shape[1:] != x.shape[1:]:
            raise TinyevoError(f"{where}: x_test rows are {x_test.shape[1:]} but x rows are {x.shape[1:]}")
    check_labels(y, top + 1, rows, where)
    if path.is_file():
        if _same_arrays(read_npz(path), arrays):
            return path
        raise TinyevoError(f"{path} holds other data than data= now gives; a run's data cannot change: "
                           f"use a new out folder")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    with open(partial, "wb") as handle:
        np.savez(handle, **{name: np.asarray(value) for name, value in arrays.items()})
    partial.replace(path)
    return path


def _same_arrays(stored: dict[str, np.ndarray], arrays: dict[str, np.ndarray]) -> bool:
    return set(stored) == set(arrays) and all(
        stored[k].shape == np.shape(arrays[k]) and np.array_equal(stored[k], arrays[k]) for k in arrays)


def pixel_scale(x: np.ndarray, x_test: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """uint8 stays uint8 with scale 1/255; anything else becomes float32 with scale 1."""
    if x.dtype == np.uint8 and x_test.dtype == np.uint8:
        return 1.0 / 255, x, x_test
    return 1.0, x.astype(np.float32), x_test.astype(np.float32)
