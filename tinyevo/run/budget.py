"""How long a search may run: a number of distinct evaluations, a wall-clock time, or both.

Only candidates that reach the estimator count as evaluations. Duplicates (answered from an earlier
trial) and candidates that break a hard constraint (rejected by the cost model) are free. The wall
clock is checked between batches, so a batch that has started is allowed to finish.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from tinyevo.errors import TinyevoError


@dataclass(frozen=True)
class Budget:
    evaluations: int | None = None
    seconds: float | None = None

    def __post_init__(self):
        if self.evaluations is None and self.seconds is None:
            raise TinyevoError("the search has no budget: give a number of evaluations, "
                               "a time in seconds, or both")
        if self.evaluations is not None and self.evaluations < 0:
            raise TinyevoError(f"budget evaluations must be >= 0, got {self.evaluations}")
        if self.seconds is not None and self.seconds < 0:
            raise TinyevoError(f"budget seconds must be >= 0, got {self.seconds}")

    def evaluations_left(self, evaluated: int) -> float:
        """How many more candidates may reach the estimator (infinity without a count)."""
        if self.evaluations is None:
            return float("inf")
        return max(0, self.evaluations - evaluated)

    def exhausted(self, evaluated: int, elapsed_seconds: float) -> bool:
        if self.evaluations_left(evaluated) == 0:
            return True
        return self.seconds is not None and elapsed_seconds >= self.seconds

    def to_dict(self) -> dict:
        return asdict(self)
