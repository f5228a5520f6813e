"""Front-end genes (``kws``/``tcn`` with ``frontend="search"``): decoding to the front-end's feature
shape, the cost the runner sees (network by the cost model on the bare network + the front-end by
hand), features of the raw clips equal to the loader's own, and a search on generated WAV clips
that rejects a candidate over --max-sram because of its front-end, then exports its C front-end."""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import tinyevo as tinyevo_api
from tinyevo.arch import Architecture
from tinyevo.audio import FRONTEND_GENES, FrontEnd
from tinyevo.audio.features import frontend_record
from tinyevo.data import load_dataset
from tinyevo.data.featurized import featurized
from tinyevo.errors import TinyevoError
from tinyevo.hardware.cost import estimate_cost
from tinyevo.run.constraints import ConstraintFilter
from tinyevo.spaces import create_space
from tinyevo.store import Store
from test_wavfolder import class_folders

torch.set_num_threads(1)
BASE = {"sample_rate": 8000, "clip_ms": 500}
MFCC_GENES = {"frontend_kind": "mfcc", "frontend_frame_ms": 32, "frontend_hop_ms": 16,
              "frontend_n_mels": 20, "frontend_n_mfcc": 10}
TINY_KWS = dict(stem_kernels=[[3, 3]], stem_strides=[[2, 2]], stem_channels=[4, 8], blocks=[1],
                channels=[4], kernels=[3])


def kws_genome(space, **frontend):
    return space.genome(1, stem_kernel=[3, 3], stem_stride=[2, 2], stem_channels=4, channels=[4], kernel=[3],
                        **frontend)


def bare(arch: Architecture) -> Architecture:
    """The network alone: the same graph with no front-end."""
    return Architecture(arch.input_shape, arch.nodes, arch.output, arch.name, arch.meta)


def test_a_front_end_genome_decodes_to_its_feature_shape():
    """8 kHz, 500 ms = 4000 samples; frames of 32 ms = 256 samples every 16 ms = 128:
    1 + (4000 - 256) // 128 = 30 frames of 10 MFCCs. kws reads them as a 30x10x1 map, tcn as a
    sequence of 30 steps of 10 features."""
    kws = create_space("kws", num_classes=2, frontend="search", frontend_base=BASE, **TINY_KWS)
    arch = kws.decode(kws_genome(kws, **MFCC_GENES))
    expected = FrontEnd(kind="mfcc", sample_rate=8000, clip_ms=500, frame_ms=32, hop_ms=16, n_mels=20, n_mfcc=10)
    assert arch.input_shape == expected.output_shape == (30, 10, 1)
    assert arch.frontend == {"settings": expected.to_json(), "layout": "map"}
    tcn = create_space("tcn", input_shape=[1, 4000, 1], num_classes=2, frontend="search", frontend_base=BASE)
    genome = tcn.genome(1, kernel=[3], dilation=[1], channels=[8], residual=[False], pool=[1], **MFCC_GENES)
    assert tcn.decode(genome).input_shape == (1, 30, 10)
    assert tcn.parse(tcn.describe(genome)) == genome and kws.describe(kws_genome(kws, **MFCC_GENES)).startswith(
        "mfcc_f32_h16_m20_c10|")


def test_the_front_end_is_part_of_the_candidate_and_of_its_file():
    """Two genomes with the same network and different front-ends are two candidates (keys); the
    architecture's front-end survives JSON; a network without one writes no front-end entry."""
    space = create_space("kws", num_classes=2, frontend="search", frontend_base=BASE, **TINY_KWS)
    a = kws_genome(space, **MFCC_GENES)
    b = kws_genome(space, **{**MFCC_GENES, "frontend_n_mels": 32})
    assert space.key(a) != space.key(b)
    arch = space.decode(a)
    again = Architecture.from_json(json.loads(arch.dumps()))
    assert again == arch and again.frontend == arch.frontend and again.fingerprint() == arch.fingerprint()
    assert "frontend" not in create_space("kws").decode(create_space("kws").smallest()[0]).to_json()
    # log-mel has no DCT: its n_mfcc gene does not make another candidate
    logmel = {**MFCC_GENES, "frontend_kind": "logmel"}
    assert space.key(kws_genome(space, **logmel)) == space.key(kws_genome(space, **{**logmel, "frontend_n_mfcc": 13}))


