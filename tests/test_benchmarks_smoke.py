"""Smoke tests of ``benchmarks/mnist_constrained.py`` (and checks of its Optuna peer) and of
``benchmarks/spaces.py`` (on scikit-learn's digits as a folder of 32x32 images) and of
``benchmarks/kws.py`` (on generated tones named like FSDD's clips).

The quick run uses scikit-learn's 8x8 digits saved as an .npz (a few seconds of training in all);
its report is checked against oracles outside the benchmark: the bounds against the cost model
re-reading each reported architecture, the hypervolume against the 2-D rectangle sum by hand.
"""
from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
from PIL import Image
from scipy.io import wavfile
from sklearn.datasets import load_digits

from tinyevo.audio import FrontEnd
from tinyevo.deploy.codegen import mcu
from tinyevo.estimate.base import Estimator
from tinyevo.hardware import estimate_cost
from tinyevo.run import Budget, Runner
from tinyevo.spaces import SPACES, create_space

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
import mnist_constrained as bench  # noqa: E402
import spaces as spaces_bench  # noqa: E402
import kws as kws_bench  # noqa: E402

SRAM, FLASH = bench.MAX_PEAK_SRAM_BYTES, bench.MAX_FLASH_BYTES


@pytest.fixture(scope="module")
def digits_npz(tmp_path_factory) -> Path:
    digits = load_digits()
    path = tmp_path_factory.mktemp("data") / "digits.npz"
    np.savez(path, x=(digits.images * 15).astype(np.uint8), y=digits.target.astype(np.uint8))
    return path


def quick_command(data: Path, out: Path) -> list[str]:
    return [sys.executable, str(BENCHMARKS / "mnist_constrained.py"), "--quick", "--budget", "3",
            "--data", str(data), "--test-size", "0.2", "--png", str(out / "fronts.png"),
            "--work", str(out / "work")]


@pytest.fixture(scope="module")
def quick_run(digits_npz, tmp_path_factory) -> tuple[dict, Path, list[str]]:
    out = tmp_path_factory.mktemp("out")
    command = quick_command(digits_npz, out)
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout), out, command


@pytest.fixture(scope="module")
def quick_report(quick_run) -> tuple[dict, Path]:
    report, out, _ = quick_run
    return report, out / "fronts.png"


def hypervolume_by_hand(front: list[dict]) -> float:
    """Area dominated by (accuracy, SRAM) points up to (0, SRAM): one rectangle per step."""
    area, below = 0.0, 0.0
    for p in sorted(front, key=lambda p: p["val_accuracy"]):
        area += (p["val_accuracy"] - below) * (SRAM - p["peak_sram_bytes"])
        below = p["val_accuracy"]
    return area


def test_quick_run_reports_every_method_with_the_same_training_budget(quick_report):
    report, _ = quick_report
    assert set(report["methods"]) == set(bench.METHODS)
    for method in report["methods"].values():
        assert method["trained_candidates"] == 3
        assert 0 <= method["best_test_accuracy_within_bounds"] <= 1


def test_quick_run_fronts_meet_the_bounds_and_their_hypervolume(quick_report):
    report, _ = quick_report
    space = create_space("chain", input_shape=(8, 8, 1), num_classes=10, **bench.SPACE_OPTIONS)
    for method in report["methods"].values():
        run = method["per_seed"][0]
        assert run["front"], "every method trains at least one feasible model"
        for p in run["front"] + [run["best"]]:
            cost = estimate_cost(space.decode(space.parse(p["architecture"])))
            assert cost.peak_sram_bytes == p["peak_sram_bytes"] <= SRAM
            assert cost.flash_bytes == p["flash_bytes"] <= FLASH
        assert run["hypervolume"] == pytest.approx(hypervolume_by_hand(run["front"]))


def test_quick_run_writes_a_png(quick_report):
    _, png = quick_report
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def without_timings(value):
    if isinstance(value, dict):
        return {k: without_timings(v) for k, v in value.items()
                if not k.endswith("seconds") and "overhead" not in k}
    if isinstance(value, list):
        return [without_timings(v) for v in value]
    return value


