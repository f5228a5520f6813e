"""The generated C front-end against the float64 Python reference (``tinyevo.audio.FrontEnd``), on
generated clips, compiled strict C99 with gcc under AddressSanitizer and UBSan; its memory
against the sizes of the compiled object's symbols (``nm``); and ``export --format c`` of a
model of MFCC features: the class from PCM through the C front-end and the C model equals the
Python pipeline's (front-end, input quantization, int8 reference executor)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from deploy_helpers import random_model
from tinyevo.arch import GraphBuilder
from tinyevo.audio import FrontEnd
from tinyevo.deploy import run_int8
from tinyevo.deploy.codegen.emit import render_c
from tinyevo.deploy.codegen.frontend_c import (TOLERANCE, build_frontend_host, build_pcm_host, render_frontend,
                                               run_frontend_host, run_pcm_host)
from tinyevo.deploy.codegen.frontend_mcu import run_frontend_mcu
from tinyevo.deploy.codegen.host import build_host, run_host
from tinyevo.deploy.codegen.mcu import mcu_available, run_on_mcu
from tinyevo.deploy.export import ModelToExport, write_model
from tinyevo.deploy.exporters import create_exporter
from tinyevo.deploy.quantize import quantize
from tinyevo.deploy.quantized_model import TensorSpec
from tinyevo.errors import TinyevoError

torch.set_num_threads(1)
CC = os.environ.get("CC", "gcc")
pytestmark = pytest.mark.skipif(shutil.which(CC) is None, reason="no host C compiler (gcc) found")
FRONT_ENDS = {
    "mfcc-8k": FrontEnd(kind="mfcc", sample_rate=8000, clip_ms=500, frame_ms=32, hop_ms=16, n_mels=40, n_mfcc=13),
    "logmel-16k": FrontEnd(kind="logmel", sample_rate=16000, clip_ms=300, frame_ms=40, hop_ms=20, n_mels=32),
    # the smallest real FFT (4 points: 2 complex) and an odd frame (window folded about 2.5)
    "logmel-fft4": FrontEnd(kind="logmel", sample_rate=1000, clip_ms=40, frame_ms=4, hop_ms=2, n_mels=2),
    "mfcc-odd-frame": FrontEnd(kind="mfcc", sample_rate=1000, clip_ms=60, frame_ms=5, hop_ms=3, n_mels=3,
                               n_mfcc=2),
    # more mel bands (40) than free slots in a 64-point FFT's buffer (31): the energies get their own
    "logmel-many-bands": FrontEnd(kind="logmel", sample_rate=8000, clip_ms=200, frame_ms=8, hop_ms=8, n_mels=40),
}


def clips(fe: FrontEnd, rng: np.random.Generator) -> np.ndarray:
    """Tones, a chirp, noise, silence and a full-scale square wave (int16 -32768 and 32767)."""
    t = np.arange(fe.clip_samples) / fe.sample_rate
    waves = [0.5 * np.sin(2 * np.pi * hz * t) for hz in (300, 1200, fe.sample_rate / 2 - 500)]
    waves.append(0.3 * np.sin(2 * np.pi * (200 + 2000 * t) * t))
    waves.append(rng.normal(scale=0.1, size=len(t)))
    waves.append(np.zeros(len(t)))
    out = np.round(np.stack(waves) * 32767).astype(np.int16)
    square = np.where(np.sin(2 * np.pi * 440 * t) >= 0, 32767, -32768).astype(np.int16)
    return np.concatenate([out, square[None]])


def write(files: dict[str, str], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


@pytest.mark.parametrize("name", FRONT_ENDS)
def test_c_features_are_within_the_stated_tolerance_of_the_python_reference(name, tmp_path):
    fe = FRONT_ENDS[name]
    scale, zero_point = 0.2, -20
    folder = write(render_frontend(fe, scale, zero_point), tmp_path / name)
    pcm = clips(fe, np.random.default_rng(0))
    features, inputs = run_frontend_host(build_frontend_host(folder, sanitize=True), pcm, fe)
    reference = fe(pcm).astype(np.float64)
    error = np.abs(features - reference)
    assert np.all(error <= TOLERANCE["atol"] + TOLERANCE["rtol"] * np.abs(reference)), error.max()
    expected = np.clip(np.round(reference / scale) + zero_point, -128, 127)
    steps = np.abs(inputs.astype(np.int64) - expected)
    assert steps.max() <= TOLERANCE["int8_steps"] and np.mean(steps == 0) > 0.99


def symbol_bytes(obj: Path) -> dict[str, int]:
    """Bytes of the object's read-only (flash) and zero-initialised (RAM) data symbols, from ``nm``."""
    listing = subprocess.run(["nm", "-S", str(obj)], capture_output=True, text=True, check=True).stdout
    sizes = {"flash": 0, "ram": 0}
    for line in listing.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[3].startswith("fe_"):
            kind = "flash" if parts[2] in "rR" else "ram" if parts[2] in "bB" else None
            if kind:
                sizes[kind] += int(parts[1], 16)
    return sizes


