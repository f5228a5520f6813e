"""Data augmentation of training batches: random crops of a zero-padded image and horizontal flips;
for audio feature maps, random time shifts and SpecAugment-style time and frequency masks.

The standard CIFAR recipe (pad 4 pixels, crop back to the original size at a random offset, flip
half the images left to right), done batch-wise on NCHW tensors on whatever device the batch is
on. The random numbers come from a CPU ``torch.Generator``, so the same seed gives the same
crops and flips on CPU and on CUDA.

An augmentation is named by a short string, parts joined by ``+``:

- ``flip``: each image is mirrored left to right with probability 1/2;
- ``crop`` or ``cropN``: each image is padded with N zero pixels on every side (default 4) and
  cropped back to its size at a uniformly random offset, i.e. shifted by -N..N pixels each way.

E.g. ``"crop+flip"`` (CIFAR), ``"crop2"`` (small images), ``"flip"``. Flips suit photos, not
digits or text, whose mirror images are other symbols. The training estimator augments the
network's input, after any resizing to the architecture's resolution, so N counts its pixels.

For (time x frequency) feature maps -- MFCC or log-mel, as ``wavfolder`` lays them out -- the time
axis is the height of a map (N, C, frames, coefficients) and the width of a sequence (N,
coefficients, 1, frames), i.e. the height when it is more than 1, else the width; the frequency
axis is the map's width or the sequence's channels:

- ``shiftN``: each example rolled along time by a uniform whole number of frames in -N..N
  (``torch.roll`` semantics: frames pushed off one end come back at the other; the time shift of
  MLPerf Tiny's keyword spotting, +-100 ms, is ``shift5`` at a 20 ms hop);
- ``tmaskN`` / ``fmaskN``: SpecAugment's masks (Park et al. 2019), one per example: a width w
  uniform in 0..N (at most the axis's length) and a start uniform in 0..length-w; the w frames
  (coefficients) are replaced by the example's mean over time (per coefficient and channel), a value
  that carries no timing, where SpecAugment's normalized log-mels use their mean, zero.

E.g. ``"shift5+tmask5+fmask2"``. Parts are applied in the order crop, flip, shift, tmask, fmask.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from tinyevo.errors import TinyevoError

DEFAULT_PADDING = 4
_PART = re.compile(r"^(flip|crop(\d+)?|(shift|tmask|fmask)(\d+))$")
#: Mixed into the training seed so the augmentation's random numbers are not the batch order's.
_SEED_SALT = 0x6A0


@dataclass(frozen=True)
class Augmentation:
    """What to do to each training image: crop with ``crop_padding`` pixels (0: no crop), ``flip``;
    roll along time by up to ``time_shift`` frames, mask up to ``time_mask`` frames and up to
    ``frequency_mask`` coefficients (0: none)."""

    crop_padding: int = 0
    flip: bool = False
    time_shift: int = 0
    time_mask: int = 0
    frequency_mask: int = 0

    @classmethod
    def parse(cls, text: str) -> "Augmentation":
        """``"crop+flip"``, ``"crop2"``, ``"flip"``, ``"shift5+tmask5"`` ...; a one-line error for anything else."""
        parts = [part.strip() for part in str(text).split("+")] if isinstance(text, str) else [text]
        padding, flip, audio = 0, False, {"shift": 0, "tmask": 0, "fmask": 0}
        for part in parts:
            match = _PART.match(part) if isinstance(part, str) else None
            if match is None:
                raise TinyevoError(f"augment must be parts joined by '+': flip, crop or cropN (N pixels "
                                   f"of padding, default {DEFAULT_PADDING}), shiftN, tmaskN, fmaskN (N frames "
                                   f"or coefficients), e.g. 'crop+flip' or 'shift5+tmask5'; got {text!r}")
            if part == "flip":
                flip = True
            elif match.group(3):
                audio[match.group(3)] = int(match.group(4))
            else:
                padding = int(match.group(2)) if match.group(2) else DEFAULT_PADDING
        if padding == 0 and not flip and not any(audio.values()):
            raise TinyevoError(f"augment {text!r} does nothing: crop0, shift0, tmask0 and fmask0 keep every "
                               f"example; leave augment out to train without augmentation")
        return cls(padding, flip, audio["shift"], audio["tmask"], audio["fmask"])

    def __call__(self, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The augmented batch (NCHW, same shape, device and dtype); ``generator`` advances."""
        if self.crop_padding:
            batch = random_crop(batch, self.crop_padding, generator)
        if self.flip:
            batch = random_flip(batch, generator)
        if self.time_shift:
            batch = random_time_shift(batch, self.time_shift, generator)
        if self.time_mask:
            batch = random_mask(batch, self.time_mask, "time", generator)
        if self.frequency_mask:
            batch = random_mask(batch, self.frequency_mask, "frequency", generator)
        return batch


