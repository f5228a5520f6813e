"""A run folder read without writing to it: ``RunView.open(RUN)``.

The store is opened as ``show`` and ``export`` open it (``tinyevo.store.sqlite_store.open_read_only``):
a store closed cleanly is read ``immutable`` (no lock, no ``-shm`` or ``-wal`` beside it), one that a
search may be writing is read through SQLite's read-only URI (``mode=ro``), so each query sees the
last committed trials; no schema is created and no row is changed.
"""
from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from tinyevo.config import SearchConfig
from tinyevo.errors import TinyevoError
from tinyevo.runs.layout import CONFIG_KEY, FINAL_KEY, STORE_FILE
from tinyevo.store.sqlite_store import (COLUMNS, RUNNING_COLUMNS, TrialRecord, _record, _running_record,
                                         open_read_only)


@dataclass
class RunView:
    """What a report needs of a run: its settings, every trial, the final records, and whether a
    search is evaluating trials of it now."""

    run_dir: Path
    config: SearchConfig
    runner_config: dict
    records: list[TrialRecord]
    final: dict
    budget: dict
    running_pids: list[int] = field(default_factory=list)

    @classmethod
    def open(cls, run_dir: str | Path) -> "RunView":
        run_dir = Path(run_dir)
        path = run_dir / STORE_FILE
        if not path.is_file():
            raise TinyevoError(f"{run_dir}: no search results here (no {STORE_FILE}); "
                               f"run `tinyevo search --out {run_dir}` first")
        db = open_read_only(path)
        try:
            values = dict(db.execute("SELECT key, value_json FROM run").fetchall())
            rows = db.execute(f"SELECT {', '.join(COLUMNS)} FROM trials ORDER BY id").fetchall()
            running = _running_pids(db)
        except sqlite3.DatabaseError as error:
            raise TinyevoError(f"{path}: not a readable run store ({error}); "
                               f"give the --out folder of a search") from None
        finally:
            db.close()
        settings = {key: json.loads(text) for key, text in values.items()}
        return cls(run_dir, SearchConfig.from_dict(settings.get(CONFIG_KEY) or {}),
                   settings.get("config") or {}, [_record(dict(zip(COLUMNS, row))) for row in rows],
                   settings.get(FINAL_KEY) or {}, settings.get("budget") or {}, running)

    @property
    def in_progress(self) -> bool:
        """Whether a live process is evaluating a trial of this run now."""
        return any(pid_alive(pid) for pid in self.running_pids)

    @property
    def evaluated(self) -> int:
        return sum(1 for r in self.records if r.evaluated)

    @property
    def complete(self) -> bool:
        """Whether the search spent its evaluation budget and the final training ran."""
        wanted = self.budget.get("evaluations")
        spent = wanted is None or self.evaluated >= wanted
        return spent and bool(self.final) and not self.in_progress


def _running_pids(db: sqlite3.Connection) -> list[int]:
    tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "running" not in tables:
        return []
    rows = db.execute(f"SELECT {', '.join(RUNNING_COLUMNS)} FROM running WHERE id NOT IN "
                      f"(SELECT id FROM trials)").fetchall()
    return [r.pid for r in (_running_record(dict(zip(RUNNING_COLUMNS, row))) for row in rows) if r.pid]


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (one we may not signal counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
