"""The C code generator against the int8 reference executor, on the host.

Oracle: ``tinyevo.deploy.run_int8`` (bit-exact with TFLite Micro, tests/test_tflite_export.py).
Every generated library is compiled as strict C99 with gcc under AddressSanitizer and
UndefinedBehaviorSanitizer (``-fno-sanitize-recover=all``: any finding fails the run), run on
several inputs in one process, and its outputs must equal the reference's bit for bit. The
portable C loops are what run here; the SMLAD path is for Cortex-M (tests/test_codegen_mcu.py).

Golden files: the generated C of two fixed small models is checked in under tests/golden/codegen/
so that a change to the generator shows in review. After an intended change, regenerate with

    TINYEVO_REGEN_GOLDEN=1 .venv/bin/python -m pytest tests/test_codegen.py -k golden
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch

from deploy_helpers import HAND_BUILT, int8_inputs, quantized_model
from tinyevo.arch import GraphBuilder
from tinyevo.cli import main
from tinyevo.hardware.cost_model import search_cost_model
from tinyevo.deploy import run_int8
from tinyevo.deploy.codegen.emit import generate_c, render_c
from tinyevo.deploy.codegen.host import build_host, run_host
from tinyevo.deploy.codegen.metadata import FORMAT_VERSION, read_metadata
from tinyevo.deploy.quantized_model import QuantizedModel
from tinyevo.hardware import load_board
from tinyevo.model_file import load_architecture
from tinyevo.spaces import SPACES, create_space
from tinyevo.zoo import MODELS

torch.set_num_threads(1)
pytestmark = pytest.mark.skipif(shutil.which(os.environ.get("CC", "gcc")) is None,
                                reason="no host C compiler (gcc) found")
INPUTS_PER_MODEL = 6
SAMPLES_PER_SPACE = 20
#: Every how many samples the layer-by-layer plan is built too; the spaces of issue 15: every one.
LAYER_BY_LAYER_EVERY = {"dag": 1, "blocks": 1, "densenet": 1, "nasnet": 1}
#: Streamed samples each space must have (default: a quarter). A nasnet cell branches right after
#: the stem, so only the stem conv can stream, and it rarely holds the peak. A tcn network is one
#: row high (a 1-D sequence) and the planner streams rows, so its streamed plan is layer by layer.
STREAMED_AT_LEAST = {"nasnet": 0, "tcn": 0}
COMPILE_WORKERS = 2
GOLDEN = Path(__file__).parent / "golden" / "codegen"
#: Small settings of each space (small inputs and widths), so that 20 sanitized builds stay quick.
SMALL_SPACES = {
    "blocks": dict(input_shape=(12, 12, 3), channels=(4, 8), kernels=(1, 3), layers=(2, 3), growth=(4,)),
    "chain": dict(input_shape=(12, 12, 1), filters=(4, 8, 16), kernels=(1, 3, 5), units=(8, 16)),
    "dag": dict(input_shape=(12, 12, 3), nodes=(4, 4), channels=(4, 8), op=("conv3x3", "ds3x3")),
    "densenet": dict(input_shape=(12, 12, 3), blocks=2, layers=(1, 2), growth=(2, 4),
                     bottleneck=(1, 2), kernels=(3, 5)),
    "kws": dict(input_shape=(49, 10, 1), stem_kernels=((3, 3), (10, 4)), stem_channels=(4, 8),
                blocks=(1, 2, 3), channels=(4, 8), kernels=(3, 5)),
    "mbv2": dict(input_shape=(32, 32, 3), resolutions=(32,), widths=(0.2,), depths=(1, 2),
                 feature_mix_layer=False),
    "nasnet": dict(input_shape=(12, 12, 3), blocks=2, cells_per_stage=1, reductions=1, channels=4),
    "nb201": dict(input_shape=(8, 8, 3), channels=4, cells_per_stage=1),
    "tcn": dict(input_shape=(1, 40, 1), blocks=(1, 2, 3), kernels=(3, 5), dilations=(1, 2, 4),
                channels=(4, 8), pools=(1, 2)),
}


def model_inputs(qmodel, arch, rng) -> np.ndarray:
    """Random inputs plus the two extreme ones (every value -128, every value 127)."""
    x = int8_inputs(qmodel, arch, INPUTS_PER_MODEL - 2, rng)
    extremes = np.stack([np.full(x.shape[1:], -128, np.int8), np.full(x.shape[1:], 127, np.int8)])
    return np.concatenate([x, extremes])


def build_and_compare(qmodel: QuantizedModel, x: np.ndarray, folder: Path, execution: str = "streamed") -> dict:
    """Generate, compile with the sanitizers, run all of ``x`` in one process, compare; the metadata."""
    generate_c(qmodel, folder, execution=execution)
    got = run_host(build_host(folder, sanitize=True), x)
    expected = run_int8(qmodel, x)
    np.testing.assert_array_equal(got.reshape(expected.shape), expected, err_msg=qmodel.name)
    return read_metadata(folder / "metadata.json")


def check_many(cases: list[tuple], tmp_path: Path) -> list[dict]:
    """``build_and_compare`` for every case (qmodel, inputs[, execution]), ``COMPILE_WORKERS``
    compilers at a time."""
    with ThreadPoolExecutor(COMPILE_WORKERS) as pool:
        jobs = [pool.submit(build_and_compare, case[0], case[1], tmp_path / f"model{i}", *case[2:])
                for i, case in enumerate(cases)]
        return [job.result() for job in jobs]


def test_registered_spaces_have_small_settings_here():
    assert set(SPACES.names()) <= set(SMALL_SPACES), "add the new space to SMALL_SPACES"


@pytest.mark.slow
@pytest.mark.parametrize("space_name", sorted(SMALL_SPACES))
def test_space_samples_are_bit_exact_under_sanitizers(space_name, tmp_path):
    """Each sample streamed, a quarter (every sample of the spaces of issue 15) layer by layer as well; every
    arena within the peak SRAM the search counted for that execution (``search_cost_model``)."""
    space = create_space(space_name, **SMALL_SPACES[space_name])
    board = load_board("stm32f746")
    cases, searched = [], []
    for seed in range(SAMPLES_PER_SPACE):
        arch = space.decode(space.sample(np.random.default_rng(seed)))
        _, qmodel, rng = quantized_model(arch, seed)
        x = model_inputs(qmodel, arch, rng)
        modes = ["streamed"]
        if seed % LAYER_BY_LAYER_EVERY.get(space_name, 4) == 0:
            modes.append("layer_by_layer")
        for execution in modes:
            cases.append((qmodel, x, execution))
            searched.append((seed, execution, search_cost_model(execution)(arch, board).peak_sram_bytes))
    metadata = check_many(cases, tmp_path)
    for meta, (seed, execution, peak) in zip(metadata, searched):
        assert meta["arena_bytes"] <= peak, (space_name, seed, execution, meta["arena_bytes"], peak)
    in_place = {op["kind"] for meta in metadata for op in meta["op_order"] if op["in_place"]}
    streamed = sum(meta["execution"]["mode"] == "streamed" for meta in metadata)
    print(f"{space_name}: in-place kinds {sorted(in_place)}, {streamed} streamed, arenas "
          f"{[meta['arena_bytes'] for meta in metadata]}")
    assert streamed >= STREAMED_AT_LEAST.get(space_name, SAMPLES_PER_SPACE // 4), \
        "streaming lowers the peak of many samples"
    if space_name == "mbv2":  # the inverted residual blocks exercise the in-place kernels
        assert {"depthwise_conv_2d", "add"} <= in_place


@pytest.mark.parametrize("name", sorted(MODELS))
def test_mlperf_tiny_models_are_bit_exact_under_sanitizers(name, tmp_path):
    arch = MODELS[name]()
    _, qmodel, rng = quantized_model(arch, 0)
    x = model_inputs(qmodel, arch, rng)
    for execution in ("streamed", "layer_by_layer"):
        meta = build_and_compare(qmodel, x, tmp_path / execution, execution)
        assert meta["arena_bytes"] == meta["peak_bytes"]
        assert meta["execution"]["mode"] == execution or not meta["execution"]["streamed_ops"]


def test_hand_built_graphs_are_bit_exact_under_sanitizers(tmp_path):
    """Every op kind the quantizer emits, in the awkward places (ops on the input, a concat that
    requantizes, a tensor of zeros, an identity network)."""
    cases = []
    for name in sorted(HAND_BUILT):
        arch = HAND_BUILT[name]()
        _, qmodel, rng = quantized_model(arch, 7)
        cases.append((qmodel, model_inputs(qmodel, arch, rng)))
    _, dense, rng = quantized_model(HAND_BUILT["input_ops"](), 2, dense_as="fully_connected")
    cases.append((dense, model_inputs(dense, HAND_BUILT["input_ops"](), rng)))
    kinds = {op["kind"] for meta in check_many(cases, tmp_path) for op in meta["op_order"]}
    assert kinds >= {"conv_2d", "depthwise_conv_2d", "fully_connected", "max_pool_2d",
                     "average_pool_2d", "add", "concatenation", "reshape", "relu", "relu6"}


def test_library_is_self_contained_c99_with_static_memory(tmp_path):
    arch = HAND_BUILT["every_op"]()
    _, qmodel, _ = quantized_model(arch, 1)
    generated = generate_c(qmodel, tmp_path)
    source, header = (tmp_path / "tinyevo_model.c").read_text(), (tmp_path / "tinyevo_model.h").read_text()
    runtime = (tmp_path / "tinyevo_runtime.h").read_text()
    assert "int tinyevo_model_run(const int8_t *input, int8_t *output);" in header
    for text in (source, header, runtime):
        assert "malloc" not in text and "#include <stdlib.h>" not in text and "float" not in text
    weighted = sum(op.weights is not None for op in qmodel.ops)
    assert len(re.findall(r"^static const int(8|16)_t layer\d+_weights\[", source, re.M)) == weighted
    assert source.count("int8_t bytes[") == 1  # the one arena
    meta = read_metadata(tmp_path / "metadata.json")
    assert meta["version"] == FORMAT_VERSION and meta["arena_bytes"] == generated.plan.arena_bytes
    assert f"int8_t bytes[{meta['arena_bytes']}]" in source
    for key, spec in (("input", qmodel.input_spec), ("output", qmodel.output_spec)):
        assert meta[key]["shape"] == spec.shape and meta[key]["zero_point"] == spec.zero_point
        assert meta[key]["scale"] == pytest.approx(spec.scale, rel=1e-7)
    weights = sum(op.weights.size + 4 * op.bias.size for op in qmodel.ops if op.weights is not None)
    # small filters keep int16 weights (Conv2D.wide_weights), each filter rounded up to four values
    assert weights <= meta["flash_bytes"] <= 2 * weights + 16 * sum(op.bias.size for op in qmodel.ops
                                                                    if op.bias is not None) + 1024
    assert [op["name"] for op in meta["op_order"]] == generated.plan.order
    for op in meta["op_order"]:  # every output lies inside the arena
        assert 0 <= op["output_offset"] and op["output_offset"] + op["output_bytes"] <= meta["arena_bytes"]


def test_layers_of_one_shape_share_a_kernel(tmp_path):
    """A stack of identical 3x3 convolutions compiles to one conv function called four times."""
    g = GraphBuilder((6, 6, 4), name="stack")
    x = g.input
    for _ in range(4):
        x = g.relu(g.batch_norm(g.conv2d(x, 4, kernel=3)))
    arch = g.build(x)
    _, qmodel, rng = quantized_model(arch, 3)
    build_and_compare(qmodel, model_inputs(qmodel, arch, rng), tmp_path)
    source = (tmp_path / "tinyevo_model.c").read_text()
    calls = re.findall(r"^    (\w+)\(arena.*/\* ", source, re.M)  # the layer calls of tinyevo_model_run
    assert len(calls) == 4 and len(set(calls)) == 1 and calls[0].startswith("conv_2d")
    assert source.count(f"static void {calls[0]}(") == 1


# --- golden files ----------------------------------------------------------------------------------
def golden_tiny_chain():
    """conv + relu, an in-place 3x3 depthwise conv (scratch channel), an in-place 1x1 conv (scratch
    pixel), global average pool, dense."""
    g = GraphBuilder((6, 6, 2), name="golden_chain")
    x = g.relu(g.batch_norm(g.conv2d(g.input, 4, kernel=3)))
    x = g.relu6(g.batch_norm(g.conv2d(x, 4, kernel=3, groups=4)))
    x = g.batch_norm(g.conv2d(x, 4, kernel=1))
    return g.build(g.dense(g.flatten(g.global_avg_pool(x)), 3))


def golden_tiny_residual():
    """A residual add written over its dead input, a concat that requantizes, pools."""
    g = GraphBuilder((5, 5, 3), name="golden_residual")
    a = g.conv2d(g.input, 4, kernel=3)
    b = g.relu(g.batch_norm(g.conv2d(a, 4, kernel=1)))
    s = g.add(a, b)
    c = g.concat(s, g.max_pool(a, kernel=3, stride=1, padding="same"))
    return g.build(g.dense(g.flatten(g.avg_pool(c, kernel=2, stride=2)), 3))


GOLDEN_MODELS = {"tiny_chain": golden_tiny_chain, "tiny_residual": golden_tiny_residual}
REGENERATE = os.environ.get("TINYEVO_REGEN_GOLDEN") == "1"


@pytest.mark.parametrize("name", sorted(GOLDEN_MODELS))
def test_golden_generated_c_is_unchanged(name, tmp_path):
    """The int8 model is stored (.npz) so that the check does not depend on torch's random streams."""
    folder = GOLDEN / name
    if REGENERATE:
        _, qmodel, _ = quantized_model(GOLDEN_MODELS[name](), 0)
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        qmodel.save(folder / "model.npz")
        generate_c(qmodel, folder)
    qmodel = QuantizedModel.load(folder / "model.npz")
    generated = render_c(qmodel)
    for file, text in generated.files.items():
        assert (folder / file).read_text() == text, (
            f"{file} of {name} changed; if intended, regenerate: TINYEVO_REGEN_GOLDEN=1 "
            f".venv/bin/python -m pytest tests/test_codegen.py -k golden")
    x = np.random.default_rng(5).integers(-128, 128, size=(4, *qmodel.input_spec.shape[1:]), dtype=np.int8)
    build_and_compare(qmodel, x, tmp_path)


