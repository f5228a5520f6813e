"""Where evaluations run: in this process, in a pool of local processes, or on a Ray cluster.

Every executor has ``parallelism`` (how many jobs it runs at once, which is how many candidates the
runner asks for per batch) and ``map(fn, items, on_done=None, *, timeout=None, on_start=None,
fatal_log=None)``: the results in the order of ``items``; ``on_done(index, result)`` is called in
this process as each one finishes, which is when the runner stores the trial, and
``on_start(index)`` just before an item starts (the runner marks its trial running).
``fn`` must be a module-level function and the items picklable.

A job that cannot finish does not stop the others: its result is a ``Lost`` (why, and when)
instead of what ``fn`` returns.

- **Over its time limit** (``timeout`` seconds of wall time, each item from its own start): a pool
  or Ray worker is stopped and replaced. In this process (the serial executor) a timer interrupts
  the Python code of the evaluation (a training loop returns to Python at every step); code stuck
  in native code cannot be interrupted in its own process, so after a grace period the process
  ends with its traceback in ``fatal_log`` (a resume records the trial failed and goes on).
- **Its worker died** (a segfault, an abort, out of memory, ``kill -9``): the pool records the
  signal or exit code and starts a fresh worker; on Ray the task is not retried. A fatal signal in
  this process kills the run; ``fatal_log`` keeps the evidence for the resume.

An exception raised by ``fn`` itself is re-raised by ``map``, as before (the runner's
``evaluate_job`` never raises for a candidate).
"""
from __future__ import annotations

import faulthandler
import multiprocessing
import multiprocessing.connection
import multiprocessing.util
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from tinyevo.errors import TinyevoError

OnDone = Callable[[int, Any], None]
OnStart = Callable[[int], "str | None"]


@dataclass
class Lost:
    """The result of a job that did not finish: ``reason`` says why (time limit, signal, exit code)."""

    reason: str
    started_at: float
    finished_at: float
    seconds: float
    signal: int | None = None
    exit_code: int | None = None
    timed_out: bool = False


class EvaluationTimeout(BaseException):
    """Raised in this process by the serial executor's timer. A BaseException, like
    KeyboardInterrupt, so that the ``except Exception`` of an estimator does not swallow it."""


def timeout_reason(limit: float) -> str:
    return f"timed out: still running after the {limit:g} s limit of one evaluation (--eval-timeout)"


def death_reason(exit_code: int | None, who: str = "the worker process") -> str:
    """``killed by signal SIGABRT (6)`` or ``exited with code 3`` of a process's exit code."""
    if exit_code is not None and exit_code < 0:
        number = -exit_code
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = "signal"
        return f"{who} was killed by signal {name} ({number}) while evaluating this candidate"
    return f"{who} exited with code {exit_code} while evaluating this candidate"


#: Seconds a pool worker may take to receive a job (unpickle it, import its modules) before its
#: time limit starts; past this and the limit it is stopped like a job over its limit.
WORKER_START_ALLOWANCE_S = 300.0


def hard_stop_grace(limit: float) -> float:
    """Seconds past the limit before a serial evaluation stuck in native code ends the process."""
    return 10.0 + 0.25 * limit