def test_the_runner_cost_is_network_plus_front_end():
    """Log-mel at 8 kHz, 400 ms, 32 ms frames every 32 ms, 20 bands (numbers by hand):
    frame 256 samples, n_fft 256, 129 bins, 1 + (3200 - 256) // 256 = 12 frames x 20 bands.
    RAM: the front-end runs in the network's arena: its 240 B int8 map is the network's input, its
    scratch of 256 FFT buffer floats (the 20 mel energies share it) x 4 = 1,024 B beside it, so
    the peak is max(network, 240 + 1,024 = 1,264 B); ``frontend_ram_bytes`` is what that adds.
    Flash: (65 quarter-wave cosines + W filter weights) floats x 4 + 22 mel edges x 2 B; no window
    table (the frame is the FFT's length: the window is a twiddle), no DCT (log-mel);
    W = the bins from the lowest mel edge (20 Hz) up to, not including, the highest (4 kHz)."""
    base = {"sample_rate": 8000, "clip_ms": 400}
    space = create_space("kws", num_classes=2, frontend={"kind": ["logmel"], "frame_ms": [32], "hop_ms": [32],
                                                         "n_mels": [20]}, frontend_base=base, **TINY_KWS)
    arch = space.decode(kws_genome(space, frontend_kind="logmel", frontend_frame_ms=32, frontend_hop_ms=32,
                                   frontend_n_mels=20))
    mel = np.linspace(2595 * np.log10(1 + 20 / 700), 2595 * np.log10(1 + 4000 / 700), 22)
    edges = 700 * (10 ** (mel / 2595) - 1)
    bins = np.arange(129) * 8000 / 256
    weights = int(np.sum((bins >= edges[0]) & (bins < edges[-1])))
    network = estimate_cost(bare(arch))
    cost = ConstraintFilter().cost(arch)
    assert cost["peak_sram_bytes"] == max(network.peak_sram_bytes, 1264)
    assert cost["frontend_ram_bytes"] == cost["peak_sram_bytes"] - network.peak_sram_bytes
    assert cost["frontend_flash_bytes"] == (65 + weights) * 4 + 22 * 2
    assert cost["flash_bytes"] == network.flash_bytes + cost["frontend_flash_bytes"]
    assert cost["macs"] == network.macs + cost["frontend_macs"]
    # a dataset's front-end (features made by the loader) is counted the same for a bare network
    fixed = FrontEnd.from_json(arch.frontend["settings"])
    assert ConstraintFilter(frontend=fixed).cost(bare(arch)) == cost
    assert "frontend_ram_bytes" not in ConstraintFilter().cost(bare(arch))


def test_features_of_the_raw_clips_are_the_loaders_own(tmp_path):
    """A candidate's front-end on the raw clips gives what the loader gives with the same settings
    (same seeded split: made on the clips, before any feature); tcn's layout holds the same numbers."""
    root = class_folders(tmp_path / "wav")
    options = dict(data_dir=root, clip_ms=500, frame_ms=32, hop_ms=16, n_mels=20, n_mfcc=10)
    pcm = load_dataset("wavfolder", features="pcm", **options)
    mfcc = load_dataset("wavfolder", **options)
    frontend = FrontEnd.from_json(mfcc.meta["frontend"])
    as_map = featurized(pcm, frontend_record(frontend, "map"))
    np.testing.assert_array_equal(as_map.x_train, mfcc.x_train)
    np.testing.assert_array_equal(as_map.y_test, mfcc.y_test)
    as_sequence = featurized(pcm, frontend_record(frontend, "sequence"))
    assert as_sequence.input_shape == (1, 30, 10)
    np.testing.assert_array_equal(as_sequence.x_val.reshape(mfcc.x_val.shape), mfcc.x_val)
    assert featurized(pcm, frontend_record(frontend, "map")) is as_map  # computed once per setting
    with pytest.raises(TinyevoError, match='features="pcm"'):
        featurized(mfcc, frontend_record(frontend, "map"))


def test_bad_front_end_options_are_one_line(tmp_path):
    with pytest.raises(TinyevoError, match="no gene 'window'"):
        create_space("kws", frontend={"window": ["hann"]})
    with pytest.raises(TinyevoError, match="frontend must be"):
        create_space("tcn", frontend="yes")
    (tmp_path / "c.toml").write_text(CONFIG.replace('features = "pcm"', 'features = "mfcc"'))
    with pytest.raises(TinyevoError, match='features = "pcm"'):
        tinyevo_api.search(tmp_path / "run", config=tmp_path / "c.toml",
                           data_dir=str(class_folders(tmp_path / "wav")), progress=False)


CONFIG = """
space = "kws"
dataset = "wavfolder"
strategy = "random"
objectives = ["accuracy"]
budget = 2
final_models = 1
final_epochs = 1
seed = 1

[dataset_options]
features = "pcm"
clip_ms = 400

[space_options]
stem_kernels = [[3, 3]]
stem_strides = [[2, 2]]
stem_channels = [4, 8]
blocks = [1]
channels = [4]
kernels = [3]
frontend = {kind = ["logmel"], frame_ms = [32, 64], hop_ms = [32], n_mels = [20]}

[fidelity]
epochs = 1
"""


