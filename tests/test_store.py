"""The SQLite store, checked with the sqlite3 module as an independent reader."""
import json
import sqlite3

import pytest

from tinyevo.errors import TinyevoError
from tinyevo.strategies.base import FAILED, INFEASIBLE, OK, Trial
from tinyevo.store import Store


def make_trial(trial_id, status=OK, **metrics):
    return Trial(id=trial_id, genome={"layers": [trial_id, "conv"]}, status=status,
                 metrics=metrics or {"accuracy": 0.5 + trial_id / 100, "macs": 1000 * trial_id},
                 parents=(trial_id - 1,) if trial_id else (), origin="mutation", key=f"k{trial_id}")


def test_trials_round_trip_in_id_order(tmp_path):
    path = tmp_path / "run.sqlite"
    trials = [make_trial(i) for i in range(4)]
    with Store(path) as store:
        for trial in (trials[2], trials[0], trials[3], trials[1]):  # finished out of order
            store.save_trial(trial, describe=f"cell {trial.id}", strategy="regularized",
                             started_at=1.0, finished_at=3.5, seconds=2.5)
    with Store(path) as store:  # a new process would see the same
        assert store.trials() == trials
        assert len(store) == 4
        record = store.records()[2]
        assert (record.describe, record.strategy, record.seconds, record.evaluated) == (
            "cell 2", "regularized", 2.5, True)
        assert store.find("k3") == trials[3] and store.find("nope") is None


def test_rows_are_plain_json_for_any_sqlite_client(tmp_path):
    path = tmp_path / "run.sqlite"
    store = Store(path)
    store.save_trial(make_trial(0, FAILED, accuracy=float("nan"), macs=7), error="NaN loss")
    store.save_trial(make_trial(1, INFEASIBLE, constraint_violation=0.25))
    db = sqlite3.connect(path)  # a second reader while the store is open (WAL mode)
    rows = db.execute("SELECT id, status, metrics_json, parents_json, genome_json, error, seconds "
                      "FROM trials ORDER BY id").fetchall()
    assert json.loads(rows[0][2]) == {"accuracy": None, "macs": 7}  # NaN is not JSON: null
    assert rows[0][1] == "failed" and rows[0][5] == "NaN loss" and rows[0][6] is None
    assert json.loads(rows[1][3]) == [0] and json.loads(rows[1][4]) == {"layers": [1, "conv"]}
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()


def test_a_failed_write_leaves_no_row_and_the_store_usable(tmp_path):
    store = Store(tmp_path / "run.sqlite")
    store.save_trial(make_trial(0))
    with pytest.raises(sqlite3.IntegrityError):
        store.save_trial(make_trial(0))  # the same id twice
    with pytest.raises(TypeError):
        store.save_trial(Trial(id=1, genome={"not json": object()}))
    store.save_trial(make_trial(1))
    assert [t.id for t in store.trials()] == [0, 1]


def test_run_config_and_values(tmp_path):
    path = tmp_path / "run.sqlite"
    with Store(path) as store:
        assert store.config() is None and store.get("elapsed_seconds", 0.0) == 0.0
        store.set_config({"space": {"name": "nb201"}, "seed": 3})
        store.set("elapsed_seconds", 12.5)
        store.set("elapsed_seconds", 13.5)
    with Store(path) as store:
        assert store.config() == {"space": {"name": "nb201"}, "seed": 3}
        assert store.get("elapsed_seconds") == 13.5


def test_not_a_store_is_a_one_line_error(tmp_path):
    bogus = tmp_path / "notes.sqlite"
    bogus.write_text("these are my notes, not a database\n" * 100)
    with pytest.raises(TinyevoError, match="cannot open the run store"):
        Store(bogus)


def test_in_memory_store_keeps_nothing_on_disk(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = Store()
    store.save_trial(make_trial(0))
    assert store.trials() == [make_trial(0)] and list(tmp_path.iterdir()) == []
