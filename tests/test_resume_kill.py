"""Kill a search with a real SIGKILL, run the same command again, and get the uninterrupted run.

The search runs in a child process (``tests/resume_helpers.py``). Its estimator blocks on a chosen
trial and says so by creating a file, so each kill lands at a known point without depending on
timing; the second kill of the serial test lands wherever the process happens to be.
"""
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from resume_helpers import search
from tinyevo.store import Store

HELPER = Path(__file__).with_name("resume_helpers.py")
TABLE = Path(__file__).resolve().parents[1] / "../shared/datasets/nb201_12epoch.csv.gz"
WAIT_SECONDS = 60  # a bound for a broken test, not a timing the test depends on
pytestmark = pytest.mark.skipif(not TABLE.exists(), reason="NAS-Bench-201 table not available")


def start(store, *args, hold_at=None, hold_file=None):
    env = dict(os.environ)
    if hold_at is not None:
        env.update(TINYEVO_TEST_HOLD_AT=str(hold_at), TINYEVO_TEST_HOLD_FILE=str(hold_file))
    return subprocess.Popen([sys.executable, str(HELPER), str(store), *args], env=env,
                            start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def kill(process):
    """SIGKILL the search process, then whatever it started (pool workers)."""
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.stdout.close()
    process.stderr.close()


def stored_ids(store):
    try:
        with sqlite3.connect(store) as db:
            return {row[0] for row in db.execute("SELECT id FROM trials")}
    except sqlite3.OperationalError:  # not created yet
        return set()


def wait_until(condition, process):
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        assert process.poll() is None, process.stderr.read().decode()
        assert time.monotonic() < deadline, "the search never reached the point to kill it at"
        time.sleep(0.02)


def finish(store, *args):
    done = subprocess.run([sys.executable, str(HELPER), str(store), *args], capture_output=True,
                          text=True, timeout=WAIT_SECONDS)
    assert done.returncode == 0, done.stderr


def test_serial_search_killed_twice_ends_like_the_uninterrupted_run(tmp_path):
    args = ["--evaluations", "24", "--seed", "1", "--sleep", "0.005"]
    reference = search(tmp_path / "reference.sqlite", 24, seed=1, sleep_s=0.005)
    store = tmp_path / "killed.sqlite"
    hold_file = tmp_path / "holding"
    process = start(store, *args, hold_at=7, hold_file=hold_file)
    wait_until(hold_file.exists, process)
    kill(process)  # while evaluating trial 7
    assert process.returncode == -signal.SIGKILL
    assert stored_ids(store) == set(range(7))  # trial 7 was lost, nothing else
    before = {r.trial.id: r.finished_at for r in Store(store).records()}
    process = start(store, *args)  # replays 0-6, then is killed wherever it happens to be
    wait_until(lambda: len(stored_ids(store)) >= 16, process)
    kill(process)
    finish(store, *args)
    with Store(store) as resumed:
        assert resumed.trials() == reference  # same keys, genomes, metrics, parents, order
        after = {r.trial.id: r.finished_at for r in resumed.records()}
    assert all(after[i] == before[i] for i in before)  # no finished trial was evaluated again


def test_process_pool_search_killed_with_a_later_trial_stored(tmp_path):
    """Two workers: trial 2 is held while trial 3 finishes, so the store has a gap to fill."""
    args = ["--evaluations", "12", "--seed", "1", "--workers", "2"]
    reference = search(tmp_path / "reference.sqlite", 12, seed=1, batch_size=2)  # serial
    store, hold_file = tmp_path / "killed.sqlite", tmp_path / "holding"
    process = start(store, *args, hold_at=2, hold_file=hold_file)
    wait_until(lambda: hold_file.exists() and 3 in stored_ids(store), process)
    kill(process)
    assert stored_ids(store) == {0, 1, 3}
    finish(store, *args)
    with Store(store) as resumed:
        assert resumed.trials() == reference
