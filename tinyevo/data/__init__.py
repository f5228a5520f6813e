"""Datasets: ``load_dataset(name, data_dir=None, seed=0, **options) -> Dataset``.

``digits`` (bundled with scikit-learn, the default) and ``mnist1d`` (generated) work offline;
``mnist``, ``fashion-mnist`` and ``cifar10`` download from their official sources into a cache
folder (SHA-256 checked), or read files already on disk from ``data_dir``; ``npz`` reads a user's
own ``x`` / ``y`` arrays, ``imagefolder`` a user's images in one folder per class, ``wavfolder``
WAV clips (one folder per class, or labels in the file names) as MFCC / log-mel features. Splits are
seeded; the test split is for final reporting only.
"""
from __future__ import annotations

import inspect

# the loaders register themselves
from tinyevo.data import cifar10, digits, idx, imagefolder, mnist1d, npz, wavfolder  # noqa: F401
from tinyevo.data.base import DATASETS, Dataset, check_dataset
from tinyevo.errors import TinyevoError

DEFAULT_DATASET = "digits"


def load_dataset(name: str = DEFAULT_DATASET, data_dir=None, seed: int = 0, **options) -> Dataset:
    """The named dataset split with ``seed``; ``options`` are the loader's (``val_size``, ``path``...)."""
    loader = DATASETS.get(name)
    try:
        inspect.signature(loader).bind(data_dir=data_dir, seed=seed, **options)
    except TypeError:
        allowed = [p for p in inspect.signature(loader).parameters if p not in ("data_dir", "seed")]
        unknown = sorted(set(options) - set(allowed))
        raise TinyevoError(f"dataset {name!r} has no option(s) {', '.join(unknown)}; "
                           f"its options are: {', '.join(allowed)}") from None
    return check_dataset(loader(data_dir=data_dir, seed=seed, **options))


__all__ = ["DATASETS", "DEFAULT_DATASET", "Dataset", "load_dataset"]
