"""scikit-learn's bundled handwritten digits (UCI optdigits test set): 1,797 images of 8x8 pixels.

Works offline on a fresh machine, so it is the default dataset. Pixels are counts 0..16, stored as
uint8 with ``scale`` 1/16. There is no official test split: test and validation are seeded shares.
"""
from __future__ import annotations

import numpy as np

from tinyevo.data.base import DATASETS, TEST_SIZE, VAL_SIZE, Dataset, with_seeded_test

PIXEL_MAX = 16


@DATASETS.register("digits")
def load_digits(data_dir=None, seed: int = 0, val_size: float | int = VAL_SIZE,
                test_size: float | int = TEST_SIZE) -> Dataset:
    """``data_dir`` is not used: the data ships with scikit-learn."""
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    x = bunch.images.astype(np.uint8)[..., None]  # (1797, 8, 8, 1), values 0..16
    return with_seeded_test("digits", x, bunch.target, 10, seed, val_size, test_size,
                            scale=1.0 / PIXEL_MAX, meta={"source": "sklearn.datasets.load_digits"})