def test_rerun_with_a_work_folder_resumes_without_training_again(quick_run):
    report, out, command = quick_run
    stores = {p.name: p.read_bytes() for p in (out / "work").glob("*.sqlite")}
    finals = (out / "work" / "finals.json").read_text()
    assert len(stores) == len(bench.METHODS)
    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert without_timings(json.loads(again.stdout)) == without_timings(report)
    assert (out / "work" / "finals.json").read_text() == finals  # no final model trained again
    for name in stores:  # every trial replayed, none added
        with bench.Store(out / "work" / name) as store:
            assert sum(r.evaluated for r in store.records()) == 3


def test_missing_data_file_is_one_clear_line(tmp_path):
    command = quick_command(tmp_path / "nothing.npz", tmp_path)
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and done.stdout == ""
    assert done.stderr.strip().count("\n") == 0 and "nothing.npz" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "fronts.png").exists()


def test_the_model_of_a_search_is_chosen_by_final_validation_accuracy_not_test():
    finalists = [{"architecture": "a", "final_val_accuracy": 0.97, "test_accuracy": 0.99},
                 {"architecture": "b", "final_val_accuracy": 0.98, "test_accuracy": 0.96},
                 {"architecture": "c", "error": "loss is nan"}]
    assert bench.choose_model(finalists)["architecture"] == "b"
    tie = [dict(finalists[0], final_val_accuracy=0.98), finalists[1]]
    assert bench.choose_model(tie)["architecture"] == "a"  # the better search rank
    assert bench.choose_model(finalists[2:]) is None


def test_suggest_chain_builds_the_genome_of_fixed_parameters():
    space = create_space("chain", input_shape=(28, 28, 1), **bench.SPACE_OPTIONS)
    params = {"layers": 2, "head": "flatten", "dense_layers": 1, "dense0_units": 16}
    for i, kind in enumerate(["conv", "max_pool", "ds", "ds", "avg_pool", "conv"]):
        params.update({f"layer{i}_type": kind, f"layer{i}_filters": 8, f"layer{i}_kernel": 3,
                       f"layer{i}_stride": 2, f"layer{i}_pool_kernel": 2})
    genome = bench.suggest_chain(optuna.trial.FixedTrial(params), space)
    assert space.describe(genome) == "c8k3s2-mp2-flat-f16"


class ConstantAccuracy(Estimator):
    name = "constant"

    def evaluate(self, architecture, context=None):
        return {"accuracy": 0.5}


def test_optuna_peer_sees_the_bounds_and_trains_only_feasible_candidates():
    space = create_space("chain", input_shape=(28, 28, 1), **bench.SPACE_OPTIONS)
    strategy = bench.OptunaNSGA2(space, seed=0, population_size=4)
    runner = Runner(space, strategy, ConstantAccuracy(), budget=Budget(evaluations=8),
                    constraints=bench.CONSTRAINTS, progress=False)
    trials = runner.run()
    assert runner.evaluated == 8 == sum(t.status == "ok" for t in trials)
    told = [t for t in strategy.study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert any(max(t.constraints.values()) > 0 for t in told), "some candidates break the bounds"
    for trial in told:
        genome = bench.suggest_chain(optuna.trial.FixedTrial(trial.params), space)
        cost = estimate_cost(space.decode(genome))
        fits = cost.peak_sram_bytes <= SRAM and cost.flash_bytes <= FLASH
        assert (max(trial.constraints.values()) <= 0) == fits
        assert trial.values[1] == cost.peak_sram_bytes


# --- benchmarks/spaces.py ------------------------------------------------------------------------
#: ResNet-8's memory as issue 15 publishes it (``tinyevo cost examples/resnet8.json``), and half.
RESNET8_SRAM, RESNET8_FLASH = 49_152, 81_512


@pytest.fixture(scope="module")
def digits_folder(tmp_path_factory) -> Path:
    """scikit-learn's digits as an image folder of 32x32 RGB PNGs (each pixel 4x4, gray), 12 per
    class in train/ and in test/: the layout of ``../shared/datasets/cifar10-jpg``."""
    root = tmp_path_factory.mktemp("digits_folder")
    digits = load_digits()
    counts: dict = {}
    for image, label in zip(digits.images, digits.target):
        n = counts.get(label, 0)
        if n >= 24:
            continue
        counts[label] = n + 1
        folder = root / ("train" if n < 12 else "test") / f"digit{label}"
        folder.mkdir(parents=True, exist_ok=True)
        pixels = np.kron((image * 15).astype(np.uint8), np.ones((4, 4), np.uint8))
        Image.fromarray(np.stack([pixels] * 3, axis=-1)).save(folder / f"{n}.png")
    return root


def spaces_command(data: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, str(BENCHMARKS / "spaces.py"), "--quick", "--spaces", "chain", "--data", str(data),
            "--out", str(out), *extra]


def results_files() -> dict:
    return {p.name: p.read_bytes() for p in (BENCHMARKS / "results").glob("spaces*")}


@pytest.fixture(scope="module")
def spaces_run(digits_folder, tmp_path_factory) -> tuple[dict, Path, list[str], dict]:
    out = tmp_path_factory.mktemp("spaces_out")
    before = results_files()
    command = spaces_command(digits_folder, out)
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout), out, command, before


