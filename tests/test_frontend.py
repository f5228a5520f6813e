"""The log-mel / MFCC front-end against independent computations: a DFT written out as sums of
cosines and sines, mel band centres from the HTK formula, SciPy's DCT-II; and its cost by hand."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.fft import dct

from tinyevo.audio import FRONTEND_GENES, FrontEnd
from tinyevo.errors import TinyevoError
from tinyevo.hardware.cost import Cost


def tone(hz: float, rate: int, samples: int, amplitude: float = 0.5) -> np.ndarray:
    return np.round(amplitude * 32767 * np.sin(2 * np.pi * hz * np.arange(samples) / rate)).astype(np.int16)


def dft_power(frame: np.ndarray, n_fft: int) -> np.ndarray:
    """|X[k]|^2 for k = 0..n_fft/2 with X[k] = sum_n x[n] exp(-2 pi i k n / n_fft), written out."""
    n = np.arange(len(frame))
    k = np.arange(n_fft // 2 + 1)[:, None]
    re = (frame * np.cos(2 * np.pi * k * n / n_fft)).sum(axis=1)
    im = -(frame * np.sin(2 * np.pi * k * n / n_fft)).sum(axis=1)
    return re ** 2 + im ** 2


def htk_mel(hz):
    return 2595.0 * np.log10(1.0 + np.asarray(hz) / 700.0)


def band_centres_hz(n_mels: int, low: float, high: float) -> np.ndarray:
    mels = np.linspace(htk_mel(low), htk_mel(high), n_mels + 2)[1:-1]
    return 700.0 * (10 ** (mels / 2595.0) - 1.0)


@pytest.mark.parametrize("rate, hz", [(8000, 440.0), (8000, 2500.0), (16000, 1000.0), (16000, 6000.0)])
def test_a_pure_tones_energy_peaks_in_the_mel_band_centred_nearest_its_frequency(rate, hz):
    """Mel bands are triangles on the mel scale: a tone's energy is largest in the band whose centre
    is nearest on the mel scale (40 bands, 512-point FFT at most 16 Hz per bin at 8 kHz)."""
    fe = FrontEnd(kind="logmel", sample_rate=rate, clip_ms=200, frame_ms=64, hop_ms=32, n_mels=40)
    logmel = fe(tone(hz, rate, fe.clip_samples)[None])[0, :, :, 0]
    centres = band_centres_hz(40, 20.0, rate / 2)
    expected = int(np.argmin(np.abs(htk_mel(centres) - htk_mel(hz))))
    assert set(np.argmax(logmel, axis=1).tolist()) == {expected}


def reference_features(fe: FrontEnd, pcm: np.ndarray) -> np.ndarray:
    """The front-end recomputed from its definition: frames, periodic Hann, the written-out DFT,
    triangles between HTK mel edges at each bin frequency, log, SciPy's orthonormal DCT-II."""
    x = pcm.astype(np.float64) / 32768
    n, hop = fe.frame_samples, fe.hop_samples
    window = np.array([0.5 - 0.5 * np.cos(2 * np.pi * i / n) for i in range(n)])
    mels = np.linspace(htk_mel(fe.lower_hz), htk_mel(fe.sample_rate / 2), fe.n_mels + 2)
    edges = 700.0 * (10 ** (mels / 2595.0) - 1.0)
    bins = np.arange(fe.n_fft // 2 + 1) * fe.sample_rate / fe.n_fft
    rows = []
    for start in range(0, len(x) - n + 1, hop):
        power = dft_power(x[start:start + n] * window, fe.n_fft)
        energies = []
        for b in range(fe.n_mels):
            lo, mid, hi = edges[b:b + 3]
            weights = [max(0.0, min((f - lo) / (mid - lo), (hi - f) / (hi - mid))) for f in bins]
            energies.append(np.dot(weights, power))
        rows.append(np.log(np.array(energies) + 1e-6))
    logmel = np.array(rows)
    return dct(logmel, type=2, norm="ortho", axis=1)[:, :fe.n_mfcc] if fe.kind == "mfcc" else logmel


@pytest.mark.parametrize("kind, rate", [("mfcc", 8000), ("logmel", 16000)])
def test_features_match_a_computation_from_the_definition(kind, rate):
    rng = np.random.default_rng(0)
    fe = FrontEnd(kind=kind, sample_rate=rate, clip_ms=100, frame_ms=32, hop_ms=16, n_mels=20, n_mfcc=8)
    pcm = (rng.normal(size=fe.clip_samples) * 4000 + tone(700, rate, fe.clip_samples)).astype(np.int16)
    got = fe(pcm[None])[0, :, :, 0]
    expected = reference_features(fe, pcm)
    assert got.shape == expected.shape == fe.output_shape[:2]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)


