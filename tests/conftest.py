"""How ``make test`` spreads the tests over the cores (pytest-xdist, ``--dist loadgroup``).

Tests of one file stay on one worker, so a module-scoped fixture (a search run, a trained model)
is built once, except in the files listed in ``SPLIT``: their tests are independent and long (a
sanitized C build or an emulator run per space), so each goes to whichever worker is free. Each
worker runs torch on one thread.
"""
from __future__ import annotations

import os

import pytest
import torch

if os.environ.get("PYTEST_XDIST_WORKER"):
    # One torch thread per test process (and its children): with a worker per core, more threads
    # only spin against each other.
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)

SPLIT = {"test_codegen.py", "test_codegen_mcu.py", "test_tflite_export.py", "test_memory_planner.py",
         "test_spaces.py", "test_strategies.py", "test_streaming.py"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.name not in SPLIT:
            item.add_marker(pytest.mark.xdist_group(item.path.name))