@pytest.mark.slow
def test_spaces_quick_run_bounds_are_resnet8s_memory_and_half(spaces_run):
    report, *_ = spaces_run
    assert report["bounds"] == {"resnet8": {"max_peak_sram_bytes": RESNET8_SRAM, "max_flash_bytes": RESNET8_FLASH},
                                "half": {"max_peak_sram_bytes": 24_576, "max_flash_bytes": 40_756}}
    reference = report["reference"]
    assert (reference["peak_sram_bytes"], reference["flash_bytes"]) == (RESNET8_SRAM, RESNET8_FLASH)
    assert 0 <= reference["test_accuracy"] <= 1 and reference["per_seed"][0]["status"] == "ok"


@pytest.mark.slow
def test_spaces_quick_run_models_meet_their_bound_by_the_cost_model(spaces_run):
    """Each reported model, re-read from its genome string, costs what it is reported to cost, within its
    bound; one search per bound, each with its budget of 2 trained candidates."""
    report, *_ = spaces_run
    chain = report["spaces"]["chain"]
    space = create_space("chain", **chain["options"])
    for bound, result in chain["bounds"].items():
        limits = report["bounds"][bound]
        (row,) = result["per_seed"]
        assert row["status"] == "ok" and row["trained_candidates"] == 2
        for model in [row] + row["finalists"]:
            cost = estimate_cost(space.decode(space.parse(model["architecture"])), "stm32f746")
            assert cost.peak_sram_bytes == model["peak_sram_bytes"] <= limits["max_peak_sram_bytes"]
            assert cost.flash_bytes == model["flash_bytes"] <= limits["max_flash_bytes"]
            assert 0 <= model["test_accuracy"] <= 1
        assert result["test_accuracy"] == row["test_accuracy"] and row["search_cpu_seconds"] > 0
        if mcu.mcu_available():  # SMLAD does two MACs per instruction: at least MACs / 2 of them
            assert row["mcu_bit_exact"] is True and row["mcu_instructions"] >= row["macs"] / 2


