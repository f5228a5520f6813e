"""The wall-time limit of one evaluation (``--eval-timeout``, TOML ``eval_timeout``).

- ``"auto"`` (the default): ``AUTO_FACTOR`` times the median time of the run's successful
  evaluations so far (stored ones of a resumed run included), at least ``AUTO_FLOOR_S``; never more
  than ``AUTO_CAP_S``, which is also the limit until ``AUTO_MIN_TRIALS`` evaluations have
  succeeded. A chain of the MNIST benchmark trains in 0.3-3 s (median about 1.5 s), so its
  limit is the floor, 60 s; a candidate that hangs costs a minute, not the search.
- a number of seconds (``90``, ``"90"``, ``"90s"``, ``"15min"``, ``"2h"``): that limit, fixed.
- ``"none"``: no limit.

A candidate over the limit is recorded ``failed`` with the reason (``timed out: ...``); how it is
stopped depends on the executor (``tinyevo.run.executors``).
"""
from __future__ import annotations

import re
import statistics
from typing import Iterable

from tinyevo.errors import TinyevoError

AUTO = "auto"
AUTO_FACTOR = 20.0
AUTO_FLOOR_S = 60.0
AUTO_CAP_S = 7200.0
AUTO_MIN_TRIALS = 5
_UNITS = {"": 1.0, "s": 1.0, "sec": 1.0, "min": 60.0, "m": 60.0, "h": 3600.0}


def check_eval_timeout(value, where: str = "eval_timeout") -> str | float | None:
    """``"auto"``, None (no limit) or positive seconds; a one-line TinyevoError for anything else."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "off")):
        return None
    if isinstance(value, str) and value.strip().lower() == AUTO:
        return AUTO
    seconds = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([a-zA-Z]*)\s*", value)
        if match and match.group(2).lower() in _UNITS:
            seconds = float(match.group(1)) * _UNITS[match.group(2).lower()]
    if seconds is None or not seconds > 0 or seconds == float("inf"):
        raise TinyevoError(f"{where} must be 'auto', 'none' or a positive number of seconds "
                           f"(e.g. 600, 90s, 15min), got {value!r}")
    return seconds


def eval_limit(setting: str | float | None, ok_seconds: Iterable[float]) -> float | None:
    """The limit in seconds for the next evaluation (None: none) given the successful ones' times."""
    setting = check_eval_timeout(setting)
    if setting != AUTO:
        return setting
    times = [t for t in ok_seconds if t is not None]
    if len(times) < AUTO_MIN_TRIALS:
        return AUTO_CAP_S
    return min(AUTO_CAP_S, max(AUTO_FLOOR_S, AUTO_FACTOR * statistics.median(times)))