@pytest.mark.slow  # about 7 s: a search of two trainings, a final training and a C export
def test_a_search_with_front_end_genes_costs_rejects_and_exports_them(tmp_path):
    """Log-mel, 8 kHz, 400 ms, 32 ms hop, 20 bands. A 32 ms frame needs 256 x 4 + 12 x 20 = 1,264 B
    of RAM, a 64 ms frame (n_fft 512, 11 frames) 512 x 4 + 11 x 20 = 2,268 B, each more than these
    tiny networks' own peaks (a 12 x 20 input, stride 2, at most 8 channels: under 1 KB). Under
    --max-sram 2,000 B every candidate with a 64 ms frame is infeasible though its network alone
    fits; the exported C front-end is the chosen candidate's."""
    root = class_folders(tmp_path / "wav")
    (tmp_path / "c.toml").write_text(CONFIG)
    result = tinyevo_api.search(tmp_path / "run", config=tmp_path / "c.toml", data_dir=str(root),
                                max_sram="2000", progress=False)
    with Store(tmp_path / "run" / "trials.sqlite") as store:
        trials = [record.trial for record in store.records()]
    by_frame = {32: [], 64: []}
    for trial in trials:
        by_frame[trial.genome["frontend_frame_ms"]].append(trial)
    assert by_frame[64] and all(t.status == "infeasible" for t in by_frame[64])
    assert all(t.metrics["peak_sram_bytes"] == 2268 for t in by_frame[64])
    # the network alone fits
    assert all(t.metrics["peak_sram_bytes"] - t.metrics["frontend_ram_bytes"] <= 2000 for t in by_frame[64])
    assert by_frame[32] and all(t.status == "ok" and t.metrics["peak_sram_bytes"] == 1264 for t in by_frame[32])
    best = result.best
    assert best.get("peak_sram_bytes") == 1264 and best.get("frontend_ram_bytes") > 0
    assert best.test_accuracy is not None

    best.export(tmp_path / "c", format="c")
    meta = json.loads((tmp_path / "c" / "metadata.json").read_text())
    arch = json.loads((tmp_path / "run" / Path(best["weights"]).with_suffix(".json")).read_text())
    assert meta["frontend"]["settings"] == arch["frontend"]["settings"]
    assert arch["frontend"]["settings"]["frame_ms"] == 32 and arch["frontend"]["settings"]["kind"] == "logmel"
    header = (tmp_path / "c" / "tinyevo_frontend.h").read_text()
    assert "#define TINYEVO_FRONTEND_FRAMES 12\n" in header and "#define TINYEVO_FRONTEND_COEFFICIENTS 20\n" in header
    assert meta["input"]["shape"] == [1, 12, 20, 1]


@pytest.mark.parametrize("name", ["kws", "tcn"])
def test_smallest_is_the_least_total_of_network_and_front_end(name):
    """Oracle: a brute force over the whole front-end gene grid (``FRONTEND_GENES``) in this test,
    each FrontEnd built directly, its flash (``cost()``) added to the flash of the space's smallest network
    built without front-end genes on that front-end's feature shape. ``smallest`` returns the
    totals on the Pareto front of (peak SRAM, flash), least SRAM + flash first: the front-end of
    least cost alone is not the cheapest whole (a longer hop makes a smaller map for the network)."""
    totals = set()
    for values in itertools.product(*FRONTEND_GENES.values()):
        try:
            fe = FrontEnd(**BASE, **dict(zip(FRONTEND_GENES, values)))
        except TinyevoError:
            continue
        frames, coefficients, _ = fe.output_shape
        shape = [frames, coefficients, 1] if name == "kws" else [1, frames, coefficients]
        plain = create_space(name, input_shape=shape, num_classes=2)
        net = estimate_cost(plain.decode(plain.smallest()[0]))
        # the front-end in the network's arena: its map (the network's input, 4-byte aligned) and
        # its scratch, n_fft floats (+ n_mels when the energies do not fit the free n_fft / 2 - 1)
        scratch = 4 * (fe.n_fft + (fe.n_mels if fe.n_mels > fe.n_fft // 2 - 1 else 0))
        frontend_peak = (frames * coefficients + 3) // 4 * 4 + scratch
        totals.add((max(net.peak_sram_bytes, frontend_peak), net.flash_bytes + fe.cost().flash_bytes))
    pareto = {t for t in totals if not any(o[0] <= t[0] and o[1] <= t[1] and o != t for o in totals)}
    space = create_space(name, input_shape=[1, 4000, 1], num_classes=2, frontend="search", frontend_base=BASE)
    got = []
    for genome in space.smallest():
        cost = ConstraintFilter(None, None).cost(space.decode(genome))
        got.append((cost["peak_sram_bytes"], cost["flash_bytes"]))
    assert set(got) == pareto and len(got) == len(pareto)
    assert sum(got[0]) == min(sum(t) for t in totals)
