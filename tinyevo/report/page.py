"""The report page: ``render(data)`` fills ``templates/report.html`` (Jinja2) with the run's tables
and the figures of ``tinyevo.report.figures``, inline: one file that needs no network."""
from __future__ import annotations

from importlib import metadata, resources
from pathlib import Path

import jinja2

from tinyevo.report.data import COLUMNS, ReportData
from tinyevo.report.figures import flash_figure, memory_figure, pareto_figure, progress_figure
from tinyevo.units import format_bytes


def render(data: ReportData, refresh_seconds: int | None = None) -> str:
    """The HTML text of the report of ``data``; with ``refresh_seconds``, a page of a search in
    progress reloads itself that often (``tinyevo report --watch`` rewrites the file meanwhile)."""
    template = _environment().get_template("report.html")
    cost_metrics = [m for m in data.objectives if m != "accuracy"] or ["peak_sram_bytes"]
    ok = [t for t in data.trials if t["status"] == "ok"]
    figures = {"progress": progress_figure(data.trials) if data.trials else "",
               "pareto": pareto_figure(data.trials, data.front_ids, cost_metrics, data.limits) if ok else "",
               "memory": "", "flash": ""}
    if data.timelines:
        figures["memory"] = memory_figure(data.timelines, data.board["sram_bytes"],
                                          data.limits.get("peak_sram_bytes"))
        figures["flash"] = flash_figure(data.flash, data.board["flash_bytes"], data.limits.get("flash_bytes"))
    counts = {"trials": len(data.trials),
              **{s: sum(1 for t in data.trials if t["status"] == s) for s in ("ok", "infeasible", "failed")}}
    columns = [c for c in COLUMNS if c[0] != "error" or any(t["error"] for t in data.trials)]
    return template.render(data=data, refresh_seconds=refresh_seconds, best=data.best, columns=columns, counts=counts, version=_version(),
                           run_name=Path(data.run_dir).name or data.run_dir, **figures)


def _environment() -> jinja2.Environment:
    folder = Path(str(resources.files("tinyevo.report").joinpath("templates")))
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(folder), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=False)
    env.filters.update(bytes=format_bytes, pct=_pct, count=_count, cell=_cell)
    return env


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def _count(value) -> str:
    return "-" if value is None else f"{value:,}"


def _cell(value, key: str) -> str:
    """A number of the trial table as people read it."""
    if "accuracy" in key:
        return _pct(value)
    if isinstance(value, float) and not float(value).is_integer() or key in ("latency_ms", "seconds"):
        return f"{value:.2f}"
    return f"{int(value):,}"


def _version() -> str:
    """tinyevo's installed version (its package metadata: ``tinyevo.__version__`` would import the
    whole package back)."""
    try:
        return metadata.version("tinyevo")
    except metadata.PackageNotFoundError:
        return "(not installed)"
