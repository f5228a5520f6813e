"""``tinyevo report``: the page a person opens, checked as they see it.

The figures of the best model are checked against hand counts of the stored run
``tests/fixtures/run_adbe8a9`` (its best model: ``c96k7s2-c8k7s1-c48k3s1-gap`` on 8x8x1 digits,
10 classes). The page itself is opened in headless Chromium (Debian's ``chromium``; CI installs it):
a screenshot that is not blank and has the layout of the checked-in screenshot of the demo run's
report (``docs/report_demo.png``), no console error, and a table row for every trial the store holds
(counted with SQL here, not by tinyevo).
"""
from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from deploy_helpers import quantized_model
from tinyevo.arch import GraphBuilder
from tinyevo.cli import main
from tinyevo.deploy.codegen.code_size import measure_code
from tinyevo.deploy.codegen.emit import generate_c
from tinyevo.deploy.codegen.mcu import mcu_available
from tinyevo.model_file import load_architecture
from tinyevo.report import RunView, render, report_data, watch_report, write_report
from tinyevo.report import memory
from tinyevo.report.memory import flash_breakdown, timeline
from tinyevo.store import Store

FIXTURES = Path(__file__).parent / "fixtures"
SMALL_RUN = FIXTURES / "run_adbe8a9"
DEMO_RUN = FIXTURES / "run_demo"  # `make demo`'s run: its store and model files (no weights)
DEMO_SHOT = Path(__file__).parents[1] / "docs" / "report_demo.png"
WINDOW = (1200, 3400)
CHROMIUM = shutil.which("chromium")
needs_mcu = pytest.mark.skipif(not mcu_available(), reason="the ARM toolchain is not installed")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed "
                                    "(apt-get install -y --no-install-recommends chromium; CI does)")


def copy_run(source: Path, tmp_path: Path) -> Path:
    run = tmp_path / source.name
    shutil.copytree(source, run)
    return run


def stored_trial_ids(run: Path) -> list[int]:
    db = sqlite3.connect(f"{(run / 'trials.sqlite').as_uri()}?mode=ro", uri=True)
    try:
        return [i for (i,) in db.execute("SELECT id FROM trials ORDER BY id")]
    finally:
        db.close()


def test_flash_parts_by_hand():
    """Conv 7x7 1->96: 4,704 weights; 7x7 96->8: 37,632; 3x3 8->48: 3,456; dense 48->10: 480, so
    46,272 int8 weights. A bias per output channel (batch norms fold): 96+8+48+10 = 162, at 4 bytes
    648; the per-channel multiplier and shift, 8 bytes each of the 162 channels: 1,296."""
    arch = load_architecture(SMALL_RUN / "models" / "trial_0.json")
    assert flash_breakdown(arch) == {"weights": 46272, "biases": 648, "scales": 1296, "code": None,
                                      "library_constants": None}


def test_memory_timeline_by_hand():
    """Layer by layer, int8 tensors: input 8x8x1 = 64 B; conv 7x7 stride 2 gives 4x4x96 = 1,536 B
    (step 1: 64 + 1,536); batch norm and relu run in place (1,536); conv 96->8 gives 128 B
    (1,536 + 128 = 1,664, the peak); then 128; conv 8->48 gives 768 (896); 768, 768; global pool
    gives 48 (816); dense gives 10 (58)."""
    arch = load_architecture(SMALL_RUN / "models" / "trial_0.json")
    line = timeline(arch, "layer_by_layer")
    assert [s.live_bytes for s in line.steps] == [1600, 1536, 1536, 1664, 128, 128, 896, 768, 768, 816, 58]
    assert [s.kind for s in line.steps][:4] == ["conv2d", "batch_norm", "relu", "conv2d"]
    assert line.peak_bytes == 1664


def small_arch():
    """Depthwise 3x3 on 8x8x4 (36 weights, its batch norm folds: 4 biases), global pool, dense
    4->10 (40 weights, 10 biases): no layer takes im2col (grouped, or one output pixel), so the
    library stores each array as the cost model counts it: 76 B of weights, 14 int32 biases
    (56 B), 14 channels of int32 multiplier and shift (112 B)."""
    g = GraphBuilder((8, 8, 4), name="small")
    x = g.relu(g.batch_norm(g.conv2d(g.input, 4, kernel=3, groups=4, bias=False)))
    return g.build(g.dense(g.flatten(g.global_avg_pool(x)), 10))


