"""Test helpers for the runner: a small regularized evolution, a slowed tabular estimator, and a
command line that runs a search into a store file (so a test can SIGKILL it and run it again).

    python tests/resume_helpers.py STORE --evaluations 30 --seed 1 --workers 0 --sleep 0.01

Setting ``TINYEVO_TEST_HOLD_AT=N`` makes the evaluation of trial N block (after creating the file
``$TINYEVO_TEST_HOLD_FILE``), so that a test can kill the process at a known point of the search
without depending on timing.
"""
from __future__ import annotations

import argparse
import ctypes
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tinyevo.estimate.base import EstimationFailed, Estimator, EvalContext
from tinyevo.estimate.tabular import TabularEstimator
from tinyevo.run import Budget, ProcessExecutor, Runner, SerialExecutor
from tinyevo.run.jobs import Job, evaluate_job
from tinyevo.strategies import Candidate, Strategy, create_strategy
from tinyevo.spaces import create_space
from tinyevo.store import Store

TABLE = str(Path(__file__).resolve().parents[1] / "../shared/datasets/nb201_12epoch.csv.gz")

HOLD_SECONDS = 120  # a held evaluation gives up after this, so no process lingers for long


def regularized(space, seed=0):
    """Regularized evolution (Real et al. 2019) with a population small enough for a test."""
    return create_strategy("regularized", space, seed=seed, population_size=8, tournament_size=3)


class FixedList(Strategy):
    """Asks the genomes of a fixed list, in order, and records everything it is told."""

    name = "test-fixed-list"

    def __init__(self, space, genomes, seed=0, **options):
        super().__init__(space, seed, **options)
        self.genomes, self.told, self._next = list(genomes), [], 0

    def settings(self):
        return {"genomes": self.genomes}

    def ask(self, n):
        chosen = [self.genomes[(self._next + i) % len(self.genomes)] for i in range(n)]
        self._next += n
        return [Candidate(g) for g in chosen]

    def tell(self, trials):
        self.told.extend(trials)


class Unlucky(Estimator):
    """Accuracy 1 / (1 + trial id), except trial 2, whose estimation fails (no network needed)."""

    name = "test-unlucky"

    def evaluate(self, architecture, context):
        if context.trial_id == 2:
            raise EstimationFailed("loss diverged")
        return {"accuracy": 1.0 / (1 + context.trial_id)}


def executor_contract(executor, jobs: int = 5) -> None:
    """What every executor does with ``evaluate_job``: each job runs once, the results come back in
    the order of the jobs whatever order they finish in, and a job that fails is a failed result,
    not an exception."""
    items = [Job(i, Unlucky(), None, EvalContext(trial_id=i)) for i in range(jobs)]
    done, started = {}, []
    results = executor.map(evaluate_job, items, lambda i, result: done.setdefault(i, result),
                           on_start=started.append)
    assert [r["status"] for r in results] == ["ok", "ok", "failed", "ok", "ok"][:jobs]
    assert "loss diverged" in results[2]["error"]
    assert [r["metrics"].get("accuracy") for r in results] == [1.0, 0.5, None, 0.25, 0.2][:jobs]
    assert sorted(done) == sorted(started) == list(range(jobs))
    assert [done[i] for i in range(jobs)] == results


@dataclass
class SlowTabular(TabularEstimator):
    """The tabular estimator, slowed down; blocks on trial ``$TINYEVO_TEST_HOLD_AT``."""

    path: str = TABLE
    sleep_s: float = 0.0
    name = "test-slow-tabular"

    def evaluate(self, architecture, context):
        time.sleep(self.sleep_s)
        if str(context.trial_id) == os.environ.get("TINYEVO_TEST_HOLD_AT"):
            Path(os.environ["TINYEVO_TEST_HOLD_FILE"]).touch()  # tell the test: holding now
            hold(os.getppid())
        return super().evaluate(architecture, context)


@dataclass
class Doomed(TabularEstimator):
    """The tabular estimator with trials that end badly. ``fates`` maps a trial id (as text) to
    ``"sigkill"`` or ``"abort"`` (the evaluating process dies of SIGKILL or SIGABRT), ``"hang"``
    (blocks), ``"stuck"`` (blocks with SIGALRM blocked, like native code that never returns to
    Python) or ``"fail"`` (raises EstimationFailed: the same candidate failing politely)."""

    path: str = TABLE
    fates: dict = field(default_factory=dict)
    name = "test-doomed"

    def evaluate(self, architecture, context):
        fate = self.fates.get(str(context.trial_id))
        if fate == "sigkill":
            os.kill(os.getpid(), signal.SIGKILL)
        elif fate == "abort":
            os.abort()
        elif fate == "stuck":
            stuck_in_native_code()
        elif fate == "hang":
            hold(os.getppid())
        elif fate == "fail":
            raise EstimationFailed("doomed")
        return super().evaluate(architecture, context)


def doomed_search(store_path, fates, evaluations=12, seed=1, workers=0, eval_timeout="auto",
                  hard_stop_grace=None, batch_size=None):
    """``search`` with the ``Doomed`` estimator: the same command, run again after each death."""
    space = create_space("nb201")
    executor = ProcessExecutor(workers) if workers else SerialExecutor(hard_stop_grace)
    with executor, Store(store_path) as store:
        return Runner(space, regularized(space, seed), Doomed(fates=fates), store,
                      Budget(evaluations=evaluations), executor=executor,
                      batch_size=batch_size or max(1, workers), progress=False,
                      eval_timeout=eval_timeout).run()


def stuck_in_native_code() -> None:
    """Never return to Python, as native code that loops forever: ``sigsuspend`` with every signal
    blocked. Blocking SIGALRM in this thread alone is not enough: the kernel may hand it to another
    thread (faulthandler's watchdog), Python then runs the timeout handler here at the next
    bytecode, and the candidate times out politely. Only SIGKILL (or the watchdog's exit) ends it."""
    libc = ctypes.CDLL(None, use_errno=True)
    every_signal = ctypes.create_string_buffer(128)  # a sigset_t
    libc.sigfillset(every_signal)
    libc.sigsuspend(every_signal)
    os._exit(3)  # not reached


def hold(parent_pid: int) -> None:
    """Block until killed (or until the parent dies: a pool worker must not outlive its runner)."""
    deadline = time.monotonic() + HOLD_SECONDS
    while time.monotonic() < deadline:
        time.sleep(0.02)
        if os.getppid() != parent_pid:
            os._exit(0)
    os._exit(3)


def search(store_path, evaluations=30, seed=1, workers=0, sleep_s=0.0, batch_size=None,
           progress=False):
    """A regularized-evolution search of nb201 on the tabular benchmark, into ``store_path``.

    ``workers=0`` evaluates in this process; the batch size is the number of workers (or 1)."""
    space = create_space("nb201")
    executor = ProcessExecutor(workers) if workers else SerialExecutor()
    with executor, Store(store_path) as store:
        runner = Runner(space, regularized(space, seed), SlowTabular(sleep_s=sleep_s),
                        store, Budget(evaluations=evaluations), executor=executor,
                        batch_size=batch_size or max(1, workers), progress=progress)
        return runner.run()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("store")
    parser.add_argument("--evaluations", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--sleep", type=float, default=0.0)
    args = parser.parse_args(argv)
    trials = search(args.store, args.evaluations, args.seed, args.workers, args.sleep)
    print(f"{len(trials)} trials")


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import resume_helpers  # so that pickled classes are found as resume_helpers.X in pool workers

    resume_helpers.main()
