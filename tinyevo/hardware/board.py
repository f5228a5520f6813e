"""Boards: one TOML data file per microcontroller board, each figure with its source.

A board file (``tinyevo/hardware/boards/*.toml``, or any file a user passes by path) holds:

- ``name``, ``aliases``, ``core``, ``clock_mhz``;
- ``sram_bytes``: the largest contiguous SRAM region the tensor arena can use; ``flash_bytes``;
- ``active_power_mw``: power drawn while the core runs inference (for energy = latency x power);
- ``[macs_per_cycle]``: sustained int8 MACs per core cycle for each kind of MAC op
  (``conv2d``, ``pointwise_conv2d``, ``depthwise_conv2d``, ``dense``);
- ``[elements_per_cycle]``: tensor elements per cycle for ops without MACs
  (``pool``, ``add``, ``concat``, ``elementwise``);
- ``op_overhead_cycles``: fixed cycles per executed (non-fused) op, optional, 0 by default;
- ``[sources]``: where each figure comes from; ``estimates``: the fields that are estimates rather
  than datasheet or measured values; ``notes``;
- ``[calibration]``, optional, written by ``tinyevo calibrate``: the emulated ``core``, the
  ``emulator``, ``cycles_per_instruction``, ``date``, ``probes``, and ``[calibration.instructions.KIND]``
  tables of non-negative coefficients per feature (``tinyevo.hardware.calibration``); with it the
  latency model predicts instructions from these coefficients instead of the rates above.

See ``tinyevo/hardware/latency.py`` for how the figures turn into a latency.
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

from tinyevo.errors import TinyevoError
from tinyevo.hardware.calibration import FEATURES

MAC_KINDS = ("conv2d", "pointwise_conv2d", "depthwise_conv2d", "dense")
ELEMENT_KINDS = ("pool", "add", "concat", "elementwise")
_REQUIRED = ("name", "core", "clock_mhz", "sram_bytes", "flash_bytes", "active_power_mw",
             "macs_per_cycle", "elements_per_cycle")


@dataclass(frozen=True)
class Board:
    """A microcontroller board as the cost model sees it."""

    name: str
    core: str
    clock_mhz: float
    sram_bytes: int
    flash_bytes: int
    active_power_mw: float
    macs_per_cycle: dict[str, float]
    elements_per_cycle: dict[str, float]
    op_overhead_cycles: float = 0.0
    aliases: tuple[str, ...] = ()
    sources: dict[str, str] = field(default_factory=dict)
    estimates: tuple[str, ...] = ()
    notes: str = ""
    #: ``[calibration]`` of the board file (``tinyevo calibrate``), None when it has none
    calibration: dict | None = None

    def to_dict(self) -> dict:
        data = asdict(self)
        data["aliases"], data["estimates"] = list(self.aliases), list(self.estimates)
        return data


def list_boards() -> list[str]:
    """Names of the boards shipped with tinyevo."""
    return sorted({board["name"] for board in _builtin_boards().values()}, key=str.lower)


def load_board(name_or_path: str | Path) -> Board:
    """A shipped board by name or alias (case-insensitive), or a user's board file by path."""
    text = str(name_or_path)
    if text.endswith(".toml") or Path(text).is_file():
        return _board_from_file(Path(text))
    board = _builtin_board(_key(text))
    if board is None:
        raise TinyevoError(f"unknown board {text!r}; choose one of: {', '.join(list_boards())}, "
                           f"or give the path of a board .toml file")
    return board


@lru_cache(maxsize=None)
def _builtin_board(key: str) -> Board | None:
    """The shipped board of a name or alias key, built once (a ``Board`` is frozen)."""
    data = _builtin_boards().get(key)
    return None if data is None else _board_from_data(data, where=f"board {data['name']!r}")


def board_file_text(name_or_path: str | Path) -> str:
    """The TOML text of a shipped board (by name or alias) or of a board file (by path)."""
    text = str(name_or_path)
    if text.endswith(".toml") or Path(text).is_file():
        _board_from_file(Path(text))  # exists and parses, or one clear error
        return Path(text).read_text(encoding="utf-8")
    name = load_board(text).name
    folder = resources.files("tinyevo.hardware") / "boards"
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml") and tomllib.loads(entry.read_text(encoding="utf-8"))["name"] == name:
            return entry.read_text(encoding="utf-8")
    raise TinyevoError(f"no board file for {name!r}")


