"""``--runtime tflm``: peak SRAM is TFLite Micro's tensor arena for the exported .tflite, measured.

Oracles: the TFLM interpreter itself, in a fresh process, allocating and running a .tflite of the
same architecture with other weights and another calibration in the searched arena and not in 16
bytes less; ``tinyevo export`` of the run's trained model, which reports the same figure. ``benchmarks/tflm_arena.py`` runs the
same check on 20 samples of each space through ``tinyevo export``.
"""
from __future__ import annotations

import contextlib
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from deploy_helpers import quantized_model
from tinyevo.cli import main
from tinyevo.config import SearchConfig
from tinyevo.hardware.cost_model import search_cost_model
from tinyevo.deploy.runtimes import tflm_arena_bytes, tflm_required_arena_bytes
from tinyevo.deploy.tflite_writer import to_tflite
from tinyevo.errors import TinyevoError
from tinyevo.hardware import estimate_cost, load_board
from tinyevo.hardware.tflm_arena import TflmCostModel
from tinyevo.spaces import create_space
from tinyevo.store import Store

ROOT = Path(__file__).resolve().parents[1]
RESNET8 = ROOT / "examples" / "resnet8.json"

pytest.importorskip("tflite_micro")
torch.set_num_threads(1)
BOARD = load_board("stm32f746")
SAMPLES_PER_SPACE = 4  # benchmarks/tflm_arena.py: 20 (results/tflm_arena.json)


PROBE = """
import sys
import numpy as np
from tflite_micro.python.tflite_micro import runtime
interpreter = runtime.Interpreter.from_bytes(open(sys.argv[1], "rb").read(), arena_size=int(sys.argv[2]))
details = interpreter.get_input_details(0)
interpreter.set_input(np.zeros(details["shape"], dtype=details["dtype"]), 0)
interpreter.invoke()
"""


def runs_in(model: bytes, arena: int, folder: Path) -> bool:
    """Whether TFLM, in a fresh process, allocates ``model`` in ``arena`` bytes and invokes it (TFLM
    crashes in some arenas that are too small: a crash counts as no)."""
    path = folder / "model.tflite"
    path.write_bytes(model)
    return subprocess.run([sys.executable, "-c", PROBE, str(path), str(arena)],
                          capture_output=True).returncode == 0


#: Space options where the defaults are slow to plan (nasnet: many branches per cell).
TFLM_SPACE_OPTIONS = {"nasnet": dict(input_shape=(12, 12, 3), blocks=2, cells_per_stage=1, reductions=1, channels=4)}


#: A dense block concatenates its running map, which the next layer's batch norm reads too, so the
#: quantizer requantizes it (a QUANTIZE op) unless calibration gave it the concat's range exactly:
#: the .tflite's ops, and TFLM's arena (its per-op structs), depend on the calibration, and the
#: stand-in's figure is off the trained export's by a few hundred bytes (0 to 480 B of ~100 KB on
#: the default space). See tinyevo/hardware/tflm_arena.py.
CALIBRATION_DEPENDENT = pytest.mark.xfail(strict=True, reason="densenet's concats of multi-reader "
                                          "tensors are requantized depending on the calibration")


@pytest.mark.parametrize("space_name", ["blocks", "chain", "dag", pytest.param("densenet", marks=CALIBRATION_DEPENDENT),
                                        "kws", "mbv2", "nasnet", "nb201", "tcn"])
def test_searched_figure_is_the_tflm_arena_of_the_tflite(space_name, tmp_path):
    space = create_space(space_name, **TFLM_SPACE_OPTIONS.get(space_name, {}))
    rng = np.random.default_rng(7)
    cost_model = search_cost_model(runtime="tflm")
    for index in range(SAMPLES_PER_SPACE):
        arch = space.decode(space.sample(rng))
        searched = cost_model(arch, BOARD).peak_sram_bytes
        assert search_cost_model(runtime="tflm")(arch, BOARD).peak_sram_bytes == searched  # deterministic
        # another model of the same graph: random batch norms, other weights, other calibration
        model = to_tflite(quantized_model(arch, 100 + index, calibration_count=4)[1])
        assert tflm_required_arena_bytes(model) == searched, (space_name, index)
        assert searched >= tflm_arena_bytes(model)  # print_allocations' total is a lower bound
        assert searched > estimate_cost(arch, BOARD).peak_sram_bytes  # TFLM needs more than runtime c
        if index == 0:  # the oracle, without the search for the figure: it runs there, not below
            assert runs_in(model, searched, tmp_path) and not runs_in(model, searched - 16, tmp_path)


