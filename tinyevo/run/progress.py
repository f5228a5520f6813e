"""A tqdm progress bar over evaluations, with the best objective value so far in its postfix.

Shown only when asked for and when stderr is a terminal, so logs and CI output stay clean.
"""
from __future__ import annotations

import sys

from tqdm.auto import tqdm

from tinyevo.strategies.base import Objective, Trial


class Progress:
    def __init__(self, total: int | None, objective: Objective, enabled: bool = True):
        self.objective = objective
        self.best: float | None = None
        show = enabled and sys.stderr.isatty()
        self.bar = tqdm(total=total, unit="eval", desc="search", disable=not show,
                        dynamic_ncols=True)

    def update(self, trial: Trial, evaluated: bool) -> None:
        """Account for one finished trial (``evaluated``: it used an evaluation of the budget)."""
        value = trial.value(self.objective)
        if value is not None and (self.best is None or self._better(value, self.best)):
            self.best = value
            self.bar.set_postfix({f"best {self.objective.metric}": f"{value:.4g}"}, refresh=False)
        if evaluated:
            self.bar.update(1)

    def _better(self, value: float, best: float) -> bool:
        return self.objective.as_loss(value) < self.objective.as_loss(best)

    def close(self) -> None:
        self.bar.close()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