@pytest.mark.slow
def test_spaces_quick_run_target_and_files(spaces_run):
    report, out, _, before = spaces_run
    target = report["targets"]["searched_model_matches_resnet8_with_half_its_peak_sram_and_flash"]
    half = report["spaces"]["chain"]["bounds"]["half"]["test_accuracy"]
    assert target["met"] == (half >= report["reference"]["test_accuracy"])
    assert (out / "spaces_quick.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "spaces_quick.json").read_text()) == report
    assert results_files() == before, "a quick run never writes benchmarks/results"


@pytest.mark.slow
def test_spaces_rerun_resumes_without_training_again(spaces_run):
    report, out, command, _ = spaces_run
    stores = {p: p.read_bytes() for p in (out / "runs").glob("*/trials.sqlite")}
    assert len(stores) == 2
    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    second = json.loads(again.stdout)
    assert without_timings(second["spaces"]) == without_timings(report["spaces"])
    assert second["reference"] == report["reference"]  # ResNet-8 read back, not trained again
    assert {p: p.read_bytes() for p in stores} == stores
    # the benchmark's cost is still the first run's passes, kept in the run folders
    assert second["cpu_seconds_all_passes"] == report["cpu_seconds_all_passes"] > 0


def test_spaces_unknown_space_or_missing_data_is_one_clear_line(digits_folder, tmp_path, capsys):
    for argv, named in [(spaces_command(digits_folder, tmp_path, "--spaces", "nosuch")[2:], "nosuch"),
                        (spaces_command(tmp_path / "nothing", tmp_path)[2:], "nothing")]:
        assert spaces_bench.main(argv) == 2
        out, err = capsys.readouterr()
        assert out == "" and err.strip().count("\n") == 0 and named in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_spaces_quick_run_of_one_bound_with_other_objectives_and_space_options(digits_folder, tmp_path):
    """``--bounds half --objectives accuracy --space-options``: one search (under half ResNet-8's
    memory, by the cost model), the objectives and options it was given, the target still stated."""
    command = spaces_command(digits_folder, tmp_path, "--bounds", "half", "--objectives", "accuracy",
                             "--space-options", '{"chain": {"filters": [8, 16]}}')
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["bounds"] == {"half": {"max_peak_sram_bytes": 24_576, "max_flash_bytes": 40_756}}
    assert report["strategy"]["objectives"] == ["accuracy"]
    chain = report["spaces"]["chain"]
    assert list(chain["bounds"]) == ["half"] and chain["options"]["filters"] == [8, 16]
    (row,) = chain["bounds"]["half"]["per_seed"]
    space = create_space("chain", **chain["options"])
    genome = space.parse(row["architecture"])
    assert all(layer.get("filters", 8) in (8, 16) for layer in genome if isinstance(layer, dict))
    cost = estimate_cost(space.decode(genome), "stm32f746")
    assert cost.peak_sram_bytes <= 24_576 and cost.flash_bytes <= 40_756
    target = report["targets"]["searched_model_matches_resnet8_with_half_its_peak_sram_and_flash"]
    assert target["half_flash_bytes"] == 40_756 and target["best_half_bound_model"]["space"] == "chain"
    assert len(list((tmp_path / "runs").iterdir())) == 1


def test_spaces_bad_objectives_or_space_options_is_one_clear_line(digits_folder, tmp_path, capsys):
    for extra, named in [(("--objectives", "nosuch"), "nosuch"),
                         (("--space-options", '{"nosuch": {}}'), "nosuch")]:
        assert spaces_bench.main(spaces_command(digits_folder, tmp_path, *extra)[2:]) == 2
        out, err = capsys.readouterr()
        assert out == "" and err.strip().count("\n") == 0 and named in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()


def test_every_tabled_space_fits_the_half_bound_at_its_smallest():
    """The CIFAR settings of each registered space: its smallest architecture (32x32x3, 10 classes)
    is within half ResNet-8's peak SRAM and flash (24,576 B and 40,756 B)."""
    for name in set(spaces_bench.SPACE_OPTIONS) & set(SPACES.names()):
        space = create_space(name, **spaces_bench.space_options(name))
        costs = [estimate_cost(space.decode(g), "stm32f746") for g in space.smallest()]
        assert any(c.peak_sram_bytes <= 24_576 and c.flash_bytes <= 40_756 for c in costs), name


# --- benchmarks/kws.py ---------------------------------------------------------------------------
#: The fixed front-end at 8 kHz, by hand: 30 ms = 240-sample windows (FFT 256, 129 bins), 40 mel
#: bands, 49 frames x 10 MFCCs. It runs in the network's arena: its 490 int8 features are the
#: network's input (4-byte aligned: 492 B) and its scratch, 256 FFT buffer floats (the 40 mel
#: energies share it) x 4 B = 1,024 B, lies beside them: 1,516 B, the least any network with it
#: takes. The DS-CNN's layer-by-layer peak is its 25x5x64 int8 maps in and out: 2 x 8,000 = 16,000 B,
#: so its front-end adds nothing.
FRONTEND_PEAK, DSCNN_NETWORK_SRAM = 1_516, 16_000
SPEAKERS_FSDD = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")


@pytest.fixture(scope="module")
def fsdd_like(tmp_path_factory) -> Path:
    """Files named like FSDD's, {digit}_{speaker}_{index}.wav at 8 kHz: digits 0-2 as tones of 400,
    900 and 1,600 Hz (a speaker's pitch a little off), two 0.5 s clips per speaker and digit."""
    root = tmp_path_factory.mktemp("fsdd_like")
    for digit, hz in enumerate((400, 900, 1600)):
        for s, speaker in enumerate(SPEAKERS_FSDD):
            for index in range(2):
                t = np.arange(4000) / 8000
                wave = 0.4 * 32767 * np.sin(2 * np.pi * hz * (1 + 0.02 * s) * t)
                wavfile.write(root / f"{digit}_{speaker}_{index}.wav", 8000, np.round(wave).astype(np.int16))
    return root


def kws_command(data: Path, out: Path) -> list[str]:
    return [sys.executable, str(BENCHMARKS / "kws.py"), "--quick", "--data", str(data), "--out", str(out)]


@pytest.fixture(scope="module")
def kws_run(fsdd_like, tmp_path_factory) -> tuple[dict, Path, list[str], dict]:
    out = tmp_path_factory.mktemp("kws_out")
    before = {p.name: p.read_bytes() for p in (BENCHMARKS / "results").glob("kws*")}
    command = kws_command(fsdd_like, out)
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout), out, command, before


