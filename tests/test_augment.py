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


# --- audio feature maps: time shifts and SpecAugment masks ---------------------------------------------
from tinyevo.data.augment import random_mask, random_time_shift  # noqa: E402


def feature_batch(count=200, frames=7, coefficients=4, sequence=False) -> torch.Tensor:
    """Distinct random values (no entry equals a mean over time); a map (N, 1, frames, coefficients)
    or a sequence (N, coefficients, 1, frames) of the same features."""
    x = torch.randn(count, 1, frames, coefficients, generator=torch.Generator().manual_seed(7))
    return x.permute(0, 3, 2, 1).reshape(count, coefficients, 1, frames).contiguous() if sequence else x


@pytest.mark.parametrize("sequence", [False, True])
def test_a_time_shift_is_torch_roll_along_time_by_at_most_n_frames(sequence):
    batch, most = feature_batch(sequence=sequence), 2
    out = random_time_shift(batch, most, torch.Generator().manual_seed(0))
    dim = 3 if sequence else 2  # frames: the sequence's width, the map's height
    seen = set()
    for example, shifted_example in zip(batch, out):
        matches = [s for s in range(-most, most + 1) if torch.equal(torch.roll(example, s, dim - 1), shifted_example)]
        assert len(matches) == 1
        seen.add(matches[0])
    assert seen == set(range(-most, most + 1))  # every shift drawn, none beyond


def masked_run(example: np.ndarray, out: np.ndarray, axis: int) -> list[int]:
    """The indices along ``axis`` (of one example, C x H x W) where ``out`` differs from ``example``."""
    differs = (example != out).any(axis=tuple(a for a in range(3) if a != axis))
    return [int(i) for i in np.flatnonzero(differs)]


@pytest.mark.parametrize("sequence", [False, True])
@pytest.mark.parametrize("along", ["time", "frequency"])
def test_a_mask_replaces_one_run_of_at_most_n_entries_by_the_time_mean(sequence, along):
    batch, most = feature_batch(count=300, sequence=sequence), 3
    out = random_mask(batch, most, along, torch.Generator().manual_seed(1)).numpy()
    time = 2 if sequence else 1  # axes of one (C, H, W) example
    axis = time if along == "time" else (0 if sequence else 2)
    widths = set()
    for example, masked in zip(batch.numpy(), out):
        mean = example.mean(axis=time, keepdims=True)  # per coefficient and channel, by numpy
        run = masked_run(example, masked, axis)
        widths.add(len(run))
        assert not run or run == list(range(run[0], run[0] + len(run)))  # consecutive
        expected = example.copy()
        index = [slice(None)] * 3
        index[axis] = run
        expected[tuple(index)] = np.broadcast_to(mean, example.shape)[tuple(index)]
        np.testing.assert_allclose(masked, expected, rtol=1e-5, atol=1e-6)
    assert widths == set(range(0, most + 1)) if along == "time" else widths <= set(range(0, most + 1))


def test_audio_parts_parse_and_bad_ones_say_what_is_allowed():
    assert Augmentation.parse("shift5+tmask4+fmask2") == Augmentation(0, False, 5, 4, 2)
    assert Augmentation.parse("shift3") == Augmentation(time_shift=3)
    with pytest.raises(TinyevoError, match="shiftN"):
        Augmentation.parse("shift")
    with pytest.raises(TinyevoError, match="does nothing"):
        Augmentation.parse("shift0+tmask0")


def test_the_audio_augmenter_is_seeded_and_keeps_shape():
    batch = feature_batch(count=16)
    first = Augmenter.create("shift5+tmask5+fmask2", 3)(batch)
    again = Augmenter.create("shift5+tmask5+fmask2", 3)(batch)
    other = Augmenter.create("shift5+tmask5+fmask2", 4)(batch)
    assert first.shape == batch.shape and torch.equal(first, again) and not torch.equal(first, other)
