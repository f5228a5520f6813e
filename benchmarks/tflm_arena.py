"""Check: ``--runtime tflm``'s peak SRAM is the TFLM arena of the .tflite ``tinyevo export`` writes.

    python benchmarks/tflm_arena.py [--samples 20] [--spaces chain,mbv2,nb201] > tflm_arena.json

For each space (its default options, as ``tinyevo sample`` draws them) and each of ``--samples``
seeded genomes:

- ``searched``: the search's figure (``search_cost_model(runtime="tflm")``, a fresh cost model:
  the TFLM arena of a stand-in .tflite with initial weights), and ``searched_again`` from a second
  fresh cost model (deterministic);
- ``exported``: the ``arena_bytes`` that ``tinyevo export GENOME --format tflite --seed S`` reports
  (other random weights, calibrated on 64 other random inputs), and ``exported_bn``: the same figure
  for the .tflite of a third model with random batch-norm statistics calibrated on normal inputs
  (``benchmarks/deploy.py``'s models);
- ``runs`` / ``minimal``: independent of the search for the figure: in a fresh process each, TFLM
  allocates that last .tflite in ``searched`` bytes and invokes it, and does not allocate it in
  ``searched - 16`` bytes (it fails or crashes), so the figure is the smallest arena of a multiple
  of 16 bytes;
- ``print_allocations``: TFLM's ``print_allocations`` total for it (head + tail once planned),
  which is below the arena TFLM needs when the kernels' preparation holds temporary memory;
- ``c_figure``: the cost model's default figure (runtime c), for comparison;
- ``seconds``: wall time of the measurement (stand-in model, .tflite, TFLM arena) for one candidate.

``summary`` per space: how many samples have searched == exported == exported_bn == searched_again
with runs and minimal, the mean / max seconds, and the TFLM / C and TFLM / print_allocations ratios.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from common import log, print_json
from tinyevo.hardware.cost_model import search_cost_model
from tinyevo.deploy.quantize import quantize
from tinyevo.deploy.runtimes import tflm_arena_bytes, tflm_required_arena_bytes
from tinyevo.deploy.tflite_writer import to_tflite
from tinyevo.export_job import export_model
from tinyevo.hardware import estimate_cost, load_board
from tinyevo.model_file import genome_document
from tinyevo.nn.build import build, randomize_batch_norms
from tinyevo.spaces import create_space


PROBE = """
import sys
import numpy as np
from tflite_micro.python.tflite_micro import runtime
interpreter = runtime.Interpreter.from_bytes(open(sys.argv[1], "rb").read(), arena_size=int(sys.argv[2]))
details = interpreter.get_input_details(0)
interpreter.set_input(np.zeros(details["shape"], dtype=details["dtype"]), 0)
interpreter.invoke()
"""


def runs_in(path: Path, arena: int) -> bool:
    """Whether TFLM, in a fresh process, allocates the .tflite at ``path`` in ``arena`` bytes and
    invokes it (a crash counts as no)."""
    done = subprocess.run([sys.executable, "-c", PROBE, str(path), str(arena)], capture_output=True)
    return done.returncode == 0


def batch_norm_model(arch, seed: int) -> bytes:
    torch.manual_seed(seed)
    module = build(arch).eval()
    rng = np.random.default_rng(seed)
    randomize_batch_norms(module, rng)
    h, w, c = arch.input_shape
    return to_tflite(quantize(arch, module, rng.normal(size=(16, c, h, w)).astype(np.float32)))


def check_space(name: str, samples: int, board, folder: Path) -> list[dict]:
    space = create_space(name)
    rng = np.random.default_rng(0)
    rows = []
    first = search_cost_model(runtime="tflm")
    first(space.decode(space.smallest()[0]), board)  # imports paid before the timings
    for index in range(samples):
        genome = space.sample(rng)
        arch = space.decode(genome)
        cost_model = search_cost_model(runtime="tflm")
        start = time.perf_counter()
        searched = cost_model(arch, board).peak_sram_bytes
        seconds = time.perf_counter() - start
        again = search_cost_model(runtime="tflm")(arch, board).peak_sram_bytes
        path = folder / f"{name}_{index}.json"
        path.write_text(json.dumps(genome_document(space, genome)))
        exported = export_model(path, "tflite", folder / f"{name}_{index}.tflite", seed=100 + index,
                                warn=lambda line: None).arena_bytes
        bn = batch_norm_model(arch, 200 + index)
        bn_path = folder / f"{name}_{index}_bn.tflite"
        bn_path.write_bytes(bn)
        row = {"space": name, "sample": index, "describe": space.describe(genome),
               "searched": searched, "searched_again": again, "exported": exported,
               "exported_bn": tflm_required_arena_bytes(bn), "runs": runs_in(bn_path, searched),
               "minimal": not runs_in(bn_path, searched - 16), "print_allocations": tflm_arena_bytes(bn),
               "c_figure": estimate_cost(arch, board).peak_sram_bytes, "seconds": round(seconds, 4)}
        row["equal"] = (searched == again == exported == row["exported_bn"]) and row["runs"] and row["minimal"]
        log(f"{name} {index}: searched {searched:,} exported {exported:,} bn {row['exported_bn']:,} "
            f"runs {row['runs']} minimal {row['minimal']} print_allocations {row['print_allocations']:,} "
            f"C {row['c_figure']:,} ({seconds:.3f} s)")
        rows.append(row)
    return rows


def summary(rows: list[dict]) -> dict:
    seconds = [r["seconds"] for r in rows]
    return {"samples": len(rows), "equal": sum(r["equal"] for r in rows),
            "mean_seconds": round(statistics.mean(seconds), 4), "max_seconds": max(seconds),
            "tflm_over_c_mean": round(statistics.mean(r["searched"] / r["c_figure"] for r in rows), 3),
            "tflm_over_c_max": round(max(r["searched"] / r["c_figure"] for r in rows), 3),
            "tflm_over_c_min": round(min(r["searched"] / r["c_figure"] for r in rows), 3),
            "above_print_allocations": sum(r["searched"] > r["print_allocations"] for r in rows),
            "over_print_allocations_max": round(max(r["searched"] / r["print_allocations"] for r in rows), 3)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--spaces", default="chain,mbv2,nb201")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    board = load_board("stm32f746")
    report = {"samples_per_space": args.samples, "spaces": {}, "rows": []}
    with tempfile.TemporaryDirectory() as folder:
        for name in args.spaces.split(","):
            rows = check_space(name, args.samples, board, Path(folder))
            report["spaces"][name] = summary(rows)
            report["rows"] += rows
    print_json(report)
    return 0 if all(s["equal"] == s["samples"] for s in report["spaces"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
