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
   (``Strategy.set_feasibility``), so that it can redraw such candidates before asking, and the
   limits themselves (``Strategy.set_limits``), the targets of a hardware-aware reward.
4. Otherwise it is **evaluated** by the estimator through the executor; metrics = cost + the
   estimator's metrics (+ ``constraint_violation`` = 0). Exceptions, ``EstimationFailed`` and NaN
   make it ``failed``; it counts as an evaluation and the search goes on. So does a candidate
   over the evaluation time limit (``eval_timeout``, see ``tinyevo.run.limits``) and one whose
   pool or Ray worker died (the signal or exit code is its ``error``; a fresh worker goes on).

Each trial is marked running in the store just before it is evaluated; a resume settles the
trials a dead run was evaluating (``tinyevo.run.crash``). What the run already knows (duplicates,
the stored trials a resume replays) is a ``TrialCache`` (``tinyevo.run.replay``).

Trial ids are given in ask order to every candidate that is not a duplicate, so a replay gives the
same ids. The strategy is told the whole batch in ask order, which keeps a run deterministic for
its seed whatever the executor: a run killed at any moment and started again with the same command
replays its store and ends where the uninterrupted run ends.

An estimator with ``capabilities.competitors`` (learning-curve early stopping) gets in
``context.extra[COMPETITORS_KEY]`` the objective values of the trials finished before the batch,
the objectives' directions and the candidate's computed costs. An estimator that keeps weights
(``capabilities.kept_weights``) has them pruned after every batch to what can still be inherited
(``weights_store.prune_run_weights``). When the budget runs out inside a
batch, the rest of the batch is neither evaluated nor told. A strategy that proposes
``max_consecutive_skips`` duplicates or infeasible candidates in a row stops the run.
"""
from __future__ import annotations

import json
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from tinyevo.errors import TinyevoError
from tinyevo.estimate.base import COMPETITORS_KEY, EstimationFailed, Estimator, EvalContext
from tinyevo.run.budget import Budget
from tinyevo.hardware.execution import ExecutionModel
from tinyevo.run.constraints import ConstraintFilter, Constraints
from tinyevo.run.crash import RunningTrials
from tinyevo.run.executors import Executor, Lost, SerialExecutor
from tinyevo.run.jobs import Job, evaluate_job
from tinyevo.run.limits import AUTO, check_eval_timeout, eval_limit
from tinyevo.run.progress import Progress
from tinyevo.run.replay import TrialCache
from tinyevo.run.resume import check_config, run_config
from tinyevo.strategies.base import FAILED, INFEASIBLE, OK, Candidate, Strategy, Trial
from tinyevo.strategies.remembered_space import decoder_of
from tinyevo.spaces.base import SearchSpace
from tinyevo.store import Store, TrialRecord, json_text
from tinyevo.store.sqlite_store import RUNNING

_DECODE_ERRORS = (TinyevoError, ValueError, KeyError, TypeError, IndexError)


@dataclass
class RunSettings:
    """How a run goes, besides its parts (space, strategy, estimator, store, budget, constraints,
    board, executor).

    ``batch_size`` (None: the executor's parallelism) is how many candidates are asked at once.
    ``cost_model(architecture, board)`` defaults to the cost model of ``execution``
    (``tinyevo.hardware.cost_model``), an ``ExecutionModel`` (default ``SEARCHED``: layer by layer,
    runtime c) saying how peak SRAM is counted; a run records what differs from the default in its
    settings (``ExecutionModel.identity``), so that a resume cannot change it. Costs and the hard
    constraints are checked by a ``ConstraintFilter`` (``tinyevo.run.constraints``). ``run_dir``
    (None: the store's folder) is where kept files go. ``eval_timeout``: the wall-time limit of one
    evaluation, ``"auto"`` (default), seconds or None (``tinyevo.run.limits``); not part of the
    run's identity, so a resume may change it. ``frontend`` (a ``tinyevo.audio.FrontEnd``; None:
    none) is the audio front-end that made the data's features: its cost is added to every
    candidate's (``ConstraintFilter``); a candidate with a front-end of its own is costed with that.
    """

    progress: bool = True
    batch_size: int | None = None
    cost_model: Callable | None = None
    max_consecutive_skips: int = 1000
    run_dir: str | Path | None = None
    execution: ExecutionModel | None = None
    eval_timeout: str | float | None = AUTO
    frontend: Any = None

    def __post_init__(self):
        if self.cost_model is not None and self.execution is not None:
            raise TinyevoError("give the runner an execution model, or a cost_model of your own, not both")
        self.eval_timeout = check_eval_timeout(self.eval_timeout)


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

    def make(self, trial_id: int, status: str, metrics: dict) -> Trial:
        """This candidate's trial."""
        return Trial(id=trial_id, genome=self.genome, status=status, metrics=dict(metrics),
                     parents=tuple(self.candidate.parents), origin=self.candidate.origin, key=self.key)

    def copy_of(self, original: Trial) -> Trial:
        """The answer to a duplicate: the original's id, status and metrics, its own genome and origin."""
        return self.make(original.id, original.status, original.metrics)

    def told(self) -> Trial:
        if self.source is not None:
            self.trial = self.copy_of(self.source.trial)
        return self.trial


class Runner:
    """Runs one search: ``Runner(space, strategy, estimator, store, budget, constraints, board,
    executor).run()``. ``store`` (default: in memory) is where trials go and where a resume comes
    from. ``settings`` (a ``RunSettings``), or its fields as keywords (``progress=False``), say how
    the run goes."""

    def __init__(self, space: SearchSpace, strategy: Strategy, estimator: Estimator,
                 store: Store | None = None, budget: Budget | None = None,
                 constraints: Constraints | None = None, board: Any = None,
                 executor: Executor | None = None, settings: RunSettings | None = None, **options):
        self.settings = replace(settings or RunSettings(), **options)
        self.space, self.strategy, self.estimator = space, strategy, estimator
        self.store = store if store is not None else Store()
        self.budget = budget if budget is not None else Budget(evaluations=100)
        self.filter = ConstraintFilter(constraints, board, self.settings.cost_model,
                                       self.settings.execution, self.settings.frontend)
        self.executor = executor if executor is not None else SerialExecutor()
        self.batch_size = int(self.settings.batch_size or self.executor.parallelism)
        run_dir = self.settings.run_dir
        self.run_dir = Path(run_dir) if run_dir else _store_dir(self.store)
        self.stop_reason = ""
        self._genome_costs: dict[str, dict | None] = {}  # genome JSON -> genome_cost's figures
        # the strategy's kept decodes when it has them (a model-based one decodes its pool's
        # draws for their validity just before it asks for their cost)
        self._cost_decode = decoder_of(self.space, getattr(self.strategy, "space", None))

    # --- the loop ------------------------------------------------------------------------------
    def run(self) -> list[Trial]:
        """Search until the budget is spent; the run's distinct trials, in id order."""
        self._begin()
        with Progress(self.budget.evaluations, self.strategy.objective, self.settings.progress) as bar:
            self._progress = bar
            while not self._finished():
                candidates = self.strategy.ask(self.batch_size)
                if not candidates:
                    self.stop_reason = f"strategy {self.strategy.name!r} has no more candidates"
                told = self._run_batch(candidates)
                if told:
                    self.strategy.tell(told)
                _prune_weights(self.estimator, self.run_dir, self.strategy,
                               self.cache.trials.values())
                self.store.set("elapsed_seconds", self.elapsed_seconds())
        self._end()
        return self.cache.in_id_order()

    def _begin(self) -> None:
        _check_needs(self.estimator, self.run_dir)
        self.strategy.set_feasibility(self.meets_constraints if self.filter.active else None)
        self.strategy.set_limits(self.filter.constraints.by_metric())
        self.strategy.set_costs(self.genome_cost)
        check_config(self.store, self.config())
        self.store.set("budget", self.budget.to_dict())
        self.running = RunningTrials(self.store, self.strategy.name, self.executor.in_process)
        self.running.settle()
        self.cache = TrialCache(self.store, self.strategy.name)
        self._ok_seconds = [r.seconds for r in self.cache.records if r.trial.status == OK and r.evaluated]
        self.evaluated = self.duplicates = self._skips = 0
        self._seconds_before = float(self.store.get("elapsed_seconds", 0.0))
        self._started = time.perf_counter()
        self.stop_reason = ""

    def _finished(self) -> bool:
        if not self.stop_reason and self.budget.exhausted(self.evaluated, self.elapsed_seconds()):
            self.stop_reason = "budget"
        return bool(self.stop_reason)

    def _end(self) -> None:
        _prune_weights(self.estimator, self.run_dir, self.strategy, self.cache.trials.values())
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
        # as of the batch start: a resume sees the same
        self._competitors = self.cache.finished_objectives(self.strategy.objectives)
        for candidate in candidates:
            if self.budget.evaluations_left(self.evaluated + len(pending)) == 0:
                break
            if self._skips >= self.settings.max_consecutive_skips:
                self.stop_reason = (f"the strategy proposed {self._skips} duplicate or infeasible "
                                    f"candidates in a row")
                break
            slots.append(self._prepare(candidate, pending))
        jobs = [slot.job for slot in pending]
        limit = self.eval_limit()
        try:
            self.executor.map(evaluate_job, jobs, lambda i, result: self._finish(pending[i], result),
                              timeout=limit, on_start=lambda i: self._start(pending[i], limit),
                              fatal_log=self.running.crash_log() if self.executor.in_process else None)
        finally:  # stopped by an exception or Ctrl-C: not the candidates' doing, evaluate them again
            self.running.clear([slot.job.trial_id for slot in pending if slot.trial is None])
        return [slot.told() for slot in slots]

    def eval_limit(self) -> float | None:
        """The time limit of the next evaluations in seconds (None: none), from ``eval_timeout``."""
        return eval_limit(self.settings.eval_timeout, self._ok_seconds)

    def _prepare(self, candidate: Candidate, pending: list[_Slot]) -> _Slot:
        """Sort a candidate: a duplicate, or a new trial (see ``_prepare_new``)."""
        genome = json.loads(json_text(candidate.genome))  # what a replay reads back from the store
        architecture, key, error = _decode(self.space, genome)
        slot = _Slot(candidate, genome, key)
        known = self.cache.known(key)
        if known is not None:
            slot.trial = slot.copy_of(known)
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
        trial_id = self.cache.take_id(slot.key, slot.genome)
        stored = self.cache.stored(slot.key)
        if stored is not None:
            self._replay(slot, stored)
        elif architecture is None:
            self._record(slot, slot.make(trial_id, FAILED, {}), error=error)
        else:
            self._check_cost(slot, trial_id, architecture, pending)
        evaluated = slot.job is not None or (stored is not None and stored.evaluated)
        self._skips = 0 if evaluated else self._skips + 1

    def _check_cost(self, slot: _Slot, trial_id: int, architecture, pending: list[_Slot]) -> None:
        try:
            slot.cost = self.filter.cost(architecture)
        except (EstimationFailed, ArithmeticError, ValueError) as error:
            self._record(slot, slot.make(trial_id, FAILED, {}), error=f"cost model: {error}")
            return
        violation = self.filter.violation(slot.cost)
        slot.cost["constraint_violation"] = violation
        if violation > 0:
            self._record(slot, slot.make(trial_id, INFEASIBLE, slot.cost))
            return
        slot.job = Job(trial_id, self.estimator, architecture, self._context(slot, trial_id))
        pending.append(slot)

    def _context(self, slot: _Slot, trial_id: int) -> EvalContext:
        """What the estimator is given besides the architecture (``Estimator.capabilities``)."""
        context = EvalContext(genome=slot.genome, space=self.space, trial_id=trial_id,
                              seed=_trial_seed(self.strategy.seed, trial_id),
                              parents=tuple(slot.candidate.parents), run_dir=self.run_dir)
        if self.estimator.capabilities.competitors:
            directions = {o.metric: o.direction for o in self.strategy.objectives}
            context.extra[COMPETITORS_KEY] = {
                "directions": directions, "trials": self._competitors,
                "costs": {m: slot.cost[m] for m in directions if m in slot.cost}}
        return context

    def meets_constraints(self, genome) -> bool:
        """The cost model's verdict on one genome: valid and within every hard constraint."""
        cost = self.genome_cost(genome)
        if cost is None:
            return False
        try:
            return self.filter.violation(cost) == 0
        except ArithmeticError:
            return False

    def genome_cost(self, genome) -> dict | None:
        """The cost model's figures for one genome (what its trial's metrics will carry), or
        None when it does not decode or the cost model fails on it. Kept by the genome's JSON:
        a strategy asks the verdict and the figures of the same candidates again and again (a
        model-based one scores a pool of neighbours at every step), and the cost model is exact."""
        text = json.dumps(genome, sort_keys=True, default=str)
        if text not in self._genome_costs:
            try:
                self._genome_costs[text] = self.filter.cost(self._cost_decode(genome))
            except (EstimationFailed, ArithmeticError, *_DECODE_ERRORS):
                self._genome_costs[text] = None
        cost = self._genome_costs[text]
        return None if cost is None else dict(cost)

    def _start(self, slot: _Slot, limit: float | None) -> str:
        """Mark the trial running, just before it is evaluated; the first line of its crash log."""
        running = slot.make(slot.job.trial_id, RUNNING, slot.cost)
        return self.running.start(running, _describe(self.space, slot.genome), limit)

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
        trial = slot.make(slot.job.trial_id, result["status"], {**slot.cost, **result["metrics"]})
        self.evaluated += 1
        self._record(slot, trial, error=result["error"], started_at=result["started_at"],
                     finished_at=result["finished_at"], seconds=result["seconds"])

    # --- trials --------------------------------------------------------------------------------
    def _record(self, slot: _Slot, trial: Trial, **timings) -> None:
        """Store a new trial and make it known to the rest of the run."""
        self.store.save_trial(trial, describe=_describe(self.space, slot.genome),
                              strategy=self.strategy.name, **timings)
        self._remember(slot, trial, evaluated=timings.get("seconds") is not None)

    def _replay(self, slot: _Slot, record: TrialRecord) -> None:
        self._remember(slot, record.trial, evaluated=record.evaluated)
        if record.evaluated:
            self.evaluated += 1

    def _remember(self, slot: _Slot, trial: Trial, evaluated: bool) -> None:
        slot.trial = trial
        self.cache.remember(trial)
        self._progress.update(trial, evaluated)



def _trial_seed(run_seed: int, trial_id: int) -> int:
    """A seed for one trial's estimator, fixed by the run's seed and the trial id."""
    return int(np.random.SeedSequence([int(run_seed), int(trial_id)]).generate_state(1)[0])


def _store_dir(store: Store) -> Path | None:
    return None if store.path == ":memory:" else Path(store.path).resolve().parent


def _decode(space: SearchSpace, genome) -> tuple[Any, str, str | None]:
    """The architecture and key of a genome, or (None, a key of its JSON, the error) when invalid."""
    try:
        return space.decode(genome), space.key(genome), None
    except _DECODE_ERRORS as error:
        return None, "invalid:" + json_text(genome), f"invalid genome: {error}"


def _describe(space: SearchSpace, genome) -> str:
    try:
        return space.describe(genome)
    except _DECODE_ERRORS:
        return ""


def _prune_weights(estimator: Estimator, run_dir: Path | None, strategy: Strategy, trials) -> None:
    """Delete kept trial weights no candidate can inherit any more (``weights_store`` policy)."""
    if run_dir is None or not estimator.capabilities.kept_weights:
        return
    from tinyevo.estimate.weights_store import prune_run_weights  # torch: only when weights are kept

    prune_run_weights(run_dir, strategy, trials, strategy.objectives)


def _check_needs(estimator: Estimator, run_dir: Path | None) -> None:
    if "run_dir" in estimator.needs and run_dir is None:
        raise TinyevoError(f"estimator {estimator.name!r} keeps files: give the runner a "
                           f"store file or a run_dir")
