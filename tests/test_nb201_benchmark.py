"""``benchmarks/nb201.py --quick --table`` on a table written here, where the regret is known by hand.

The table lists every cell of the nb201 space. Test accuracy is 80 everywhere but in one "trap"
cell, which tests 95 and has the lowest validation accuracy of all: the oracle is 95 (not the
89.16 of the real table) and no search that has seen two cells keeps the trap as its best-validation
cell. So every method, every seed and every budget ends at regret 95 - 80 = 15, exactly.
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

from tinyevo.strategies import DEFAULT_STRATEGY, STRATEGIES
from tinyevo.spaces import create_space

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "nb201.py"
COLUMNS = ["index", "arch", "cifar10-test", "cifar10-val", "cifar100-test", "cifar100-val",
           "imagenet-test", "imagenet-val"]
TRAP = [4, 0, 0, 0, 0, 0]  # avg_pool on the first edge, none elsewhere


def write_table(path: Path, skip: int = 0, tied: dict | None = None) -> None:
    """Every cell (but the first ``skip``): validation = 50 + sum of op indices, test = 80;
    ``tied``: vector tuple -> (validation, test) of cells set apart."""
    space = create_space("nb201")
    with gzip.open(path, "wt", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(COLUMNS)
        for index, vector in enumerate(np.ndindex(*(5,) * 6)):
            if index < skip:
                continue
            val, test = 50.0 + sum(vector), 80.0
            if list(vector) == TRAP:
                val, test = 1.0, 95.0
            val, test = (tied or {}).get(tuple(vector), (val, test))
            writer.writerow([index, space.from_vector(list(vector)), test, val, 0, 0, 0, 0])


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    folder = tmp_path_factory.mktemp("nb201")
    table, png = folder / "table.csv.gz", folder / "regret.png"
    write_table(table)
    done = run("--quick", "--table", str(table), "--seeds", "2", "--budgets", "10", "30",
               "--plot", str(png))
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout), png


def test_json_shape(quick):
    report, png = quick
    assert report["budgets"] == [10, 30] and report["seeds"] == 2
    assert report["default_strategy"] == DEFAULT_STRATEGY
    methods = report["methods"]
    assert set(STRATEGIES.names()) <= set(methods)  # every tinyevo strategy
    assert {"optuna_tpe", "optuna_nsga2", "optuna_random"} <= set(methods)
    for entry in methods.values():
        for budget in ("10", "30"):
            assert set(entry[budget]) >= {"mean_regret", "std"}
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_regret_is_measured_against_the_tables_own_oracle(quick):
    report, _ = quick
    assert report["oracle"] == 95.0
    for name, entry in report["methods"].items():
        for budget in ("10", "30"):
            assert entry[budget]["mean_regret"] == pytest.approx(15.0), name
            assert entry[budget]["std"] == pytest.approx(0.0), name


def test_a_table_without_every_cell_is_refused_in_one_line(tmp_path):
    table = tmp_path / "partial.csv.gz"
    write_table(table, skip=10)
    done = run("--quick", "--table", str(table), "--plot", str(tmp_path / "x.png"))
    assert done.returncode != 0 and done.stdout == ""
    assert "Traceback" not in done.stderr and "lacks 10 of the 15625 cells" in done.stderr
    assert not (tmp_path / "x.png").exists()


def test_cells_tied_at_the_best_validation_score_their_mean_test_whichever_is_met_first(tmp_path):
    """Cells A and B tie at validation 99 (above every other cell's), A tests 90 and B 70; the
    oracle is the trap's 95. A search cannot tell A from B, so having met either (or both) it is
    scored by their mean test, 80: regret 95 - 80 = 15, the floor. Scored by the first one met,
    it would read 5 after A and 25 after B."""
    sys.path.insert(0, str(SCRIPT.parent))
    import nb201

    a, b = (1, 2, 3, 1, 2, 3), (3, 2, 1, 3, 2, 1)
    table_file = tmp_path / "tied.csv.gz"
    write_table(table_file, tied={a: (99.0, 90.0), b: (99.0, 70.0)})
    space = create_space("nb201")
    table = nb201.Table(str(table_file), space)
    assert table.oracle == 95.0 and table.floor_regret == pytest.approx(15.0)
    other = space.from_vector([0, 1, 0, 1, 0, 1])  # validation 53, test 80
    for order in ((a, b), (b, a), (a,), (b,)):
        scorer = nb201.Scorer(table, space, budget=10)
        scorer.query(other)
        assert scorer.regret == [pytest.approx(15.0)]  # 95 - 80
        for vector in order:
            scorer.query(space.from_vector(list(vector)))
        assert scorer.regret[-1] == pytest.approx(15.0), order
        assert scorer.reached == 2  # the best validation accuracy, first reached at query 2
