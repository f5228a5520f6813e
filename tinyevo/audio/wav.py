"""Reading WAV clips: mono 16-bit PCM (what a microphone driver hands the firmware), resampled to
one rate and padded or cut to one length.

``read_wav(path) -> (rate, int16 samples)``; ``resample(samples, rate, target)`` (polyphase,
``scipy.signal.resample_poly``, rounded back to int16); ``fit_length(samples, n)`` (zeros appended
at the end, or the end cut off). A file that is not a WAV, has more than one channel or another
sample format than 16-bit PCM is a one-line ``TinyevoError`` naming it and saying how to convert it.
"""
from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
from scipy.io import wavfile
from scipy.signal import resample_poly

from tinyevo.errors import TinyevoError

CONVERT = "convert it to 16-bit mono PCM (e.g. sox IN.wav -b 16 -c 1 OUT.wav)"
FORMAT_NAMES = {np.dtype(np.uint8): "8-bit", np.dtype(np.int32): "24- or 32-bit integer",
                np.dtype(np.float32): "32-bit float", np.dtype(np.float64): "64-bit float"}


def read_wav(path: Path) -> tuple[int, np.ndarray]:
    """(sample rate, int16 samples) of a mono 16-bit PCM WAV file."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", wavfile.WavFileWarning)  # unknown chunks (LIST, ...)
            rate, samples = wavfile.read(path)
    except (ValueError, EOFError, OSError) as error:
        reason = str(error).splitlines()[0] if str(error).strip() else type(error).__name__
        raise TinyevoError(f"{path} is not a WAV file tinyevo can read ({reason}); remove it from the "
                           f"folder or {CONVERT}") from None
    if samples.ndim != 1:
        raise TinyevoError(f"{path} has {samples.shape[1]} channels; tinyevo reads mono WAV files: {CONVERT}")
    if samples.dtype != np.int16:
        name = FORMAT_NAMES.get(samples.dtype, str(samples.dtype))
        raise TinyevoError(f"{path} holds {name} samples; tinyevo reads 16-bit PCM: {CONVERT}")
    if len(samples) == 0:
        raise TinyevoError(f"{path} holds no samples; remove it from the folder")
    return int(rate), samples


def resample(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    """int16 samples at ``rate`` resampled to ``target`` Hz (polyphase filter), as int16."""
    if rate == target:
        return samples
    divisor = math.gcd(rate, target)
    out = resample_poly(samples.astype(np.float64), target // divisor, rate // divisor)
    return np.clip(np.round(out), -32768, 32767).astype(np.int16)


def fit_length(samples: np.ndarray, length: int) -> np.ndarray:
    """The first ``length`` samples, zeros appended when there are fewer."""
    out = np.zeros(length, np.int16)
    keep = min(length, len(samples))
    out[:keep] = samples[:keep]
    return out