# --- tinyevo export --format c ---------------------------------------------------------------------
def test_export_format_c_writes_a_library_that_matches_the_tflite_export(tmp_path, capfd):
    capfd.readouterr()
    assert main(["sample", "--space", "chain", "--seed", "4", "--json"]) == 0
    genome = tmp_path / "genome.json"
    genome.write_text(capfd.readouterr()[0])
    out = tmp_path / "lib"
    assert main(["export", str(genome), "--format", "c", "--out", str(out), "--json"]) == 0
    result = json.loads(capfd.readouterr()[0])
    assert result["format"] == "c" and result["random_weights"] and result["arena_bytes"] > 0
    assert sorted(p.name for p in out.iterdir()) == ["metadata.json", "tinyevo_model.c",
                                                     "tinyevo_model.h", "tinyevo_runtime.h"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left
    # the same command's .tflite (same seed: same weights and calibration) runs in TFLM
    from tinyevo.deploy.runtimes import run_tflm
    assert main(["export", str(genome), "--out", str(tmp_path / "g.tflite")]) == 0
    arch = load_architecture(genome)
    x = np.random.default_rng(0).integers(-128, 128, size=(5, *arch.input_shape), dtype=np.int8)
    expected = run_tflm((tmp_path / "g.tflite").read_bytes(), x)
    got = run_host(build_host(out, sanitize=True), x)
    np.testing.assert_array_equal(got.reshape(expected.shape), expected)
    # --execution layer_by_layer: whole tensors, an arena at least as large, the same outputs
    whole = tmp_path / "whole"
    capfd.readouterr()
    assert main(["export", str(genome), "--format", "c", "--out", str(whole), "--json",
                 "--execution", "layer_by_layer"]) == 0
    assert json.loads(capfd.readouterr()[0])["arena_bytes"] >= result["arena_bytes"]
    assert read_metadata(whole / "metadata.json")["execution"]["mode"] == "layer_by_layer"
    got = run_host(build_host(whole, sanitize=True), x)
    np.testing.assert_array_equal(got.reshape(expected.shape), expected)
    # exporting again replaces the library in place
    assert main(["export", str(genome), "--format", "c", "--out", str(out), "--seed", "1"]) == 0
    assert (out / "metadata.json").is_file() and "static arena" in capfd.readouterr()[0]


@pytest.mark.parametrize("case", ["file", "foreign_folder", "missing_parent", "bad_genome"])
def test_export_format_c_bad_output_gives_one_line_and_no_folder(tmp_path, capfd, case):
    capfd.readouterr()
    assert main(["sample", "--space", "chain", "--seed", "4", "--json"]) == 0
    genome = tmp_path / "genome.json"
    genome.write_text(capfd.readouterr()[0])
    out = {"file": tmp_path / "a_file", "foreign_folder": tmp_path / "photos",
           "missing_parent": tmp_path / "no" / "lib", "bad_genome": tmp_path / "lib"}[case]
    (tmp_path / "a_file").write_text("keep me")
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_text("keep me")
    if case == "bad_genome":
        genome.write_text('{"space": "chain", "genome": "not a genome"}')
    before = sorted(p.name for p in tmp_path.rglob("*"))
    code = main(["export", str(genome), "--format", "c", "--out", str(out)])
    _, err = capfd.readouterr()
    assert code != 0 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_the_example_main_c_classifies_as_the_int8_reference(tmp_path):
    """``examples/c_main/main.c``, built as its comment says, quantizes float pixels with the
    header's scale and zero point and prints the class the int8 reference executor picks."""
    arch = create_space("chain", **SMALL_SPACES["chain"]).decode(
        create_space("chain", **SMALL_SPACES["chain"]).sample(np.random.default_rng(4)))
    _, qmodel, _ = quantized_model(arch, 4)
    generate_c(qmodel, tmp_path / "model_c")
    binary = tmp_path / "classify"
    example = Path(__file__).resolve().parents[1] / "examples" / "c_main" / "main.c"
    subprocess.run([os.environ.get("CC", "gcc"), "-std=c99", "-O2", "-Wall", "-Werror", "-I",
                    str(tmp_path / "model_c"), str(tmp_path / "model_c" / "tinyevo_model.c"), str(example),
                    "-lm", "-o", str(binary)], check=True, capture_output=True)
    spec = qmodel.input_spec
    rng = np.random.default_rng(5)
    for _ in range(3):
        pixels = rng.uniform(-1.0, 1.0, size=spec.shape).astype(np.float32)
        done = subprocess.run([str(binary)], input=pixels.tobytes(), capture_output=True, check=True)
        q = np.clip(np.round(pixels / np.float32(spec.scale)) + spec.zero_point, -128, 127)
        scores = run_int8(qmodel, q.astype(np.int8).reshape(1, *arch.input_shape)).reshape(-1)
        assert done.stdout.decode().split()[1] == str(int(np.argmax(scores)))
    short = subprocess.run([str(binary)], input=b"\0" * 8, capture_output=True)
    assert short.returncode == 2 and b"float32 values" in short.stderr
