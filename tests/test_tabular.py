"""The NAS-Bench-201 tabular estimator against the table read independently with gzip + csv."""
import csv
import gzip
from pathlib import Path

import numpy as np
import pytest

from tinyevo.cli import main
from tinyevo.errors import TinyevoError
from tinyevo.estimate import ESTIMATORS, EvalContext, create_estimator
from tinyevo.estimate.tabular import TabularEstimator
from tinyevo.spaces import create_space
from tinyevo.store import Store

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "../shared/datasets/nb201_12epoch.csv.gz"
pytestmark = pytest.mark.skipif(not TABLE.exists(), reason="NAS-Bench-201 table not available")


@pytest.fixture(scope="module")
def rows():
    with gzip.open(TABLE, "rt") as file:
        return {row["arch"]: row for row in csv.DictReader(file)}


def test_registered_and_created_by_name():
    assert "tabular" in ESTIMATORS.names()
    estimator = create_estimator("tabular", path=str(TABLE))
    assert isinstance(estimator, TabularEstimator) and estimator.needs == ("genome",)


def test_accuracy_is_the_validation_column_and_nothing_else(rows):
    space, estimator = create_space("nb201"), TabularEstimator(path=str(TABLE))
    rng = np.random.default_rng(0)
    for _ in range(20):
        cell = space.sample(rng)
        metrics = estimator.evaluate(space.decode(cell), EvalContext(genome=cell, space=space))
        assert metrics == {"accuracy": pytest.approx(float(rows[cell]["cifar10-val"]) / 100)}
        test = float(rows[cell]["cifar10-test"]) / 100
        assert estimator.test_accuracy(cell) == pytest.approx(test)


def test_other_datasets_use_their_own_columns(rows):
    cell = next(iter(rows))
    estimator = TabularEstimator(path=str(TABLE), dataset="cifar100")
    got = estimator.evaluate(None, EvalContext(genome=cell))["accuracy"]
    assert got == pytest.approx(float(rows[cell]["cifar100-val"]) / 100)
    with pytest.raises(TinyevoError, match="dataset"):
        TabularEstimator(path=str(TABLE), dataset="mnist")


def test_every_cell_of_the_nb201_space_is_in_the_table(rows):
    """5 ops on 6 edges: the space's vectors enumerate exactly the 15,625 cells of the table."""
    space, estimator = create_space("nb201"), TabularEstimator(path=str(TABLE))
    cells = {space.from_vector(list(v)) for v in np.ndindex(*(5,) * 6)}
    assert cells == set(rows) and len(estimator.table()) == 5 ** 6 == 15625


def test_published_oracle_numbers(rows):
    """NAS-Bench-201, 12 epochs: best test accuracy 89.16; the best-validation cell tests 89.03."""
    estimator = TabularEstimator(path=str(TABLE))
    table = estimator.table()
    assert max(row["cifar10-test"] for row in table.values()) == pytest.approx(89.16)
    best_val_cell = max(table, key=lambda cell: table[cell]["cifar10-val"])
    assert estimator.test_accuracy(best_val_cell) == pytest.approx(0.8903)


def test_genome_as_a_list_of_edge_ops(rows):
    ops = ["nor_conv_3x3", "nor_conv_3x3", "avg_pool_3x3", "skip_connect", "nor_conv_3x3",
           "skip_connect"]
    cell = ("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|"
            "+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|")
    estimator = TabularEstimator(path=str(TABLE))
    expected = float(rows[cell]["cifar10-val"]) / 100
    assert estimator.validation_accuracy(ops) == pytest.approx(expected)


def test_unknown_cell_and_missing_file_are_one_line_errors(tmp_path):
    with pytest.raises(TinyevoError, match="not in NAS-Bench-201"):
        TabularEstimator(path=str(TABLE)).test_accuracy("|conv_9x9~0|+|none~0|none~1|+|a~0|b~1|")
    with pytest.raises(TinyevoError, match="not found"):
        TabularEstimator(path=str(tmp_path / "absent.csv.gz")).test_accuracy("x")
    broken = tmp_path / "broken.csv.gz"
    broken.write_bytes(b"not gzip")
    with pytest.raises(TinyevoError, match="cannot read"):
        TabularEstimator(path=str(broken)).table()


def test_without_a_table_path_the_search_stops_with_one_line(tmp_path, capfd):
    code = main(["search", "--space", "nb201", "--estimator", "tabular", "--budget", "2",
                 "--no-progress", "--out", str(tmp_path / "run")])
    err = capfd.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "needs the NAS-Bench-201 table" in err and "[estimator_options] path" in err


def test_the_table_path_comes_from_the_toml_config(tmp_path, capfd, rows):
    config = tmp_path / "search.toml"
    config.write_text(f'space = "nb201"\nestimator = "tabular"\nbudget = 3\n'
                      f'[estimator_options]\npath = "{TABLE.resolve()}"\n')
    assert main(["search", "--config", str(config), "--no-progress", "--out", str(tmp_path / "run")]) == 0
    capfd.readouterr()
    with Store(tmp_path / "run" / "trials.sqlite") as store:
        records = store.records()
    assert len(records) == 3
    for record in records:  # each accuracy is the table's cifar10-val of that cell, read with csv
        cell = record.trial.genome  # an nb201 genome is its cell string
        assert record.trial.metrics["accuracy"] == pytest.approx(float(rows[cell]["cifar10-val"]) / 100)
