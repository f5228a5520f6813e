"""The SQLite experiment store: every trial of a run, and what resuming the run needs."""
from tinyevo.store.sqlite_store import Store, TrialRecord, json_text

__all__ = ["Store", "TrialRecord", "json_text"]
