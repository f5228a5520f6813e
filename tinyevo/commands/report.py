"""``tinyevo report``: a run as one HTML page for a browser (``tinyevo.report``)."""
from __future__ import annotations

import argparse
from pathlib import Path

from tinyevo.runs.layout import REPORT_FILE

EPILOG = """\
examples:
  tinyevo report runs/demo                       # writes runs/demo/report.html
  tinyevo report runs/demo --out /tmp/demo.html  # a read-only run, or a report kept elsewhere
  tinyevo report runs/demo --watch 30            # rewrite it every 30 s while the search runs

The page needs no network (its figures are inline SVG). It only reads the run, so it can be made
while the search runs: the page then says the run is in progress; make it again for newer trials,
or keep it current with --watch (the open page reloads itself; Ctrl-C stops watching, the file
stays whole).
"""


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="one HTML page of a run: progress, Pareto front, trials, memory",
                       description="Write a self-contained HTML report of a search: its settings, "
                                   "progress, Pareto front, a sortable table of every trial, and the "
                                   "best model's SRAM per op step and flash.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", metavar="RUN", help="the --out folder of a search")
    p.add_argument("--out", help="HTML file to write (default RUN/report.html)")
    p.add_argument("--watch", metavar="SECONDS", type=positive_seconds, nargs="?", const=30, default=None,
                   help="rewrite the report every SECONDS (default 30) while the search is in "
                        "progress, then once more when it ends")
    p.set_defaults(handler=run_report)


def positive_seconds(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"whole seconds of at least 1, got {text!r}")
    return value


def run_report(args: argparse.Namespace) -> int:
    from tinyevo.report import watch_report, write_report

    if args.watch is None:
        _said(*write_report(args.run_dir, args.out))
    else:
        watch_report(args.run_dir, args.out, args.watch, on_write=_said)
    return 0


def _said(path, data) -> None:
    state = "" if data.state == "complete" else f"; the run is {data.state}"
    print(f"wrote {path} ({len(data.trials)} trials{state}); open it in a browser: "
          f"file://{Path(path).resolve()}", flush=True)


def report_hint(run_dir: str | Path) -> str:
    """The line ``tinyevo show`` prints: where the run's report is, or how to make it."""
    path = Path(run_dir) / REPORT_FILE
    if path.is_file():
        return f"report: {path} (remake it with `tinyevo report {run_dir}`)"
    return f"report: none yet; `tinyevo report {run_dir}` writes {path} (or --out FILE.html)"