def symbol_sizes(arch, tmp_path: Path) -> dict[str, tuple[str, int]]:
    """name -> (nm type, bytes) of the generated library of ``arch`` (the tests' own random int8
    model, other weights than the report's), compiled here for the Cortex-M4 at -O2."""
    torch.set_num_threads(1)
    _, qmodel, _ = quantized_model(arch, seed=5, calibration_count=4)
    generate_c(qmodel, tmp_path / "lib")
    obj = tmp_path / "model.o"
    subprocess.run(["arm-none-eabi-gcc", "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=soft", "-std=c99", "-O2",
                    "-I", str(tmp_path / "lib"), "-c", str(tmp_path / "lib" / "tinyevo_model.c"), "-o", str(obj)],
                   check=True, capture_output=True)
    listing = subprocess.run(["arm-none-eabi-nm", "--size-sort", "-S", str(obj)], check=True,
                             capture_output=True, text=True).stdout
    rows = (line.split() for line in listing.splitlines())
    return {name: (kind, int(size, 16)) for _, size, kind, name in (r for r in rows if len(r) == 4)}


def function_bytes(symbols: dict[str, tuple[str, int]]) -> tuple[int, int]:
    """Total size of the function (T/t) symbols, and how many there are."""
    sizes = [size for kind, size in symbols.values() if kind in "Tt"]
    return sum(sizes), len(sizes)


@needs_mcu
def test_code_bytes_match_the_symbols(tmp_path):
    """The measured code is the functions' symbols: each function's ``.size`` covers its literal
    pool, and between functions there are at most 3 bytes of padding (Thumb code aligned to 4),
    so the tolerance is 3 B per function. The constant arrays (r/R/D symbols) are the weights,
    biases and scales the cost model counts, and all the constants the measurement subtracts."""
    arch = small_arch()
    symbols = symbol_sizes(arch, tmp_path)
    functions, count = function_bytes(symbols)
    size = measure_code(arch)
    assert size.code > 0 and abs(size.code - functions) <= 3 * count
    data = {name: n for name, (kind, n) in symbols.items() if kind in "rRdD"}
    by_suffix = lambda *suffixes: sum(n for name, n in data.items() if name.endswith(suffixes))
    parts = flash_breakdown(arch, size)
    assert by_suffix("_weights") == parts["weights"] == 76
    assert by_suffix("_bias") == parts["biases"] == 56
    assert by_suffix("_multiplier", "_shift") == parts["scales"] == 112
    assert sum(data.values()) == parts["library_constants"] == size.constants


@needs_mcu
def test_report_shows_measured_code(tmp_path):
    """The best model of the small run (``trial_0.json``) compiled here: the page's code bytes are
    its function symbols' (3 B of padding per function at most) and it says how they were measured."""
    run = copy_run(SMALL_RUN, tmp_path)
    path, data = write_report(run)
    functions, count = function_bytes(symbol_sizes(load_architecture(run / "models" / "trial_0.json"), tmp_path))
    shown = re.search(r'data-part="code">([\d,]+) B<', path.read_text())
    assert shown and abs(int(shown.group(1).replace(",", "")) - functions) <= 3 * count
    assert "arm-none-eabi-gcc -mcpu=cortex-m4" in path.read_text() and "-O2" in data.code_how


def test_report_without_toolchain_says_how_to_measure(tmp_path, monkeypatch):
    monkeypatch.setattr(memory, "mcu_available", lambda: False)
    run = copy_run(SMALL_RUN, tmp_path)
    path, data = write_report(run)
    assert data.flash["code"] is None
    page = path.read_text()
    assert '<td data-part="code">not estimated by the cost model' in page and "arm-none-eabi-size" in page


