"""Helpers shared by the operators that work on fixed-length genomes (vectors of choice indices)."""
from __future__ import annotations

import copy
from typing import Callable

from tinyevo.errors import TinyevoError
from tinyevo.spaces.base import Genome, SearchSpace


def is_fixed_length(space: SearchSpace) -> bool:
    """True when genomes are vectors of choice indices (``dimensions``/``to_vector``/``from_vector``)."""
    return space.encoding == "fixed" and bool(space.dimensions())


def require_fixed(space: SearchSpace, operator: str) -> None:
    """Vector operators need ``dimensions``/``to_vector``/``from_vector``."""
    if not is_fixed_length(space):
        raise TinyevoError(f"{operator} needs a fixed-length space, and {space.name!r} is "
                           f"variable-length; use the space's own operator ('space')")


def first_valid(space: SearchSpace, make: Callable[[], Genome], fallback: Genome) -> Genome:
    """The first valid genome ``make`` returns, or a copy of ``fallback`` after ``max_tries``."""
    for _ in range(space.max_tries):
        child = make()
        if space.is_valid(child):
            return child
    return copy.deepcopy(fallback)


def choice_counts(space: SearchSpace) -> list[int]:
    """How many choices each gene has."""
    return [len(choices) for _, choices in space.dimensions()]
