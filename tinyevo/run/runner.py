"""The runner: asks the strategy, filters, evaluates, stores, tells, until the budget is spent.

For every candidate of a batch, in the order the strategy asked for them:

1. **Duplicate** (its ``space.key`` was seen before in this run): answered with a copy of the
   earlier trial -- same ``id``, ``key``, ``status`` and ``metrics``, the candidate's own genome,
   parents and origin. Not stored again, not counted as an evaluation.
2. **Stored** (a resumed run meets a candidate the store already holds): the stored trial is
   replayed, nothing is evaluated.
3. **Infeasible** (the cost model says it breaks a hard constraint): stored with status
   ``infeasible`` and metrics = cost + ``constraint_violation``; never evaluated, not counted.
   Before the first ask, a run with constraints gives the strategy the same check
   (``Strategy.set_feasibility``), so that it can redraw such candidates before asking.
4. Otherwise it is **evaluated** by the estimator through the executor; metrics = cost + the
   estimator's metrics (+ ``constraint_violation`` = 0). Exceptions, ``EstimationFailed`` and NaN
   make it ``failed``; it counts as an evaluation and the search goes on. So does a candidate
   over the evaluation time limit (``eval_timeout``, see ``tinyevo.run.limits``) and one whose
   pool or Ray worker died (the signal or exit code is its ``error``; a fresh worker goes on).

Each trial is marked running in the store just before it is evaluated (``Store.mark_running``). A
run that dies while evaluating in its own process (the serial executor: a segfault or abort of
the candidate's native code, ``kill -9``, out of memory) leaves that mark, and its resume names the
trial: with a fatal error logged (the ``<store>.crash.log`` that ``faulthandler`` writes, kept as
``<store>.crash-trial<N>.log``) it is recorded ``failed`` with that error; with none (killed from
outside) it is evaluated once more, and recorded ``failed`` if the run dies in it again -- never
retried forever. Marks left by a pool or Ray run (whose candidates cannot take the run down) and by
a run stopped with an exception or Ctrl-C are dropped, and those trials are evaluated again.

Trial ids are given in ask order to every candidate that is not a duplicate, so a replay gives the
same ids. The strategy is told the whole batch in ask order, which keeps a run deterministic for
its seed whatever the executor: a run killed at any moment and started again with the same command
replays its store and ends where the uninterrupted run ends.

An estimator with ``wants_competitors`` (learning-curve early stopping) gets in
``context.extra["competitors"]`` the objective values of the trials finished before the batch,
the objectives' directions and the candidate's computed costs. An estimator that keeps weights
(``keep_weights``) has them pruned after every batch to what can still be inherited
(``weights_store.prune_run_weights``). When the budget runs out inside a
batch, the rest of the batch is neither evaluated nor told. A strategy that proposes
``max_consecutive_skips`` duplicates or infeasible candidates in a row stops the run.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from tinyevo.errors import TinyevoError
from tinyevo.estimate.base import EstimationFailed, Estimator, EvalContext
from tinyevo.run.budget import Budget
from tinyevo.hardware.execution import ExecutionModel
from tinyevo.run.constraints import ConstraintFilter, Constraints
from tinyevo.run.executors import Executor, Lost, SerialExecutor
from tinyevo.run.jobs import Job, evaluate_job
from tinyevo.run.limits import AUTO, check_eval_timeout, eval_limit
from tinyevo.run.progress import Progress
from tinyevo.run.resume import check_config, run_config
from tinyevo.search.base import FAILED, INFEASIBLE, OK, Candidate, Strategy, Trial
from tinyevo.spaces.base import SearchSpace
from tinyevo.store import RunningRecord, Store, TrialRecord, json_text
from tinyevo.store.sqlite_store import RUNNING

_DECODE_ERRORS = (TinyevoError, ValueError, KeyError, TypeError, IndexError)
#: Evaluations of one trial a run may die in (with no fatal error logged) before it is recorded failed.
MAX_IN_PROCESS_ATTEMPTS = 2
_CRASH_HEADER = re.compile(r"^tinyevo trial (\d+)\b")
_FATAL_SIGNALS = {"Aborted": "SIGABRT", "Segmentation fault": "SIGSEGV", "Bus error": "SIGBUS",
                  "Floating-point exception": "SIGFPE", "Floating point exception": "SIGFPE",
                  "Illegal instruction": "SIGILL"}


@dataclass
class _Slot:
    """One asked candidate on its way to becoming a told trial."""

    candidate: Candidate
    genome: Any
    key: str
    trial: Trial | None = None
    source: "_Slot | None" = None  # the pending slot it duplicates, within the same batch
    job: Job | None = None
    cost: dict | None = None


class Runner:
    """Runs one search: ``Runner(space, strategy, estimator, store, budget, constraints, board,
    executor).run()``. ``store`` (default: in memory) is where trials go and where a resume comes
    from; ``batch_size`` (default: the executor's parallelism) is how many candidates are asked at
    once; ``cost_model(architecture, board)`` defaults to the cost model of ``execution``
    (``tinyevo.hardware.cost_model``), an ``ExecutionModel`` (default ``SEARCHED``: layer by layer,
    runtime c) saying how peak SRAM is counted; a run records what differs from the default in its
    settings (``ExecutionModel.identity``), so that a resume cannot change it. Costs and the hard
    constraints are checked by a ``ConstraintFilter`` (``tinyevo.run.constraints``).
    ``eval_timeout``: the wall-time limit of one evaluation, ``"auto"`` (default), seconds or None
    (``tinyevo.run.limits``); not part of the run's identity, so a resume may change it."""

    def __init__(self, space: SearchSpace, strategy: Strategy, estimator: Estimator,
                 store: Store | None = None, budget: Budget | None = None,
                 constraints: Constraints | None = None, board: Any = None,
                 executor: Executor | None = None, progress: bool = True,
                 batch_size: int | None = None, cost_model: Callable | None = None,
                 max_consecutive_skips: int = 1000, run_dir: str | Path | None = None,
                 execution: ExecutionModel | None = None,
                 eval_timeout: str | float | None = AUTO):
        if cost_model is not None and execution is not None:
            raise TinyevoError("give the runner an execution model, or a cost_model of your own, not both")
        self.space, self.strategy, self.estimator = space, strategy, estimator
        self.store = store if store is not None else Store()
        self.budget = budget if budget is not None else Budget(evaluations=100)
        self.filter = ConstraintFilter(constraints, board, cost_model, execution)
        self.executor = executor if executor is not None else SerialExecutor()
        self.batch_size = int(batch_size or self.executor.parallelism)
        self.max_consecutive_skips = max_consecutive_skips
        self.show_progress = progress
        self.run_dir = Path(run_dir) if run_dir else _store_dir(self.store)
        self.eval_timeout = check_eval_timeout(eval_timeout)
        self.stop_reason = ""

    # --- the loop ------------------------------------------------------------------------------
    def run(self) -> list[Trial]:
        """Search until the budget is spent; the run's distinct trials, in id order."""
        self._begin()
        with Progress(self.budget.evaluations, self.strategy.objective, self.show_progress) as bar:
            self._progress = bar
            while not self._finished():
                candidates = self.strategy.ask(self.batch_size)
                if not candidates:
                    self.stop_reason = f"strategy {self.strategy.name!r} has no more candidates"
                told = self._run_batch(candidates)
                if told:
                    self.strategy.tell(told)
                self._prune_weights()
                self.store.set("elapsed_seconds", self.elapsed_seconds())
        self._end()
        return [self._trials[i] for i in sorted(self._trials)]

    def _begin(self) -> None:
        self._check_needs()
        self.strategy.set_feasibility(self.meets_constraints if self.filter.active else None)
        check_config(self.store, self.config())
        self.store.set("budget", self.budget.to_dict())
        self._attempts: dict[str, int] = {}
        for running in self.store.running():
            self._settle(running)
        records = self.store.records()
        self._ok_seconds = [r.seconds for r in records if r.trial.status == OK and r.evaluated]
        self._stored: dict[str, TrialRecord] = {r.trial.key: r for r in records}
        self._stored_ids = {r.trial.id for r in records}
        self._known: dict[str, Trial] = {}
        self._trials: dict[int, Trial] = {}
        self._next_id = self.evaluated = self.duplicates = self._skips = 0
        self._seconds_before = float(self.store.get("elapsed_seconds", 0.0))
        self._started = time.perf_counter()
        self.stop_reason = ""

    def _finished(self) -> bool:
        if not self.stop_reason and self.budget.exhausted(self.evaluated, self.elapsed_seconds()):
            self.stop_reason = "budget"
        return bool(self.stop_reason)

    def _end(self) -> None:
        self._prune_weights()
        if self.stop_reason == "budget":
            return
        if self.evaluated == 0:
            raise TinyevoError(f"nothing was evaluated: {self.stop_reason}; loosen the constraints "
                               f"or check the strategy")
        warnings.warn(f"search stopped early: {self.stop_reason}", RuntimeWarning, stacklevel=3)

    def config(self) -> dict:
        """What a resume of this run must match (see ``tinyevo.run.resume``). The execution model is
        recorded only where it is not the default, so that runs stored before it resume."""
        config = run_config(self.space, self.strategy, self.estimator, self.filter.constraints,
                            self.filter.board, self.batch_size)
        config.update(self.filter.identity())
        return config

    def elapsed_seconds(self) -> float:
        """Wall time of the run, earlier sessions of a resumed run included."""
        return self._seconds_before + time.perf_counter() - self._started

    # --- one batch -----------------------------------------------------------------------------
    def _run_batch(self, candidates: list[Candidate]) -> list[Trial]:
        slots: list[_Slot] = []
        pending: list[_Slot] = []
        self._competitors = self._finished_objectives()  # as of the batch start: a resume sees the same
        for candidate in candidates:
            if self.budget.evaluations_left(self.evaluated + len(pending)) == 0:
                break
            if self._skips >= self.max_consecutive_skips:
                self.stop_reason = (f"the strategy proposed {self._skips} duplicate or infeasible "
                                    f"candidates in a row")
                break
            slots.append(self._prepare(candidate, pending))
        jobs = [slot.job for slot in pending]
        limit = self.eval_limit()
        try:
            self.executor.map(evaluate_job, jobs, lambda i, result: self._finish(pending[i], result),
                              timeout=limit, on_start=lambda i: self._start(pending[i], limit),
                              fatal_log=self.crash_log() if self.executor.in_process else None)
        finally:  # stopped by an exception or Ctrl-C: not the candidates' doing, evaluate them again
            unfinished = [slot.job.trial_id for slot in pending if slot.trial is None]
            if unfinished:
                self.store.clear_running(unfinished)
        return [self._told(slot) for slot in slots]

    def eval_limit(self) -> float | None:
        """The time limit of the next evaluations in seconds (None: none), from ``eval_timeout``."""
        return eval_limit(self.eval_timeout, self._ok_seconds)

    def _prepare(self, candidate: Candidate, pending: list[_Slot]) -> _Slot:
        """Sort a candidate: a duplicate, or a new trial (see ``_prepare_new``)."""
        genome = json.loads(json_text(candidate.genome))  # what a replay reads back from the store
        architecture, key, error = self._decode(genome)
        slot = _Slot(candidate, genome, key)
        if key in self._known:
            slot.trial = self._duplicate(self._known[key], slot)
        elif any(p.key == key for p in pending):
            slot.source = next(p for p in pending if p.key == key)
        else:
            self._prepare_new(slot, architecture, error, pending)
            return slot
        self.duplicates += 1
        self._skips += 1
        return slot

    def _prepare_new(self, slot: _Slot, architecture, error: str | None,
                     pending: list[_Slot]) -> None:
        """Replay it from the store, record it as failed or infeasible, or queue it."""
        trial_id = self._take_id(slot)
        stored = self._stored.get(slot.key)
        if stored is not None:
            self._replay(slot, stored)
        elif architecture is None:
            self._record(slot, self._trial(slot, trial_id, FAILED, {}), error=error)
        else:
            self._check_cost(slot, trial_id, architecture, pending)
        evaluated = slot.job is not None or (stored is not None and stored.evaluated)
        self._skips = 0 if evaluated else self._skips + 1

    def _decode(self, genome) -> tuple[Any, str, str | None]:
        try:
            return self.space.decode(genome), self.space.key(genome), None
        except _DECODE_ERRORS as error:
            return None, "invalid:" + json_text(genome), f"invalid genome: {error}"

    def _check_cost(self, slot: _Slot, trial_id: int, architecture, pending: list[_Slot]) -> None:
        try:
            slot.cost = self.filter.cost(architecture)
        except (EstimationFailed, ArithmeticError, ValueError) as error:
            failed = self._trial(slot, trial_id, FAILED, {})
            self._record(slot, failed, error=f"cost model: {error}")
            return
        violation = self.filter.violation(slot.cost)
        slot.cost["constraint_violation"] = violation
        if violation > 0:
            self._record(slot, self._trial(slot, trial_id, INFEASIBLE, slot.cost))
            return
        context = EvalContext(genome=slot.genome, space=self.space, trial_id=trial_id,
                              seed=_trial_seed(self.strategy.seed, trial_id),
                              parents=tuple(slot.candidate.parents), run_dir=self.run_dir)
        if getattr(self.estimator, "wants_competitors", False):
            directions = {o.metric: o.direction for o in self.strategy.objectives}
            context.extra["competitors"] = {
                "directions": directions, "trials": self._competitors,
                "costs": {m: slot.cost[m] for m in directions if m in slot.cost}}
        slot.job = Job(trial_id, self.estimator, architecture, context)
        pending.append(slot)

    def meets_constraints(self, genome) -> bool:
        """The cost model's verdict on one genome: valid and within every hard constraint."""
        try:
            return self.filter.feasible(self.space.decode(genome))
        except (EstimationFailed, ArithmeticError, *_DECODE_ERRORS):
            return False

    def _start(self, slot: _Slot, limit: float | None) -> str:
        """Mark the trial running, just before it is evaluated; the first line of its crash log."""
        attempt = self._attempts.get(slot.key, 0) + 1
        describe = self._describe(slot.genome)
        in_process = self.executor.in_process
        self.store.mark_running(self._trial(slot, slot.job.trial_id, RUNNING, slot.cost),
                                describe=describe, strategy=self.strategy.name,
                                started_at=time.time(), limit_seconds=limit, attempt=attempt,
                                in_process=in_process, pid=os.getpid() if in_process else None)
        return (f"tinyevo trial {slot.job.trial_id} ({describe}), attempt {attempt}, started "
                f"{time.strftime('%Y-%m-%d %H:%M:%S')}, limit {'none' if limit is None else f'{limit:g} s'}: "
                f"a fatal error below stopped the search process while it evaluated this trial")

    def _finish(self, slot: _Slot, result: dict | Lost) -> None:
        """Store an evaluated trial the moment its result comes back."""
        if isinstance(result, Lost):  # over its time limit, or its worker died
            result = {"status": FAILED, "metrics": {}, "error": result.reason,
                      "started_at": result.started_at, "finished_at": result.finished_at,
                      "seconds": result.seconds}
        if result.get("user_error"):
            raise TinyevoError(result["user_error"])
        if result["status"] == OK:
            self._ok_seconds.append(result["seconds"])
        metrics = {**slot.cost, **result["metrics"]}
        trial = self._trial(slot, slot.job.trial_id, result["status"], metrics)
        self.evaluated += 1
        self._record(slot, trial, error=result["error"], started_at=result["started_at"],
                     finished_at=result["finished_at"], seconds=result["seconds"])

    # --- trials a dead run was evaluating -------------------------------------------------------
    def crash_log(self) -> Path | None:
        """Where an in-process evaluation's fatal error is logged: ``<store>.crash.log`` (None for
        a store in memory, which cannot be resumed)."""
        if self.store.path == ":memory:":
            return None
        return Path(self.store.path).with_suffix(".crash.log")

    def _settle(self, running: RunningRecord) -> None:
        """A trial the last run was evaluating when it died: record it failed, or evaluate it again."""
        trial = running.trial
        name = f"trial {trial.id} ({running.describe or trial.key})"
        if not running.in_process:  # a pool or Ray worker ran it: the run died of something else
            self.store.clear_running([trial.id])
            return
        evidence, seconds = self._crash_evidence(running)
        if evidence is None and running.attempt < MAX_IN_PROCESS_ATTEMPTS:
            self._attempts[trial.key] = running.attempt
            warnings.warn(f"{name} was being evaluated when the run stopped, with no fatal error "
                          f"logged (killed from outside? out of memory?); it is evaluated once more "
                          f"and recorded failed if the run dies in it again", RuntimeWarning, stacklevel=4)
            return
        if evidence is None:
            evidence = (f"the search process died {running.attempt} times while evaluating this "
                        f"candidate, with no fatal error logged (killed: SIGKILL, out of memory?); "
                        f"not evaluated again")
        failed = dataclasses.replace(trial, status=FAILED)
        self.store.save_trial(failed, describe=running.describe, strategy=running.strategy,
                              started_at=running.started_at, seconds=seconds, error=evidence)
        warnings.warn(f"{name} was being evaluated when the run stopped; recorded as failed, not "
                      f"retried: {evidence}", RuntimeWarning, stacklevel=4)

    def _crash_evidence(self, running: RunningRecord) -> tuple[str | None, float]:
        """The fatal error the crash log holds for this trial (kept as ``<store>.crash-trial<N>.log``)
        and the seconds from the trial's start to it; (None, 0.0) when none was logged."""
        path = self.crash_log()
        if path is None or not path.is_file():
            return None, 0.0
        lines = path.read_text(errors="replace").splitlines()
        header = _CRASH_HEADER.match(lines[0]) if lines else None
        body = [line.strip() for line in lines[1:] if line.strip()]
        if header is None or int(header.group(1)) != running.trial.id or not body:
            return None, 0.0
        kept = path.with_name(f"{path.name.removesuffix('.crash.log')}.crash-trial{running.trial.id}.log")
        seconds = max(0.0, path.stat().st_mtime - (running.started_at or path.stat().st_mtime))
        path.replace(kept)
        first = body[0]
        if first.startswith("Timeout"):
            limit = running.limit_seconds
            return (f"timed out: still running past the {limit or 0:g} s limit of one evaluation, in native "
                    f"code that cannot be interrupted, so the search process was stopped ({first} "
                    f"traceback in {kept.name})", seconds)
        kind = first.removeprefix("Fatal Python error:").strip()
        signal_name = _FATAL_SIGNALS.get(kind)
        return (f"the evaluation crashed the search process: {first}"
                f"{f' ({signal_name})' if signal_name else ''}; traceback in {kept.name}", seconds)

    def _told(self, slot: _Slot) -> Trial:
        if slot.source is not None:
            slot.trial = self._duplicate(slot.source.trial, slot)
        return slot.trial

    # --- trials --------------------------------------------------------------------------------
    def _trial(self, slot: _Slot, trial_id: int, status: str, metrics: dict) -> Trial:
        return Trial(id=trial_id, genome=slot.genome, status=status, metrics=dict(metrics),
                     parents=tuple(slot.candidate.parents), origin=slot.candidate.origin,
                     key=slot.key)

    def _duplicate(self, original: Trial, slot: _Slot) -> Trial:
        return self._trial(slot, original.id, original.status, original.metrics)

    def _record(self, slot: _Slot, trial: Trial, **timings) -> None:
        """Store a new trial and make it known to the rest of the run."""
        self.store.save_trial(trial, describe=self._describe(slot.genome),
                              strategy=self.strategy.name, **timings)
        self._remember(slot, trial, evaluated=timings.get("seconds") is not None)

    def _replay(self, slot: _Slot, record: TrialRecord) -> None:
        self._remember(slot, record.trial, evaluated=record.evaluated)
        if record.evaluated:
            self.evaluated += 1

    def _remember(self, slot: _Slot, trial: Trial, evaluated: bool) -> None:
        slot.trial = trial
        self._known[trial.key] = trial
        self._trials[trial.id] = trial
        self._progress.update(trial, evaluated)

    def _take_id(self, slot: _Slot) -> int:
        """The next trial id; a resumed run checks that it replays its store faithfully."""
        trial_id, self._next_id = self._next_id, self._next_id + 1
        stored = self._stored.get(slot.key)
        if stored is None:
            diverged = trial_id in self._stored_ids
        else:
            diverged = stored.trial.id != trial_id or stored.trial.genome != slot.genome
        if diverged:
            raise TinyevoError(f"the run in {self.store.path} does not replay at trial {trial_id}: "
                               f"strategy {self.strategy.name!r} is not deterministic for its seed "
                               f"or the code changed; give a new store file")
        return trial_id

    def _describe(self, genome) -> str:
        try:
            return self.space.describe(genome)
        except _DECODE_ERRORS:
            return ""

    def _finished_objectives(self) -> list[dict]:
        """The objective values of the successful trials so far: what a new candidate competes with
        (given to estimators with ``wants_competitors``, e.g. learning-curve early stopping)."""
        metrics = [o.metric for o in self.strategy.objectives]
        return [{m: trial.metrics[m] for m in metrics} for trial in self._trials.values()
                if trial.status == OK and all(m in trial.metrics for m in metrics)]

    def _prune_weights(self) -> None:
        """Delete kept trial weights no candidate can inherit any more (``weights_store`` policy)."""
        if self.run_dir is None or not getattr(self.estimator, "keep_weights", False):
            return
        from tinyevo.estimate.weights_store import prune_run_weights

        prune_run_weights(self.run_dir, self.strategy, self._trials.values(), self.strategy.objectives)

    def _check_needs(self) -> None:
        if "run_dir" in self.estimator.needs and self.run_dir is None:
            raise TinyevoError(f"estimator {self.estimator.name!r} keeps files: give the runner a "
                               f"store file or a run_dir")


def _trial_seed(run_seed: int, trial_id: int) -> int:
    """A seed for one trial's estimator, fixed by the run's seed and the trial id."""
    return int(np.random.SeedSequence([int(run_seed), int(trial_id)]).generate_state(1)[0])


def _store_dir(store: Store) -> Path | None:
    return None if store.path == ":memory:" else Path(store.path).resolve().parent