def test_report_reads_without_writing(tmp_path, capsys):
    run = copy_run(SMALL_RUN, tmp_path)
    before = {p.name: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert main(["report", str(run)]) == 0
    assert f"wrote {run / 'report.html'}" in capsys.readouterr().out
    after = {p.name: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert after.pop("report.html").startswith(b"<!DOCTYPE html>")
    assert after == before  # no -wal/-shm, the store byte for byte the same
    page = (run / "report.html").read_text()
    assert 'data-state="complete"' in page and 'data-peak="1664"' in page
    assert not re.search(r"(src|href)=[\"']?(https?:|//)|url\((?!#)|@import|<link", page)  # nothing to fetch


def test_read_only_run_needs_out(tmp_path, capsys, monkeypatch):
    """A run folder that cannot be written (as root, chmod does not stop us: the check is faked)."""
    run = copy_run(SMALL_RUN, tmp_path)
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == run else real_access(p, mode))
    assert main(["report", str(run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pass --out" in err[0] and not (run / "report.html").exists()
    assert main(["report", str(run), "--out", str(tmp_path / "r.html")]) == 0
    assert stored_trial_ids(run) == [0, 1, 2]
    assert (tmp_path / "r.html").read_text().count("<tr data-trial=") == 3


@pytest.mark.parametrize("out, message", [("missing/r.html", "does not exist"), (".", "is a folder")])
def test_bad_out_is_one_line(tmp_path, capsys, out, message):
    run = copy_run(SMALL_RUN, tmp_path)
    assert main(["report", str(run), "--out", str(tmp_path / out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_not_a_run_is_one_line(tmp_path, capsys):
    (tmp_path / "trials.sqlite").write_bytes(b"")
    assert main(["report", str(tmp_path)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert main(["report", str(tmp_path / "nothing")]) == 2


def test_running_search_is_said(tmp_path):
    """A trial marked running by a live process (this one, as a search would) makes the page say
    the run is in progress; a mark left by a process that is gone does not. A run whose budget is
    not spent is incomplete."""
    run = copy_run(SMALL_RUN, tmp_path)
    gone = subprocess.Popen(["true"])
    gone.wait()
    Store(run / "trials.sqlite").close()  # an old store gets its table of running trials
    cases = ((os.getpid(), 3, "in progress"), (gone.pid, 3, "complete"), (gone.pid, 5, "incomplete"))
    for pid, budget, state in cases:
        db = sqlite3.connect(run / "trials.sqlite")
        db.execute("DELETE FROM running")
        db.execute("UPDATE run SET value_json = ? WHERE key = 'budget'",
                   (f'{{"evaluations":{budget},"seconds":null}}',))
        db.execute("INSERT INTO running (id, key, genome_json, describe, metrics_json, parents_json, "
                   "attempt, in_process, pid) VALUES (3, 'k', '[]', 'x', '{}', '[]', 1, 1, ?)", (pid,))
        db.commit()
        db.close()
        assert report_data(RunView.open(run)).state == state
    assert 'data-state="incomplete"' in render(report_data(RunView.open(run)))


def test_watch_rewrites_while_the_search_runs_then_stops(tmp_path, capsys):
    """``report --watch``: while a live process (this one) has a trial running, each page reloads
    itself every N seconds and is rewritten; once the mark is gone the last page is written without
    the reload and watching ends. The sleep between writes is where the mark is cleared."""
    run = copy_run(SMALL_RUN, tmp_path)
    Store(run / "trials.sqlite").close()
    with sqlite3.connect(run / "trials.sqlite") as db:
        db.execute("INSERT INTO running (id, key, genome_json, describe, metrics_json, parents_json, "
                   "attempt, in_process, pid) VALUES (3, 'k', '[]', 'x', '{}', '[]', 1, 1, ?)", (os.getpid(),))
    pages, sleeps = [], []

    def sleep(seconds):
        sleeps.append(seconds)
        pages.append((run / "report.html").read_text())
        with sqlite3.connect(run / "trials.sqlite") as db:
            db.execute("DELETE FROM running")

    path, data = watch_report(run, every_seconds=7, sleep=sleep)
    assert sleeps == [7] and data.state != "in progress"
    assert '<meta http-equiv="refresh" content="7">' in pages[0]
    assert 'http-equiv="refresh"' not in path.read_text()
    with pytest.raises(SystemExit) as exit_:
        main(["report", str(run), "--watch", "0"])
    assert exit_.value.code == 2
    assert "argument --watch: whole seconds of at least 1, got '0'" in capsys.readouterr().err


def test_show_says_where_the_report_is(tmp_path, capsys):
    run = copy_run(SMALL_RUN, tmp_path)
    main(["show", str(run)])
    assert capsys.readouterr().out.splitlines()[-1].startswith(f"report: none yet; `tinyevo report {run}`")
    write_report(run)
    main(["show", str(run)])
    assert capsys.readouterr().out.splitlines()[-1].startswith(f"report: {run / 'report.html'}")


# --- in a browser ----------------------------------------------------------------------------------
SORT_PROBE = """<script>
/* test only: click the peak SRAM header (ascending), write the trial order into the page */
(function () {
  var th = document.querySelector('#trials th[data-key="peak_sram_bytes"]');
  th.click();
  var ids = Array.prototype.map.call(document.querySelectorAll('#trials tbody tr'),
                                     function (r) { return r.getAttribute('data-trial'); });
  var out = document.createElement('div'); out.id = 'sorted'; out.textContent = ids.join(',');
  document.body.appendChild(out);
})();
</script></body>"""


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / "chromium-profile"
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           "--no-first-run", f"--user-data-dir={profile}", "--enable-logging=stderr",
                           "--v=0", *args], capture_output=True, text=True, timeout=120, check=True)


def ink_profile(path: Path, bands: int = 170) -> np.ndarray:
    """Share of non-white pixels in each horizontal band (20 px) of a screenshot: where the page
    has text and figures, whatever the exact pixels."""
    pixels = np.asarray(Image.open(path).convert("L"), dtype=np.float64)
    ink = pixels < 200
    return np.array([band.mean() for band in np.array_split(ink, bands, axis=0)])


def layout_match(shot: Path, golden: Path, slack: int = 5) -> float:
    """How well two screenshots' ink profiles correlate, the best over shifts of up to ``slack``
    bands (a path that wraps one more line moves what follows down)."""
    a, b = ink_profile(shot), ink_profile(golden)
    return max(np.corrcoef(np.roll(a, k), b)[0, 1] for k in range(-slack, slack + 1))


@pytest.mark.slow
@needs_chromium
def test_demo_report_in_chromium(tmp_path):
    run = copy_run(DEMO_RUN, tmp_path)
    path, data = write_report(run, tmp_path / "report.html")
    shot = tmp_path / "shot.png"
    result = chromium(tmp_path, f"--window-size={WINDOW[0]},{WINDOW[1]}", f"--screenshot={shot}",
                      path.as_uri())
    assert "CONSOLE" not in result.stderr, result.stderr
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert pixels.shape == (WINDOW[1], WINDOW[0]) and pixels.std() > 20  # not blank
    assert layout_match(shot, DEMO_SHOT) > 0.9  # the layout of the checked-in shot

    probed = tmp_path / "probed.html"
    probed.write_text(path.read_text().replace("</body>", SORT_PROBE, 1))
    dom = chromium(tmp_path, "--dump-dom", probed.as_uri())
    assert "CONSOLE" not in dom.stderr, dom.stderr
    page = dom.stdout
    assert 'data-ready="yes"' in page and '<pre id="page-errors" hidden=""></pre>' in page
    ids = stored_trial_ids(run)
    assert page.count("<tr data-trial=") == len(ids) == len(data.trials) == 20
    db = sqlite3.connect(f"{(run / 'trials.sqlite').as_uri()}?mode=ro", uri=True)
    sram = dict(db.execute("SELECT id, json_extract(metrics_json, '$.peak_sram_bytes') FROM trials"))
    (feasible,), = db.execute("SELECT COUNT(*) FROM trials WHERE status = 'ok'")
    db.close()
    assert page.count("<title>trial ") == feasible  # a hover text per point (one cost objective)
    order = [int(i) for i in page.split('<div id="sorted">')[1].split("<")[0].split(",")]
    values = [sram[i] for i in order]
    known = [v for v in values if v is not None]
    assert sorted(order) == ids and values[:len(known)] == sorted(known)  # no figure: last
    assert page.count("<svg") == 4 and 'data-state="complete"' in page
