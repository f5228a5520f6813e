"""Random crops and flips of training batches: against hand-shifted pixels, seeds, devices, training."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tinyevo.arch import GraphBuilder
from tinyevo.data.augment import Augmentation, Augmenter, random_crop, random_flip
from tinyevo.errors import TinyevoError
from tinyevo.estimate.training import TrainingEstimator

torch.set_num_threads(1)


def known_batch(count=64, channels=3, height=5, width=6) -> torch.Tensor:
    """Images whose every pixel is distinct and non-zero, so that any shift is recognisable."""
    values = torch.arange(1, count * channels * height * width + 1, dtype=torch.float32)
    return values.reshape(count, channels, height, width)


def shifted(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``image`` (C, H, W) moved by (dy, dx) with zeros shifted in: pixel (i, j) of the result is
    pixel (i + dy, j + dx) of the input -- a crop at offset (dy + pad, dx + pad) of the padded image."""
    out = np.zeros_like(image)
    _, height, width = image.shape
    for i in range(height):
        for j in range(width):
            if 0 <= i + dy < height and 0 <= j + dx < width:
                out[:, i, j] = image[:, i + dy, j + dx]
    return out


def test_a_crop_is_the_image_shifted_by_at_most_the_padding():
    batch, padding = known_batch(count=300), 1
    out = random_crop(batch, padding, torch.Generator().manual_seed(0))
    assert out.shape == batch.shape and out.dtype == batch.dtype
    seen = set()
    for image, cropped in zip(batch.numpy(), out.numpy()):
        matches = [(dy, dx) for dy in range(-padding, padding + 1) for dx in range(-padding, padding + 1)
                   if np.array_equal(cropped, shifted(image, dy, dx))]
        assert len(matches) == 1
        seen.add(matches[0])
    assert len(seen) == 9  # every offset of -1..1 x -1..1 occurs in 300 draws


def test_a_large_padding_can_shift_an_image_out_entirely():
    batch = known_batch(count=400, height=2, width=2)
    out = random_crop(batch, 3, torch.Generator().manual_seed(1))
    assert out.shape == batch.shape
    assert (out.flatten(1) == 0).all(1).any() and (out.flatten(1) != 0).any(1).any()


def test_flip_mirrors_about_half_and_twice_with_the_same_seed_is_the_identity():
    batch = known_batch(count=400)
    once = random_flip(batch, torch.Generator().manual_seed(3))
    flipped = (once != batch).flatten(1).any(1)
    assert 150 < int(flipped.sum()) < 250
    assert torch.equal(once[flipped], batch[flipped].flip(3)) and torch.equal(once[~flipped], batch[~flipped])
    assert torch.equal(random_flip(once, torch.Generator().manual_seed(3)), batch)


def test_same_seed_same_batches_other_seed_other_batches():
    batches = [known_batch(count=32) + k for k in range(3)]

    def run(seed):
        augmenter = Augmenter.create("crop2+flip", seed)
        return [augmenter(b) for b in batches]
    first, again, other = run(7), run(7), run(8)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not all(torch.equal(a, b) for a, b in zip(first, other))
    assert not torch.equal(first[0], first[1] - 1)  # the generator moves on from batch to batch


@pytest.mark.parametrize("text, expected", [
    ("crop+flip", Augmentation(4, True)), ("flip", Augmentation(0, True)), ("crop", Augmentation(4, False)),
    ("crop2", Augmentation(2, False)), (" flip + crop1 ", Augmentation(1, True)),
])
def test_names(text, expected):
    assert Augmentation.parse(text) == expected


@pytest.mark.parametrize("text, message", [
    ("rotate", "augment must be parts joined by '\\+'"), ("crop-2", "augment must be"),
    ("", "augment must be"), (4, "augment must be"), ("crop0", "does nothing"),
])
def test_bad_names_are_one_line_errors(text, message):
    with pytest.raises(TinyevoError, match=message) as caught:
        Augmentation.parse(text)
    assert "\n" not in str(caught.value)


def test_none_is_no_augmentation():
    assert Augmenter.create(None, 0) is None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_on_cuda_the_same_crops_and_flips_as_on_cpu():
    batch = known_batch(count=256, height=32, width=32)
    on_cpu = Augmenter.create("crop+flip", 5)(batch)
    on_gpu = Augmenter.create("crop+flip", 5)(batch.cuda())
    assert on_gpu.device.type == "cuda" and torch.equal(on_gpu.cpu(), on_cpu)


# --- in the training estimator ---------------------------------------------------------------------
def small_net():
    g = GraphBuilder((8, 8, 1))
    x = g.conv_bn_act(g.input, 8)
    return g.build(g.dense(g.flatten(g.conv_bn_act(x, 16, stride=2)), 10))


def test_training_estimator_augments_each_batch_deterministically():
    settings = dict(epochs=2, lr=1e-2, batch_size=32, seed=2)
    plain = TrainingEstimator(**settings).evaluate(small_net())
    first = TrainingEstimator(**settings, augment="crop1").evaluate(small_net())
    again = TrainingEstimator(**settings, augment="crop1").evaluate(small_net())
    assert first["learning_curve"] == again["learning_curve"] and first["train_loss"] == again["train_loss"]
    assert first["train_loss"] != plain["train_loss"]
    assert first["accuracy"] > 0.5  # chance is 0.1
    with pytest.raises(TinyevoError, match="augment must be"):
        TrainingEstimator(augment="mixup")
