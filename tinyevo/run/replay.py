"""What a run already knows about a candidate: duplicate detection and the replay of a stored run.

A candidate whose ``space.key`` was seen before in this run is a **duplicate**: it is answered with
the earlier trial (``known``). A resumed run meets candidates the store already holds: they are
**replayed** (``stored``), nothing is evaluated. Trial ids are given in ask order to every
candidate that is not a duplicate (``take_id``), so a replay gives the same ids, and a resume whose
strategy asks something else at an id the store holds is refused: it would not end where the
uninterrupted run ends.
"""
from __future__ import annotations

from typing import Any

from tinyevo.errors import TinyevoError
from tinyevo.strategies.base import OK, Objective, Trial
from tinyevo.store import Store, TrialRecord


class TrialCache:
    """The trials of one run by architecture key and by id, and the stored ones a resume replays."""

    def __init__(self, store: Store, strategy_name: str):
        records = store.records()
        self.records = records
        self._where, self._strategy_name = store.path, strategy_name
        self._stored: dict[str, TrialRecord] = {r.trial.key: r for r in records}
        self._stored_ids = {r.trial.id for r in records}
        self._known: dict[str, Trial] = {}
        self.trials: dict[int, Trial] = {}
        self._next_id = 0

    def known(self, key: str) -> Trial | None:
        """The trial of this run with architecture ``key`` (a candidate with it is a duplicate)."""
        return self._known.get(key)

    def stored(self, key: str) -> TrialRecord | None:
        """The stored trial a resume replays for ``key``; None when it must be evaluated."""
        return self._stored.get(key)

    def take_id(self, key: str, genome: Any) -> int:
        """The next trial id; a resumed run checks that it replays its store faithfully."""
        trial_id, self._next_id = self._next_id, self._next_id + 1
        stored = self._stored.get(key)
        if stored is None:
            diverged = trial_id in self._stored_ids
        else:
            diverged = stored.trial.id != trial_id or stored.trial.genome != genome
        if diverged:
            raise TinyevoError(f"the run in {self._where} does not replay at trial {trial_id}: "
                               f"strategy {self._strategy_name!r} is not deterministic for its seed "
                               f"or the code changed; give a new store file")
        return trial_id

    def remember(self, trial: Trial) -> None:
        """A new or replayed trial: later candidates with its key are its duplicates."""
        self._known[trial.key] = trial
        self.trials[trial.id] = trial

    def in_id_order(self) -> list[Trial]:
        """The run's distinct trials."""
        return [self.trials[i] for i in sorted(self.trials)]

    def finished_objectives(self, objectives: tuple[Objective, ...]) -> list[dict]:
        """The objective values of the successful trials so far: what a new candidate competes with."""
        metrics = [o.metric for o in objectives]
        return [{m: trial.metrics[m] for m in metrics} for trial in self.trials.values()
                if trial.status == OK and all(m in trial.metrics for m in metrics)]
