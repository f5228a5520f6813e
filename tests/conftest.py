"""How ``make test`` spreads the tests over the cores (pytest-xdist, ``--dist loadgroup``).

Tests of one file stay on one worker, so a module-scoped fixture (a search run, a trained model)
is built once, except in the files listed in ``SPLIT``: their tests are independent and long (a
sanitized C build or an emulator run per space), so each goes to whichever worker is free.
"""
from __future__ import annotations

import pytest

SPLIT = {"test_codegen.py", "test_codegen_mcu.py", "test_tflite_export.py", "test_memory_planner.py",
         "test_spaces.py", "test_strategies.py", "test_streaming.py"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.name not in SPLIT:
            item.add_marker(pytest.mark.xdist_group(item.path.name))
