"""The wall-time limit of one evaluation (``--eval-timeout``, TOML ``eval_timeout``).

- ``"auto"`` (the default): ``AUTO_FACTOR`` times the median time of the run's successful
  evaluations so far (stored ones of a resumed run included), at least ``AUTO_FLOOR_S``; never more
  than ``AUTO_CAP_S``, which is also the limit until ``AUTO_MIN_TRIALS`` evaluations have
  succeeded. A chain of the MNIST benchmark trains in 0.3-3 s (median about 1.5 s), so its
  limit is the floor, 60 s; a candidate that hangs costs a minute, not the search.
- a number of seconds (``90``, ``"90"``, ``"90s"``, ``"15min"``, ``"2h"``): that limit, fixed.
- ``"none"``: no limit.

A candidate over the limit is recorded ``failed`` with the reason (``timed out: ...``); how it is
stopped depends on the executor (``tinyevo.run.executors``). The setting is read by
``tinyevo.units.check_eval_timeout``, which the config checks it with.
"""
from __future__ import annotations

import statistics
from typing import Iterable

from tinyevo.units import AUTO, check_eval_timeout

__all__ = ["AUTO", "AUTO_CAP_S", "AUTO_FACTOR", "AUTO_FLOOR_S", "AUTO_MIN_TRIALS", "check_eval_timeout",
           "eval_limit"]
AUTO_FACTOR = 20.0
AUTO_FLOOR_S = 60.0
AUTO_CAP_S = 7200.0
AUTO_MIN_TRIALS = 5


def eval_limit(setting: str | float | None, ok_seconds: Iterable[float]) -> float | None:
    """The limit in seconds for the next evaluation (None: none) given the successful ones' times."""
    setting = check_eval_timeout(setting)
    if setting != AUTO:
        return setting
    times = [t for t in ok_seconds if t is not None]
    if len(times) < AUTO_MIN_TRIALS:
        return AUTO_CAP_S
    return min(AUTO_CAP_S, max(AUTO_FLOOR_S, AUTO_FACTOR * statistics.median(times)))
