"""The `tinyevo` command as a user runs it: published figures out, one-line errors for bad input."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Every registered space but nasnet, whose default networks take seconds to cost (tests/test_nasnet.py
#: runs the same commands on a small nasnet).
SPACE_NAMES = ["blocks", "chain", "dag", "densenet", "kws", "mbv2", "nb201", "tcn"]


def tinyevo(*args, cwd=ROOT):
    result = subprocess.run([sys.executable, "-m", "tinyevo.cli", *args], cwd=cwd,
                            capture_output=True, text=True, timeout=120)
    return result.returncode, result.stdout, result.stderr


def tinyevo_here(capsys, *args):
    """``tinyevo`` run in this process (``tinyevo.cli.main``): the same exit code and output,
    without a new Python that imports torch again (about 4 s a command)."""
    from tinyevo.cli import main

    capsys.readouterr()
    code = main([str(arg) for arg in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("name, macs, params, sram", [
    ("resnet8", 12.50e6, 77_706, 49_152),   # MLPerf Tiny ResNet-8, published figures
    ("ds_cnn", 2.66e6, 22_604, 16_000),     # MLPerf Tiny DS-CNN, published figures
])
def test_cost_of_the_mlperf_tiny_examples(name, macs, params, sram):
    code, out, err = tinyevo("cost", f"examples/{name}.json", "--board", "stm32f746", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert abs(report["macs"] - macs) / macs < 0.01
    assert report["params"] == params and report["peak_sram_bytes"] == sram
    assert {"flash_bytes", "latency_ms", "energy_mj"} <= set(report)
    code, text, _ = tinyevo("cost", f"examples/{name}.json", "--board", "STM32F746")
    assert code == 0 and f"{params:,}" in text and f"{sram:,}" in text


def _write(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


def _arch(nodes):
    return {"input_shape": [8, 8, 3], "nodes": nodes}


BAD_INPUTS = {
    "missing file": (lambda t: str(t / "nope.json"), "no such"),
    "malformed json": (lambda t: _write(t, "bad.json", "{\"input_shape\": [8, 8"), "malformed JSON"),
    "unknown op": (lambda t: _write(t, "op.json", _arch([{"name": "a", "op": "conv3d", "inputs": ["input"]}])),
                   "unknown op 'conv3d'"),
    "shapes do not fit": (lambda t: _write(t, "shape.json", _arch([
        {"name": "a", "op": "conv2d", "inputs": ["input"], "attrs": {"out_channels": 4, "stride": 2}},
        {"name": "b", "op": "add", "inputs": ["a", "input"]}])), "same shape"),
    "not an architecture": (lambda t: _write(t, "list.json", "[1, 2]"), "not an architecture"),
    "bad genome": (lambda t: _write(t, "genome.json", {"space": "nb201", "genome": "|bogus~0|"}), "NAS-Bench-201"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_gives_one_line_and_nonzero_exit(tmp_path, case):
    make, message = BAD_INPUTS[case]
    code, out, err = tinyevo("cost", make(tmp_path), "--board", "stm32f746")
    assert code != 0 and out == ""
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert message in err


def test_unknown_board_is_named():
    code, _, err = tinyevo("cost", "examples/resnet8.json", "--board", "esp99")
    assert code != 0 and "unknown board 'esp99'" in err and len(err.strip().splitlines()) == 1


def test_sample_writes_a_genome_file_that_cost_reads(tmp_path):
    code, out, err = tinyevo("sample", "--space", "chain", "--seed", "4", "--json")
    assert code == 0, err
    path = _write(tmp_path, "g.json", out)
    code, out, err = tinyevo("cost", path, "--json")
    assert code == 0, err
    assert json.loads(out)["peak_sram_bytes"] > 0


def test_list_knows_every_registered_space():
    from tinyevo.spaces import SPACES
    code, out, _ = tinyevo("list", "spaces", "--json")
    assert code == 0 and {row["name"] for row in json.loads(out)} == set(SPACES.names())


def test_cost_streamed_is_the_arena_of_the_generated_c():
    """ResNet-8 streamed: its first, 32x32 layers run row by row, so the peak is below the published
    layer-by-layer 49,152 bytes, and it is the arena the C code generator plans for the int8 model."""
    from deploy_helpers import quantized_model
    from tinyevo.deploy.codegen import plan_memory
    from tinyevo.model_file import load_architecture

    code, out, err = tinyevo("cost", "examples/resnet8.json", "--execution", "streamed", "--json")
    assert code == 0, err
    report = json.loads(out)
    _, qmodel, _ = quantized_model(load_architecture(str(ROOT / "examples/resnet8.json")), 0,
                                   calibration_count=2)
    assert report["execution"] == "streamed"
    assert report["peak_sram_bytes"] == plan_memory(qmodel).arena_bytes < 49_152
    code, _, err = tinyevo("cost", "examples/resnet8.json", "--execution", "rowwise")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "execution must be one of layer_by_layer, streamed, got 'rowwise'" in err


def test_the_example_config_file_builds_a_search(tmp_path):
    """examples/search.toml (the README's config example) reads, and every table in it reaches the
    part it configures: the constraints, the space's choices, the strategy's population."""
    from tinyevo.config import load_config
    from tinyevo.pipeline import SearchJob

    config = load_config(ROOT / "examples" / "search.toml")
    job = SearchJob.create(config, tmp_path / "run")
    assert job.constraints().max_peak_sram_bytes == 32 * 1024
    assert job.constraints().max_flash_bytes == 64 * 1024
    assert set(job.space.filters) == {4, 8, 16, 32}
    assert job.strategy().config.population_size == 10


def test_show_all_lists_every_trial_of_the_store(tmp_path):
    """``show --all``: one row per trial in the store (read here with sqlite3), in id order, with its
    status; the plain table has a row for each too."""
    import shutil
    import sqlite3

    run = tmp_path / "run"
    shutil.copytree(ROOT / "tests" / "fixtures" / "run_afcad80", run)
    with sqlite3.connect(run / "trials.sqlite") as db:
        stored = db.execute("SELECT id, status FROM trials ORDER BY id").fetchall()
    code, out, _ = tinyevo("show", run, "--all", "--json")
    assert code == 0
    assert [(row["trial"], row["status"]) for row in json.loads(out)["all"]] == stored
    code, out, _ = tinyevo("show", run, "--all")
    table = out.split("every trial", 1)[1].splitlines()[2:]
    assert code == 0 and [int(line.split()[0]) for line in table[:len(stored)]] == [i for i, _ in stored]


@pytest.mark.parametrize("space_name", SPACE_NAMES)
def test_list_sample_and_cost_of_every_registered_space(space_name, tmp_path, capsys):
    """``list`` names the space with its encoding, ``sample --json`` writes a genome document the
    space reads back, and ``cost`` of that file counts the MACs the cost model counts for it (run in
    this process; the subprocess tests above run the installed command)."""
    from tinyevo.hardware import estimate_cost
    from tinyevo.spaces import SPACES, create_space

    code, listed, _ = tinyevo_here(capsys, "list", "spaces")
    assert code == 0 and [space_name, SPACES.get(space_name).encoding] in [
        line.split()[:2] for line in listed.splitlines()]
    code, text, _ = tinyevo_here(capsys, "sample", "--space", space_name, "--seed", "2", "--json")
    assert code == 0
    document = json.loads(text)
    space = create_space(space_name)
    assert document["space"] == space_name and document["describe"] == space.describe(document["genome"])
    (tmp_path / "g.json").write_text(text)
    code, cost, _ = tinyevo_here(capsys, "cost", tmp_path / "g.json", "--json")
    assert code == 0
    assert json.loads(cost)["macs"] == estimate_cost(space.decode(document["genome"])).macs


def test_the_space_list_above_names_every_registered_space():
    from tinyevo.spaces import SPACES

    assert set(SPACE_NAMES) | {"nasnet"} == set(SPACES.names()), "add the new space to SPACE_NAMES"
