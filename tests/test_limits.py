"""The table of limits (``tinyevo.hardware.limits``) and the execution model (``tinyevo.hardware.execution``):
every spelling of a limit comes from one row, bytes are whole numbers, and each command's default
execution is the one named once."""
from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

from tinyevo.commands import search as search_command
from tinyevo.commands import tinynas as tinynas_command
from tinyevo.config import ConstraintSettings, SearchConfig
from tinyevo.errors import TinyevoError
from tinyevo.hardware import Cost, load_board
from tinyevo.hardware.execution import DEPLOYED, SEARCHED, ExecutionModel
from tinyevo.hardware.limits import BY_FIELD, LIMITS, Constraints
from tinyevo.tinynas.job import LIMIT_KEYS, TinyNASSettings

ROOT = Path(__file__).resolve().parents[1]


def test_every_reader_spells_a_limit_as_its_row():
    """The config's keys, the constraint fields, the cost figures and the CLI flags are the table's."""
    assert [f.name for f in dataclasses.fields(ConstraintSettings)] == [limit.key for limit in LIMITS]
    assert [f.name for f in dataclasses.fields(Constraints)] == [limit.field for limit in LIMITS]
    assert {limit.metric for limit in LIMITS} <= {f.name for f in dataclasses.fields(Cost)}
    for limit in LIMITS:
        assert search_command.FLAGS[limit.flag][0] == f"constraints.{limit.key}"
    assert tuple(tinynas_command.LIMIT_EXAMPLES) == LIMIT_KEYS
    for key in LIMIT_KEYS:
        assert key in {f.name for f in dataclasses.fields(TinyNASSettings)}
        assert tinynas_command.FLAGS[f"--{key.replace('_', '-')}"][0] == key


def test_limits_are_read_in_the_cost_models_units_and_bytes_are_ints():
    """2.5 KB = 2.5 * 1024 = 2560 bytes; 4.5KB = 4608; 50ms = 50.0 ms; 5M = 5 000 000 MACs."""
    built = ConstraintSettings(max_sram="2.5KB", max_flash="4.5KB", max_latency="50ms", max_macs="5M").build()
    assert built == Constraints(2560, 4608, 50.0, 5_000_000)
    assert type(built.max_peak_sram_bytes) is int and type(built.max_flash_bytes) is int
    assert type(built.max_macs) is int and type(built.max_latency_ms) is float
    assert type(Constraints(max_peak_sram_bytes=100.0).max_peak_sram_bytes) is int
    assert Constraints(max_peak_sram_bytes=100.7).max_peak_sram_bytes == 100  # 100 B fits, 101 B does not
    with pytest.raises(TinyevoError, match="must be a number of bytes"):
        Constraints(max_peak_sram_bytes="64KB")
    with pytest.raises(TinyevoError, match="must be positive"):
        Constraints(max_macs=0)


def test_sram_and_flash_default_to_the_boards_own():
    """stm32f746.toml: 320 KB SRAM, 1 MB flash; latency and MACs have no board default."""
    board = load_board("stm32f746")
    built = ConstraintSettings().build(board)
    assert built == Constraints(max_peak_sram_bytes=320 * 1024, max_flash_bytes=1024 * 1024)
    assert built.summary() == "SRAM <= 320.0 KB, flash <= 1.00 MB"


def test_a_broken_limit_is_named_by_its_flag():
    assert BY_FIELD["max_peak_sram_bytes"].flag == "--max-sram"
    assert BY_FIELD["max_latency_ms"].help() == "latency limit, e.g. 50ms"


def test_search_and_deploy_defaults_are_named_once():
    """The search counts layer by layer without in-place kernels (uNAS; every run before
    streaming); the C library runs streamed with its in-place kernels."""
    assert (SEARCHED.execution, SEARCHED.in_place_kernels, SEARCHED.runtime) == ("layer_by_layer", False, "c")
    assert (DEPLOYED.execution, DEPLOYED.in_place_kernels) == ("streamed", True)
    assert SearchConfig().execution_model() == SEARCHED
    assert ExecutionModel.searched("streamed") == DEPLOYED
    assert ExecutionModel.deployed("layer_by_layer").in_place_kernels


def test_a_run_records_only_what_differs_from_the_search_default():
    """Runs stored before ``execution``/``runtime`` existed recorded neither; they still resume."""
    assert SEARCHED.identity() == {}
    assert ExecutionModel.searched("streamed").identity() == {"execution": "streamed"}
    assert ExecutionModel.searched(runtime="tflm").identity() == {"runtime": "tflm"}
    assert ExecutionModel("layer_by_layer", in_place_kernels=True).identity() == {"in_place_kernels": True}


def test_a_bad_execution_model_fails_in_one_line():
    with pytest.raises(TinyevoError, match="execution must be one of layer_by_layer, streamed"):
        ExecutionModel("rowwise")
    with pytest.raises(TinyevoError, match="runtime tflm runs whole tensors layer by layer"):
        ExecutionModel.searched("streamed", "tflm")


def _imports(path: Path) -> set[str]:
    """Every tinyevo module a file imports, at module level or inside functions."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
        elif isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
    return {name for name in names if name.startswith("tinyevo")}


@pytest.mark.parametrize("importer, imported", [
    ("tinyevo/config.py", "tinyevo.run.runner"), ("tinyevo/run/runner.py", "tinyevo.config"),
    ("tinyevo/hardware/memory.py", "tinyevo.hardware.streaming"),
])
def test_the_cycles_stay_broken(importer, imported):
    assert not any(name == imported or name.startswith(imported + ".") for name in _imports(ROOT / importer))


def test_deployed_flash_is_limited_only_when_asked():
    """A board's flash bounds ``flash_bytes`` (the weights count) by default, never the deployed
    library's figure; ``max_deployed_flash = "board"`` asks for the board's 1 MB (stm32f746),
    "300KB" for 307,200 B. A cost of 400,000 deployed bytes breaks that limit by
    (400000 - 307200) / 307200."""
    board = load_board("stm32f746")
    assert ConstraintSettings().build(board).max_deployed_flash_bytes is None
    assert ConstraintSettings(max_deployed_flash="board").build(board).max_deployed_flash_bytes == 1024 * 1024
    built = ConstraintSettings(max_deployed_flash="300KB").build(board)
    assert built.max_flash_bytes == 1024 * 1024 and built.max_deployed_flash_bytes == 307_200
    cost = {"peak_sram_bytes": 1, "flash_bytes": 1, "deployed_flash_bytes": 400_000}
    assert built.excess(cost) == {"max_deployed_flash_bytes": pytest.approx(92_800 / 307_200)}
    with pytest.raises(TinyevoError, match="needs a board"):
        ConstraintSettings(max_deployed_flash="board").build()