@pytest.mark.skipif(shutil.which("nm") is None, reason="no nm")
@pytest.mark.parametrize("name", ["mfcc-8k", "logmel-16k", "logmel-many-bands"])  # -O2 folds tiny tables
def test_counted_ram_and_flash_are_the_compiled_objects(name, tmp_path):
    """The cost model's flash is the C's constant tables; the C has no static buffers: its scratch
    is the caller's (TINYEVO_FRONTEND_SCRATCH_FLOATS), and its RAM on its own that scratch plus the
    int8 feature map."""
    fe = FRONT_ENDS[name]
    folder = write(render_frontend(fe, 0.1, 0), tmp_path / name)
    obj = folder / "frontend.o"
    subprocess.run([CC, "-std=c99", "-O2", "-c", str(folder / "tinyevo_frontend.c"), "-o", str(obj)], check=True)
    sizes, cost = symbol_bytes(obj), fe.cost()
    assert sizes["flash"] == cost.flash_bytes
    assert sizes["ram"] == 0
    header = (folder / "tinyevo_frontend.h").read_text()
    assert f"#define TINYEVO_FRONTEND_SCRATCH_FLOATS {cost.scratch_bytes // 4}\n" in header
    assert cost.ram_bytes == cost.scratch_bytes + cost.feature_bytes
    assert cost.feature_bytes == fe.frames * fe.coefficients


def kws_network(fe: FrontEnd):
    g = GraphBuilder(fe.output_shape, name="kws_test")
    x = g.relu(g.batch_norm(g.conv2d(g.input, 4, kernel=3, stride=2)))
    x = g.avg_pool(x, kernel=2, stride=2)
    return g.build(g.dense(g.flatten(x), 3))


def test_export_c_emits_the_front_end_and_gives_the_python_pipelines_class(tmp_path):
    fe = FRONT_ENDS["mfcc-8k"]
    arch = kws_network(fe)
    module = random_model(arch, seed=0)
    pcm = clips(fe, np.random.default_rng(1))
    features = fe(pcm)
    model = ModelToExport(arch, module, features.transpose(0, 3, 1, 2), "test", frontend=fe)
    out = tmp_path / "kws_c"
    exporter = create_exporter("c")
    write_model(model, exporter, exporter.check_out(out))
    meta = json.loads((out / "metadata.json").read_text())
    assert {"tinyevo_frontend.c", "tinyevo_frontend.h"} <= set(meta["files"]) <= {p.name for p in out.iterdir()}
    front = meta["frontend"]
    assert front["arithmetic"] == "float32" and front["settings"] == fe.to_json()
    assert front["input_scale"] == meta["input"]["scale"] and front["ram_bytes"] == fe.cost().ram_bytes
    # the C pipeline: PCM -> C front-end -> C model
    _, c_inputs = run_frontend_host(build_frontend_host(out), pcm, fe)
    c_scores = run_host(build_host(out), c_inputs).reshape(len(pcm), -1)
    c_classes = c_scores.argmax(axis=1)
    # the Python pipeline: float64 front-end -> input quantization -> int8 reference
    spec = model_input_spec(meta)
    python = run_int8(load_qmodel(model), spec.quantize(features)).reshape(len(pcm), -1).argmax(axis=1)
    np.testing.assert_array_equal(c_classes, python)
    # the model's own PCM entry point, the front-end inside the arena (under the sanitizers): the
    # same scores as the two steps apart, so the scratch overwrote nothing the network reads
    pcm_scores = run_pcm_host(build_pcm_host(out, sanitize=True), pcm, fe).reshape(len(pcm), -1)
    np.testing.assert_array_equal(pcm_scores, c_scores)


def model_input_spec(meta: dict) -> TensorSpec:
    info = meta["input"]
    return TensorSpec(info["shape"], info["scale"], info["zero_point"])


