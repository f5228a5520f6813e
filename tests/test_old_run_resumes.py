"""A run folder written by an earlier tinyevo still resumes, shows and exports.

``tests/fixtures/run_<commit>`` was made by main at that commit with

    tinyevo search --space chain --dataset digits --board stm32f746 --max-sram 32KB \\
        --max-flash 64KB --budget 3 --seed 0 --out run_<commit>

``adbe8a9``: the last release before the run config gained ``runtime``, ``augment`` and the
evaluation time limit. ``afcad80``: main before the run folder moved to ``tinyevo.runs`` (issue 14).
Settings added since then must not make the same command refuse that store.
"""
import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinyevo.config import SearchConfig
from tinyevo.deploy.runtimes import run_tflm
from tinyevo.pipeline import SearchJob
from tinyevo.run import Runner
from tinyevo.run.resume import without_unset
from tinyevo.store import Store

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ["run_adbe8a9", "run_afcad80"]
SEARCH = ["search", "--space", "chain", "--dataset", "digits", "--board", "stm32f746",
          "--max-sram", "32KB", "--max-flash", "64KB", "--seed", "0", "--no-progress"]


def cli(*args):
    return subprocess.run([sys.executable, "-m", "tinyevo.cli", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


def trials(run):
    with sqlite3.connect(run / "trials.sqlite") as db:
        return db.execute("SELECT id, key, genome_json, status, metrics_json FROM trials "
                          "ORDER BY id").fetchall()


@pytest.mark.parametrize("fixture", FIXTURES)
def test_a_run_of_an_earlier_release_resumes_extends_shows_and_exports(tmp_path, fixture):
    run = tmp_path / "run"
    shutil.copytree(ROOT / "tests" / "fixtures" / fixture, run)
    before = trials(run)
    assert len(before) == 3

    extended = cli(*SEARCH, "--budget", "4", "--out", run)
    assert extended.returncode == 0, extended.stderr
    after = trials(run)
    assert after[:3] == before  # replayed, not retrained or rewritten
    assert len(after) > 3

    shown = cli("show", run, "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["trials"] == len(after)

    model = tmp_path / "model.tflite"
    exported = cli("export", run, "--format", "tflite", "--out", model)
    assert exported.returncode == 0, exported.stderr
    x = np.zeros((1, 8, 8, 1), dtype=np.int8)
    assert run_tflm(model.read_bytes(), x).size == 10  # one score per digit class


@pytest.mark.parametrize("fixture", FIXTURES)
def test_the_settings_of_a_stored_run_give_the_identity_it_was_stored_with(fixture, tmp_path):
    """The run config rebuilt from the declared settings (``settings()``) equals the one the
    earlier release stored, without running anything. (A copy: opening a store may upgrade it.)"""
    shutil.copy(ROOT / "tests" / "fixtures" / fixture / "trials.sqlite", tmp_path / "trials.sqlite")
    with Store(tmp_path / "trials.sqlite") as store:
        stored, search_config = store.config(), store.get("search_config")
    job = SearchJob.create(SearchConfig.from_dict(search_config), ROOT / "unused")
    runner = Runner(job.space, job.strategy(), job.estimator(), Store(), constraints=job.constraints(),
                    board=job.board, execution=job.config.execution_model())
    assert without_unset(runner.config()) == without_unset(stored)
