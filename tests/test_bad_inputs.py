"""Bad input to every command and to the Python API (issue 19): each case exits 2 with one line naming
what is wrong, no traceback, and leaves no file behind. The CLI runs in this process (``main`` with
argv), so 100 cases take seconds."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import tinyevo
from tinyevo.cli import main
from tinyevo.errors import TinyevoError

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]
RESNET8 = str(ROOT / "examples" / "resnet8.json")
FAST = ["--budget", "1", "--epochs", "1", "--final-epochs", "1", "--final-models", "1", "--no-progress"]


# --- files the cases read, made in the case's folder ---------------------------------------------
def text(t, name, content):
    path = t / name
    path.write_text(content)
    return str(path)


def genome(t, layers, options=None):
    document = {"space": "chain", "genome": layers, **({"options": options} if options else {})}
    return text(t, "genome.json", json.dumps(document))


def npz(t, x, y, **more):
    path = t / "data.npz"
    np.savez(path, x=x, y=y, **more)
    return str(path)


def pixels(rows=60, dtype=np.float32):
    return np.random.default_rng(0).uniform(0, 1, size=(rows, 8, 8)).astype(dtype)


def two_classes(rows=60):
    return np.arange(rows) % 2


def with_nan():
    x = pixels()
    x[3, 2, 1] = np.nan
    return x


def with_inf():
    x = pixels()
    x[0, 0, 0] = np.inf
    return x


def huge_label():
    y = two_classes()
    y[-1] = 10**9
    return y


def user_folder(t):
    folder = t / "mine"
    folder.mkdir()
    (folder / "results.json").write_text("my own results")
    return str(folder)


def a_file(t):
    return text(t, "afile", "not a folder")


CONV = {"type": "conv", "filters": 8, "kernel": 3, "stride": 1}
DATA = lambda t, path: ["--dataset", "npz", "--data-dir", path]  # noqa: E731

#: name -> argv (a function of the case's folder t; the run folder, if any, is t / "run")
CLI_CASES = {
    # sample / list
    "sample negative seed": lambda t: ["sample", "--space", "chain", "--seed", "-3"],
    "sample seed -1": lambda t: ["sample", "--space", "chain", "--seed", "-1"],
    "sample seed text": lambda t: ["sample", "--space", "chain", "--seed", "abc"],
    "sample seed fraction": lambda t: ["sample", "--space", "chain", "--seed", "1.5"],
    "sample seed too large": lambda t: ["sample", "--space", "chain", "--seed", str(2**40)],
    "sample count 0": lambda t: ["sample", "--space", "chain", "--count", "0"],
    "sample count -3": lambda t: ["sample", "--space", "chain", "--count", "-3"],
    "sample count text": lambda t: ["sample", "--space", "chain", "--count", "many"],
    "sample unknown space": lambda t: ["sample", "--space", "resnet9000"],
    "sample unknown board": lambda t: ["sample", "--space", "chain", "--board", "esp99"],
    "sample no space": lambda t: ["sample"],
    "list unknown": lambda t: ["list", "cats"],
    "unknown command": lambda t: ["frobnicate"],
    # cost
    "cost missing file": lambda t: ["cost", str(t / "nope.json")],
    "cost folder": lambda t: ["cost", str(t)],
    "cost malformed json": lambda t: ["cost", text(t, "bad.json", '{"input_shape": [8, 8')],
    "cost not an architecture": lambda t: ["cost", text(t, "list.json", "[1, 2]")],
    "cost binary file": lambda t: ["cost", text(t, "bin.json", "") and _binary(t)],
    "cost unknown op": lambda t: ["cost", text(t, "op.json", json.dumps({"input_shape": [8, 8, 3], "nodes": [
        {"name": "a", "op": "conv3d", "inputs": ["input"]}]}))],
    "cost bad nb201 genome": lambda t: ["cost", text(t, "g.json", json.dumps({"space": "nb201", "genome": "|x~0|"}))],
    "cost unknown space": lambda t: ["cost", text(t, "g.json", json.dumps({"space": "nope", "genome": []}))],
    "cost 10^9 filters": lambda t: ["cost", genome(t, [{**CONV, "filters": 10**9}, {"type": "gap"}])],
    "cost kernel 99": lambda t: ["cost", genome(t, [{**CONV, "kernel": 99}, {"type": "gap"}])],
    "cost 5000 layers": lambda t: ["cost", genome(t, [CONV] * 5000 + [{"type": "gap"}])],
    "cost unknown board": lambda t: ["cost", RESNET8, "--board", "esp99"],
    "cost bad execution": lambda t: ["cost", RESNET8, "--execution", "rowwise"],
    "cost bad runtime": lambda t: ["cost", RESNET8, "--runtime", "nnom"],
    # search: numbers out of range
    "search seed -1": lambda t: ["search", "--out", str(t / "run"), "--seed", "-1"],
    "search seed text": lambda t: ["search", "--out", str(t / "run"), "--seed", "x"],
    "search budget 0": lambda t: ["search", "--out", str(t / "run"), "--budget", "0"],
    "search budget -2": lambda t: ["search", "--out", str(t / "run"), "--budget", "-2"],
    "search budget text": lambda t: ["search", "--out", str(t / "run"), "--budget", "lots"],
    "search bogus objective": lambda t: ["search", "--out", str(t / "run"), "--objectives", "accuracy,bogus"],
    "search objective twice": lambda t: ["search", "--out", str(t / "run"), "--objectives", "accuracy,accuracy"],
    "search empty objectives": lambda t: ["search", "--out", str(t / "run"), "--objectives", ","],
    "search max-sram -5KB": lambda t: ["search", "--out", str(t / "run"), "--max-sram", "-5KB"],
    "search max-sram words": lambda t: ["search", "--out", str(t / "run"), "--max-sram", "lots"],
    "search max-flash -1": lambda t: ["search", "--out", str(t / "run"), "--max-flash", "-1"],
    "search max-latency -3ms": lambda t: ["search", "--out", str(t / "run"), "--max-latency", "-3ms"],
    "search max-latency unit": lambda t: ["search", "--out", str(t / "run"), "--max-latency", "3 parsecs"],
    "search max-macs text": lambda t: ["search", "--out", str(t / "run"), "--max-macs", "many"],
    "search nothing fits": lambda t: ["search", "--out", str(t / "run"), "--max-sram", "10"],
    "search eval-timeout -1": lambda t: ["search", "--out", str(t / "run"), "--eval-timeout", "-1"],
    "search data-fraction 0": lambda t: ["search", "--out", str(t / "run"), "--data-fraction", "0"],
    "search data-fraction 2": lambda t: ["search", "--out", str(t / "run"), "--data-fraction", "2"],
    "search workers 0": lambda t: ["search", "--out", str(t / "run"), "--executor", "process", "--workers", "0"],
    "search final-epochs 0": lambda t: ["search", "--out", str(t / "run"), "--final-epochs", "0"],
    "search final-models -1": lambda t: ["search", "--out", str(t / "run"), "--final-models", "-1"],
    "search max-seconds 0": lambda t: ["search", "--out", str(t / "run"), "--max-seconds", "0"],
    "search unknown executor": lambda t: ["search", "--out", str(t / "run"), "--executor", "slurm", *FAST],
    "search unknown strategy": lambda t: ["search", "--out", str(t / "run"), "--strategy", "nope", *FAST],
    "search unknown estimator": lambda t: ["search", "--out", str(t / "run"), "--estimator", "nope", *FAST],
    "search unknown space": lambda t: ["search", "--out", str(t / "run"), "--space", "nope"],
    "search unknown board": lambda t: ["search", "--out", str(t / "run"), "--board", "esp99"],
    "search bad execution": lambda t: ["search", "--out", str(t / "run"), "--execution", "rowwise"],
    "search bad runtime": lambda t: ["search", "--out", str(t / "run"), "--runtime", "nnom"],
    "search no out": lambda t: ["search"],
    # search: where it would write
    "search out is a file": lambda t: ["search", "--out", a_file(t)],
    "search out under a file": lambda t: ["search", "--out", str(Path(a_file(t)) / "run")],
    "search out in /proc": lambda t: ["search", "--out", "/proc/tinyevo-run"],
    "search out in /sys": lambda t: ["search", "--out", "/sys/tinyevo-run"],
    "search out a user folder": lambda t: ["search", "--out", user_folder(t)],
    # search: the data
    "search unknown dataset": lambda t: ["search", "--out", str(t / "run"), "--dataset", "imagenet-22k"],
    "search data dir missing": lambda t: ["search", "--out", str(t / "run"), "--dataset", "mnist", "--data-dir", str(t / "no")],
    "search npz missing": lambda t: ["search", "--out", str(t / "run"), *DATA(t, str(t / "no.npz"))],
    "search npz is text": lambda t: ["search", "--out", str(t / "run"), *DATA(t, text(t, "t.npz", "hello"))],
    "search npz is empty": lambda t: ["search", "--out", str(t / "run"), *DATA(t, text(t, "e.npz", ""))],
    "search npz without y": lambda t: ["search", "--out", str(t / "run"), *DATA(t, _only_x(t))],
    "search npz NaN": lambda t: ["search", "--out", str(t / "run"), *DATA(t, npz(t, with_nan(), two_classes()))],
    "search npz infinity": lambda t: ["search", "--out", str(t / "run"), *DATA(t, npz(t, with_inf(), two_classes()))],
    "search npz bool pixels": lambda t: ["search", "--out", str(t / "run"), *DATA(t, npz(t, pixels() > 0.5, two_classes()))],
    "search npz complex pixels": lambda t: ["search", "--out", str(t / "run"), *DATA(t, npz(t, pixels().astype(complex), two_classes()))],
    "search npz one class": lambda t: ["search", "--out", str(t / "run"), *DATA(t, npz(t, pixels(), np.zeros(60, int)))],
    "search npz label 10^9": lambda t: ["search", "--out", str(t / "run"), *DATA(t, npz(t, pixels(), huge_label()))],
    "search npz float labels": lambda t: ["search", "--out", str(t / "run"), *DATA(t, npz(t, pixels(), two_classes() + 0.5))],
    "search npz negative labels": lambda t: ["search", "--out", str(t / "run"), *DATA(t, npz(t, pixels(), two_classes() - 1))],
    "search npz rows differ": lambda t: ["search", "--out", str(t / "run"), *DATA(t, npz(t, pixels(), two_classes(59)))],
    # search: the config file
    "search config missing": lambda t: ["search", "--out", str(t / "run"), "--config", str(t / "no.toml")],
    "search config not toml": lambda t: ["search", "--out", str(t / "run"), "--config", text(t, "c.toml", "budget = [\n")],
    "search config unknown key": lambda t: ["search", "--out", str(t / "run"), "--config", text(t, "c.toml", "budgett = 3\n")],
    "search config wrong type": lambda t: ["search", "--out", str(t / "run"), "--config", text(t, "c.toml", 'budget = "3"\n')],
    "search config seed -4": lambda t: ["search", "--out", str(t / "run"), "--config", text(t, "c.toml", "seed = -4\n")],
    "search config objectives": lambda t: ["search", "--out", str(t / "run"), "--config", text(t, "c.toml", 'objectives = ["speed"]\n')],
    # tinynas
    "tinynas seed -1": lambda t: ["tinynas", "--out", str(t / "run"), "--seed", "-1"],
    "tinynas samples 0": lambda t: ["tinynas", "--out", str(t / "run"), "--samples", "0"],
    "tinynas population 0": lambda t: ["tinynas", "--out", str(t / "run"), "--population", "0"],
    "tinynas widths text": lambda t: ["tinynas", "--out", str(t / "run"), "--widths", "wide"],
    "tinynas width not in space": lambda t: ["tinynas", "--out", str(t / "run"), "--widths", "0.25"],
    "tinynas space options": lambda t: ["tinynas", "--out", str(t / "run"), "--space-options", "{depths"],
    "tinynas max-sram -5KB": lambda t: ["tinynas", "--out", str(t / "run"), "--max-sram", "-5KB"],
    "tinynas runtime tflm": lambda t: ["tinynas", "--out", str(t / "run"), "--runtime", "tflm"],
    "tinynas device": lambda t: ["tinynas", "--out", str(t / "run"), "--device", "tpu"],
    "tinynas out is a file": lambda t: ["tinynas", "--out", a_file(t)],
    "tinynas out a user folder": lambda t: ["tinynas", "--out", user_folder(t)],
    "tinynas out in /proc": lambda t: ["tinynas", "--out", "/proc/tinyevo-run"],
    # show
    "show missing folder": lambda t: ["show", str(t / "nope")],
    "show folder without run": lambda t: ["show", user_folder(t)],
    "show empty store": lambda t: ["show", _store(t, b"")],
    "show store not sqlite": lambda t: ["show", _store(t, b"hello, not a database" * 10)],
    "show sqlite of another program": lambda t: ["show", _foreign_store(t)],
    # export
    "export missing source": lambda t: ["export", str(t / "nope"), "--out", str(t / "m.tflite")],
    "export unknown format": lambda t: ["export", RESNET8, "--format", "keras", "--out", str(t / "m.h5")],
    "export 10^9 filters": lambda t: ["export", genome(t, [{**CONV, "filters": 10**9}, {"type": "gap"}]),
                                      "--out", str(t / "m.tflite")],
    "export 196 GB of weights": lambda t: ["export", genome(t, [{**CONV, "filters": 2**17}, {**CONV, "filters": 2**17},
                                                                {"type": "gap"}]), "--out", str(t / "m.tflite")],
    "export kernel 99": lambda t: ["export", genome(t, [{**CONV, "kernel": 99}, {"type": "gap"}]),
                                   "--out", str(t / "m.tflite")],
    "export trial of a file": lambda t: ["export", RESNET8, "--trial", "1", "--out", str(t / "m.tflite")],
    "export seed -1": lambda t: ["export", RESNET8, "--seed", "-1", "--out", str(t / "m.tflite")],
    "export weights not npz": lambda t: ["export", RESNET8, "--weights", text(t, "w.npz", "text"),
                                         "--out", str(t / "m.tflite")],
    "export folder without run": lambda t: ["export", user_folder(t), "--out", str(t / "m.tflite")],
}


def _binary(t):
    path = t / "bin.json"
    path.write_bytes(bytes(range(256)))
    return str(path)


def _only_x(t):
    path = t / "x.npz"
    np.savez(path, x=pixels())
    return str(path)


def _store(t, content: bytes):
    run = t / "run"
    run.mkdir()
    (run / "trials.sqlite").write_bytes(content)
    return str(run)


def _foreign_store(t):
    import sqlite3
    run = t / "run"
    run.mkdir()
    with sqlite3.connect(run / "trials.sqlite") as db:
        db.execute("CREATE TABLE songs (title TEXT)")
    return str(run)


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) if p.is_file() else None
            for p in folder.rglob("*")}


def run_cli(argv, capsys) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line(err: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err and "internal error" not in err, err


@pytest.mark.parametrize("case", list(CLI_CASES))
def test_bad_cli_input_is_one_line_exit_2_and_writes_nothing(case, tmp_path, capsys):
    argv = [str(a) for a in CLI_CASES[case](tmp_path)]
    before = snapshot(tmp_path)
    code, out, err = run_cli(argv, capsys)
    assert code == 2, (code, out, err)
    assert_one_line(err)
    assert snapshot(tmp_path) == before, "a bad input left a file behind"
    assert not Path("/proc/tinyevo-run").exists() and not Path("/sys/tinyevo-run").exists()


# --- the Python API: the same checks, as a TinyevoError whose message is the CLI's line ----------
API_CASES = {
    "budget 0": lambda t: dict(budget=0),
    "seed -1": lambda t: dict(seed=-1),
    "seed bool": lambda t: dict(seed=True),
    "bogus objective": lambda t: dict(objectives=["accuracy", "bogus"]),
    "unknown setting": lambda t: dict(budjet=3),
    "max_sram -5KB": lambda t: dict(max_sram="-5KB"),
    "data with NaN": lambda t: dict(data=(with_nan(), two_classes())),
    "data with infinity": lambda t: dict(data=(with_inf(), two_classes())),
    "data of booleans": lambda t: dict(data=(pixels() > 0.5, two_classes())),
    "data of complex numbers": lambda t: dict(data=(pixels().astype(complex), two_classes())),
    "data of one class": lambda t: dict(data=(pixels(), np.zeros(60, int))),
    "data label 10^9": lambda t: dict(data=(pixels(), huge_label())),
    "data not arrays": lambda t: dict(data="pixels.npz"),
    "out is a file": lambda t: dict(out=a_file(t)),
    "out a user folder": lambda t: dict(out=user_folder(t)),
}


@pytest.mark.parametrize("case", list(API_CASES))
def test_bad_api_input_is_one_line_and_writes_nothing(case, tmp_path):
    settings = {"out": tmp_path / "run", "progress": False, **API_CASES[case](tmp_path)}
    before = snapshot(tmp_path)
    with pytest.raises(TinyevoError) as error:
        tinyevo.search(**settings)
    assert_one_line(str(error.value))
    assert snapshot(tmp_path) == before, "a bad input left a file behind"


def test_load_of_a_folder_without_a_run_is_one_line(tmp_path):
    with pytest.raises(TinyevoError) as error:
        tinyevo.load(tmp_path)
    assert_one_line(str(error.value))


def test_the_suite_has_at_least_80_cases():
    assert len(CLI_CASES) + len(API_CASES) >= 80
