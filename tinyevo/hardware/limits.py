"""The hard limits a search can put on the cost model's figures: one table, ``LIMITS``.

Each ``Limit`` names, for one figure of ``tinyevo.hardware.cost.Cost``, every spelling it has:

====================  ========================  ====================  ==================  =====  ============
metric                ``Constraints`` field     CLI flag              TOML key            unit   board default
====================  ========================  ====================  ==================  =====  ============
peak_sram_bytes       max_peak_sram_bytes       --max-sram            max_sram            bytes  its SRAM
flash_bytes           max_flash_bytes           --max-flash           max_flash           bytes  its flash
latency_ms            max_latency_ms            --max-latency         max_latency         ms     --
macs                  max_macs                  --max-macs            max_macs            MACs   --
deployed_flash_bytes  max_deployed_flash_bytes  --max-deployed-flash  max_deployed_flash  bytes  -- ("board")
====================  ========================  ====================  ==================  =====  ============

Two flash figures: ``flash_bytes`` counts the weights, biases and scales (the unit of published
bounds such as MLPerf Tiny's 81,512 B for ResNet-8 and uNAS's), and a board's flash is its default
limit; ``deployed_flash_bytes`` is the generated C library's flash (code and constants, as
``arm-none-eabi-size`` measures it; ``tinyevo.hardware.deployed_flash``), limited only when asked:
``max_deployed_flash = "1MB"``, or ``"board"`` for the board's flash (``--max-deployed-flash board``).

The TOML key is the setting's name in ``[constraints]`` of a search config (``ConstraintSettings``)
and in ``TinyNASSettings``; a user writes it as text (``"64KB"``, ``"50ms"``, ``"5M"``; see
``tinyevo.units``) or a number in the unit. ``Constraints`` holds the limits in the cost model's
units: bytes and MACs as ints, milliseconds as a float. The CLI (``tinyevo search``, ``tinyevo
tinynas``), the config, the runner, TinyNAS and ``tinyevo show`` all read this table.

A candidate that breaks a limit is ``infeasible`` (``tinyevo.run.constraints``); its
``constraint_violation`` is the sum over broken limits of the relative excess
``(value - limit) / limit`` (the constraint-domination rule of Deb et al., 2002).
"""
from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass
from typing import Any, Callable

from tinyevo.errors import TinyevoError
from tinyevo.units import format_bytes, parse_bytes, parse_count, parse_ms

#: unit -> (parse a user's text, the type of a limit in that unit, format a figure for people)
UNITS: dict[str, tuple[Callable[[Any], float], type, Callable[[float], str]]] = {
    "bytes": (parse_bytes, int, format_bytes),
    "ms": (parse_ms, float, lambda value: f"{value:.2f}ms"),
    "MACs": (parse_count, int, lambda value: f"{value:,}"),
}


@dataclass(frozen=True)
class Limit:
    """One row of the table: the figure ``metric`` bounded by ``Constraints.<field>``, set with
    ``flag`` on the command line or ``key`` in a config, in ``unit``; ``board`` names the
    ``Board`` attribute that is the limit when none is given (None: no limit then)."""

    metric: str
    field: str
    flag: str
    key: str
    unit: str
    name: str  # in help texts: "peak SRAM limit"
    short: str  # in summaries: "SRAM <= 64.0 KB"
    example: str
    board: str | None = None
    #: whether ``board`` is the limit when the user sets none (else only when asked, ``"board"``)
    board_default: bool = True

    def parse(self, value: str | float, board=None) -> int | float:
        """A user's setting (``"64KB"`` or ``65536``) in the unit, as its type (int bytes);
        ``"board"``: the board's own figure (``board``), for a limit that has one."""
        if isinstance(value, str) and value.strip().lower() == "board" and self.board:
            if board is None:
                raise TinyevoError(f"{self.key} = \"board\" needs a board (--board)")
            return self.typed(getattr(board, self.board))
        return self.typed(UNITS[self.unit][0](value))

    def typed(self, value: float) -> int | float:
        """``value`` as a limit in the unit: an int for bytes and MACs, rounded down when it has a
        fraction (the figures are whole numbers, so exactly the same ones fit)."""
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TinyevoError(f"constraint {self.field} must be a number of {self.unit}, got {value!r}")
        return math.floor(value) if UNITS[self.unit][1] is int else float(value)

    def format(self, value: float) -> str:
        return UNITS[self.unit][2](value)

    def default(self, board) -> int | None:
        """The limit when the user sets none: the board's own, for SRAM and flash."""
        return getattr(board, self.board) if board is not None and self.board and self.board_default else None

    def help(self, example: str | None = None) -> str:
        board = (f" (default: the board's {self.short})" if self.board and self.board_default
                 else f"; 'board': the board's {self.board.split('_')[0]}" if self.board else "")
        return f"{self.name} limit, e.g. {example or self.example}{board}"