def test_the_arena_holds_what_tflm_prepares_not_only_what_it_keeps(tmp_path):
    """A dense layer of 256 units (a 1x1 conv, per-channel): TFLM prepares it with a temporary
    tensor of 256 scales and zero points between head and tail, so the model needs more than
    ``print_allocations``' total, which a user sizing the arena from it would find out on the board."""
    space = create_space("chain")
    arch = space.decode([{"type": "avg_pool", "kernel": 2}, {"type": "flatten"},
                         {"type": "dense", "units": 256}])
    searched = search_cost_model(runtime="tflm")(arch, BOARD).peak_sram_bytes
    model = to_tflite(quantized_model(arch, 3, calibration_count=4)[1])
    printed = tflm_arena_bytes(model)
    assert searched > printed + 2 * 256 * 4
    assert runs_in(model, searched, tmp_path) and not runs_in(model, searched - 16, tmp_path)
    assert not runs_in(model, printed, tmp_path)


def test_tflm_cost_model_changes_only_peak_sram_and_caches():
    space = create_space("chain")
    arch = space.decode(space.sample(np.random.default_rng(0)))
    model = TflmCostModel()
    measured, plain = model(arch, BOARD), estimate_cost(arch, BOARD)
    assert measured.peak_sram_bytes != plain.peak_sram_bytes
    assert {**measured.to_dict(), "peak_sram_bytes": 0} == {**plain.to_dict(), "peak_sram_bytes": 0}
    state = torch.random.get_rng_state()
    assert model(space.decode(space.sample(np.random.default_rng(0))), BOARD) == measured  # cached
    model(space.decode(space.sample(np.random.default_rng(1))), BOARD)
    assert torch.equal(torch.random.get_rng_state(), state)  # the search's random state untouched
    assert len(model._arenas) == 2


def test_bad_runtime_settings_are_one_line():
    with pytest.raises(TinyevoError, match="runtime must be one of c, tflm, got 'tvm'"):
        search_cost_model(runtime="tvm")
    with pytest.raises(TinyevoError, match="runtime tflm runs whole tensors layer by layer"):
        search_cost_model("streamed", "tflm")
    with pytest.raises(TinyevoError, match="config: runtime must be one of c, tflm, got 'tvm'"):
        SearchConfig.from_dict({"runtime": "tvm"})
    with pytest.raises(TinyevoError, match="config: runtime tflm runs whole tensors"):
        SearchConfig.from_dict({"runtime": "tflm", "execution": "streamed"})
    assert SearchConfig.from_dict({}).runtime == "c"  # a run stored before the setting existed


# --- the CLI: search under the TFLM arena, show, export, resume -----------------------------------
LIMIT = 2600  # bytes: above every C figure of this space (at most 320), below some TFLM arenas
SPACE = dict(filters=[4, 8], kernels=[3], units=[16], max_initial_layers=2)
CONFIG = f"""
space = "chain"
dataset = "digits"
board = "stm32f746"
strategy = "random"
objectives = ["accuracy", "peak_sram_bytes"]
budget = 3
seed = 1
final_epochs = 1
final_models = 1
runtime = "tflm"

[space_options]
filters = [4, 8]
kernels = [3]
units = [16]
max_initial_layers = 2

[constraints]
max_sram = {LIMIT}

[fidelity]
epochs = 1
data_fraction = 0.3
"""


def tinyevo(capsys, *args) -> tuple[int, str, str]:
    capsys.readouterr()
    with contextlib.redirect_stderr(io.StringIO()) as err:
        code = main([str(a) for a in args])
    return code, capsys.readouterr().out, err.getvalue() + capsys.readouterr().err


def search_args(out, *extra):
    return ["search", "--config", out.parent / "c.toml", "--out", out, "--no-progress", *extra]


@pytest.fixture(scope="module")
def tflm_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("tflm") / "run"
    (out.parent / "c.toml").write_text(CONFIG)
    with contextlib.redirect_stdout(io.StringIO()):
        assert main([str(a) for a in search_args(out)]) == 0
    return out


def stored(out):
    with Store(out / "trials.sqlite") as store:
        return [(r.trial, r.describe) for r in store.records()], store.config(), store.get("search_config")


