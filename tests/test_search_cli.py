"""`tinyevo search` end to end on the built-in digits data: killed, resumed, shown; bad input."""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

CONFIG = """
space = "chain"
dataset = "digits"
board = "stm32f746"
strategy = "regularized"
objectives = ["accuracy"]
budget = 4
seed = 3
final_epochs = 1
final_models = 1

[space_options]
filters = [4, 8]
units = [16]

[fidelity]
epochs = 1
"""


def command(out, *extra):
    return [sys.executable, "-m", "tinyevo.cli", "search", "--config", str(out.parent / "c.toml"),
            "--out", str(out), "--no-progress", *extra]


def run(args, **kwargs):
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300, **kwargs)


def stored_trials(out):
    """Every stored trial without its wall-clock timings (the only thing a rerun may change)."""
    with sqlite3.connect(out / "trials.sqlite") as db:
        rows = db.execute("SELECT id, key, genome_json, status, metrics_json FROM trials "
                          "ORDER BY id").fetchall()
    timed = ("train_seconds",)
    return [(*row[:4], {k: v for k, v in json.loads(row[4]).items() if k not in timed}) for row in rows]


def count_stored(out):
    try:
        with sqlite3.connect(out / "trials.sqlite") as db:
            return db.execute("SELECT COUNT(*) FROM trials").fetchone()[0]
    except sqlite3.Error:
        return 0


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("reference") / "run"
    (out.parent / "c.toml").write_text(CONFIG)
    result = run(command(out))
    assert result.returncode == 0, result.stderr
    return out


