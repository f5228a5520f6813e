"""``tinyevo report RUN``: one self-contained HTML page of a run that a person reads in a browser.

The run's settings, its progress over trials, the Pareto front, a sortable table of every trial,
and for the best model under the constraints its SRAM per op step (layer by layer and streamed, as
MCUNet draws it) and its flash by part. The run folder is only read (``reader.RunView``), so a
report can be made of a read-only run, or of a search still running (the page says so).

    from tinyevo.report import write_report
    write_report("runs/demo")            # runs/demo/report.html
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from tinyevo.errors import TinyevoError
from tinyevo.report.data import ReportData, report_data
from tinyevo.report.page import render
from tinyevo.report.reader import RunView
from tinyevo.runs.layout import REPORT_FILE, atomic_write

__all__ = ["REPORT_FILE", "ReportData", "RunView", "default_report_path", "report_data", "render",
           "watch_report", "write_report"]


def default_report_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / REPORT_FILE


def write_report(run_dir: str | Path, out: str | Path | None = None,
                 refresh_seconds: int | None = None) -> tuple[Path, ReportData]:
    """Write the report of ``run_dir`` to ``out`` (default ``RUN/report.html``); returns its path
    and what it shows. The target is checked before the run is read. With ``refresh_seconds`` the
    page of a search in progress reloads itself that often (``watch_report`` rewrites it)."""
    path = check_target(run_dir, out)
    data = report_data(RunView.open(run_dir))
    try:
        atomic_write(path, render(data, refresh_seconds).encode())
    except OSError as error:
        raise TinyevoError(f"cannot write the report {path}: {error.strerror}; pass --out FILE.html "
                           f"somewhere writable") from None
    return path, data


def watch_report(run_dir: str | Path, out: str | Path | None = None, every_seconds: int = 30,
                 sleep=time.sleep, on_write=None) -> tuple[Path, ReportData]:
    """Rewrite the report every ``every_seconds`` while the run's search is in progress, and once
    more when it is not (the last page then no longer reloads); returns the last write."""
    while True:
        path, data = write_report(run_dir, out, refresh_seconds=every_seconds)
        if on_write is not None:
            on_write(path, data)
        if data.state != "in progress":
            return path, data
        sleep(every_seconds)


def check_target(run_dir: str | Path, out: str | Path | None) -> Path:
    """Where the report goes; one line when it cannot go there."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise TinyevoError(f"{run_dir}: no such run folder; give the --out folder of a search")
    if out is None:
        if not os.access(run_dir, os.W_OK):
            raise TinyevoError(f"{run_dir} is not writable; pass --out FILE.html to write the report elsewhere")
        return default_report_path(run_dir)
    path = Path(out)
    if path.is_dir():
        raise TinyevoError(f"--out {path} is a folder; give a file name, e.g. {path / REPORT_FILE}")
    if not path.parent.is_dir():
        raise TinyevoError(f"--out {path}: folder {path.parent} does not exist; create it first")
    if not os.access(path.parent, os.W_OK):
        raise TinyevoError(f"--out {path}: folder {path.parent} is not writable; pick another place")
    return path
