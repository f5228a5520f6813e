"""Where evaluations run: in this process, in a pool of local processes, or on a Ray cluster.

Every executor has ``parallelism`` (how many jobs it runs at once, which is how many candidates the
runner asks for per batch) and ``map(fn, items, on_done=None)``: the results in the order of
``items``; ``on_done(index, result)`` is called in this process as each one finishes, which is
when the runner stores the trial. ``fn`` must be a module-level function and the items picklable.
"""
from __future__ import annotations

import concurrent.futures as futures
import multiprocessing
import os
from typing import Any, Callable, Sequence

from tinyevo.errors import TinyevoError

OnDone = Callable[[int, Any], None]


class Executor:
    name = ""
    parallelism = 1

    def map(self, fn: Callable, items: Sequence, on_done: OnDone | None = None) -> list:
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
    """One job after the other, in this process. Simplest to debug; no pickling."""

    name = "serial"

    def map(self, fn, items, on_done=None):
        results = []
        for index, item in enumerate(items):
            results.append(fn(item))
            if on_done:
                on_done(index, results[-1])
        return results


class ProcessExecutor(Executor):
    """A pool of ``workers`` local processes (spawned, so safe with PyTorch threads)."""

    name = "process"

    def __init__(self, workers: int = 2):
        if workers < 1:
            raise TinyevoError(f"a process pool needs at least 1 worker, got {workers}")
        self.parallelism = int(workers)
        self._pool: futures.ProcessPoolExecutor | None = None

    def map(self, fn, items, on_done=None):
        if not items:
            return []
        if self._pool is None:
            self._pool = futures.ProcessPoolExecutor(
                self.parallelism, mp_context=multiprocessing.get_context("spawn"))
        index_of = {self._pool.submit(fn, item): i for i, item in enumerate(items)}
        results: list = [None] * len(items)
        for future in futures.as_completed(index_of):
            index = index_of[future]
            results[index] = future.result()
            if on_done:
                on_done(index, results[index])
        return results

    def options(self):
        return {"workers": self.parallelism}

    def close(self):
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None


class RayExecutor(Executor):
    """Jobs as Ray tasks (one CPU each): a local Ray, or an existing cluster at ``address``.

    ``address=None`` joins the cluster of ``RAY_ADDRESS`` if set, else starts a local Ray with
    ``num_cpus`` CPUs; ``address="auto"`` joins the cluster this machine belongs to;
    ``"ray://head:10001"`` connects through Ray Client. A Ray already initialized by the caller is
    used as it is.
    """

    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: int | None = None):
        self.ray = _import_ray()
        self.address = address
        if not self.ray.is_initialized():
            self._init(address, num_cpus)
        cluster_cpus = int(self.ray.cluster_resources().get("CPU", 1))
        self.parallelism = max(1, int(num_cpus) if num_cpus else cluster_cpus)
        self._remote_fns: dict[Callable, Any] = {}

    def _init(self, address, num_cpus):
        if address is None and not os.environ.get("RAY_ADDRESS"):
            self.ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
        else:
            self.ray.init(address=address)

    def map(self, fn, items, on_done=None):
        remote = self._remote(fn)
        index_of = {remote.remote(item): i for i, item in enumerate(items)}
        results: list = [None] * len(items)
        waiting = list(index_of)
        while waiting:
            done, waiting = self.ray.wait(waiting, num_returns=1)
            index = index_of[done[0]]
            results[index] = self.ray.get(done[0])
            if on_done:
                on_done(index, results[index])
        return results

    def _remote(self, fn):
        if fn not in self._remote_fns:
            self._remote_fns[fn] = self.ray.remote(num_cpus=1)(fn)
        return self._remote_fns[fn]

    def options(self):
        return {"address": self.address, "parallelism": self.parallelism}


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
