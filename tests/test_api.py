"""``tinyevo.search(...)``: the README's example, run as written; the CLI is the oracle (the same
settings give the same trials, the same error line), TFLM runs the exported model, and the
constraints bound every front model."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

import tinyevo
from tinyevo.api import data_arrays
from tinyevo.deploy.runtimes import run_tflm
from tinyevo.store import Store

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def cli(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "tinyevo.cli", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=600)


def readme_example() -> str:
    section = README.read_text().split("## From Python", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def genomes(run: Path) -> list[tuple]:
    with Store(run / "trials.sqlite") as store:
        return [(r.trial.id, r.trial.key, r.trial.status) for r in store.records()]


@pytest.mark.slow
def test_the_readme_example_runs_and_matches_the_cli(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    exec(compile(readme_example(), "README.md", "exec"), {})
    run = tmp_path / "runs" / "digits-py"
    printed = capsys.readouterr().out.splitlines()
    result = tinyevo.load(run)
    assert len(printed) == len(result.pareto_front) + 1 and result.pareto_front
    for trial in result.pareto_front:
        assert trial["peak_sram_bytes"] <= 32 * 1024 and trial["flash_bytes"] <= 64 * 1024

    # the CLI with the same flags takes the API's folder as its own run: it resumes, trains nothing
    before = genomes(run)
    command = ["search", "--space", "chain", "--dataset", "digits", "--board", "stm32f746",
               "--max-sram", "32KB", "--max-flash", "64KB", "--budget", "4", "--epochs", "1",
               "--final-models", "1", "--final-epochs", "2", "--no-progress"]
    done = cli(*command, "--out", run)
    assert done.returncode == 0, done.stderr
    assert genomes(run) == before
    refused = cli(*command[:-1], "--max-sram", "16KB", "--no-progress", "--out", run)
    assert refused.returncode == 2  # and another setting is another run
    shown = cli("show", run, "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["best"]["trial"] == result.best.trial

    scores = run_tflm((tmp_path / "model.tflite").read_bytes(), np.zeros((1, 8, 8, 1), np.int8))
    assert scores.size == 10  # one score per digit class, from the TFLM interpreter
    assert json.loads((tmp_path / "model_c" / "metadata.json").read_text())["arena_bytes"] <= 32 * 1024


def test_a_bad_setting_raises_the_line_the_cli_prints(tmp_path):
    with pytest.raises(tinyevo.TinyevoError) as raised:
        tinyevo.search(out=tmp_path / "api", max_sram="lots", budget=1, progress=False)
    done = cli("search", "--max-sram", "lots", "--budget", "1", "--out", tmp_path / "cli")
    assert done.returncode == 2
    assert done.stderr.strip() == f"tinyevo search: error: {raised.value}"
    assert not (tmp_path / "api" / "trials.sqlite").exists()


def test_unknown_keywords_and_bad_data_are_one_line_errors(tmp_path):
    with pytest.raises(tinyevo.TinyevoError, match="unknown setting 'max_ram'; known: .*max_sram"):
        tinyevo.search(out=tmp_path, max_ram="32KB")
    with pytest.raises(tinyevo.TinyevoError, match="data= must be"):
        tinyevo.search(out=tmp_path, data="digits.npz")
    with pytest.raises(tinyevo.TinyevoError, match="one label per row"):
        tinyevo.search(out=tmp_path, data=(np.zeros((4, 8, 8)), np.zeros(3, np.int64)))
    with pytest.raises(tinyevo.TinyevoError, match="not both"):
        tinyevo.search(out=tmp_path, data=(np.zeros((4, 8, 8)), np.zeros(4, np.int64)), dataset="mnist")
    assert not list(tmp_path.iterdir())  # nothing written


def test_a_torch_dataset_gives_the_arrays_it_holds():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(5, 6, 7, 3), dtype=np.uint8)
    y = np.arange(5) % 2
    chw = torch.utils.data.TensorDataset(torch.from_numpy(x).permute(0, 3, 1, 2), torch.from_numpy(y))
    arrays = data_arrays(chw)
    np.testing.assert_array_equal(arrays["x"], x)
    np.testing.assert_array_equal(arrays["y"], y)
    pair = data_arrays((chw, chw))
    assert sorted(pair) == ["x", "x_test", "y", "y_test"]


@pytest.mark.slow
def test_own_arrays_are_kept_in_the_run_and_a_rerun_resumes(tmp_path):
    digits = load_digits()
    x, y = (digits.images * 16).clip(0, 255).astype(np.uint8), digits.target
    settings = dict(space="chain", board="stm32f746", max_sram="32KB", budget=2, epochs=1,
                    final_models=1, final_epochs=1, progress=False)
    first = tinyevo.search(out=tmp_path, data=(x, y), **settings)
    before = genomes(tmp_path)
    with np.load(tmp_path / "data.npz") as stored:
        np.testing.assert_array_equal(stored["x"], x)
    again = tinyevo.search(out=tmp_path, data=(x, y), **settings)  # resumes: nothing new to train
    assert genomes(tmp_path) == before and again.best.trial == first.best.trial
    shown = cli("show", tmp_path, "--json")  # the CLI finds the data without the caller
    assert shown.returncode == 0 and json.loads(shown.stdout)["dataset"] == "npz"
    with pytest.raises(tinyevo.TinyevoError, match="holds other data"):
        tinyevo.search(out=tmp_path, data=(x[:100], y[:100]), **settings)
