"""Configuration of a search: dataclasses, read from a TOML file and overridden by CLI flags.

Example ``search.toml``::

    space = "chain"
    dataset = "digits"
    board = "stm32f746"
    strategy = "nsga2"
    objectives = ["accuracy", "peak_sram_bytes"]
    budget = 40
    seed = 0
    eval_timeout = "auto"    # wall-time limit of one evaluation: auto, none, or seconds (600, "15min")
    execution = "streamed"   # peak SRAM as `tinyevo export --format c` runs it (default layer_by_layer)
    # runtime = "tflm"       # peak SRAM as TFLite Micro's arena for the exported .tflite (default c)

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

Options of the dataset's loader go in ``[dataset_options]``, e.g. for ``dataset = "imagefolder"``
with ``data_dir = "../shared/datasets/cifar10-jpg"``: ``image_size = [32, 32]``,
``color_mode = "grayscale"``; for ``dataset = "wavfolder"`` (``tinyevo.data.wavfolder``):
``split = "speaker"``, ``test_speakers = ["theo"]``, ``features = "logmel"``, ``frame_ms = 32``,
``n_mfcc = 13``. Augmentation of training batches is an estimator option:
``[estimator_options]`` with ``augment = "crop+flip"`` (images) or ``"shift5+tmask5+fmask2"``
(audio feature maps).
"""
from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinyevo.errors import TinyevoError
from tinyevo.hardware.execution import EXECUTIONS, RUNTIMES, SEARCHED, ExecutionModel
from tinyevo.hardware.limits import Constraints
from tinyevo.strategies.base import DEFAULT_STRATEGY
from tinyevo.units import check_count, check_eval_timeout, check_seed

#: What a search can optimize: the estimator's accuracy and every figure of the cost model
#: (``tinyevo.hardware.cost.Cost``).
OBJECTIVE_METRICS = ("accuracy", "params", "macs", "flash_bytes", "deployed_flash_bytes", "peak_sram_bytes",
                     "latency_ms", "energy_mj")
#: Settings that count something, and the least each may be.
LEAST = {"budget": 1, "final_epochs": 1, "final_models": 0, "fidelity.epochs": 0,
         "fidelity.batch_size": 1, "executor.workers": 1}


@dataclass
class ConstraintSettings:
    """Hard limits as a user writes them (``"64KB"``, ``"50ms"``); None: the board's own SRAM/flash.
    One field per TOML key of ``tinyevo.hardware.limits.LIMITS``."""

    max_sram: str | int | None = None
    max_flash: str | int | None = None
    max_latency: str | float | None = None
    max_macs: str | int | None = None
    max_deployed_flash: str | int | None = None  # the generated C's flash; "board": the board's

    def build(self, board=None) -> Constraints:
        """``Constraints`` in the cost model's units; SRAM and flash default to the board's."""
        return Constraints.from_settings(dataclasses.asdict(self), board)


@dataclass
class Fidelity:
    """How each candidate is trained during the search (lower fidelity = cheaper, rougher)."""

    epochs: int = 3
    data_fraction: float = 1.0
    resolution: float | None = None
    width_scale: float = 1.0
    batch_size: int = 64
    lr: float = 0.003


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
    #: Options of the dataset's loader (``tinyevo.data``), e.g. ``{"image_size": [32, 32]}``.
    dataset_options: dict = field(default_factory=dict)
    board: str = "stm32f746"
    #: How peak SRAM is counted (``execution_model``): layer_by_layer | streamed (EXECUTIONS), and whose
    #: arena it is: c (generated C) | tflm (TFLite Micro) (RUNTIMES).
    execution: str = SEARCHED.execution
    runtime: str = SEARCHED.runtime
    strategy: str = DEFAULT_STRATEGY
    strategy_options: dict = field(default_factory=dict)
    estimator: str = "training"
    estimator_options: dict = field(default_factory=dict)
    objectives: list[str] = field(default_factory=lambda: ["accuracy", "peak_sram_bytes"])
    budget: int = 30
    max_seconds: float | None = None
    #: Wall-time limit of one evaluation: "auto" (from the run's median time), "none" or seconds.
    eval_timeout: str | float = "auto"
    seed: int = 0
    final_epochs: int = 10
    final_models: int = 5
    constraints: ConstraintSettings = field(default_factory=ConstraintSettings)
    fidelity: Fidelity = field(default_factory=Fidelity)
    executor: Executor = field(default_factory=Executor)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def execution_model(self) -> ExecutionModel:
        """How the search counts peak SRAM (``ExecutionModel.searched``)."""
        return ExecutionModel.searched(self.execution, self.runtime)

    @classmethod
    def from_dict(cls, data: dict, source: str = "config") -> "SearchConfig":
        return _build(cls, data, source)


