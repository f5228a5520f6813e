"""The experiment store: one SQLite file per run, one row per finished trial.

Every trial is written in its own transaction the moment it finishes, so killing a run at any
instant loses at most the trials still being evaluated, never a half-written row. The ``run`` table
holds what a resume needs (the run's configuration) as JSON. The ``running`` table holds the trials
being evaluated (``mark_running``, just before each evaluation starts; the row goes when the trial
is saved): what a run left there when it died tells its resume which candidate it was evaluating
(see ``tinyevo.run.runner``). Stores made before it existed get the table when opened. Nothing is pickled: genomes, metrics and
parents are JSON text that any SQLite client can read::

    sqlite3 run.sqlite "select id, describe, status, metrics_json from trials"
"""
from __future__ import annotations

import json
import math
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from tinyevo.errors import TinyevoError
from tinyevo.strategies.base import Trial

SCHEMA = """
CREATE TABLE IF NOT EXISTS trials (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    genome_json TEXT NOT NULL,
    describe TEXT,
    status TEXT NOT NULL,
    metrics_json TEXT NOT NULL,
    parents_json TEXT NOT NULL,
    origin TEXT,
    strategy TEXT,
    started_at REAL,
    finished_at REAL,
    seconds REAL,
    error TEXT
);
CREATE INDEX IF NOT EXISTS trials_by_key ON trials (key);
CREATE TABLE IF NOT EXISTS run (key TEXT PRIMARY KEY, value_json TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS running (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    genome_json TEXT NOT NULL,
    describe TEXT,
    metrics_json TEXT NOT NULL,
    parents_json TEXT NOT NULL,
    origin TEXT,
    strategy TEXT,
    started_at REAL,
    limit_seconds REAL,
    attempt INTEGER NOT NULL,
    in_process INTEGER NOT NULL,
    pid INTEGER
);
"""
COLUMNS = ("id", "key", "genome_json", "describe", "status", "metrics_json", "parents_json",
           "origin", "strategy", "started_at", "finished_at", "seconds", "error")
RUNNING_COLUMNS = ("id", "key", "genome_json", "describe", "metrics_json", "parents_json", "origin",
                   "strategy", "started_at", "limit_seconds", "attempt", "in_process", "pid")
RUNNING = "running"


@dataclass
class TrialRecord:
    """A stored trial with what the store keeps beside it.

    ``seconds`` is the estimator's time; it is None for trials that never reached the estimator
    (broken constraints, genomes the space cannot decode), which do not count as evaluations.
    """

    trial: Trial
    describe: str = ""
    strategy: str = ""
    started_at: float | None = None
    finished_at: float | None = None
    seconds: float | None = None
    error: str | None = None

    @property
    def evaluated(self) -> bool:
        return self.seconds is not None


@dataclass
class RunningRecord:
    """A trial that was being evaluated: its trial (status ``running``; metrics: its cost), when
    and where it started (``in_process``: in the run's own process, so that its crash is the
    run's), its time limit and which attempt it was (1 for the first evaluation)."""

    trial: Trial
    describe: str = ""
    strategy: str = ""
    started_at: float | None = None
    limit_seconds: float | None = None
    attempt: int = 1
    in_process: bool = True
    pid: int | None = None


