"""One test per fault of issue 19 that the bad-input suite (tests/test_bad_inputs.py) cannot show
with an argv alone: the run lock, TinyNAS stage 1 resuming, reading a run without writing it, show
saying why trials failed and that a run is incomplete, interrupts that promise no false resume."""
import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from tinyevo.cli import main
from tinyevo.run.constraints import Constraints
from tinyevo.runs.folder import LOCK_FILE, RunInUse, RunLock, lock_owner
from tinyevo.store import Store
from tinyevo.strategies.base import Trial
from tinyevo.tinynas.stage1 import optimize_search_space

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "run_afcad80"


def files(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def fixture_run(tmp_path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(FIXTURE, run, ignore=shutil.ignore_patterns("*-wal", "*-shm"))
    return run


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


# --- fault 3: two searches on one --out ----------------------------------------------------------
def test_a_second_writer_is_refused_with_the_owners_pid_and_nothing_changes(tmp_path, capsys):
    run = fixture_run(tmp_path)
    with RunLock(run):
        assert lock_owner(run) == os.getpid()
        before = {k: v for k, v in files(run).items() if k != LOCK_FILE}
        code = main(["search", "--out", str(run), "--budget", "3", "--no-progress"])
        assert code == 2 and f"pid {os.getpid()}" in one_line_error(capsys)
        assert {k: v for k, v in files(run).items() if k != LOCK_FILE} == before
        with pytest.raises(RunInUse):
            RunLock(run).__enter__()
    assert not (run / LOCK_FILE).exists() and lock_owner(run) is None


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    (tmp_path / LOCK_FILE).write_text("999999999\n")  # no process holds it: its owner died
    assert lock_owner(tmp_path) is None
    with RunLock(tmp_path):
        assert (tmp_path / LOCK_FILE).read_text().strip() == str(os.getpid())
    assert not (tmp_path / LOCK_FILE).exists()


# --- fault 3: reading never writes ---------------------------------------------------------------
def test_show_and_a_failed_export_leave_every_byte_of_the_run_as_it_was(tmp_path, capsys):
    run = fixture_run(tmp_path)
    before = files(run)
    assert main(["show", str(run), "--all"]) == 0
    assert main(["show", str(run), "--json"]) == 0
    capsys.readouterr()
    assert files(run) == before  # no -wal, no -shm, no new table, no lock file


def test_a_zero_byte_store_stays_zero_bytes_and_is_not_advised_away(tmp_path, capsys):
    run = fixture_run(tmp_path)
    (run / "trials.sqlite").write_bytes(b"")
    results = (run / "results.json").read_bytes()
    assert main(["show", str(run)]) == 2
    err = one_line_error(capsys)
    assert "empty (0 bytes)" in err and "delete" not in err
    assert (run / "trials.sqlite").stat().st_size == 0 and (run / "results.json").read_bytes() == results


def test_a_read_only_store_cannot_be_written(tmp_path):
    run = fixture_run(tmp_path)
    with Store(run / "trials.sqlite", read_only=True) as store:
        assert len(store) > 0
        with pytest.raises(Exception):
            store.set("x", 1)


# --- fault 5: show says why trials failed and that a run is incomplete ---------------------------
def test_show_names_each_failed_trial_with_its_error_and_an_interrupted_run(tmp_path, capsys):
    run = fixture_run(tmp_path)
    with Store(run / "trials.sqlite") as store:
        next_id = max(t.id for t in store.trials()) + 1
        store.save_trial(Trial(id=next_id, genome=[], status="failed", metrics={"error": "CUDA out of memory"},
                               key="k-failed"), error="CUDA out of memory")
        store.mark_running(Trial(id=next_id + 1, genome=[], key="k-running"))
    assert main(["show", str(run)]) == 0
    out = capsys.readouterr().out
    assert f"trial {next_id} failed: CUDA out of memory" in out
    assert f"interrupted while evaluating trial(s) {next_id + 1}" in out
    assert main(["show", str(run), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["failures"] == [{"trial": next_id, "describe": "", "error": "CUDA out of memory"}]


# --- fault 1/5: a run's weights file that is not a zip, and no pickle advice ---------------------
def test_export_of_a_run_whose_weights_are_not_a_zip_is_one_line_without_pickle_advice(tmp_path, capsys):
    run = fixture_run(tmp_path)
    for weights in (run / "models").glob("*.npz"):
        weights.write_text("this is not a zip archive")
    assert main(["export", str(run), "--out", str(tmp_path / "m.tflite")]) == 2
    err = one_line_error(capsys)
    assert "not a readable" in err and "pickle" not in err
    assert not (tmp_path / "m.tflite").exists()


# --- fault 1: files the user may not read, folders the user may not write (the tests run as root,
# so the system's refusal is simulated where it would happen) -------------------------------------
def test_an_unreadable_genome_or_config_is_one_line(tmp_path, capsys, monkeypatch):
    genome = tmp_path / "g.json"
    genome.write_text("{}")
    config = tmp_path / "c.toml"
    config.write_text("budget = 3\n")
    real = Path.read_text

    def refuse(self, *args, **kwargs):
        if self.name in ("g.json", "c.toml"):
            raise PermissionError(13, "Permission denied", str(self))
        return real(self, *args, **kwargs)
    monkeypatch.setattr(Path, "read_text", refuse)
    assert main(["cost", str(genome)]) == 2
    assert "Permission denied" in one_line_error(capsys)
    assert main(["search", "--config", str(config), "--out", str(tmp_path / "run")]) == 2
    assert "Permission denied" in one_line_error(capsys)
    assert not (tmp_path / "run").exists()


def test_an_unwritable_out_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    real = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: False if Path(path) == tmp_path else real(path, mode))
    assert main(["search", "--out", str(tmp_path / "run")]) == 2
    assert f"cannot write in {tmp_path}" in one_line_error(capsys)
    assert not (tmp_path / "run").exists()


# --- fault 4/5: an interrupt promises a resume only where one happens ----------------------------
@pytest.mark.parametrize("argv, promise", [
    (["cost", str(ROOT / "examples" / "resnet8.json")], False),
    (["search", "--out", "RUN", "--budget", "1", "--no-progress"], True),
])
def test_an_interrupt_promises_a_resume_only_for_commands_that_keep_their_work(argv, promise, tmp_path,
                                                                              capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr("tinyevo.hardware.cost_model.search_cost_model", interrupted)
    monkeypatch.setattr("tinyevo.pipeline.SearchJob.create", interrupted)
    assert main([a.replace("RUN", str(tmp_path / "run")) for a in argv]) == 130
    err = one_line_error(capsys)
    assert ("resume" in err) == promise


# --- fault 4: TinyNAS stage 1 keeps its work as it goes and resumes exactly ----------------------
class Toy:
    """A one-gene space: a model's MACs and peak SRAM are its gene, drawn from 1..size."""

    def __init__(self, size):
        self.size = size

    def sample(self, rng):
        return int(rng.integers(1, self.size + 1))


def toy_cost(space, genome):
    return {"macs": genome * 1000, "peak_sram_bytes": genome * 100, "flash_bytes": 0}


def test_stage1_interrupted_then_resumed_gives_the_uninterrupted_result(tmp_path):
    """Cut after 65 of 3 x 40 models, go on from the last checkpoint (every 20 models): the same
    stats and choice as one uninterrupted stage 1 with the same seed."""
    spaces = {"small": Toy(10), "medium": Toy(40), "large": Toy(200)}
    limits = Constraints(max_peak_sram_bytes=5000)
    whole = optimize_search_space(spaces, limits, toy_cost, samples=40, seed=7)
    kept, calls = {}, [0]

    def dying_cost(space, genome):
        calls[0] += 1
        if calls[0] > 65:
            raise KeyboardInterrupt
        return toy_cost(space, genome)
    with pytest.raises(KeyboardInterrupt):
        optimize_search_space(spaces, limits, dying_cost, samples=40, seed=7,
                              checkpoint=lambda partial: kept.update(json.loads(json.dumps(partial))))
    assert kept["small"]["drawn"] == 40 and kept["medium"]["drawn"] == 20 and "large" not in kept
    resumed = optimize_search_space(spaces, limits, toy_cost, samples=40, seed=7, partial=kept)
    assert resumed.to_json() == whole.to_json()