class Executor:
    name = ""
    parallelism = 1
    #: True when jobs run in this process: a crash of a job is then a crash of the run.
    in_process = False

    def map(self, fn: Callable, items: Sequence, on_done: OnDone | None = None, *,
            timeout: float | None = None, on_start: OnStart | None = None,
            fatal_log: str | Path | None = None) -> list:
        raise NotImplementedError

    def options(self) -> dict:
        return {}

    def close(self) -> None:
        """Release workers; the executor may not be used afterwards."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class SerialExecutor(Executor):
    """One job after the other, in this process. Simplest to debug; no pickling.

    ``timeout`` is kept by a SIGALRM timer when this is the main thread, and in any case by a
    ``faulthandler`` watchdog that ends the process ``hard_stop_grace`` seconds later if the
    evaluation never returns to Python. ``fatal_log``: the file where a fatal signal (segfault,
    abort) or that watchdog leaves the traceback, after the line ``on_start`` returns."""

    name = "serial"
    in_process = True

    def __init__(self, hard_stop_grace: float | None = None):
        #: Seconds past the limit before the watchdog ends the process (None: ``hard_stop_grace()``).
        self.hard_stop_grace = hard_stop_grace

    def map(self, fn, items, on_done=None, *, timeout=None, on_start=None, fatal_log=None):
        results = []
        for index, item in enumerate(items):
            header = on_start(index) if on_start else None
            grace = None if timeout is None else (
                hard_stop_grace(timeout) if self.hard_stop_grace is None else self.hard_stop_grace)
            with _InProcessGuard(timeout, grace, fatal_log, header) as guard:
                started_at, start = time.time(), time.perf_counter()
                results.append(guard.call(fn, item))
            if guard.timed_out and results[-1] is _PENDING:
                results[-1] = Lost(timeout_reason(timeout), started_at, time.time(),
                                   time.perf_counter() - start, timed_out=True)
            if on_done:
                on_done(index, results[-1])
        return results


_PENDING = object()


class _InProcessGuard:
    """A time limit and a fatal-error log around one call in this process (see SerialExecutor)."""

    def __init__(self, timeout: float | None, grace: float | None, fatal_log, header: str | None):
        self.timeout, self.grace, self.fatal_log, self.header = timeout, grace, fatal_log, header
        self.timed_out = False
        self._file = None
        self._alarm = (timeout is not None and hasattr(signal, "setitimer")
                       and threading.current_thread() is threading.main_thread())

    def __enter__(self):
        self._faulthandler_was = faulthandler.is_enabled()
        if self.fatal_log is not None:
            self._file = open(self.fatal_log, "w")
            if self.header:
                self._file.write(self.header.rstrip("\n") + "\n")
            self._file.flush()
            faulthandler.enable(file=self._file, all_threads=True)
        self._watchdog = self.timeout is not None and (self._file or sys.__stderr__) is not None
        if self._watchdog:
            stop = self.timeout + self.grace
            faulthandler.dump_traceback_later(stop, exit=True, file=self._file or sys.__stderr__)
        if self._alarm:
            self._previous = signal.signal(signal.SIGALRM, self._on_alarm)
            signal.setitimer(signal.ITIMER_REAL, self.timeout)
        return self

    def _on_alarm(self, signum, frame):
        raise EvaluationTimeout()

    def call(self, fn, item):
        result = _PENDING
        try:
            result = fn(item)
            self._disarm()
        except EvaluationTimeout:
            self._disarm()
            self.timed_out = True
        return result

    def _disarm(self):
        if self._alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)

    def __exit__(self, *exc):
        self._disarm()
        if self._alarm:
            signal.signal(signal.SIGALRM, self._previous)
        if self._watchdog:
            faulthandler.cancel_dump_traceback_later()
        if self._file is not None:
            if self._faulthandler_was:
                faulthandler.enable(file=sys.__stderr__, all_threads=True)
            else:
                faulthandler.disable()
            self._file.close()
            Path(self.fatal_log).unlink(missing_ok=True)  # the process lives: nothing to keep
        return False


class ProcessExecutor(Executor):
    """A pool of ``workers`` local processes (spawned, so safe with PyTorch threads).

    Each worker runs one job at a time, so the pool knows which job a dead worker was running: that
    job is a ``Lost`` with the signal or exit code, a fresh worker takes the dead one's place and
    the other jobs go on. A job over ``timeout`` has its worker killed and replaced the same way.
    A worker that dies before it starts its job (it cannot import what the job needs, say) is no
    candidate's doing: the job goes to a fresh worker, and after ``MAX_START_FAILURES`` such deaths
    in a row the pool gives up with a TinyevoError instead of failing every candidate."""

    name = "process"
    MAX_START_FAILURES = 3

    def __init__(self, workers: int = 2):
        if workers < 1:
            raise TinyevoError(f"a process pool needs at least 1 worker, got {workers}")
        self.parallelism = int(workers)
        self._context = multiprocessing.get_context("spawn")
        self._workers: list[_Worker] = []
        # workers are not daemons (a job may start processes of its own): stop them when the pool
        # is closed or collected, and at exit before multiprocessing joins its children
        self._stop_all = multiprocessing.util.Finalize(self, _stop_workers, args=(self._workers,),
                                                       exitpriority=10)

    def map(self, fn, items, on_done=None, *, timeout=None, on_start=None, fatal_log=None):
        results: list = [None] * len(items)
        waiting = list(range(len(items)))
        busy: list[_Worker] = []
        start_failures = 0
        try:
            while waiting or busy:
                while waiting and len(busy) < self.parallelism:
                    index = waiting.pop(0)
                    if on_start:
                        on_start(index)
                    worker = self._idle_worker(busy)
                    worker.start_job(fn, items[index], index)
                    busy.append(worker)
                for worker, outcome in self._wait(busy, timeout):
                    busy.remove(worker)
                    if isinstance(outcome, Lost) and not worker.begun and not outcome.timed_out:
                        self._retire(worker)  # died before it began the job: give it to another
                        start_failures += 1
                        if start_failures >= self.MAX_START_FAILURES:
                            raise TinyevoError(f"the process pool's workers die before they start a "
                                               f"job ({outcome.reason.split(' while ')[0]}, "
                                               f"{start_failures} times in a row); their error is on "
                                               f"stderr, or run with --executor serial to see it")
                        waiting.insert(0, worker.index)
                        worker.index = None
                        continue
                    start_failures = 0
                    if isinstance(outcome, Lost):  # dead or stopped: a fresh worker takes the next job
                        self._retire(worker)
                    elif outcome[0] == "error":
                        raise outcome[1]
                    else:
                        outcome = outcome[1]
                    results[worker.index] = outcome
                    index, worker.index = worker.index, None
                    if on_done:
                        on_done(index, outcome)
        except BaseException:
            for worker in busy:  # the run stops: do not leave jobs running behind it
                self._retire(worker)
            raise
        return results

    def _idle_worker(self, busy: list["_Worker"]) -> "_Worker":
        for worker in self._workers:
            if worker not in busy:
                if worker.alive():
                    return worker
                self._workers.remove(worker)  # died while idle (killed from outside)
                worker.stop()
                break
        worker = _Worker(self._context)
        self._workers.append(worker)
        return worker

    def _retire(self, worker: "_Worker") -> None:
        worker.stop()
        if worker in self._workers:
            self._workers.remove(worker)

    def _wait(self, busy: list["_Worker"], timeout: float | None):
        """The workers that finished, died or ran over time, with their outcome; blocks until one."""
        deadline = None if timeout is None else min(w.deadline(timeout) for w in busy)
        wait_for = None if deadline is None else max(0.0, deadline - time.perf_counter())
        handles = [w.conn for w in busy] + [w.process.sentinel for w in busy]
        ready = set(multiprocessing.connection.wait(handles, wait_for))
        finished = []
        for worker in list(busy):
            outcome = None
            if worker.conn in ready or worker.process.sentinel in ready:
                outcome = worker.outcome()
            if outcome is not None:
                finished.append((worker, outcome))
            elif timeout is not None and time.perf_counter() >= worker.deadline(timeout):
                worker.stop()
                finished.append((worker, worker.lost(timeout_reason(timeout), timed_out=True)))
        return finished

    def options(self):
        return {"workers": self.parallelism}

    def close(self):
        self._stop_all()


def _stop_workers(workers: list["_Worker"]) -> None:
    for worker in workers:
        worker.stop(gently=True)
    workers.clear()


class _Worker:
    """One spawned process and its pipe; runs the jobs it is sent, one at a time."""

    def __init__(self, context):
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_worker_loop, args=(child,))
        self.process.start()
        child.close()
        self.index: int | None = None
        self.start = self.started_at = 0.0
        self.begun = False  # the worker said it started the job (see outcome)

    def alive(self) -> bool:
        return self.process.is_alive()

    def deadline(self, timeout: float) -> float:
        """When the job is over its limit (``perf_counter`` time)."""
        return self.start + timeout + (0.0 if self.begun else WORKER_START_ALLOWANCE_S)

    def start_job(self, fn, item, index: int) -> None:
        self.index, self.started_at, self.start = index, time.time(), time.perf_counter()
        self.begun = False
        try:
            self.conn.send((fn, item))
        except (BrokenPipeError, OSError):
            pass  # it died: outcome() will say how

    def outcome(self):
        """``("ok", result)``, ``("error", exception)``, a ``Lost`` when the worker died, or None
        when it only said that the job started (its clock restarts then: a fresh worker first
        imports the job's modules, PyTorch included, which is no part of the evaluation)."""
        try:
            while self.conn.poll():
                message = self.conn.recv()
                if message[0] != "started":
                    return message
                self.started_at, self.start, self.begun = message[1], time.perf_counter(), True
            if self.process.is_alive():
                return None
        except (EOFError, OSError):
            pass
        self.process.join(5)
        return self.lost(death_reason(self.process.exitcode), exit_code=self.process.exitcode)

    def lost(self, reason: str, exit_code: int | None = None, timed_out: bool = False) -> Lost:
        code = exit_code
        return Lost(reason, self.started_at, time.time(), time.perf_counter() - self.start,
                    signal=-code if code is not None and code < 0 else None,
                    exit_code=code if code is not None and code >= 0 else None, timed_out=timed_out)

    def stop(self, gently: bool = False) -> None:
        if gently and self.index is None and self.process.is_alive():
            try:
                self.conn.send(None)
                self.process.join(2)
            except (BrokenPipeError, OSError):
                pass
        if self.process.is_alive():
            self.process.kill()
        self.process.join()
        self.conn.close()


def _worker_loop(conn) -> None:
    """A pool worker: run ``(fn, item)`` messages until ``None`` or the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the runner's to handle
    faulthandler.enable(all_threads=True)  # a fatal signal leaves its traceback on stderr
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        fn, item = message  # unpickled: the job's modules are imported, its clock starts now
        conn.send(("started", time.time()))
        try:
            reply = ("ok", fn(item))
        except Exception as error:  # noqa: BLE001 -- sent back and raised by map, as a pool does
            reply = ("error", error)
        try:
            conn.send(reply)
        except Exception as error:  # noqa: BLE001 -- e.g. an exception that does not pickle
            conn.send(("error", RuntimeError(f"{type(error).__name__}: {error}")))


class RayExecutor(Executor):
    """Jobs as Ray tasks (one CPU each): a local Ray, or an existing cluster at ``address``.

    ``address=None`` joins the cluster of ``RAY_ADDRESS`` if set, else starts a local Ray with
    ``num_cpus`` CPUs; ``address="auto"`` joins the cluster this machine belongs to;
    ``"ray://head:10001"`` connects through Ray Client. A Ray already initialized by the caller is
    used as it is.

    Tasks are not retried (a candidate that kills its worker would kill the next one too): a task
    whose worker died is a ``Lost`` with Ray's reason (Ray does not report the signal; the
    worker's log has the ``faulthandler`` traceback). Each task is a generator that first says it
    has begun, so that its time limit counts from then, not from its submission (a fresh worker
    starts and imports PyTorch first: up to ``WORKER_START_ALLOWANCE_S``); a task over
    ``timeout`` is cancelled with its worker process (``ray.cancel(force=True)``). At most
    ``parallelism`` tasks are in flight.
    """

    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: int | None = None):
        self.ray = _import_ray()
        self.address = address
        if not self.ray.is_initialized():
            self._init(address, num_cpus)
        cluster_cpus = int(self.ray.cluster_resources().get("CPU", 1))
        self.parallelism = max(1, int(num_cpus) if num_cpus else cluster_cpus)
        self._remote_task = None

    def _init(self, address, num_cpus):
        if address is None and not os.environ.get("RAY_ADDRESS"):
            self.ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
        else:
            self.ray.init(address=address)

    def map(self, fn, items, on_done=None, *, timeout=None, on_start=None, fatal_log=None):
        remote = self._remote()
        results: list = [None] * len(items)
        waiting = list(range(len(items)))
        running: dict[Any, _RayJob] = {}  # the task's generator -> its job
        while waiting or running:
            while waiting and len(running) < self.parallelism:
                index = waiting.pop(0)
                if on_start:
                    on_start(index)
                running[remote.remote(fn, items[index])] = _RayJob(index)
            wait_for = None
            if timeout is not None:
                deadline = min(job.deadline(timeout) for job in running.values())
                wait_for = max(0.0, deadline - time.perf_counter())
            ready, _ = self.ray.wait(list(running), num_returns=1, timeout=wait_for)
            finished = []
            for task in ready:
                outcome = self._next(task, running[task])
                if outcome is not _STARTED:
                    finished.append((task, outcome))
            if timeout is not None:
                for task, job in running.items():
                    if task not in ready and time.perf_counter() >= job.deadline(timeout):
                        self.ray.cancel(task, force=True)  # kills its worker process
                        finished.append((task, job.lost(timeout_reason(timeout), timed_out=True)))
            for task, outcome in finished:
                job = running.pop(task)
                results[job.index] = outcome
                if on_done:
                    on_done(job.index, outcome)
        return results

    def _next(self, task, job: "_RayJob"):
        """The task's next message: ``_STARTED`` (its clock restarts), its result, or a ``Lost``."""
        exceptions = self.ray.exceptions
        died = tuple(getattr(exceptions, name) for name in
                     ("WorkerCrashedError", "OutOfMemoryError", "NodeDiedError", "LocalRayletDiedError")
                     if hasattr(exceptions, name))
        try:
            message = self.ray.get(next(task))
        except died as error:
            text = " ".join(str(error).split())
            return job.lost(f"the Ray worker died while evaluating this candidate "
                            f"({type(error).__name__}: {text[:300]})")
        if not job.begun:
            job.started_at, job.start, job.begun = message[1], time.perf_counter(), True
            return _STARTED
        return message

    def _remote(self):
        if self._remote_task is None:  # a generator task: it says when it starts, then returns
            self._remote_task = self.ray.remote(num_cpus=1, max_retries=0)(_ray_task)
        return self._remote_task

    def options(self):
        return {"address": self.address, "parallelism": self.parallelism}


_STARTED = object()


class _RayJob:
    """One item on Ray: when it was submitted, and when it began (its worker may start first)."""

    def __init__(self, index: int):
        self.index, self.started_at, self.start = index, time.time(), time.perf_counter()
        self.begun = False

    def deadline(self, timeout: float) -> float:
        return self.start + timeout + (0.0 if self.begun else WORKER_START_ALLOWANCE_S)

    def lost(self, reason: str, timed_out: bool = False) -> Lost:
        return Lost(reason, self.started_at, time.time(), time.perf_counter() - self.start,
                    timed_out=timed_out)


def _ray_task(fn, item):
    """A Ray task (a generator): says it started, then yields ``fn(item)``; a fatal signal's
    traceback goes to the worker's log."""
    if not faulthandler.is_enabled():
        faulthandler.enable(all_threads=True)
    yield ("started", time.time())
    yield fn(item)


def _import_ray():
    try:
        import ray
    except ImportError:
        raise TinyevoError("the Ray executor needs Ray: pip install 'tinyevo[ray]', "
                           "or use the serial or process executor") from None
    return ray


EXECUTORS = {"serial": SerialExecutor, "process": ProcessExecutor, "ray": RayExecutor}


def create_executor(name: str = "serial", **options) -> Executor:
    """``create_executor("process", workers=4)``, ``create_executor("ray", address="auto")``."""
    if name not in EXECUTORS:
        raise TinyevoError(f"unknown executor {name!r}; choose one of: {', '.join(EXECUTORS)}")
    return EXECUTORS[name](**options)
