"""Trials a dead run was evaluating: marked running before each evaluation, settled on resume.

Each trial is marked running in the store just before it is evaluated (``RunningTrials.start``). A
run that dies while evaluating in its own process (the serial executor: a segfault or abort of
the candidate's native code, ``kill -9``, out of memory) leaves that mark, and its resume names the
trial (``RunningTrials.settle``): with a fatal error logged (the ``<store>.crash.log`` that
``faulthandler`` writes, kept as ``<store>.crash-trial<N>.log``) it is recorded ``failed`` with that
error; with none (killed from outside) it is evaluated once more, and recorded ``failed`` if the run
dies in it again -- never retried forever. Marks left by a pool or Ray run (whose candidates cannot
take the run down) and by a run stopped with an exception or Ctrl-C are dropped, and those trials
are evaluated again.
"""
from __future__ import annotations

import dataclasses
import os
import re
import time
import warnings
from pathlib import Path

from tinyevo.strategies.base import FAILED, Trial
from tinyevo.store import RunningRecord, Store

#: Evaluations of one trial a run may die in (with no fatal error logged) before it is recorded failed.
MAX_IN_PROCESS_ATTEMPTS = 2
_CRASH_HEADER = re.compile(r"^tinyevo trial (\d+)\b")
_FATAL_SIGNALS = {"Aborted": "SIGABRT", "Segmentation fault": "SIGSEGV", "Bus error": "SIGBUS",
                  "Floating-point exception": "SIGFPE", "Floating point exception": "SIGFPE",
                  "Illegal instruction": "SIGILL"}
#: ``warnings.warn`` stack level of a settled trial: the caller of ``Runner.run``.
_CALLER_OF_RUN = 5


class RunningTrials:
    """The running marks of one run's store. ``in_process``: the executor evaluates in this process,
    so a crash of a candidate is a crash of the run."""

    def __init__(self, store: Store, strategy_name: str, in_process: bool):
        self.store, self.strategy_name, self.in_process = store, strategy_name, in_process
        self.attempts: dict[str, int] = {}  # key -> evaluations a dead run began, of a trial retried

    def crash_log(self) -> Path | None:
        """Where an in-process evaluation's fatal error is logged: ``<store>.crash.log`` (None for
        a store in memory, which cannot be resumed)."""
        if self.store.path == ":memory:":
            return None
        return Path(self.store.path).with_suffix(".crash.log")

    def settle(self) -> None:
        """Record failed, or leave to be evaluated again, every trial the last run left running."""
        for running in self.store.running():
            self._settle(running)

    def start(self, trial: Trial, describe: str, limit: float | None) -> str:
        """Mark ``trial`` running, just before it is evaluated; the first line of its crash log."""
        attempt = self.attempts.get(trial.key, 0) + 1
        self.store.mark_running(trial, describe=describe, strategy=self.strategy_name,
                                started_at=time.time(), limit_seconds=limit, attempt=attempt,
                                in_process=self.in_process,
                                pid=os.getpid() if self.in_process else None)
        return (f"tinyevo trial {trial.id} ({describe}), attempt {attempt}, started "
                f"{time.strftime('%Y-%m-%d %H:%M:%S')}, limit {'none' if limit is None else f'{limit:g} s'}: "
                f"a fatal error below stopped the search process while it evaluated this trial")

    def clear(self, trial_ids: list[int]) -> None:
        """Drop the marks of trials that were not evaluated after all (the run was stopped)."""
        if trial_ids:
            self.store.clear_running(trial_ids)

    def _settle(self, running: RunningRecord) -> None:
        """A trial the last run was evaluating when it died: record it failed, or evaluate it again."""
        trial = running.trial
        name = f"trial {trial.id} ({running.describe or trial.key})"
        if not running.in_process:  # a pool or Ray worker ran it: the run died of something else
            self.store.clear_running([trial.id])
            return
        evidence, seconds = crash_evidence(self.crash_log(), running)
        if evidence is None and running.attempt < MAX_IN_PROCESS_ATTEMPTS:
            self.attempts[trial.key] = running.attempt
            warnings.warn(f"{name} was being evaluated when the run stopped, with no fatal error "
                          f"logged (killed from outside? out of memory?); it is evaluated once more "
                          f"and recorded failed if the run dies in it again", RuntimeWarning,
                          stacklevel=_CALLER_OF_RUN)
            return
        if evidence is None:
            evidence = (f"the search process died {running.attempt} times while evaluating this "
                        f"candidate, with no fatal error logged (killed: SIGKILL, out of memory?); "
                        f"not evaluated again")
        failed = dataclasses.replace(trial, status=FAILED)
        self.store.save_trial(failed, describe=running.describe, strategy=running.strategy,
                              started_at=running.started_at, seconds=seconds, error=evidence)
        warnings.warn(f"{name} was being evaluated when the run stopped; recorded as failed, not "
                      f"retried: {evidence}", RuntimeWarning, stacklevel=_CALLER_OF_RUN)


def crash_evidence(path: Path | None, running: RunningRecord) -> tuple[str | None, float]:
    """The fatal error the crash log at ``path`` holds for this trial (kept as
    ``<store>.crash-trial<N>.log``) and the seconds from the trial's start to it; (None, 0.0) when
    none was logged."""
    if path is None or not path.is_file():
        return None, 0.0
    lines = path.read_text(errors="replace").splitlines()
    header = _CRASH_HEADER.match(lines[0]) if lines else None
    body = [line.strip() for line in lines[1:] if line.strip()]
    if header is None or int(header.group(1)) != running.trial.id or not body:
        return None, 0.0
    kept = path.with_name(f"{path.name.removesuffix('.crash.log')}.crash-trial{running.trial.id}.log")
    seconds = max(0.0, path.stat().st_mtime - (running.started_at or path.stat().st_mtime))
    path.replace(kept)
    return crash_message(body[0], running.limit_seconds, kept.name), seconds


def crash_message(first: str, limit: float | None, kept: str) -> str:
    """The error recorded for a trial from the first line of its fatal error."""
    if first.startswith("Timeout"):
        return (f"timed out: still running past the {limit or 0:g} s limit of one evaluation, in native "
                f"code that cannot be interrupted, so the search process was stopped ({first} "
                f"traceback in {kept})")
    kind = first.removeprefix("Fatal Python error:").strip()
    signal_name = _FATAL_SIGNALS.get(kind)
    return (f"the evaluation crashed the search process: {first}"
            f"{f' ({signal_name})' if signal_name else ''}; traceback in {kept}")
