"""``benchmarks/nb201.py --all-datasets``: each dataset's columns searched and scored on their own.

The table written here gives each dataset a different trap: validation = base + sum of op
indices everywhere, test = a flat value but in one cell of lowest validation, which tests higher.
No search that has seen two cells keeps the trap, so every run ends at regret (trap test - flat
test) of its dataset, worked out by hand: cifar10 95 - 80 = 15, cifar100 70 - 60 = 10,
imagenet 45 - 40 = 5. Seeds start at ``--first-seed``.
"""
from __future__ import annotations

import csv
import gzip
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinyevo.spaces import create_space

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "nb201.py"
TRAP = [4, 0, 0, 0, 0, 0]
#: dataset -> (validation base, flat test, trap test)
COLUMNS = {"cifar10": (50.0, 80.0, 95.0), "cifar100": (20.0, 60.0, 70.0),
           "imagenet": (10.0, 40.0, 45.0)}


def write_table(path: Path) -> None:
    space = create_space("nb201")
    with gzip.open(path, "wt", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["index", "arch"] + [f"{d}-{c}" for d in COLUMNS for c in ("test", "val")])
        for index, vector in enumerate(np.ndindex(*(5,) * 6)):
            row = [index, space.from_vector(list(vector))]
            for base, flat, trap in COLUMNS.values():
                row += [trap, 1.0] if list(vector) == TRAP else [flat, base + sum(vector)]
            writer.writerow(row)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    folder = tmp_path_factory.mktemp("nb201_datasets")
    table, png = folder / "table.csv.gz", folder / "regret.png"
    write_table(table)
    done = subprocess.run([sys.executable, str(SCRIPT), "--all-datasets", "--table", str(table),
                           "--seeds", "2", "--first-seed", "1000", "--budgets", "10", "25",
                           "--methods", "surrogate", "regularized", "optuna_random",
                           "--plot", str(png)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return json.loads(done.stdout)


def test_every_dataset_has_its_own_oracle_and_regret(report):
    assert set(report["datasets"]) == set(COLUMNS)
    assert report["first_seed"] == 1000 and report["seeds"] == 2
    for dataset, (_, flat, trap) in COLUMNS.items():
        entry = report["datasets"][dataset]
        assert entry["oracle"] == trap
        for method, result in entry["methods"].items():
            for budget in ("10", "25"):
                assert result[budget]["mean_regret"] == pytest.approx(trap - flat), (dataset, method)


def test_overhead_per_suggestion_is_reported(report):
    for entry in report["datasets"].values():
        for result in entry["methods"].values():
            assert result["overhead_ms_per_suggestion"] > 0


def test_a_bad_dataset_is_refused_in_one_line():
    done = subprocess.run([sys.executable, str(SCRIPT), "--dataset", "mnist"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2 and "invalid choice" in done.stderr
