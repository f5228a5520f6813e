"""What every evolution operator is (pymoo-style): a small dataclass of its own parameters.

An operator (initialization, parent selection, population update, crossover, mutation, restart) is
registered by name in its registry (``INITIALIZATIONS``, ``PARENT_SELECTIONS``...). Its dataclass
fields are its parameters, named as the evolution options of a config file or the command line
(``tournament_size``, ``gene_mutation_rate``...), so that ``EvolutionConfig`` reaches them by name
without knowing them. ``build_operator(registry, name, space, population_size, options)`` makes one
from the options it declares and binds it to the search space.

A new operator is one file: a subclass of the family's base with its parameters as fields, its
method (``select``, ``cross``...) and ``@REGISTRY.register("name")``; its module is imported by
``tinyevo.strategies.evolution`` so that it registers.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar

from tinyevo.errors import TinyevoError
from tinyevo.registry import Registry
from tinyevo.spaces.base import SearchSpace


@dataclass
class Operator:
    """Base of the evolution operators. ``population_shares`` names the parameters whose default
    is a share of the population: ``max(1, population_size // divisor)``."""

    population_shares: ClassVar[dict[str, int]] = {}

    @classmethod
    def parameters(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls) if f.init)

    @classmethod
    def from_options(cls, options: dict[str, Any], population_size: int) -> "Operator":
        """Built from the ``options`` that are its parameters (absent or None: its default), and
        checked against the population size."""
        operator = cls(**resolved(cls, options, population_size))
        operator.check(population_size)
        return operator

    def check(self, population_size: int) -> None:
        """Raise a TinyevoError for a parameter out of its range."""

    def bind(self, space: SearchSpace) -> "Operator":
        """The operator that works on ``space``: itself, once it has checked that it can (or, for
        ``auto``, the one chosen for the space)."""
        self.space = space
        return self


def resolved(cls: type[Operator], options: dict[str, Any], population_size: int) -> dict[str, Any]:
    """The parameters of ``cls`` found in ``options``, with the shares of the population filled in."""
    values = {}
    for name in cls.parameters():
        value = options.get(name)
        if value is None and name in cls.population_shares:
            value = max(1, population_size // cls.population_shares[name])
        if value is not None:
            values[name] = value
    return values


def build_operator(registry: Registry, name: str, space: SearchSpace, population_size: int,
                   options: dict[str, Any]) -> Any:
    """The operator ``name`` of ``registry``, with its parameters from ``options``, for ``space``."""
    return registry.get(name).from_options(options, population_size).bind(space)


def at_least_one(name: str, value) -> None:
    if int(value) < 1:
        raise TinyevoError(f"evolution option {name} must be at least 1, got {value}")


def probability(name: str, value) -> None:
    if not 0.0 <= float(value) <= 1.0:
        raise TinyevoError(f"evolution option {name} must be in [0, 1], got {value}")