SECTIONS = {"constraints": ConstraintSettings, "fidelity": Fidelity, "executor": Executor}
#: Settings with a fixed set of values: how peak SRAM is counted (``tinyevo.hardware.execution``).
CHOICES = {"execution": EXECUTIONS, "runtime": RUNTIMES}


def _build(cls, data: dict, source: str):
    if not isinstance(data, dict):
        raise TinyevoError(f"{source}: expected a table of settings")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise TinyevoError(f"{source}: unknown setting {unknown[0]!r}; known: {', '.join(sorted(names))}")
    values: dict[str, Any] = {}
    types = {f.name: f.type for f in dataclasses.fields(cls)}
    for key, value in data.items():
        section = SECTIONS.get(key) if cls is SearchConfig else None
        if section:
            values[key] = _build(section, value, f"{source} [{key}]")
        else:
            values[key] = _checked(value, types[key], f"{source}: {key}")
        if cls is SearchConfig and key in CHOICES and value not in CHOICES[key]:
            raise TinyevoError(f"{source}: {key} must be one of {', '.join(CHOICES[key])}, got {value!r}")
        if cls is SearchConfig and key == "eval_timeout":
            check_eval_timeout(value, f"{source}: eval_timeout")
    config = cls(**values)
    if cls is SearchConfig:
        check_ranges(config, source)
    if cls is SearchConfig and "runtime" in values:
        try:
            config.execution_model()
        except TinyevoError as error:
            raise TinyevoError(f"{source}: {error}") from None
    return config


def check_ranges(config: "SearchConfig", source: str) -> None:
    """Refuse, in one line and before any work, settings of the right type but out of range."""
    check_seed(config.seed, f"{source}: seed")
    for dotted, least in LEAST.items():
        section, _, name = dotted.rpartition(".")
        check_count(getattr(getattr(config, section) if section else config, name),
                    f"{source}: {dotted.replace('fidelity.', '').replace('executor.', '')}", least)
    fraction = config.fidelity.data_fraction
    if isinstance(fraction, bool) or not 0 < fraction <= 1:
        raise TinyevoError(f"{source}: data_fraction must be in (0, 1], got {fraction!r}")
    if config.max_seconds is not None and not config.max_seconds > 0:
        raise TinyevoError(f"{source}: max_seconds must be a positive number of seconds, got "
                           f"{config.max_seconds!r}")
    check_objectives(config.objectives, source)


def check_objectives(objectives: list, source: str) -> None:
    """Objectives are metrics the estimator and the cost model give, each once."""
    if not objectives:
        raise TinyevoError(f"{source}: objectives is empty; give e.g. accuracy,peak_sram_bytes")
    unknown = [o for o in objectives if o not in OBJECTIVE_METRICS]
    if unknown:
        raise TinyevoError(f"{source}: unknown objective {unknown[0]!r}; objectives are "
                           f"{', '.join(OBJECTIVE_METRICS)}")
    twice = sorted({o for o in objectives if objectives.count(o) > 1})
    if twice:
        raise TinyevoError(f"{source}: objective {twice[0]!r} is given twice")


_TYPES = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,), "dict": (dict,),
          "list[str]": (list,), "None": (type(None),)}


def _checked(value: Any, annotation: str, where: str) -> Any:
    """``value`` if it has one of the types the annotation (e.g. ``"str | int | None"``) allows."""
    allowed = [t for part in str(annotation).split("|") for t in _TYPES.get(part.strip(), (object,))]
    if isinstance(value, bool) and bool not in allowed:
        allowed = []
    if not any(isinstance(value, t) for t in allowed):
        raise TinyevoError(f"{where} must be {annotation}, got {value!r}")
    return value


def load_config(path: str | Path) -> SearchConfig:
    path = Path(path)
    if not path.is_file():
        raise TinyevoError(f"{path}: config file not found; check the path")
    try:
        data = tomllib.loads(path.read_text())
    except OSError as error:
        raise TinyevoError(f"{path}: cannot read the config file ({error.strerror or error}); check "
                           f"its permissions") from None
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
