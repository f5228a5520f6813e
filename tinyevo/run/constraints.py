"""Hard constraints of the target board, checked with the cost model before anything is evaluated.

A candidate that breaks one is recorded as ``infeasible`` and never trained. Its metrics carry the
cost figures and ``constraint_violation``: the sum over broken limits of the relative excess
``(value - limit) / limit``, so that strategies can prefer candidates that are nearly feasible
(the constraint-domination rule of Deb et al., 2002).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from tinyevo.errors import TinyevoError

#: Constraint field -> the cost-model figure it limits.
LIMITED_METRICS = {
    "max_peak_sram_bytes": "peak_sram_bytes",
    "max_flash_bytes": "flash_bytes",
    "max_latency_ms": "latency_ms",
    "max_macs": "macs",
}


@dataclass(frozen=True)
class Constraints:
    max_peak_sram_bytes: float | None = None
    max_flash_bytes: float | None = None
    max_latency_ms: float | None = None
    max_macs: float | None = None

    def __post_init__(self):
        for name, limit in self.limits().items():
            if limit <= 0:
                raise TinyevoError(f"constraint {name} must be positive, got {limit}")

    def limits(self) -> dict[str, float]:
        """The constraints that are set, by field name."""
        return {name: value for name, value in asdict(self).items() if value is not None}

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

    def to_dict(self) -> dict:
        return asdict(self)
