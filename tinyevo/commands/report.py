"""``tinyevo report``: a run as one HTML page for a browser (``tinyevo.report``)."""
from __future__ import annotations

import argparse
from pathlib import Path

from tinyevo.runs.layout import REPORT_FILE

EPILOG = """\
examples:
  tinyevo report runs/demo                       # writes runs/demo/report.html
  tinyevo report runs/demo --out /tmp/demo.html  # a read-only run, or a report kept elsewhere

The page needs no network (its figures are inline SVG). It only reads the run, so it can be made
while the search runs: the page then says the run is in progress; make it again for newer trials.
"""


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="one HTML page of a run: progress, Pareto front, trials, memory",
                       description="Write a self-contained HTML report of a search: its settings, "
                                   "progress, Pareto front, a sortable table of every trial, and the "
                                   "best model's SRAM per op step and flash.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", metavar="RUN", help="the --out folder of a search")
    p.add_argument("--out", help="HTML file to write (default RUN/report.html)")
    p.set_defaults(handler=run_report)


def run_report(args: argparse.Namespace) -> int:
    from tinyevo.report import write_report

    path, data = write_report(args.run_dir, args.out)
    state = "" if data.state == "complete" else f"; the run is {data.state}"
    print(f"wrote {path} ({len(data.trials)} trials{state}); open it in a browser: "
          f"file://{Path(path).resolve()}")
    return 0


def report_hint(run_dir: str | Path) -> str:
    """The line ``tinyevo show`` prints: where the run's report is, or how to make it."""
    path = Path(run_dir) / REPORT_FILE
    if path.is_file():
        return f"report: {path} (remake it with `tinyevo report {run_dir}`)"
    return f"report: none yet; `tinyevo report {run_dir}` writes {path} (or --out FILE.html)"