def test_killed_search_resumes_to_the_uninterrupted_result(reference, tmp_path):
    out = tmp_path / "run"
    (tmp_path / "c.toml").write_text(CONFIG)
    process = subprocess.Popen(command(out), cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while count_stored(out) < 2 and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert process.poll() is None, "the search ended before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert 2 <= count_stored(out) < 4
    result = run(command(out))
    assert result.returncode == 0, result.stderr
    assert stored_trials(out) == stored_trials(reference)
    shown = run([sys.executable, "-m", "tinyevo.cli", "show", str(out), "--json"])
    assert shown.returncode == 0, shown.stderr
    results = json.loads(shown.stdout)
    assert results["evaluated"] == 4 and results["front"]
    best = results["best"]
    assert best["test_accuracy"] == pytest.approx(accuracy_of_saved_model(out / best["weights"]))


def accuracy_of_saved_model(weights_path):
    """Independent check: the saved weights, loaded into a fresh module, scored on digits' test split."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    from tinyevo.arch import Architecture
    from tinyevo.data import load_dataset
    from tinyevo.nn import build

    arch = Architecture.from_json(json.loads(weights_path.with_suffix(".json").read_text()))
    module = build(arch)
    state = np.load(weights_path)
    module.load_state_dict({k: torch.from_numpy(state[k]) for k in state.files})
    data = load_dataset("digits", seed=3)
    x = torch.from_numpy(data.x_test.astype(np.float32) * data.scale).permute(0, 3, 1, 2)
    if tuple(x.shape[2:]) != arch.input_shape[:2]:
        x = F.interpolate(x, size=arch.input_shape[:2], mode="bilinear")
    with torch.no_grad():
        predicted = module.eval()(x).argmax(1).numpy()
    return float((predicted == data.y_test).mean())


def test_rerunning_a_finished_search_evaluates_nothing_new(reference):
    before = stored_trials(reference)
    result = run(command(reference))
    assert result.returncode == 0, result.stderr
    assert stored_trials(reference) == before


def test_a_different_seed_does_not_overwrite_a_run(reference):
    result = run(command(reference, "--seed", "99"))
    assert result.returncode == 2 and "seed" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("flags, message", [
    (["--dataset", "imagenet-22k"], "unknown dataset 'imagenet-22k'"),
    (["--dataset", "mnist", "--data-dir", "/does/not/exist"], "does not exist"),
    (["--config", "/does/not/exist.toml"], "config file not found"),
    (["--max-sram", "10"], "no architecture of space 'chain' fits"),
    (["--max-flash", "lots"], "cannot read a size 'lots'"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, flags, message):
    out = tmp_path / "run"
    result = run([sys.executable, "-m", "tinyevo.cli", "search", "--out", str(out), *flags])
    assert result.returncode != 0 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not out.exists()


def test_unreadable_config_is_named(tmp_path):
    (tmp_path / "bad.toml").write_text("budget = [\n")
    result = run([sys.executable, "-m", "tinyevo.cli", "search", "--config", str(tmp_path / "bad.toml"),
                  "--out", str(tmp_path / "run")])
    assert result.returncode == 2 and "not valid TOML" in result.stderr


# --- --execution streamed: peak SRAM as the C code generator runs the model ---------------------
STREAMED_SPACE = dict(filters=[16, 32], kernels=[3], strides=[1], units=[16], max_initial_layers=3)
STREAMED_CONFIG = """
space = "chain"
dataset = "digits"
board = "stm32f746"
strategy = "random"
objectives = ["accuracy", "peak_sram_bytes"]
budget = 6
seed = 1
final_epochs = 1
final_models = 1
execution = "streamed"

[space_options]
filters = [16, 32]
kernels = [3]
strides = [1]
units = [16]
max_initial_layers = 3

[fidelity]
epochs = 1
data_fraction = 0.3
"""


@pytest.fixture(scope="module")
def streamed_run(tmp_path_factory):
    """Digits (8x8x1) with 16-32 filter 3x3 convs at stride 1: the first layers are the largest
    tensors, so streaming them row by row lowers the peak of some models. Run in this process
    (the imports are already paid for)."""
    import contextlib
    import io

    from tinyevo.cli import main

    out = tmp_path_factory.mktemp("streamed") / "run"
    (out.parent / "c.toml").write_text(STREAMED_CONFIG)
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(command(out)[3:]) == 0
    return out


def test_streamed_search_stores_the_arena_the_code_generator_plans(streamed_run, capsys):
    from deploy_helpers import quantized_model
    from tinyevo.cli import main
    from tinyevo.deploy.codegen import plan_memory
    from tinyevo.hardware.arena import peak_sram_bytes
    from tinyevo.spaces import create_space

    space = create_space("chain", input_shape=[8, 8, 1], num_classes=10, **STREAMED_SPACE)
    trials = stored_trials(streamed_run)
    assert len(trials) == 6
    streaming_pays = 0
    for trial_id, _, genome, status, metrics in trials:
        arch = space.decode(json.loads(genome))  # recomputed from the genome, not read back
        streamed = peak_sram_bytes(arch, in_place_kernels=True, execution="streamed")
        layers = peak_sram_bytes(arch, in_place_kernels=True, execution="layer_by_layer")
        assert metrics["peak_sram_bytes"] == streamed, trial_id
        assert streamed <= layers <= peak_sram_bytes(arch), trial_id  # the search's default figure last
        streaming_pays += streamed < layers
        _, qmodel, _ = quantized_model(arch, trial_id, calibration_count=2)
        assert plan_memory(qmodel).arena_bytes == streamed, trial_id  # the generated C's arena
    assert streaming_pays >= 1

    assert main(["show", str(streamed_run)]) == 0
    assert "(peak SRAM streamed)" in capsys.readouterr().out
    assert main(["show", str(streamed_run), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["execution"] == "streamed"


def test_a_run_cannot_change_its_execution(streamed_run, capsys):
    from tinyevo.cli import main

    before = stored_trials(streamed_run)
    assert main(command(streamed_run, "--execution", "layer_by_layer")[3:]) == 2
    error = capsys.readouterr().err
    assert "config.execution='streamed'" in error and len(error.strip().splitlines()) == 1
    assert stored_trials(streamed_run) == before


def test_bad_execution_is_one_line_and_writes_nothing(tmp_path):
    out = tmp_path / "run"
    result = run([sys.executable, "-m", "tinyevo.cli", "search", "--out", str(out), "--execution", "rowwise"])
    assert result.returncode == 2, result.stderr
    assert "execution must be one of layer_by_layer, streamed, got 'rowwise'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not out.exists()


def test_an_out_that_is_a_file_is_one_line_and_left_alone(tmp_path):
    taken = tmp_path / "notes.txt"
    taken.write_text("mine")
    result = run([sys.executable, "-m", "tinyevo.cli", "search", "--out", str(taken), "--budget", "1"])
    assert result.returncode == 2 and "is a file, not a run folder" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and taken.read_text() == "mine"
