"""MNIST-1D (Greydanus 2020, github.com/greydanus/mnist1d), generated offline by its published procedure.

Ten hand-drawn 1-D templates of 12 points are padded with 36..60 zeros, stretched to 72 points,
scaled, translated (circularly) by up to 48 points, have correlated noise put in their flat parts
and iid noise everywhere, are sheared, and are downsampled to 40 points. 5,000 signals (500 per
class) are shuffled, standardized together, and cut into 4,000 train and 1,000 test signals.

The procedure and constants are the published ones; the random numbers come from a
``numpy.random.Generator`` (``generation_seed``, 42 as published), so the signals are statistically
the same as the published file's, not bit-identical to it. Signals are (1, 40, 1): height 1.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d

from tinyevo.data.base import DATASETS, VAL_SIZE, Dataset, with_official_test

TEMPLATES = np.array([
    [5, 6, 6.5, 6.75, 7, 7, 7, 7, 6.75, 6.5, 6, 5],
    [5, 3, 3, 3.4, 3.8, 4.2, 4.6, 5, 5.4, 5.8, 5, 5],
    [5, 6, 6.5, 6.5, 6, 5.25, 4.75, 4, 3.5, 3.5, 4, 5],
    [5, 6, 6.5, 6.5, 6, 5, 5, 6, 6.5, 6.5, 6, 5],
    [5, 4.4, 3.8, 3.2, 2.6, 2.6, 5, 5, 5, 5, 5, 5],
    [5, 3, 3, 3, 3, 5, 6, 6.5, 6.5, 6, 4.5, 5],
    [5, 4, 3.5, 3.25, 3, 3, 3, 3, 3.25, 3.5, 4, 5],
    [5, 7, 7, 6.6, 6.2, 5.8, 5.4, 5, 4.6, 4.2, 5, 5],
    [5, 4, 3.5, 3.5, 4, 5, 5, 4, 3.5, 3.5, 4, 5],
    [5, 4, 3.5, 3.5, 4, 5, 5, 5, 5, 4.7, 4.3, 5],
])


@dataclass(frozen=True)
class Mnist1dConfig:
    """The published generation settings (``get_dataset_args`` of the reference code)."""

    num_samples: int = 5000
    train_split: float = 0.8
    template_len: int = 12
    padding: tuple[int, int] = (36, 60)
    scale_coeff: float = 0.4
    max_translation: int = 48
    corr_noise_scale: float = 0.25
    iid_noise_scale: float = 2e-2
    shear_scale: float = 0.75
    final_seq_length: int = 40


def templates() -> np.ndarray:
    """The ten templates whitened, shifted to start at 0, and divided by 6."""
    x = TEMPLATES - TEMPLATES.mean(1, keepdims=True)
    x = x / x.std(1, keepdims=True)
    return (x - x[:, :1]) / 6.0


def resample(signal: np.ndarray, length: int) -> np.ndarray:
    """Linear interpolation of ``signal`` onto ``length`` evenly spaced points."""
    return np.interp(np.linspace(0, 1, length), np.linspace(0, 1, len(signal)), signal)


def transform(template: np.ndarray, rng: np.random.Generator, cfg: Mnist1dConfig) -> np.ndarray:
    """One noisy example of a template, random draws in the reference order."""
    low, high = cfg.padding
    pad = low + int(rng.random() * (high - low + 1))
    x = np.concatenate([template + 1e-8, np.zeros(pad)])
    x = resample(x, cfg.template_len + high)
    x = x * (1 + cfg.scale_coeff * (rng.random() - 0.5))
    x = np.roll(x, int(rng.integers(cfg.max_translation)))
    flat = x == 0
    x = np.where(flat, gaussian_filter1d(cfg.corr_noise_scale * rng.standard_normal(len(x)), 2), x)
    x = x + cfg.iid_noise_scale * rng.standard_normal(len(x))
    x = x - cfg.shear_scale * (rng.random() - 0.5) * np.linspace(-0.5, 0.5, len(x))
    return resample(x, cfg.final_seq_length)


def generate(seed: int = 42, cfg: Mnist1dConfig = Mnist1dConfig()) -> tuple[np.ndarray, ...]:
    """(x_train, y_train, x_test, y_test), x of shape (N, length), standardized as published."""
    rng = np.random.default_rng(seed)
    shapes, per_class = templates(), cfg.num_samples // len(TEMPLATES)
    xs = np.stack([transform(shapes[label], rng, cfg)
                   for label in range(len(shapes)) for _ in range(per_class)])
    ys = np.repeat(np.arange(len(shapes)), per_class)
    order = rng.permutation(len(ys))
    xs, ys = xs[order], ys[order]
    xs = (xs - xs.mean()) / xs.std()
    cut = int(len(ys) * cfg.train_split)
    return xs[:cut], ys[:cut], xs[cut:], ys[cut:]


@DATASETS.register("mnist1d")
def load_mnist1d(data_dir=None, seed: int = 0, val_size: float | int = VAL_SIZE,
                 generation_seed: int = 42) -> Dataset:
    """``seed`` carves validation from the 4,000 training signals; ``data_dir`` is not used."""
    x_train, y_train, x_test, y_test = generate(generation_seed)

    def as_images(x):
        return x.astype(np.float32)[:, None, :, None]

    return with_official_test("mnist1d", as_images(x_train), y_train, as_images(x_test), y_test, 10,
                              seed, val_size, meta={"source": "generated (Greydanus 2020 procedure)",
                                                    "generation_seed": generation_seed})
