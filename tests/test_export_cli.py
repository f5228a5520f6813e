"""`tinyevo export` end to end: a tiny search on digits, its kept models exported and run.

Oracles: TFLite Micro runs the exported .tflite (bit-exact with the int8 reference executor, and
its accuracy on the test split is the int8 accuracy `tinyevo show` reports); onnxruntime runs the
float .onnx (within 1e-5 of the PyTorch module rebuilt from the run's saved weights).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from tinyevo.cli import main
from tinyevo.config import SearchConfig, merge
from tinyevo.data import load_dataset
from tinyevo.deploy import run_int8, to_tflite
from tinyevo.deploy.output import write_atomically
from tinyevo.deploy.runtimes import run_onnxruntime, run_tflm
from tinyevo.errors import TinyevoError
from tinyevo.estimate.training import to_input
from tinyevo.model_file import load_architecture
from tinyevo.nn import build
from tinyevo.runs.int8 import quantize_trained
from tinyevo.strategies.base import Trial
from tinyevo.store import Store

torch.set_num_threads(1)
SEED = 0
TINY_RUN = {"space_options": {"filters": [4, 8], "kernels": [3], "units": [16], "max_initial_layers": 2},
            "budget": 4, "fidelity.epochs": 1, "final_epochs": 1, "final_models": 2, "seed": SEED}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    from tinyevo.pipeline import SearchJob

    out = tmp_path_factory.mktemp("digits_run")
    SearchJob.create(merge(SearchConfig(), TINY_RUN), out).run(progress=False)
    return out


def tinyevo(capfd, *args) -> tuple[int, str, str]:
    """The CLI in this process; (exit code, stdout, stderr), file descriptors captured."""
    capfd.readouterr()
    code = main([str(a) for a in args])
    out, err = capfd.readouterr()
    return code, out, err


def show_json(capfd, run_dir: Path) -> dict:
    code, out, err = tinyevo(capfd, "show", run_dir, "--json")
    assert code == 0, err
    return json.loads(out)


def trained_rows(results: dict) -> list[dict]:
    return [row for row in results["front"] if row.get("weights")]


def saved_model(run_dir: Path, trial: int):
    """(architecture, module) rebuilt from the run's kept files, independently of the exporter."""
    arch = load_architecture(run_dir / "models" / f"trial_{trial}.json")
    module = build(arch).eval()
    with np.load(run_dir / "models" / f"trial_{trial}.npz") as archive:
        module.load_state_dict({k: torch.from_numpy(archive[k]) for k in archive.files})
    return arch, module


def test_best_model_tflite_runs_in_tflm_with_the_int8_accuracy_show_reports(run_dir, tmp_path, capfd):
    path = tmp_path / "best.tflite"
    code, out, err = tinyevo(capfd, "export", run_dir, "--out", path)
    assert code == 0, err
    results = show_json(capfd, run_dir)
    best = max(trained_rows(results), key=lambda r: (r["final_val_accuracy"], -r["trial"]))
    assert f"trial {best['trial']} of" in out and str(path.stat().st_size) in out.replace(",", "")
    arch, module = saved_model(run_dir, best["trial"])
    data = load_dataset("digits", seed=SEED)
    qmodel = quantize_trained(arch, module, data, SEED)
    assert path.read_bytes() == to_tflite(qmodel)  # the file is that int8 model
    x = to_input(torch.from_numpy(data.x_test), data.scale, arch.input_shape[:2]).numpy()
    x_int8 = qmodel.input_spec.quantize(x.transpose(0, 2, 3, 1))
    tflm = run_tflm(path.read_bytes(), x_int8)
    np.testing.assert_array_equal(tflm, run_int8(qmodel, x_int8))
    tflm_accuracy = float((tflm.reshape(len(x), -1).argmax(1) == data.y_test).mean())
    assert best["int8_test_accuracy"] == pytest.approx(tflm_accuracy, abs=1e-12)


def test_trial_option_exports_that_trial_as_float_onnx_matching_pytorch(run_dir, tmp_path, capfd):
    rows = trained_rows(show_json(capfd, run_dir))
    trial = min(rows, key=lambda r: r["final_val_accuracy"])["trial"]
    path = tmp_path / "chosen.onnx"
    code, out, err = tinyevo(capfd, "export", run_dir, "--trial", trial, "--format", "onnx", "--out", path)
    assert code == 0, err
    assert f"trial {trial} of" in out
    arch, module = saved_model(run_dir, trial)
    h, w, c = arch.input_shape
    x = np.random.default_rng(1).uniform(0, 1, size=(8, c, h, w)).astype(np.float32)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    with torch.no_grad():
        expected = module(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)


