"""Tabular estimation (survey section I-C): look a cell up in NAS-Bench-201 instead of training it.

The table (``nb201_12epoch.csv.gz``: all 15,625 cells after the 12-epoch schedule; its path is the
estimator's ``path`` option, ``[estimator_options] path = "..."`` in a TOML config) gives, per
dataset, a validation and a test accuracy in percent. The search sees the validation accuracy only
(``accuracy`` in [0, 1]); the test accuracy stays out of the metrics and is offered by
``test_accuracy`` for reporting the result of a finished search, as NAS-Bench-201 prescribes.
"""
from __future__ import annotations

import csv
import functools
import gzip
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinyevo.errors import TinyevoError
from tinyevo.estimate.base import ESTIMATORS, Estimator, EvalContext

DATASETS = ("cifar10", "cifar100", "imagenet")
#: NB201 edges in cell-string order: (to node, from node).
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))


@ESTIMATORS.register("tabular")
@dataclass
class TabularEstimator(Estimator):
    """``TabularEstimator(path=..., dataset="cifar10")``: NB201 accuracies by cell string."""

    path: str | None = None
    dataset: str = "cifar10"

    name = "tabular"
    provides = ("accuracy",)
    needs = ("genome",)

    def __post_init__(self):
        if self.path is None:
            raise TinyevoError("the tabular estimator needs the NAS-Bench-201 table: give its path, "
                               "e.g. [estimator_options] path = \"nb201_12epoch.csv.gz\" in the TOML "
                               "config (path=... in Python)")
        if self.dataset not in DATASETS:
            raise TinyevoError(f"unknown NAS-Bench-201 dataset {self.dataset!r}; "
                               f"choose one of: {', '.join(DATASETS)}")

    def evaluate(self, architecture, context: EvalContext) -> dict[str, float]:
        return {"accuracy": self._row(context.genome)[f"{self.dataset}-val"] / 100.0}

    def test_accuracy(self, genome: Any) -> float:
        """Test accuracy in [0, 1]: for reporting a search's result, never for searching."""
        return self._row(genome)[f"{self.dataset}-test"] / 100.0

    def validation_accuracy(self, genome: Any) -> float:
        return self._row(genome)[f"{self.dataset}-val"] / 100.0

    def table(self) -> dict[str, dict[str, float]]:
        """Every cell string -> its accuracies in percent (the CSV columns)."""
        return load_table(str(resolve_path(self.path)))

    def _row(self, genome: Any) -> dict[str, float]:
        cell = cell_string(genome)
        row = self.table().get(cell)
        if row is None:
            raise TinyevoError(f"cell {cell!r} is not in NAS-Bench-201 ({self.path}); a genome of "
                               f"the nb201 space is needed, such as |nor_conv_3x3~0|+|...|")
        return row


def cell_string(genome: Any) -> str:
    """The NB201 cell string of a genome: the string itself, or a list of its six edge ops."""
    if isinstance(genome, str):
        return genome.strip()
    if isinstance(genome, dict) and "cell" in genome:
        return cell_string(genome["cell"])
    if isinstance(genome, (list, tuple)) and len(genome) == len(EDGES):
        nodes = {1: [], 2: [], 3: []}
        for (to_node, from_node), op in zip(EDGES, genome):
            nodes[to_node].append(f"{op}~{from_node}")
        return "+".join("|" + "|".join(nodes[j]) + "|" for j in (1, 2, 3))
    raise TinyevoError(f"cannot read a NAS-Bench-201 cell from {genome!r}: expected a cell string "
                       f"such as |nor_conv_3x3~0|+|...| or a list of its six edge ops")


def resolve_path(path: str | Path) -> Path:
    """``path`` (``~`` expanded), when it is a file."""
    given = Path(path).expanduser()
    if given.is_file():
        return given.resolve()
    raise TinyevoError(f"NAS-Bench-201 table not found at {path}: download nb201_12epoch.csv.gz "
                       f"(see the README) and give its path")


@functools.lru_cache(maxsize=4)
def load_table(path: str) -> dict[str, dict[str, float]]:
    """Read the CSV once per process: cell string -> {column: value}."""
    try:
        with gzip.open(path, "rt", newline="") as file:
            rows = list(csv.DictReader(file))
    except (OSError, csv.Error, EOFError) as error:
        raise TinyevoError(f"cannot read the NAS-Bench-201 table {path}: {error}") from None
    if not rows or "arch" not in rows[0]:
        raise TinyevoError(f"{path} is not a NAS-Bench-201 table: it needs an 'arch' column")
    return {row["arch"]: {k: float(v) for k, v in row.items() if k not in ("arch", "index")}
            for row in rows}
