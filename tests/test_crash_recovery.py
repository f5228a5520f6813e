"""Candidates that kill, abort or hang whatever evaluates them (issue 13): the search goes on.

A pool worker that dies or runs over the time limit fails its trial (with the signal, exit code or
limit) and is replaced; the serial executor, whose candidates die with the run, leaves the trial
marked running, and the resume names it and records it failed -- at once when a fatal error was
logged, after one more try when the process was killed from outside. Each search is compared with
the same search in which the doomed candidates fail politely (EstimationFailed): every other trial
must be the same, in the same order.
"""
import multiprocessing
import os
import signal
import sqlite3
import statistics
from pathlib import Path

import pytest

from resume_helpers import Doomed, doomed_search, regularized
from tinyevo.errors import TinyevoError
from tinyevo.run import Budget, ProcessExecutor, Runner
from tinyevo.run.limits import AUTO_CAP_S, check_eval_timeout, eval_limit
from tinyevo.spaces import create_space
from tinyevo.store import Store

TABLE = Path(__file__).resolve().parents[1] / "../shared/datasets/nb201_12epoch.csv.gz"
needs_table = pytest.mark.skipif(not TABLE.exists(), reason="NAS-Bench-201 table not available")
WAIT_SECONDS = 60  # a bound for a broken test, not a timing the test depends on


def politely(fates):
    return {trial: "fail" for trial in fates}


def errors_of(path):
    with Store(path) as store:
        assert store.running() == []
        return {r.trial.id: r.error for r in store.records()}


@needs_table
def test_pool_workers_killed_aborted_or_hung_fail_their_trial_and_the_search_goes_on(tmp_path):
    fates = {"2": "sigkill", "5": "abort", "7": "hang"}
    trials = doomed_search(tmp_path / "pool.sqlite", fates, workers=2, eval_timeout=2)
    assert trials == doomed_search(tmp_path / "polite.sqlite", politely(fates), batch_size=2)
    errors = errors_of(tmp_path / "pool.sqlite")
    assert "killed by signal SIGKILL (9)" in errors[2] and "killed by signal SIGABRT (6)" in errors[5]
    assert errors[7].startswith("timed out") and "2 s limit" in errors[7]
    assert [trials[i].status for i in (2, 5, 7)] == ["failed"] * 3
    assert all(errors[i] is None for i in errors if i not in (2, 5, 7))


class ExitsWhenUnpickled:
    """A job a pool worker dies of before it begins (as when it cannot import what the job needs)."""

    def __reduce__(self):
        return os._exit, (1,)


def test_pool_workers_that_die_before_they_begin_are_the_pools_error_not_the_candidates():
    class Impatient(ProcessExecutor):
        MAX_START_FAILURES = 1

    with Impatient(1) as pool, pytest.raises(TinyevoError, match="workers die before they start a job "
                                                                 r"\(the worker process exited with code 1"):
        pool.map(statistics.fmean, [ExitsWhenUnpickled()])


@needs_table
def test_serial_timeout_fails_the_trial_in_process():
    space = create_space("nb201")
    runner = Runner(space, regularized(space, 1), Doomed(fates={"3": "hang"}),
                    budget=Budget(evaluations=6), progress=False, eval_timeout=2)
    trials = runner.run()
    errors = {r.trial.id: r.error for r in runner.store.records()}
    assert trials[3].status == "failed" and errors[3].startswith("timed out") and "2 s limit" in errors[3]
    assert [t.status for t in trials if t.id != 3] == ["ok"] * 5


def in_a_child(*args):
    """Run ``doomed_search`` in a forked process, as a command run again after each death; its exit code."""
    child = multiprocessing.get_context("fork").Process(target=doomed_search, args=args)
    child.start()
    child.join(WAIT_SECONDS)
    assert child.exitcode is not None, "the search never ended"
    return child.exitcode


