"""Pareto fronts and hypervolume of trials, computed with pymoo.

Objectives are ``Objective`` records; values are turned into losses (minimized) before pymoo sees
them, so ``accuracy`` (max) and ``peak_sram_bytes`` (min) mix freely.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from pymoo.indicators.hv import HV
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

from tinyevo.strategies.base import Objective, Trial


def feasible(trials: Sequence[Trial], objectives: Sequence[Objective]) -> list[Trial]:
    """Trials that finished, broke no constraint and report every objective."""
    return [t for t in trials
            if all(t.value(o) is not None for o in objectives)
            and t.metrics.get("constraint_violation", 0) <= 0]


def losses(trials: Sequence[Trial], objectives: Sequence[Objective]) -> np.ndarray:
    """An (n, m) array of objective values as losses: smaller is better in every column."""
    return np.array([[o.as_loss(t.value(o)) for o in objectives] for t in trials],
                    dtype=float).reshape(len(trials), len(objectives))


def pareto_front(trials: Sequence[Trial], objectives: Sequence[Objective]) -> list[Trial]:
    """The feasible trials no other feasible trial dominates (one per key when keys are set)."""
    unique = _one_per_key(feasible(trials, objectives))
    if not unique:
        return []
    front = NonDominatedSorting().do(losses(unique, objectives), only_non_dominated_front=True)
    return [unique[i] for i in sorted(front)]


def hypervolume(trials: Sequence[Trial], objectives: Sequence[Objective],
                reference: Sequence[float]) -> float:
    """Volume of objective space the feasible trials dominate, bounded by ``reference``.

    ``reference`` is one value per objective in its own units (e.g. accuracy 0.0 and
    peak SRAM 320 KiB); points that do not beat it in every objective add nothing.
    """
    if len(reference) != len(objectives):
        raise ValueError(f"reference needs {len(objectives)} values, got {len(reference)}")
    ref = np.array([o.as_loss(float(r)) for o, r in zip(objectives, reference)], dtype=float)
    points = losses(feasible(trials, objectives), objectives)
    points = points[np.all(points < ref, axis=1)]
    if len(points) == 0:
        return 0.0
    return float(HV(ref_point=ref)(points))


def _one_per_key(trials: list[Trial]) -> list[Trial]:
    seen, unique = set(), []
    for trial in trials:
        if trial.key and trial.key in seen:
            continue
        seen.add(trial.key)
        unique.append(trial)
    return unique
