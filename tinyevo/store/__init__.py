"""The SQLite experiment store: every trial of a run, and what resuming the run needs."""
from tinyevo.store.sqlite_store import RunningRecord, Store, TrialRecord, json_text

__all__ = ["RunningRecord", "Store", "TrialRecord", "json_text"]