@pytest.mark.slow  # the quick run: about 25 CPU s (5 trainings of 1 epoch, 10 Cortex-M4 builds)
def test_kws_quick_run_bounds_are_the_dscnns_memory_with_its_front_end(kws_run):
    report, *_ = kws_run
    reference = report["reference"]
    dscnn = create_space("kws", input_shape=(49, 10, 1), num_classes=3, **kws_bench.KWS_OPTIONS)
    network = estimate_cost(dscnn.decode(dscnn.parse("c64_k10x4_s2x2-ds64_k3-ds64_k3-ds64_k3-ds64_k3")), "stm32f746")
    fe_flash = FrontEnd(kind="mfcc", sample_rate=8000, frame_ms=30, hop_ms=20).cost().flash_bytes
    assert network.peak_sram_bytes == DSCNN_NETWORK_SRAM and reference["frontend_ram_bytes"] == 0
    assert reference["peak_sram_bytes"] == DSCNN_NETWORK_SRAM
    assert reference["flash_bytes"] == network.flash_bytes + fe_flash
    assert report["bounds"]["quarter"] == {"max_peak_sram_bytes": DSCNN_NETWORK_SRAM // 4,
                                           "max_flash_bytes": (network.flash_bytes + fe_flash) // 4}
    assert report["split"]["test"] == ["theo"] and len(report["split"]["val"]) == 1
    assert 0 <= reference["test_accuracy"] <= 1 and reference["per_seed"][0]["status"] == "ok"


@pytest.mark.slow
def test_kws_quick_run_models_meet_their_bound_with_the_front_end(kws_run):
    """Each reported model, re-read from its genome string, costs its network by the cost model with
    the front-end by hand (the larger peak: both in one arena), within its bound; on the Cortex-M4 its outputs are the int8 reference's."""
    report, *_ = kws_run
    layouts = {"kws": (49, 10, 1), "tcn": (1, 49, 10)}
    for name, shape in layouts.items():
        arm = report["arms"][name]
        space = create_space(name, **arm["options"])
        assert tuple(space.input_shape) == shape
        for bound, result in arm["bounds"].items():
            limits = report["bounds"][bound]
            (row,) = result["per_seed"]
            assert row["status"] == "ok" and row["trained_candidates"] == 2
            for model in [row] + row["finalists"]:
                cost = estimate_cost(space.decode(space.parse(model["architecture"])), "stm32f746")
                assert model["peak_sram_bytes"] == max(cost.peak_sram_bytes, FRONTEND_PEAK) <= limits["max_peak_sram_bytes"]
                assert model["network_flash_bytes"] == cost.flash_bytes
                assert model["flash_bytes"] <= limits["max_flash_bytes"]
            if mcu.mcu_available():  # SMLAD does two MACs per instruction; a front-end MAC is one at least
                assert row["mcu_bit_exact"] is True and row["mcu_instructions"] >= row["network_macs"] / 2
                assert row["frontend_mcu_instructions"] > row["frontend_macs"] and row["frontend_mcu_max_step"] <= 1


@pytest.mark.slow
def test_kws_quick_run_target_pending_arm_and_files(kws_run):
    report, out, _, before = kws_run
    (target,) = report["targets"].values()
    searched = [arm["bounds"]["quarter"]["test_accuracy"] for arm in report["arms"].values()
                if arm.get("status") != "pending"]
    best = max(a for a in searched if a is not None)
    assert target["met"] == (best >= report["reference"]["test_accuracy"])
    pending = report["arms"]["kws_frontend"].get("status") == "pending"
    assert pending == (not kws_bench.frontend_search_available())
    assert (out / "kws_quick.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "kws_quick.json").read_text()) == report
    assert {p.name: p.read_bytes() for p in (BENCHMARKS / "results").glob("kws*")} == before


@pytest.mark.slow
def test_kws_rerun_resumes_without_training_again(kws_run):
    report, out, command, _ = kws_run
    stores = {p: p.read_bytes() for p in (out / "runs").glob("*/trials.sqlite")}
    assert len(stores) == (6 if kws_bench.frontend_search_available() else 4)  # arms x bounds
    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    second = json.loads(again.stdout)
    assert without_timings(second["arms"]) == without_timings(report["arms"])
    assert second["reference"] == report["reference"]  # the DS-CNN read back, not trained again
    assert {p: p.read_bytes() for p in stores} == stores
    assert second["cpu_seconds_all_passes"] == report["cpu_seconds_all_passes"] > 0


@pytest.mark.slow
def test_kws_searches_and_dscnn_share_the_augmenting_trainer_and_search_accuracy_alone(kws_run):
    """Every search's stored estimator and the DS-CNN's trainer augment alike; each search maximizes
    accuracy alone (its results name the objectives), so its front is its best candidate (and ties)."""
    report, out, *_ = kws_run
    assert report["estimator"]["augment"] == kws_bench.AUGMENT == "shift5+tmask5+fmask2"
    assert report["strategy"]["objectives"] == ["accuracy"] != report["strategy"]["default_objectives"]
    folders = sorted((out / "runs").glob("*-seed0"))
    assert folders
    for folder in folders:
        with sqlite3.connect(folder / "trials.sqlite") as store:
            (config,) = store.execute("select value_json from run where key = 'config'").fetchone()
        assert json.loads(config)["estimator"]["options"]["augment"] == kws_bench.AUGMENT
        results = json.loads((folder / "results.json").read_text())
        assert results["objectives"] == ["accuracy"]
        assert len({row["val_accuracy"] for row in results["front"]}) == 1  # the best (and its ties)
    trainer = json.loads((out / "dscnn-seed0.json").read_text())["trainer"]
    assert trainer["estimator_options"] == {"augment": kws_bench.AUGMENT}


@pytest.mark.parametrize("flag", [["--augment", "shift"], ["--objectives", "speed"]])
def test_kws_bad_augment_or_objective_is_one_clear_line(flag, fsdd_like, tmp_path, capsys):
    assert kws_bench.main(kws_command(fsdd_like, tmp_path)[2:] + flag) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.strip().count("\n") == 0 and flag[1] in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()


def test_kws_missing_data_is_one_clear_line(tmp_path, capsys):
    assert kws_bench.main(kws_command(tmp_path / "nothing", tmp_path)[2:]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.strip().count("\n") == 0 and "nothing" in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()


# --- benchmarks/spaces_retrain.py --models -------------------------------------------------------
def test_retrain_reads_hand_written_models_and_counts_them_as_the_search_does():
    """``--models chain=c16k3s1-gap``: a 3x3 conv of 16 channels on the 32x32x3 image, then global
    pooling and the classifier. Layer by layer, the peak is the conv's input and output together:
    32*32*3 + 32*32*16 = 3,072 + 16,384 = 19,456 bytes, within the half bound (24,576 B)."""
    import spaces_retrain
    from tinyevo.config import SearchConfig
    from tinyevo.hardware import load_board
    from tinyevo.hardware.cost_model import search_cost_model

    models = spaces_retrain.given_models(["chain=c16k3s1-gap"], {"chain": {"filters": [16, 64]}})
    assert [m["space"] for m in models] == ["resnet8", "chain"]
    assert models[1]["options"]["filters"] == [16, 64] and models[1]["options"]["input_shape"] == [32, 32, 3]
    default = SearchConfig()
    cost_model = search_cost_model(default.execution, default.runtime)
    arch = spaces_retrain.architecture_of(models[1], cost_model, load_board(spaces_bench.BOARD))
    assert arch.output_shape == (1, 1, 10)
    assert models[1]["peak_sram_bytes"] == 19_456
    with pytest.raises(ValueError, match="write SPACE=GENOME"):
        spaces_retrain.given_models(["c16k3s1-gap"], None)
    from tinyevo.errors import TinyevoError
    for bad in ("nospace=c16k3s1-gap", "chain=c16x3-gap"):  # what main() turns into a usage error
        with pytest.raises(TinyevoError):
            spaces_retrain.architecture_of(spaces_retrain.given_models([bad], None)[1], cost_model,
                                           load_board(spaces_bench.BOARD))
    done = subprocess.run([sys.executable, str(BENCHMARKS / "spaces_retrain.py"), "--models",
                           "chain=c16x3-gap"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-500:]
    assert done.stderr.strip().splitlines()[-1].startswith("spaces_retrain.py: error: --models")