class Store:
    """``Store("run.sqlite")`` opens or creates a run's file; ``Store(":memory:")`` keeps nothing.
    ``Store(path, read_only=True)`` reads a run's file without ever writing to it (SQLite's
    ``mode=ro``; a run on a read-only disk is read as immutable): what ``show`` and ``export`` use."""

    def __init__(self, path: str | Path = ":memory:", read_only: bool = False):
        self.path, self.read_only = str(path), read_only
        if read_only:
            self._db = open_read_only(Path(self.path))
            return
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)
        except sqlite3.DatabaseError as error:
            raise TinyevoError(f"cannot open the run store {self.path}: {error}; it was left as it "
                               f"is: give a new --out (or restore the file from a backup)") from None

    # --- trials --------------------------------------------------------------------------------
    def save_trial(self, trial: Trial, *, describe: str = "", strategy: str = "",
                   started_at: float | None = None, finished_at: float | None = None,
                   seconds: float | None = None, error: str | None = None) -> None:
        """Write one finished trial in its own transaction (all of the row or nothing)."""
        row = (trial.id, trial.key, json_text(trial.genome), describe, trial.status,
               json_text(trial.metrics), json_text(list(trial.parents)), trial.origin, strategy,
               started_at, finished_at, seconds, error)
        with self._transaction():
            self._db.execute(f"INSERT INTO trials ({', '.join(COLUMNS)}) "
                             f"VALUES ({', '.join('?' * len(COLUMNS))})", row)
            self._db.execute("DELETE FROM running WHERE id = ?", (trial.id,))

    # --- trials being evaluated ----------------------------------------------------------------
    def mark_running(self, trial: Trial, *, describe: str = "", strategy: str = "",
                     started_at: float | None = None, limit_seconds: float | None = None,
                     attempt: int = 1, in_process: bool = True, pid: int | None = None) -> None:
        """Record that ``trial`` (its genome, parents, cost metrics) is being evaluated now."""
        row = (trial.id, trial.key, json_text(trial.genome), describe, json_text(trial.metrics),
               json_text(list(trial.parents)), trial.origin, strategy, started_at, limit_seconds,
               int(attempt), int(bool(in_process)), pid)
        with self._transaction():
            self._db.execute(f"INSERT OR REPLACE INTO running ({', '.join(RUNNING_COLUMNS)}) "
                             f"VALUES ({', '.join('?' * len(RUNNING_COLUMNS))})", row)

    def running(self) -> list[RunningRecord]:
        """The trials marked running and never saved, in id order: in a store no process is
        using, those its last run was evaluating when it stopped."""
        if self.read_only and RUNNING not in _tables(self._db):  # a store made before the table
            return []
        cursor = self._db.execute(f"SELECT {', '.join(RUNNING_COLUMNS)} FROM running WHERE id NOT IN "
                                  f"(SELECT id FROM trials) ORDER BY id")
        return [_running_record(dict(zip(RUNNING_COLUMNS, row))) for row in cursor]

    def clear_running(self, ids=None) -> None:
        """Forget the running marks of ``ids`` (all of them when None)."""
        with self._transaction():
            if ids is None:
                self._db.execute("DELETE FROM running")
            else:
                self._db.executemany("DELETE FROM running WHERE id = ?", [(int(i),) for i in ids])

    def records(self) -> list[TrialRecord]:
        """Every stored trial with its timings, in id order."""
        cursor = self._db.execute(f"SELECT {', '.join(COLUMNS)} FROM trials ORDER BY id")
        return [_record(dict(zip(COLUMNS, row))) for row in cursor]

    def trials(self) -> list[Trial]:
        """Every stored trial, in id order (the order the strategy asked for them)."""
        return [record.trial for record in self.records()]

    def find(self, key: str) -> Trial | None:
        """The trial of an architecture key, or None if it was never evaluated."""
        cursor = self._db.execute(f"SELECT {', '.join(COLUMNS)} FROM trials WHERE key = ? "
                                  f"ORDER BY id LIMIT 1", (key,))
        row = cursor.fetchone()
        return _record(dict(zip(COLUMNS, row))).trial if row else None

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM trials").fetchone()[0]

    # --- run configuration and state -----------------------------------------------------------
    def get(self, key: str, default: Any = None) -> Any:
        row = self._db.execute("SELECT value_json FROM run WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def set(self, key: str, value: Any) -> None:
        with self._transaction():
            self._db.execute("INSERT OR REPLACE INTO run (key, value_json) VALUES (?, ?)",
                             (key, json_text(value)))

    def config(self) -> dict | None:
        """The configuration the run was started with, or None for a new store."""
        return self.get("config")

    def set_config(self, config: dict) -> None:
        self.set("config", config)

    # --- lifetime ------------------------------------------------------------------------------
    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _transaction(self):
        return _Transaction(self._db)


def open_read_only(path: Path) -> sqlite3.Connection:
    """A connection that cannot write ``path``; a one-line TinyevoError when it is no run store.
    Nothing here suggests deleting the file: it may hold a run that another copy no longer has."""
    if not path.is_file():
        raise TinyevoError(f"{path}: no run store here; run `tinyevo search --out {path.parent}` first")
    size = path.stat().st_size
    if size == 0:
        raise TinyevoError(f"{path} is empty (0 bytes): it holds no trials; it was left as it is "
                           f"(restore it from a backup, or rerun the search into a new --out)")
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    error = None
    # No -wal file: the store was closed cleanly and holds everything; read it as immutable, which
    # makes no -shm or -wal beside it (and works on a read-only disk). Else a writer may be adding
    # to it now: read it as a WAL reader does.
    suffixes = ("", "&immutable=1") if Path(f"{path}-wal").exists() else ("&immutable=1",)
    for suffix in suffixes:
        try:
            db = sqlite3.connect(uri + suffix, uri=True, isolation_level=None)
            tables = _tables(db)
            break
        except sqlite3.DatabaseError as failure:
            error = failure
    else:
        raise TinyevoError(f"cannot read the run store {path} ({error}); it was left as it is "
                           f"(restore it from a backup, or rerun the search into a new --out)") from None
    if "trials" not in tables:
        db.close()
        raise TinyevoError(f"{path} is an SQLite file without a trials table ({size:,} bytes), not a "
                           f"tinyevo run store; it was left as it is")
    return db


def _tables(db: sqlite3.Connection) -> set[str]:
    return {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK when the body raises."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self):
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind, value, traceback):
        self.db.execute("ROLLBACK" if kind else "COMMIT")
        return False


def json_text(value: Any) -> str:
    """Canonical JSON text (sorted keys); NaN and infinities (not JSON) are written as null."""
    return json.dumps(_finite(value), sort_keys=True, separators=(",", ":"), allow_nan=False)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _running_record(row: dict) -> RunningRecord:
    trial = Trial(id=row["id"], genome=json.loads(row["genome_json"]), status=RUNNING,
                  metrics=json.loads(row["metrics_json"]),
                  parents=tuple(json.loads(row["parents_json"])), origin=row["origin"] or "",
                  key=row["key"])
    return RunningRecord(trial, row["describe"] or "", row["strategy"] or "", row["started_at"],
                         row["limit_seconds"], row["attempt"], bool(row["in_process"]), row["pid"])


def _record(row: dict) -> TrialRecord:
    trial = Trial(id=row["id"], genome=json.loads(row["genome_json"]), status=row["status"],
                  metrics=json.loads(row["metrics_json"]),
                  parents=tuple(json.loads(row["parents_json"])), origin=row["origin"] or "",
                  key=row["key"])
    return TrialRecord(trial, row["describe"] or "", row["strategy"] or "", row["started_at"],
                       row["finished_at"], row["seconds"], row["error"])
