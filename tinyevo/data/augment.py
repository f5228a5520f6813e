"""Data augmentation of training batches: random crops of a zero-padded image and horizontal flips.

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
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from tinyevo.errors import TinyevoError

DEFAULT_PADDING = 4
_PART = re.compile(r"^(flip|crop(\d+)?)$")
#: Mixed into the training seed so the augmentation's random numbers are not the batch order's.
_SEED_SALT = 0x6A0


@dataclass(frozen=True)
class Augmentation:
    """What to do to each training image: crop with ``crop_padding`` pixels (0: no crop), ``flip``."""

    crop_padding: int = 0
    flip: bool = False

    @classmethod
    def parse(cls, text: str) -> "Augmentation":
        """``"crop+flip"``, ``"crop2"``, ``"flip"`` ...; a one-line error for anything else."""
        parts = [part.strip() for part in str(text).split("+")] if isinstance(text, str) else [text]
        padding, flip = 0, False
        for part in parts:
            match = _PART.match(part) if isinstance(part, str) else None
            if match is None:
                raise TinyevoError(f"augment must be parts joined by '+': flip, crop or cropN (N pixels "
                                   f"of padding, default {DEFAULT_PADDING}), e.g. 'crop+flip'; got {text!r}")
            if part == "flip":
                flip = True
            else:
                padding = int(match.group(2)) if match.group(2) else DEFAULT_PADDING
        if padding == 0 and not flip:
            raise TinyevoError(f"augment {text!r} does nothing: crop0 keeps every image; leave augment "
                               f"out to train without augmentation")
        return cls(padding, flip)

    def __call__(self, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The augmented batch (NCHW, same shape, device and dtype); ``generator`` advances."""
        if self.crop_padding:
            batch = random_crop(batch, self.crop_padding, generator)
        if self.flip:
            batch = random_flip(batch, generator)
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
