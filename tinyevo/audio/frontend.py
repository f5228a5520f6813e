"""The audio front-end: PCM clips -> log-mel spectrogram or MFCC, the (time x coefficient) map a
keyword-spotting network reads; its memory and work counted like a layer's.

API (stable; the ``kws`` space, ``tinyevo.data.wavfolder``, the C generator
``tinyevo.deploy.codegen.frontend_c`` and the benchmark use it)::

    from tinyevo.audio import FrontEnd, FRONTEND_GENES
    fe = FrontEnd(kind="mfcc", sample_rate=8000, clip_ms=1000, frame_ms=32, hop_ms=16,
                  n_mels=40, n_mfcc=10)
    fe.output_shape                      # (frames, coefficients, 1): the network's input (H, W, C)
    features = fe(pcm)                   # pcm (N, samples) or (N, 1, samples, 1), int16 or floats
                                         # in [-1, 1) -> float32 (N, frames, coefficients, 1)
    cost = fe.cost()                     # FrontEndCost: ram_bytes, flash_bytes, macs, ...
    cost.add_to(network_cost)            # a hardware.cost.Cost with the front-end's figures added
    fe.to_json(); FrontEnd.from_json(d)  # the settings as a JSON dict (dataset meta, metadata.json)
    FrontEnd.with_genes(base, {"frame_ms": 40, "n_mfcc": 13})   # a gene assignment over a base

``FRONTEND_GENES`` maps each searchable setting to its choices (the EON Tuner's signal genes):
``kind`` (logmel, mfcc), ``frame_ms``, ``hop_ms``, ``n_mels``, ``n_mfcc``; ``sample_rate`` and
``clip_ms`` are the data's and stay fixed. A space that includes front-end genes samples a value
per gene from ``FRONTEND_GENES`` (or a subset), builds ``base.with_genes(choice)`` and decodes an
Architecture whose input shape is its ``output_shape``; the estimator then feeds it
``frontend(pcm)`` of the dataset's raw clips (``load_dataset("wavfolder", features="pcm")``).

The computation (float64 NumPy/SciPy, the reference the C front-end is checked against):

1. samples as floats in [-1, 1) (int16 / 32768); frames of ``frame_samples`` every ``hop_samples``,
   no padding at the ends: ``frames = 1 + (clip_samples - frame_samples) // hop_samples``;
2. each frame times a periodic Hann window, zero-padded to ``n_fft`` (the next power of two);
3. power spectrum ``|rfft|**2`` (``n_fft // 2 + 1`` bins);
4. ``n_mels`` triangular filters (peak 1) evenly spaced on the HTK mel scale
   ``mel = 2595 log10(1 + f / 700)`` from ``lower_hz`` to ``upper_hz`` (default: half the rate),
   evaluated at the bin frequencies ``k * rate / n_fft``;
5. ``log(energy + LOG_OFFSET)``: the log-mel spectrogram (kind ``logmel``, ``n_mels`` wide);
6. MFCC: the orthonormal DCT-II of the log-mel energies, first ``n_mfcc`` coefficients.

Cost (one clip, float32 on the device, as the generated C runs it): the front-end's scratch
(``scratch_bytes``) is one buffer of n_fft floats (the frame, its FFT as n_fft / 2 complex values,
then its power spectrum and the mel energies, all in place; the mel energies get n_mels floats of
their own only when n_mels > n_fft / 2 - 1); its output is the int8 feature map (``feature_bytes``),
the network's input tensor. ``ram_bytes`` is the two together: the front-end on its own
(``tinyevo_frontend_run`` with a scratch and a map of the caller's). Run before the network
(``tinyevo_model_run_pcm``, the generated model's PCM entry point), the front-end writes the map
straight into the network's input tensor in the model's arena and takes its scratch from the
arena beside that tensor (4-byte aligned), where no other tensor is live yet: network and
front-end together need ``peak_with(network_peak) = max(network_peak, align4(feature_bytes) +
scratch_bytes)``, not the sum; ``ram_added(network_peak)`` is what the front-end adds to the
network's peak. Not counted: the PCM clip itself (the firmware's capture buffer, ``pcm_bytes``).
Flash is the window (half of the symmetric one; none when the frame is n_fft samples long: the
periodic Hann window is then ``0.5 - 0.5 cos(2 pi n / n_fft)``, read from the twiddle table), a
quarter-wave cosine table (n_fft / 4 + 1 floats: every twiddle), the filterbank as one weight per
FFT bin (``filter_bins``, the bins between the lowest and the highest mel edge: each lies on the
rising side of one triangle, weight w, and the falling side of the one below, weight 1 - w) plus
the first bin of each of the n_mels + 2 mel edges (int16), and for MFCC the DCT as a quarter wave
of period 4 n_mels (n_mels + 1 floats, every DCT-II entry folds from it; log-mel has none: a
network's first layer can take the linear DCT in). ``macs`` counts
multiply-accumulates: window, the n_fft / 2-point FFT's butterflies (4 each), the real-spectrum
split (4 per bin pair), power (2 per bin), filterbank (two per bin: w and 1 - w), DCT (half
the n_mfcc x n_mels products: mel bands m and n_mels - 1 - m share a cosine up to sign); ``logs``
the log calls (one per mel energy). Not counted: the code itself and the stack.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from tinyevo.errors import TinyevoError
from tinyevo.units import align4

KINDS = ("logmel", "mfcc")
LOG_OFFSET = 1e-6
FLOAT_BYTES = 4
EDGE_INDEX_BYTES = 2  # int16 first bin of each of the n_mels + 2 mel edges
PCM_SCALE = 1.0 / 32768
MIN_FRAME_SAMPLES = 4  # the C front-end's real FFT packs n_fft >= 4 samples into n_fft / 2 complex
#: The searchable settings and their choices (``FrontEnd.with_genes``).
FRONTEND_GENES = {
    "kind": KINDS,
    "frame_ms": (20, 32, 40, 64),
    "hop_ms": (10, 16, 20, 32),
    "n_mels": (20, 32, 40),
    "n_mfcc": (10, 13, 20),
}


@dataclass(frozen=True)
class FrontEndCost:
    """What the front-end costs per clip (see the module docstring for what each figure counts)."""

    ram_bytes: int
    flash_bytes: int
    macs: int
    logs: int
    feature_bytes: int
    pcm_bytes: int
    scratch_bytes: int = 0

    def peak_with(self, network_peak: int) -> int:
        """Peak SRAM of network and front-end together: the front-end runs in the network's arena,
        its scratch beside the input tensor it fills (module docstring)."""
        return max(int(network_peak), align4(self.feature_bytes) + self.scratch_bytes)

    def ram_added(self, network_peak: int) -> int:
        """What the front-end adds to the network's peak SRAM (0 when it fits in the arena)."""
        return self.peak_with(network_peak) - int(network_peak)

    def add_to(self, cost):
        """``cost`` (a ``tinyevo.hardware.cost.Cost`` of the network) with the front-end's: peak
        SRAM ``peak_with`` the network's, its flash and MACs added."""
        return dataclasses.replace(cost, peak_sram_bytes=self.peak_with(cost.peak_sram_bytes),
                                   flash_bytes=cost.flash_bytes + self.flash_bytes,
                                   macs=cost.macs + self.macs)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class FrontEnd:
    """Log-mel or MFCC settings; call it on PCM clips to get the features."""

    kind: str = "mfcc"
    sample_rate: int = 16000
    clip_ms: float = 1000
    frame_ms: float = 40
    hop_ms: float = 20
    n_mels: int = 40
    n_mfcc: int = 10
    lower_hz: float = 20.0
    upper_hz: float | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise TinyevoError(f"front-end kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        for name in ("sample_rate", "n_mels", "n_mfcc"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise TinyevoError(f"front-end {name} must be a positive whole number, got {value!r}")
        if self.kind == "mfcc" and self.n_mfcc > self.n_mels:
            raise TinyevoError(f"front-end n_mfcc={self.n_mfcc} exceeds n_mels={self.n_mels}; "
                               f"keep at most as many coefficients as mel bands")
        if self.frame_samples < MIN_FRAME_SAMPLES:
            raise TinyevoError(f"front-end frames need at least {MIN_FRAME_SAMPLES} samples, got "
                               f"{self.frame_samples} ({self.frame_ms} ms at {self.sample_rate} Hz); "
                               f"raise frame_ms")
        if not 0 < self.hop_samples <= self.frame_samples <= self.clip_samples:
            raise TinyevoError(f"front-end needs 0 < hop_ms <= frame_ms <= clip_ms, got hop {self.hop_ms}, "
                               f"frame {self.frame_ms}, clip {self.clip_ms} ms")
        if not 0 <= self.lower_hz < self.top_hz <= self.sample_rate / 2:
            raise TinyevoError(f"front-end needs 0 <= lower_hz < upper_hz <= {self.sample_rate / 2:g} "
                               f"(half the sample rate), got {self.lower_hz} and {self.top_hz}")

    # -- sizes ------------------------------------------------------------------------------
    def samples(self, ms: float) -> int:
        return int(round(ms * self.sample_rate / 1000))

    @property
    def clip_samples(self) -> int:
        return self.samples(self.clip_ms)

    @property
    def frame_samples(self) -> int:
        return self.samples(self.frame_ms)

    @property
    def hop_samples(self) -> int:
        return self.samples(self.hop_ms)

    @property
    def n_fft(self) -> int:
        return 1 << max(0, (self.frame_samples - 1).bit_length())

    @property
    def top_hz(self) -> float:
        return float(self.upper_hz) if self.upper_hz is not None else self.sample_rate / 2

    @property
    def frames(self) -> int:
        return 1 + (self.clip_samples - self.frame_samples) // self.hop_samples

    @property
    def coefficients(self) -> int:
        return self.n_mfcc if self.kind == "mfcc" else self.n_mels

    @property
    def output_shape(self) -> tuple[int, int, int]:
        """(frames, coefficients, 1): the network's input (height, width, channels)."""
        return (self.frames, self.coefficients, 1)

    # -- tables -----------------------------------------------------------------------------
    @cached_property
    def window(self) -> np.ndarray:
        """Periodic Hann window of ``frame_samples``."""
        n = np.arange(self.frame_samples)
        return 0.5 - 0.5 * np.cos(2 * np.pi * n / self.frame_samples)

    @cached_property
    def mel_filters(self) -> np.ndarray:
        """(n_mels, n_fft // 2 + 1) triangular weights."""
        edges = self.mel_edges_hz
        freqs = np.arange(self.n_fft // 2 + 1) * self.sample_rate / self.n_fft
        lower, center, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
        rising = (freqs - lower) / (center - lower)
        falling = (upper - freqs) / (upper - center)
        return np.maximum(0.0, np.minimum(rising, falling))

    @cached_property
    def dct_matrix(self) -> np.ndarray:
        """(n_mfcc, n_mels) orthonormal DCT-II rows."""
        m = np.arange(self.n_mels)
        k = np.arange(self.n_mfcc)[:, None]
        table = np.cos(np.pi * k * (2 * m + 1) / (2 * self.n_mels)) * np.sqrt(2.0 / self.n_mels)
        table[0] /= np.sqrt(2.0)
        return table

    # -- computation ------------------------------------------------------------------------
    def __call__(self, pcm: np.ndarray) -> np.ndarray:
        """Features of a batch of clips: (N, samples) or (N, 1, samples, 1) int16 or floats in [-1, 1)
        -> float32 (N, frames, coefficients, 1). Clips longer than ``clip_samples`` are cut, shorter
        ones padded with zeros at the end."""
        x = as_clips(pcm, self.clip_samples)
        starts = np.arange(self.frames) * self.hop_samples
        framed = x[:, starts[:, None] + np.arange(self.frame_samples)] * self.window
        power = np.abs(np.fft.rfft(framed, n=self.n_fft, axis=-1)) ** 2
        logmel = np.log(power @ self.mel_filters.T + LOG_OFFSET)
        features = logmel @ self.dct_matrix.T if self.kind == "mfcc" else logmel
        return features[..., None].astype(np.float32)

    @property
    def window_from_twiddles(self) -> bool:
        """Whether the C reads the window from the twiddle table (the frame is n_fft samples)."""
        return self.frame_samples == self.n_fft

    @property
    def scratch_floats(self) -> int:
        """The C front-end's scratch: the FFT buffer, plus the mel energies when they do not fit in
        the n_fft / 2 - 1 slots the power spectrum leaves free."""
        return self.n_fft + (self.n_mels if self.n_mels > self.n_fft // 2 - 1 else 0)

    @cached_property
    def filter_bins(self) -> tuple[np.ndarray, np.ndarray]:
        """The filterbank as the C stores it: ``edges`` (n_mels + 2 ints), the first FFT bin at or
        above each mel edge, and ``weights``, one per bin from ``edges[0]`` to ``edges[-1] - 1``:
        bin k in [edges[j], edges[j + 1]) has weight ``weights[k - edges[0]]`` in band j (its
        rising side; j < n_mels) and one minus it in band j - 1 (falling side; j > 0)."""
        hz = self.mel_edges_hz
        freqs = np.arange(self.n_fft // 2 + 1) * self.sample_rate / self.n_fft
        edges = np.searchsorted(freqs, hz, side="left")  # first bin with freq >= edge
        weights = []
        for j in range(self.n_mels + 1):
            for k in range(edges[j], edges[j + 1]):
                weights.append((freqs[k] - hz[j]) / (hz[j + 1] - hz[j]))
        return edges.astype(np.int64), np.asarray(weights, dtype=np.float64)

    @cached_property
    def mel_edges_hz(self) -> np.ndarray:
        """The n_mels + 2 band edges in Hz (band b: lower edge b, peak b + 1, upper edge b + 2)."""
        return mel_to_hz(np.linspace(hz_to_mel(self.lower_hz), hz_to_mel(self.top_hz), self.n_mels + 2))

    def cost(self) -> FrontEndCost:
        edges, weights = self.filter_bins
        bins, half = self.n_fft // 2 + 1, self.n_fft // 2
        dct = self.n_mfcc * ((self.n_mels + 1) // 2) if self.kind == "mfcc" else 0  # MACs
        dct_table = self.n_mels + 1 if self.kind == "mfcc" else 0
        scratch = self.scratch_floats * FLOAT_BYTES
        window = 0 if self.window_from_twiddles else self.frame_samples // 2 + 1
        tables = window + (self.n_fft // 4 + 1) + max(1, len(weights)) + dct_table
        flash = tables * FLOAT_BYTES + (self.n_mels + 2) * EDGE_INDEX_BYTES
        filter_macs = 2 * len(weights)  # w and 1 - w times each bin's power (the C does both everywhere)
        butterflies = half // 2 * int(np.log2(half))
        per_frame = self.frame_samples + 4 * butterflies + 4 * (half // 2) + 2 * bins + int(filter_macs) + dct
        features = self.frames * self.coefficients
        return FrontEndCost(ram_bytes=scratch + features, flash_bytes=flash, macs=self.frames * per_frame,
                            logs=self.frames * self.n_mels, feature_bytes=features,
                            pcm_bytes=2 * self.clip_samples, scratch_bytes=scratch)

    # -- (de)serialisation and genes --------------------------------------------------------
    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "FrontEnd":
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - fields)
        if unknown:
            raise TinyevoError(f"front-end has no setting(s) {', '.join(unknown)}; "
                               f"its settings are: {', '.join(sorted(fields))}")
        return cls(**data)

    def with_genes(self, genes: dict) -> "FrontEnd":
        """These settings with the searched ones of ``genes`` (keys of ``FRONTEND_GENES``) replaced."""
        unknown = sorted(set(genes) - set(FRONTEND_GENES))
        if unknown:
            raise TinyevoError(f"front-end genes are {', '.join(FRONTEND_GENES)}; not {', '.join(unknown)}")
        return dataclasses.replace(self, **genes)


def hz_to_mel(hz):
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def mel_to_hz(mel):
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


def as_clips(pcm: np.ndarray, samples: int) -> np.ndarray:
    """(N, samples) float64 in [-1, 1) from int16 or float clips, cut or zero-padded at the end."""
    x = np.asarray(pcm)
    if x.ndim == 4:
        x = x.reshape(len(x), -1)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2:
        raise TinyevoError(f"front-end takes clips as (N, samples) or (N, 1, samples, 1), got {x.shape}")
    floats = x.astype(np.float64) * PCM_SCALE if x.dtype == np.int16 else x.astype(np.float64)
    out = np.zeros((len(floats), samples))
    keep = min(samples, floats.shape[1])
    out[:, :keep] = floats[:, :keep]
    return out