LIMITS = (
    Limit("peak_sram_bytes", "max_peak_sram_bytes", "--max-sram", "max_sram", "bytes", "peak SRAM", "SRAM",
          "64KB", board="sram_bytes"),
    Limit("flash_bytes", "max_flash_bytes", "--max-flash", "max_flash", "bytes", "flash", "flash",
          "256KB", board="flash_bytes"),
    Limit("latency_ms", "max_latency_ms", "--max-latency", "max_latency", "ms", "latency", "latency", "50ms"),
    Limit("macs", "max_macs", "--max-macs", "max_macs", "MACs", "MACs", "MACs", "5M"),
    Limit("deployed_flash_bytes", "max_deployed_flash_bytes", "--max-deployed-flash", "max_deployed_flash",
          "bytes", "deployed flash (code and constants of the generated C)", "deployed flash", "1MB",
          board="flash_bytes", board_default=False),
)
BY_FIELD = {limit.field: limit for limit in LIMITS}
BY_KEY = {limit.key: limit for limit in LIMITS}
BY_METRIC = {limit.metric: limit for limit in LIMITS}
#: Constraint field -> the cost-model figure it limits.
LIMITED_METRICS = {limit.field: limit.metric for limit in LIMITS}


@dataclass(frozen=True)
class Constraints:
    """The limits of a run in the cost model's units (None: no limit); see ``LIMITS``."""

    max_peak_sram_bytes: int | None = None
    max_flash_bytes: int | None = None
    max_latency_ms: float | None = None
    max_macs: int | None = None
    max_deployed_flash_bytes: int | None = None

    def __post_init__(self):
        for name, limit in self.limits().items():
            if BY_FIELD[name].typed(limit) <= 0:
                raise TinyevoError(f"constraint {name} must be positive, got {limit}")
            object.__setattr__(self, name, BY_FIELD[name].typed(limit))

    @classmethod
    def from_settings(cls, settings: dict[str, Any], board=None) -> "Constraints":
        """From ``{TOML key: "64KB" | number | None}`` (keys not given: None); SRAM and flash default
        to ``board``'s own."""
        values = {}
        for limit in LIMITS:
            given = settings.get(limit.key)
            values[limit.field] = limit.parse(given, board) if given is not None else limit.default(board)
        return cls(**values)

    def limits(self) -> dict[str, float]:
        """The constraints that are set, by field name."""
        return {name: value for name, value in asdict(self).items() if value is not None}

    def by_metric(self) -> dict[str, float]:
        """The limits that are set, by the cost-model figure each bounds (``peak_sram_bytes``)."""
        return {LIMITED_METRICS[name]: value for name, value in self.limits().items()}

    def excess(self, cost: dict[str, float]) -> dict[str, float]:
        """Relative excess ``(value - limit) / limit`` of every broken constraint."""
        broken = {}
        for name, limit in self.limits().items():
            metric = LIMITED_METRICS[name]
            if metric not in cost:
                raise TinyevoError(f"constraint {name} needs {metric!r}, which the cost model "
                                   f"gives only for a board: give a board or drop the constraint")
            if cost[metric] > limit:
                broken[name] = (cost[metric] - limit) / limit
        return broken

    def violation(self, cost: dict[str, float]) -> float:
        """Sum of relative excesses; 0.0 when every constraint holds."""
        return float(sum(self.excess(cost).values()))

    def summary(self) -> str:
        """The limits that are set, e.g. ``SRAM <= 64.0 KB, flash <= 256.0 KB``."""
        return ", ".join(f"{BY_FIELD[name].short} <= {BY_FIELD[name].format(value)}"
                         for name, value in self.limits().items())

    def to_dict(self) -> dict:
        return asdict(self)