def _key(name: str) -> str:
    """'STM32F746', 'stm32-f746' and 'stm32_f746' share the key 'stm32f746'."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


@lru_cache(maxsize=1)
def _builtin_boards() -> dict[str, dict]:
    """Every name and alias of the shipped boards -> the parsed TOML data."""
    boards: dict[str, dict] = {}
    folder = resources.files("tinyevo.hardware") / "boards"
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            data = tomllib.loads(entry.read_text(encoding="utf-8"))
            for alias in [data.get("name", entry.name[:-5]), *data.get("aliases", [])]:
                boards[_key(alias)] = data
    return boards


def _board_from_file(path: Path) -> Board:
    if not path.is_file():
        raise TinyevoError(f"board file {str(path)!r} does not exist; give an existing .toml file "
                           f"or one of: {', '.join(list_boards())}")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise TinyevoError(f"board file {str(path)!r} is not valid TOML: {error}") from None
    return _board_from_data(data, where=f"board file {str(path)!r}")


def _board_from_data(data: dict, where: str) -> Board:
    missing = [key for key in _REQUIRED if key not in data]
    if missing:
        raise TinyevoError(f"{where}: missing {', '.join(missing)}; start from the commented template "
                           f"examples/boards/my_board.toml (README: Your own board)")
    rates = {kind: _positive(data["macs_per_cycle"], kind, f"{where}: macs_per_cycle")
             for kind in MAC_KINDS}
    elements = {kind: _positive(data["elements_per_cycle"], kind, f"{where}: elements_per_cycle")
                for kind in ELEMENT_KINDS}
    for key in ("clock_mhz", "sram_bytes", "flash_bytes", "active_power_mw"):
        _positive(data, key, where)
    return Board(name=str(data["name"]), core=str(data["core"]), clock_mhz=float(data["clock_mhz"]),
                 sram_bytes=int(data["sram_bytes"]), flash_bytes=int(data["flash_bytes"]),
                 active_power_mw=float(data["active_power_mw"]), macs_per_cycle=rates,
                 elements_per_cycle=elements,
                 op_overhead_cycles=float(data.get("op_overhead_cycles", 0.0)),
                 aliases=tuple(data.get("aliases", ())), sources=dict(data.get("sources", {})),
                 estimates=tuple(data.get("estimates", ())), notes=str(data.get("notes", "")),
                 calibration=_calibration(data.get("calibration"), where))


def _calibration(table, where: str) -> dict | None:
    """The ``[calibration]`` table checked: coefficients known features, non-negative numbers."""
    if table is None:
        return None
    where = f"{where}: calibration"
    if not isinstance(table, dict) or not isinstance(table.get("instructions"), dict):
        raise TinyevoError(f"{where} needs an [calibration.instructions.KIND] table per op kind; "
                           f"write it with `tinyevo calibrate --board NAME --out FILE`")
    checked = dict(table)
    checked["cycles_per_instruction"] = _positive(table, "cycles_per_instruction", where) \
        if "cycles_per_instruction" in table else 1.0
    checked["instructions"] = {kind: _coefficients(values, f"{where}.instructions.{kind}")
                               for kind, values in table["instructions"].items()}
    return checked


def _coefficients(values, where: str) -> dict[str, float]:
    if not isinstance(values, dict) or set(values) - set(FEATURES):
        raise TinyevoError(f"{where} must be a table of the features {', '.join(FEATURES)}, got {values!r}")
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise TinyevoError(f"{where}: {name} must be a non-negative number, got {value!r}")
    return {name: float(value) for name, value in values.items()}


def _positive(table: dict, key: str, where: str) -> float:
    if not isinstance(table, dict):
        raise TinyevoError(f"{where} must be a table of numbers, got {table!r}")
    value = table.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise TinyevoError(f"{where}: {key} must be a positive number, got {value!r}")
    return float(value)