class Augmenter:
    """An augmentation with its own seeded generator: call it on each training batch in turn."""

    def __init__(self, augmentation: Augmentation, seed: int):
        self.augmentation = augmentation
        state = np.random.SeedSequence([seed % 2**32, _SEED_SALT]).generate_state(1)[0]
        self.generator = torch.Generator().manual_seed(int(state))

    @classmethod
    def create(cls, text: str | None, seed: int) -> "Augmenter | None":
        """The augmenter of ``text`` (see the module), or None when ``text`` is None (no augmentation)."""
        return None if text is None else cls(Augmentation.parse(text), seed)

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        return self.augmentation(batch, self.generator)


def random_crop(batch: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Each image of the NCHW ``batch`` padded with ``padding`` zeros on every side and cropped back
    to its size at a random offset: ``out[n, :, i, j] = padded[n, :, i + dy[n], j + dx[n]]`` with
    dy, dx uniform in 0..2*padding."""
    count, channels, height, width = batch.shape
    offsets = torch.randint(0, 2 * padding + 1, (2, count), generator=generator).to(batch.device)
    padded = F.pad(batch, (padding, padding, padding, padding))
    rows = offsets[0][:, None] + torch.arange(height, device=batch.device)  # (N, H)
    columns = offsets[1][:, None] + torch.arange(width, device=batch.device)  # (N, W)
    padded = padded.gather(2, rows[:, None, :, None].expand(count, channels, height, width + 2 * padding))
    return padded.gather(3, columns[:, None, None, :].expand(count, channels, height, width))


def random_flip(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The NCHW ``batch`` with each image mirrored left to right with probability 1/2."""
    flipped = torch.randint(0, 2, (len(batch),), generator=generator).bool().to(batch.device)
    return torch.where(flipped[:, None, None, None], batch.flip(3), batch)


def time_axis(batch: torch.Tensor) -> int:
    """The time dimension of an NCHW feature batch: the height of a map, the width of a sequence."""
    return 2 if batch.shape[2] > 1 else 3


def frequency_axis(batch: torch.Tensor) -> int:
    """The frequency dimension: the width of a map (N, C, frames, coefficients), the channels of a
    sequence (N, coefficients, 1, frames)."""
    return 3 if batch.shape[2] > 1 else 1


def random_time_shift(batch: torch.Tensor, frames: int, generator: torch.Generator) -> torch.Tensor:
    """Each example of the NCHW feature ``batch`` rolled along time by a uniform shift in
    -frames..frames: ``out[n] = torch.roll(batch[n], shift[n], time)``."""
    axis = time_axis(batch)
    length = batch.shape[axis]
    shifts = torch.randint(-frames, frames + 1, (len(batch),), generator=generator).to(batch.device)
    source = (torch.arange(length, device=batch.device)[None, :] - shifts[:, None]) % length  # (N, T)
    view = [len(batch), 1, 1, 1]
    view[axis] = length
    return batch.gather(axis, source.reshape(view).expand(batch.shape))


def random_mask(batch: torch.Tensor, most: int, along: str, generator: torch.Generator) -> torch.Tensor:
    """One SpecAugment mask per example along ``"time"`` or ``"frequency"``: ``w`` uniform in
    0..most (at most the axis's length) consecutive entries from a uniform start in 0..length-w, set
    to the example's mean over time (per coefficient and channel)."""
    axis = time_axis(batch) if along == "time" else frequency_axis(batch)
    length = batch.shape[axis]
    widths = torch.randint(0, min(most, length) + 1, (len(batch),), generator=generator)
    starts = (torch.rand(len(batch), generator=generator) * (length - widths + 1)).floor().long()
    positions = torch.arange(length)[None, :]
    masked = ((positions >= starts[:, None]) & (positions < (starts + widths)[:, None])).to(batch.device)
    view = [len(batch), 1, 1, 1]
    view[axis] = length
    mean = batch.mean(dim=time_axis(batch), keepdim=True).expand(batch.shape)
    return torch.where(masked.reshape(view), mean, batch)
