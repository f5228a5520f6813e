"""Configuration of a search: dataclasses, read from a TOML file and overridden by CLI flags.

Example ``search.toml``::

    space = "chain"
    dataset = "digits"
    board = "stm32f746"
    strategy = "nsga2"
    objectives = ["accuracy", "peak_sram_bytes"]
    budget = 40
    seed = 0

    [constraints]
    max_sram = "64KB"
    max_flash = "256KB"
    max_latency = "50ms"

    [fidelity]
    epochs = 3
    data_fraction = 1.0

    [executor]
    kind = "process"
    workers = 2
"""
from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinyevo.errors import TinyevoError
from tinyevo.units import parse_bytes, parse_count, parse_ms


@dataclass
class Constraints:
    """Hard limits checked with the cost model before a candidate is trained (None: no limit)."""

    max_sram: str | int | None = None
    max_flash: str | int | None = None
    max_latency: str | float | None = None
    max_macs: str | int | None = None

    def limits(self) -> dict[str, float]:
        """Metric name -> maximum, in the cost model's units."""
        parsers = {"max_sram": ("peak_sram_bytes", parse_bytes), "max_flash": ("flash_bytes", parse_bytes),
                   "max_latency": ("latency_ms", parse_ms), "max_macs": ("macs", parse_count)}
        out = {}
        for name, (metric, parse) in parsers.items():
            value = getattr(self, name)
            if value is not None:
                out[metric] = parse(value)
        return out


@dataclass
class Fidelity:
    """How each candidate is trained during the search (lower fidelity = cheaper, rougher)."""

    epochs: int = 3
    data_fraction: float = 1.0
    resolution: float | None = None
    width_scale: float = 1.0
    batch_size: int = 64
    learning_rate: float = 0.003


@dataclass
class Executor:
    kind: str = "serial"  # serial | process | ray
    workers: int = 1
    address: str | None = None  # Ray cluster address, e.g. "ray://head:10001" or "auto"


@dataclass
class SearchConfig:
    space: str = "chain"
    space_options: dict = field(default_factory=dict)
    dataset: str = "digits"
    data_dir: str | None = None
    board: str = "stm32f746"
    strategy: str = "nsga2"
    strategy_options: dict = field(default_factory=dict)
    estimator: str = "training"
    objectives: list[str] = field(default_factory=lambda: ["accuracy", "peak_sram_bytes"])
    budget: int = 30
    max_seconds: float | None = None
    seed: int = 0
    final_epochs: int = 10
    final_models: int = 5
    constraints: Constraints = field(default_factory=Constraints)
    fidelity: Fidelity = field(default_factory=Fidelity)
    executor: Executor = field(default_factory=Executor)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict, source: str = "config") -> "SearchConfig":
        return _build(cls, data, source)


SECTIONS = {"constraints": Constraints, "fidelity": Fidelity, "executor": Executor}


def _build(cls, data: dict, source: str):
    if not isinstance(data, dict):
        raise TinyevoError(f"{source}: expected a table of settings")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise TinyevoError(f"{source}: unknown setting {unknown[0]!r}; known: {', '.join(sorted(names))}")
    values: dict[str, Any] = {}
    for key, value in data.items():
        section = SECTIONS.get(key) if cls is SearchConfig else None
        values[key] = _build(section, value, f"{source} [{key}]") if section else value
    return cls(**values)


def load_config(path: str | Path) -> SearchConfig:
    path = Path(path)
    if not path.is_file():
        raise TinyevoError(f"{path}: config file not found; check the path")
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise TinyevoError(f"{path}: not valid TOML: {error}") from None
    return SearchConfig.from_dict(data, str(path))


def merge(config: SearchConfig, overrides: dict) -> SearchConfig:
    """Apply ``{"budget": 10, "constraints.max_sram": "64KB"}``-style overrides (None = not given)."""
    data = config.to_dict()
    for dotted, value in overrides.items():
        if value is None:
            continue
        *sections, key = dotted.split(".")
        target = data
        for section in sections:
            target = target[section]
        target[key] = value
    return SearchConfig.from_dict(data)