def test_show_reports_int8_accuracy_next_to_float(run_dir, capfd):
    rows = trained_rows(show_json(capfd, run_dir))
    assert len(rows) == 2
    for row in rows:
        chance = 1 / 10
        assert row["test_accuracy"] > chance + 0.1  # trained, else the comparison means nothing
        assert abs(row["int8_test_accuracy"] - row["test_accuracy"]) <= 0.1, row
    code, out, _ = tinyevo(capfd, "show", run_dir)
    assert code == 0 and "int8 acc" in out and f"{100 * rows[0]['int8_test_accuracy']:.2f}%" in out


def test_qdq_onnx_of_a_run_stays_close_to_the_int8_reference(run_dir, tmp_path, capfd):
    path = tmp_path / "int8.onnx"
    code, _, err = tinyevo(capfd, "export", run_dir, "--format", "onnx-qdq", "--out", path, "--json")
    assert code == 0, err
    tflite = tmp_path / "same.tflite"
    assert tinyevo(capfd, "export", run_dir, "--out", tflite)[0] == 0
    x = np.random.default_rng(2).integers(-128, 128, size=(16, 8, 8, 1), dtype=np.int8)
    got = run_onnxruntime(path, x).astype(int)  # the session options tinyevo documents for int8 models
    expected = run_tflm(tflite.read_bytes(), x).astype(int)
    assert np.abs(got - expected).mean() <= 1.0


def test_genome_file_exports_random_weights_with_a_warning(tmp_path, capfd):
    genome = tmp_path / "genome.json"
    code, out, _ = tinyevo(capfd, "sample", "--space", "chain", "--seed", "4", "--json")
    genome.write_text(out)
    path = tmp_path / "g.tflite"
    code, out, err = tinyevo(capfd, "export", genome, "--out", path)
    assert code == 0 and "random weights" in out
    assert len(err.strip().splitlines()) == 1 and err.startswith("warning:")
    arch = load_architecture(genome)
    x = np.zeros((1, *arch.input_shape), dtype=np.int8)
    assert run_tflm(path.read_bytes(), x).shape[-1] == 10


def test_architecture_file_with_weights_matches_its_run_model(run_dir, tmp_path, capfd):
    trial = trained_rows(show_json(capfd, run_dir))[0]["trial"]
    models = run_dir / "models"
    path = tmp_path / "w.onnx"
    code, _, err = tinyevo(capfd, "export", models / f"trial_{trial}.json", "--weights",
                           models / f"trial_{trial}.npz", "--format", "onnx", "--out", path)
    assert code == 0, err
    _, module = saved_model(run_dir, trial)
    x = np.random.default_rng(3).uniform(0, 1, size=(4, 1, 8, 8)).astype(np.float32)
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    with torch.no_grad():
        np.testing.assert_allclose(got, module(torch.from_numpy(x)).numpy(), rtol=0, atol=1e-5)


# --- bad input: one line, non-zero exit, no file -------------------------------------------------
def run_without_finished_trials(tmp_path: Path) -> Path:
    """A run folder whose only trial broke the constraints (what a search that found nothing leaves)."""
    folder = tmp_path / "empty_run"
    with Store(folder / "trials.sqlite") as store:
        store.set("search_config", merge(SearchConfig(), TINY_RUN).to_dict())
        store.save_trial(Trial(0, [{"type": "flatten"}], status="infeasible",
                               metrics={"peak_sram_bytes": 10**9}), describe="flat")
    return folder


BAD_EXPORTS = {
    "run with no finished trial": (lambda run, t: [run_without_finished_trials(t)], "no finished trial"),
    "unknown trial id": (lambda run, t: [run, "--trial", 999], "no trial 999"),
    "format": (lambda run, t: [run, "--format", "tflite-micro"], "unknown export format"),
    "missing source": (lambda run, t: [t / "nowhere"], "no such run folder"),
}


@pytest.mark.parametrize("case", sorted(BAD_EXPORTS))
def test_bad_export_gives_one_line_and_no_file(run_dir, tmp_path, capfd, case):
    make, message = BAD_EXPORTS[case]
    args = make(run_dir, tmp_path)
    target = tmp_path / "out"
    target.mkdir()
    code, out, err = tinyevo(capfd, "export", *args, "--out", target / "model.tflite")
    assert code != 0 and out == "" and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and message in err, err
    assert list(target.iterdir()) == []


@pytest.mark.parametrize("parent", ["a_file", "missing_folder"])
def test_unwritable_output_path_gives_one_line_and_no_file(run_dir, tmp_path, capfd, parent):
    (tmp_path / "a_file").write_text("not a folder")
    before = sorted(os.listdir(tmp_path))
    code, out, err = tinyevo(capfd, "export", run_dir, "--out", tmp_path / parent / "model.tflite")
    assert code != 0 and out == "" and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and "cannot write" in err, err
    assert sorted(os.listdir(tmp_path)) == before and (tmp_path / "a_file").read_text() == "not a folder"


def test_failed_write_leaves_no_partial_file(tmp_path, monkeypatch):
    def broken_replace(source, target):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(TinyevoError, match="No space left"):
        write_atomically(tmp_path / "model.tflite", b"\x00" * 100)
    assert list(tmp_path.iterdir()) == []