@needs_table
def test_a_serial_search_killed_by_its_candidates_names_them_on_resume_and_goes_on(tmp_path):
    fates = {"2": "abort", "5": "sigkill", "8": "stuck"}
    store = tmp_path / "serial.sqlite"
    args = (store, fates, 12, 1, 0, 2, 0.5)  # 2 s limit; 0.5 s more before the watchdog ends the process
    assert in_a_child(*args) == -signal.SIGABRT
    with Store(store) as stopped:
        assert [r.trial.id for r in stopped.running()] == [2] and len(stopped) == 2
    assert "Fatal Python error: Aborted" in (tmp_path / "serial.crash.log").read_text()

    with pytest.warns(RuntimeWarning, match=r"trial 2 \(.*\) was being evaluated .* recorded as failed"):
        with Store(store) as resumed:  # what the next run does first
            Runner(create_space("nb201"), regularized(create_space("nb201"), 1), Doomed(fates=fates),
                   resumed, Budget(evaluations=3), progress=False)._begin()
    assert "SIGABRT" in errors_of(store)[2] and (tmp_path / "serial.crash-trial2.log").exists()

    assert in_a_child(*args) == -signal.SIGKILL  # on to trial 5, killed with no fatal error logged
    assert in_a_child(*args) == -signal.SIGKILL  # trial 5 evaluated once more: killed again
    assert in_a_child(*args) == 1  # trial 5 recorded failed; trial 8 stuck: the watchdog ends the run
    assert in_a_child(*args) == 0  # trial 8 recorded failed (timed out); the search finishes
    errors = errors_of(store)
    assert "died 2 times" in errors[5] and "not evaluated again" in errors[5]
    assert errors[8].startswith("timed out") and "native code" in errors[8]
    with Store(store) as finished:
        trials = finished.trials()
    assert trials == doomed_search(tmp_path / "polite.sqlite", politely(fates))
    assert all(errors[i] is None for i in errors if i not in (2, 5, 8))


@needs_table
def test_a_store_made_before_running_marks_existed_resumes(tmp_path):
    old = tmp_path / "old.sqlite"
    doomed_search(old, {}, evaluations=4)
    with sqlite3.connect(old) as db:
        db.execute("DROP TABLE running")  # the schema of stores made before this change
    assert doomed_search(old, {}, evaluations=8) == doomed_search(tmp_path / "new.sqlite", {}, evaluations=8)


def test_eval_timeout_values_and_the_auto_limit():
    assert check_eval_timeout("auto") == "auto" and check_eval_timeout("none") is None
    assert check_eval_timeout(90) == 90.0 and check_eval_timeout("15min") == 900.0
    assert check_eval_timeout("2h") == 7200.0 and check_eval_timeout("1.5s") == 1.5
    for bad in ("soon", "-5", 0, -1, "5 parsecs", True, [60]):
        with pytest.raises(TinyevoError, match="eval_timeout must be 'auto', 'none' or a positive"):
            check_eval_timeout(bad)
    assert eval_limit("auto", []) == AUTO_CAP_S == eval_limit("auto", [1.0] * 4)  # too few to judge
    assert eval_limit("auto", [1.0, 1.5, 2.0, 3.0, 0.3]) == 60.0  # 20 x 1.5 s is under the floor
    assert eval_limit("auto", [10.0] * 5) == 200.0 and eval_limit("auto", [1e4] * 9) == AUTO_CAP_S
    assert eval_limit(30, [1e4] * 9) == 30.0 and eval_limit(None, [1.0] * 9) is None


@pytest.mark.parametrize("flags", [["--eval-timeout", "soon"], ["--eval-timeout", "-3"]])
def test_a_bad_eval_timeout_is_one_line_and_exit_code_2(tmp_path, capsys, flags):
    from tinyevo.cli import main

    out = tmp_path / "run"
    assert main(["search", "--out", str(out), *flags]) == 2
    error = capsys.readouterr().err
    assert "eval_timeout must be 'auto', 'none' or a positive number of seconds" in error
    assert len(error.strip().splitlines()) == 1 and not out.exists()
    (tmp_path / "c.toml").write_text("eval_timeout = -1\n")
    assert main(["search", "--config", str(tmp_path / "c.toml"), "--out", str(out)]) == 2
    assert "c.toml: eval_timeout must be" in capsys.readouterr().err
