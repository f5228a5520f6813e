"""What identifies a run, so that running the same command again resumes it and nothing else does.

A run is resumed by replaying it: the strategy is rebuilt with the same seed, asks the same
candidates, and gets the stored results back instead of new evaluations. That only holds when the
space, strategy, estimator, constraints, board and batch size are those the store was made with, so
``check_config`` refuses any other. The budget is not part of it: raising the budget and running
again extends a finished run.
"""
from __future__ import annotations

import json
from typing import Any

from tinyevo.errors import TinyevoError
from tinyevo.hardware.execution import SEARCHED
from tinyevo.store import Store, json_text

FORMAT_VERSION = 1
#: Settings a run records only when they are not the default (``Runner.config``): a run without
#: one was made with the default, which is how a refusal names it.
UNRECORDED_DEFAULTS = {"config.execution": SEARCHED.execution, "config.runtime": SEARCHED.runtime}


def run_config(space, strategy, estimator, constraints, board, batch_size: int) -> dict:
    """The JSON description of a run that a resume must match: the declared settings of its
    space (``options()``), strategy and estimator (``settings()``), and the rest of the run."""
    strategy_options = {k: v for k, v in strategy.settings().items() if k != "seed"}
    config = {
        "format": FORMAT_VERSION,
        "space": {"name": space.name, "options": space.options()},
        "strategy": {"name": strategy.name, "seed": strategy.seed,
                     "objectives": [[o.metric, o.direction] for o in strategy.objectives],
                     "options": strategy_options},
        "estimator": {"name": estimator.name, "options": estimator.settings()},
        "constraints": constraints.to_dict(),
        "board": board_name(board),
        "batch_size": int(batch_size),
    }
    return json.loads(json_text(config))


def check_config(store: Store, config: dict) -> None:
    """Record ``config`` in a new store; refuse a store that was made with another one."""
    stored = store.config()
    if stored is None:
        store.set_config(config)
        return
    if without_unset(stored) != without_unset(config):
        where, was, now = first_difference(stored, config)
        default = UNRECORDED_DEFAULTS.get(where)
        was, now = (default if was is None else was), (default if now is None else now)
        raise TinyevoError(f"the store {store.path} holds a run with {where}={was!r}, not {now!r}; "
                           f"run the same command to resume it, or give a new store file")


def without_unset(value: Any) -> Any:
    """``value`` without the dict entries that are ``None``, at every depth: an option added to an
    estimator or strategy later, with ``None`` as its default, is absent from the config of a run
    made before it existed, and that run must still resume."""
    if isinstance(value, dict):
        return {k: without_unset(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_unset(v) for v in value]
    return value


def first_difference(old: Any, new: Any, where: str = "config") -> tuple[str, Any, Any]:
    """The dotted path of the first value that differs between two JSON documents."""
    if isinstance(old, dict) and isinstance(new, dict):
        for name in sorted(set(old) | set(new)):
            if without_unset(old.get(name)) != without_unset(new.get(name)):
                return first_difference(old.get(name), new.get(name), f"{where}.{name}")
    return where, old, new


def board_name(board: Any) -> str | None:
    if board is None or isinstance(board, str):
        return board
    return str(getattr(board, "name", board))