def load_qmodel(model: ModelToExport):
    """The int8 model ``write_model`` exported (quantization is deterministic)."""
    return quantize(model.architecture, model.module, model.calibration)


def test_a_front_end_that_does_not_give_the_models_input_is_one_line(tmp_path):
    fe = FRONT_ENDS["mfcc-8k"]
    arch = kws_network(FRONT_ENDS["logmel-16k"])
    module = random_model(arch, seed=0)
    h, w, c = arch.input_shape
    model = ModelToExport(arch, module, np.zeros((2, c, h, w), np.float32), "test", frontend=fe)
    exporter = create_exporter("c")
    with pytest.raises(TinyevoError, match="front-end gives"):
        write_model(model, exporter, exporter.check_out(tmp_path / "bad"))


@pytest.mark.skipif(not mcu_available(), reason="no ARM toolchain / QEMU")
def test_front_end_on_the_emulated_cortex_m4f(tmp_path):
    """On QEMU's Cortex-M4 with the FPU: the int8 inputs within one step of the Python reference;
    static RAM (arm-none-eabi-size's bss) is the counted buffers plus the harness's clip copy."""
    fe = FrontEnd(kind="mfcc", sample_rate=8000, clip_ms=200, frame_ms=32, hop_ms=16, n_mels=20, n_mfcc=8)
    pcm = clips(fe, np.random.default_rng(2))[:3]
    run = run_frontend_mcu(fe, pcm, 0.2, -20, tmp_path / "mcu")
    expected = np.clip(np.round(fe(pcm).astype(np.float64) / 0.2) - 20, -128, 127)
    assert np.abs(run.inputs.astype(np.int64) - expected).max() <= TOLERANCE["int8_steps"]
    cost = fe.cost()
    assert run.sizes.bss == cost.ram_bytes - cost.feature_bytes + cost.pcm_bytes
    assert all(count > cost.macs for count in run.instructions)  # a MAC is at least one instruction


def test_the_front_end_runs_inside_the_models_arena(tmp_path):
    """The features at the arena's start, the scratch after them (4-byte aligned), then moved to
    the input tensor: the arena grows only to what the front-end needs, max(network arena,
    align4(input) + scratch). Figures by hand: mfcc-8k is 30 frames x 13 = 390 B of input; FFT 256
    floats = 1,024 B of scratch at offset 392; the tiny network's arena is smaller, so 1,416 B."""
    fe = FRONT_ENDS["mfcc-8k"]
    arch = kws_network(fe)
    module = random_model(arch, seed=0)
    features = fe(clips(fe, np.random.default_rng(1)))
    qmodel = quantize(arch, module, features.transpose(0, 3, 1, 2))
    plain = render_c(qmodel)
    generated = render_c(qmodel, frontend=fe)
    meta = generated.metadata
    assert plain.plan.arena_bytes < 1416 and fe.cost().peak_with(plain.plan.arena_bytes) == 1416
    assert (meta.frontend["scratch_offset"], meta.frontend["arena_bytes"], meta.arena_bytes) == (392, 1416, 1416)
    source = generated.files["tinyevo_model.c"]
    assert "int8_t bytes[1416];" in source and "tinyevo_model_run_pcm" in generated.files["tinyevo_model.h"]
    offset = plain.plan.offsets[qmodel.input]
    assert (f"memmove(arena + {offset}, arena, 390);" in source) == (offset != 0)


@pytest.mark.skipif(not mcu_available(), reason="no ARM toolchain / QEMU")
def test_a_model_with_its_front_end_links_for_the_cortex_m4(tmp_path):
    """The exported library with its front-end (the model's PCM entry point calls it) builds for the
    Cortex-M4: the model's static RAM is its arena alone (the front-end has no static buffers, its
    scratch is in the arena), and the int8 entry point still gives the host's outputs."""
    fe = FRONT_ENDS["mfcc-8k"]
    arch = kws_network(fe)
    module = random_model(arch, seed=0)
    features = fe(clips(fe, np.random.default_rng(1)))
    qmodel = quantize(arch, module, features.transpose(0, 3, 1, 2))
    generated = render_c(qmodel, frontend=fe)
    out = tmp_path / "lib"
    generated.write(out)
    inputs = qmodel.input_spec.quantize(features[:2])
    image, run = run_on_mcu(out, inputs)
    assert image.model_sizes.bss == generated.metadata.arena_bytes
    np.testing.assert_array_equal(run.outputs.reshape(2, -1), run_host(build_host(out), inputs).reshape(2, -1))