def test_search_bounds_the_tflm_arena(tflm_run):
    space = create_space("chain", input_shape=[8, 8, 1], num_classes=10, **SPACE)
    records, config, search_config = stored(tflm_run)
    assert config["runtime"] == "tflm" and search_config["runtime"] == "tflm"  # the store says so
    rejected_by_tflm_only = 0
    for trial, _ in records:
        arch = space.decode(trial.genome)
        c_figure = estimate_cost(arch, BOARD).peak_sram_bytes
        model = to_tflite(quantized_model(arch, trial.id, calibration_count=2)[1])
        assert trial.metrics["peak_sram_bytes"] == tflm_required_arena_bytes(model), trial.id
        assert (trial.status == "infeasible") == (trial.metrics["peak_sram_bytes"] > LIMIT)
        rejected_by_tflm_only += trial.status == "infeasible" and c_figure <= LIMIT
    assert rejected_by_tflm_only >= 1
    assert sum(t.status == "ok" for t, _ in records) == 3


def test_show_and_export_name_the_runtime(tflm_run, tmp_path, capsys):
    code, out, err = tinyevo(capsys, "show", tflm_run)
    assert code == 0, err
    assert "(peak SRAM as the TFLite Micro arena)" in out
    code, out, err = tinyevo(capsys, "show", tflm_run, "--json")
    results = json.loads(out)
    assert results["runtime"] == "tflm"
    best = results["best"]
    code, out, err = tinyevo(capsys, "export", tflm_run, "--out", tmp_path / "m.tflite", "--json")
    assert code == 0 and err == "", err
    exported = json.loads(out)  # the trained model, calibrated on the data: the searched arena
    assert exported["runtime"] == exported["searched_runtime"] == "tflm"
    assert exported["arena_bytes"] == exported["searched_peak_sram_bytes"] == best["peak_sram_bytes"]
    code, out, err = tinyevo(capsys, "export", tflm_run, "--format", "c", "--out", tmp_path / "c")
    assert code == 0 and "static arena" in out
    assert err.startswith("warning: the run searched peak SRAM as the TFLite Micro arena (runtime "
                          f"tflm: {best['peak_sram_bytes']:,} bytes") and len(err.splitlines()) == 1


def test_a_run_cannot_change_its_runtime_and_old_runs_are_runtime_c(tflm_run, tmp_path, capsys):
    before = stored(tflm_run)
    code, _, err = tinyevo(capsys, *search_args(tflm_run, "--runtime", "c"))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "config.runtime='tflm', not 'c'" in err
    assert stored(tflm_run) == before
    # a run folder from before --runtime: neither setting stored, so it is a runtime c run
    old = tmp_path / "run"
    shutil.copytree(tflm_run, old)
    shutil.copy(tflm_run.parent / "c.toml", tmp_path / "c.toml")
    with Store(old / "trials.sqlite") as store:
        store.set_config({k: v for k, v in store.config().items() if k != "runtime"})
        store.set("search_config", {k: v for k, v in store.get("search_config").items() if k != "runtime"})
    code, _, err = tinyevo(capsys, *search_args(old, "--runtime", "tflm"))
    assert code == 2 and "config.runtime='c', not 'tflm'" in err and len(err.strip().splitlines()) == 1
    code, out, err = tinyevo(capsys, "show", old, "--json")
    assert code == 0 and json.loads(out)["runtime"] == "c"


@pytest.mark.parametrize("flags, message", [
    (["--runtime", "tvm"], "runtime must be one of c, tflm, got 'tvm'"),
    (["--runtime", "tflm", "--execution", "streamed"], "runtime tflm runs whole tensors layer by layer"),
])
def test_bad_runtime_flags_are_one_line_and_write_nothing(tmp_path, capsys, flags, message):
    out = tmp_path / "run"
    code, _, err = tinyevo(capsys, "search", "--out", out, *flags)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def test_cost_and_tinynas_runtime(tmp_path, capsys):
    code, out, err = tinyevo(capsys, "cost", RESNET8, "--runtime", "tflm", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["runtime"] == "tflm" and report["peak_sram_bytes"] > 49_152  # the C figure
    code, out, _ = tinyevo(capsys, "cost", RESNET8, "--runtime", "tflm")
    assert f"{report['peak_sram_bytes']:,} bytes" in out and "TFLite Micro arena" in out
    code, _, err = tinyevo(capsys, "cost", RESNET8, "--runtime", "tflm",
                           "--execution", "streamed")
    assert code == 2 and "runtime tflm runs whole tensors" in err
    code, _, err = tinyevo(capsys, "tinynas", "--out", tmp_path / "tn", "--runtime", "tflm")
    assert code == 2 and "tinynas bounds the generated C's arena" in err and not (tmp_path / "tn").exists()