def test_cost_counted_by_hand():
    """MLPerf Tiny's KWS front-end at 16 kHz: 40 ms frames (640 samples, FFT 1024), 20 ms hop,
    1 s clip -> 49 frames of 10 MFCCs. RAM: one 1024-float FFT buffer (the 40 mel energies share it)
    = 4096 bytes of scratch, plus the 490-byte int8 map = 4586 on its own. Flash: half window 321 +
    quarter-wave cosines 257 + the DCT's quarter wave of period 4 x 40 (41 floats, not the 10 x 40
    table) + one filterbank weight per FFT bin from the lowest
    mel edge (20 Hz) up to (not including) the highest (8 kHz), 4 bytes each, + 42 edges x 2 bytes.
    The PCM clip is 16000 * 2 = 32000 bytes. With a network, the front-end runs in its arena: the
    490-byte map is the network's input tensor, the scratch beside it (4-byte aligned: 492), so the
    peak is the larger of the network's and 492 + 4096 = 4588."""
    fe = FrontEnd(sample_rate=16000, frame_ms=40, hop_ms=20, n_mels=40, n_mfcc=10)
    cost = fe.cost()
    assert fe.output_shape == (49, 10, 1)
    assert cost.ram_bytes == 4586 and cost.scratch_bytes == 4096
    assert cost.feature_bytes == 490 and cost.pcm_bytes == 32000
    top = 700 * (10 ** (2595 * np.log10(1 + 8000 / 700) / 2595) - 1)  # the 8 kHz edge, round trip
    bins = np.arange(513) * 16000 / 1024
    weights = int(np.sum((bins >= 20) & (bins < top)))
    assert weights in (510, 511)  # bins 2 (31.25 Hz) .. 511, and 512 (8 kHz) if the edge rounds above
    assert cost.flash_bytes == (321 + 257 + 41 + weights) * 4 + 42 * 2
    network = Cost(params=100, macs=1000, flash_bytes=2000, peak_sram_bytes=3000)
    total = cost.add_to(network)
    assert (total.peak_sram_bytes, total.flash_bytes, total.macs) == (4588, 2000 + cost.flash_bytes, 1000 + cost.macs)
    big = Cost(params=100, macs=1000, flash_bytes=2000, peak_sram_bytes=16000)
    assert cost.add_to(big).peak_sram_bytes == 16000 and cost.ram_added(16000) == 0


def test_a_frame_of_the_ffts_length_stores_no_window():
    """32 ms at 8 kHz is 256 samples, the FFT's length: the window is read from the twiddles, so
    flash is 65 quarter-wave cosines + the filterbank's 127 weights (bins 1 .. 127: 31.25 Hz >= 20 Hz,
    bin 128 = 4 kHz the top edge) floats + 22 edges x 2 bytes; log-mel has no DCT table."""
    fe = FrontEnd(kind="logmel", sample_rate=8000, clip_ms=200, frame_ms=32, hop_ms=16, n_mels=20)
    top = 700 * (10 ** (2595 * np.log10(1 + 4000 / 700) / 2595) - 1)
    weights = int(np.sum((np.arange(129) * 8000 / 256 >= 20) & (np.arange(129) * 8000 / 256 < top)))
    assert fe.cost().flash_bytes == (65 + weights) * 4 + 22 * 2


def test_genes_and_json_round_trip():
    base = FrontEnd(sample_rate=8000)
    for gene, choices in FRONTEND_GENES.items():
        for value in choices:
            if gene == "n_mfcc" and value > base.n_mels:
                continue
            assert getattr(base.with_genes({gene: value}), gene) == value
    fe = base.with_genes({"kind": "logmel", "n_mels": 32})
    assert FrontEnd.from_json(fe.to_json()) == fe and fe.output_shape == (49, 32, 1)
    with pytest.raises(TinyevoError, match="front-end genes"):
        base.with_genes({"sample_rate": 16000})
    with pytest.raises(TinyevoError, match="exceeds n_mels"):
        FrontEnd(n_mels=8, n_mfcc=10)
    with pytest.raises(TinyevoError, match="hop_ms <= frame_ms"):
        FrontEnd(frame_ms=20, hop_ms=40)
