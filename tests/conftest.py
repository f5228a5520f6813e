"""How ``make test`` spreads the tests over the cores (pytest-xdist).

Tests of one file stay on one worker, so a module-scoped fixture (a search run, a trained model)
is built once, except in the files listed in ``SPLIT``: their tests are independent and long (a
sanitized C build or an emulator run per space), so each goes to whichever worker is free. Each
worker runs torch on one thread.

The scopes are given to xdist by a scheduler of our own (``pytest_xdist_make_scheduler``), not by
``xdist_group`` marks: with pytest 9, ``--dist loadgroup`` no longer sees the marks (it renames
``item._nodeid``, which pytest 9 no longer reads), so every file was split over both workers and
each worker built every module fixture again.
"""
from __future__ import annotations

import os

import pytest
import torch
from xdist.scheduler import LoadScopeScheduling

if os.environ.get("PYTEST_XDIST_WORKER"):
    # One torch thread per test process (and its children): with a worker per core, more threads
    # only spin against each other.
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)

SPLIT = {"test_codegen.py", "test_codegen_mcu.py", "test_tflite_export.py", "test_memory_planner.py",
         "test_spaces.py", "test_strategies.py", "test_streaming.py"}


def scope_of(nodeid: str) -> str:
    """The unit xdist gives one worker: the test's file, or the test itself in a ``SPLIT`` file."""
    path = nodeid.split("::", 1)[0]
    return nodeid if path.rsplit("/", 1)[-1] in SPLIT else path


class FileScheduling(LoadScopeScheduling):
    """xdist's load-by-scope scheduling with ``scope_of`` as the scope."""

    def _split_scope(self, nodeid: str) -> str:
        return scope_of(nodeid)


@pytest.hookimpl(tryfirst=True)
def pytest_xdist_make_scheduler(config, log):
    return FileScheduling(config, log)
