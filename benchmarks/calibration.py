"""Check: how well the latency model predicts instructions on the emulated core, calibrated or not.

    python benchmarks/calibration.py [--board stm32l4r5zi] [--probes 240] [--heldout 20] > calibration.json

1. Calibrate (``tinyevo calibrate``'s code): ``--probes`` probes drawn with ``--seed``, measured
   profiled on the emulated Cortex-M4 (QEMU mps2-an386, -icount), fitted per op kind; the board
   file goes to ``--board-out`` (default a temporary folder). ``--calibrated FILE`` skips this and
   reads an already calibrated board file instead.
2. Held out: ``--heldout`` architectures sampled from every image space (small settings that run in
   seconds on the emulator, ``closed_loop.NETWORK_SPACES``), the spaces in turn, seeds from
   ``HELDOUT_SEED`` up (the fit's network probes are samples of seeds ``NETWORK_SEED`` + i, far
   below: no held-out network is in the fit),
   each generated as a layer-by-layer C library and run unprofiled: its measured instructions per
   inference.
3. Predicted vs measured instructions of each held-out network: the calibrated model's (the fitted
   per-op instructions plus the network overhead) and today's board-file model's (the board's
   cycles from its MACs-per-cycle rates, taken as instructions at one per cycle). Summary per model:
   median and worst relative error |predicted - measured| / measured, and the median ratio
   predicted / measured.
4. With ``--diagnose N``: N more networks per space, of seeds from ``DIAGNOSIS_SEED`` (neither
   probes nor held out), profiled: measured vs predicted instructions per space and op kind, to
   see which kind's features miss what its kernel does (tune on these, never on the held-out).

Takes about 3.5 minutes for the fit (240 probes and 80 network probes, about 0.6 s each on one
core) and 30 s for 20 held-out networks. Rerun it after the kernels change: the fit follows them.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import log, save_and_print_json  # noqa: E402

from tinyevo.deploy.closed_loop import NETWORK_SPACES, calibrate_board, measure, predicted_instructions  # noqa: E402
from tinyevo.deploy.codegen import mcu  # noqa: E402
from tinyevo.hardware import layer_cycles, load_board, macs  # noqa: E402
from tinyevo.hardware.calibration import costed_ops, lowering, op_features, predict  # noqa: E402
from tinyevo.spaces import create_space  # noqa: E402

torch.set_num_threads(1)
HELDOUT_SEED = 5000
def heldout_architectures(count: int) -> list[tuple[str, int, object]]:
    """(space, seed, architecture): the image spaces in turn, seeds ``HELDOUT_SEED`` + i."""
    chosen = []
    for i in range(count):
        name = sorted(NETWORK_SPACES)[i % len(NETWORK_SPACES)]
        space = create_space(name, **NETWORK_SPACES[name])
        seed = HELDOUT_SEED + i
        chosen.append((name, seed, space.decode(space.sample(np.random.default_rng(seed)))))
    return chosen


def relative_errors(rows: list[dict], key: str) -> dict:
    errors = [abs(r[key] - r["measured_instructions"]) / r["measured_instructions"] for r in rows]
    ratios = [r[key] / r["measured_instructions"] for r in rows]
    worst = max(range(len(rows)), key=lambda i: errors[i])
    return {"median_relative_error": statistics.median(errors), "worst_relative_error": max(errors),
            "mean_relative_error": statistics.fmean(errors), "median_ratio": statistics.median(ratios),
            "worst_network": f"{rows[worst]['space']} seed {rows[worst]['seed']}"}


DIAGNOSIS_SEED = 9000


def diagnose(table: dict, per_space: int, work: Path) -> dict:
    """Per space and kind, measured vs predicted instructions summed over ``per_space`` profiled
    networks of each space, seeds ``DIAGNOSIS_SEED`` + 10 i + the space's index (neither probes
    nor held out: where a mismatch is, without looking at the held-out set)."""
    fitted, spent = table["instructions"], {}
    names = sorted(NETWORK_SPACES)
    for i in range(per_space):
        for index, name in enumerate(names):
            space = create_space(name, **NETWORK_SPACES[name])
            seed = DIAGNOSIS_SEED + 10 * i + index
            arch = space.decode(space.sample(np.random.default_rng(seed)))
            measured = measure(arch, work / "diagnosis", seed)
            lowered = lowering(arch)
            for node, kind in costed_ops(arch, lowered):
                row = spent.setdefault(name, {}).setdefault(kind, [0, 0.0])
                row[0] += measured.ops.get(node.name, 0)
                row[1] += predict(fitted.get(kind, {}), op_features(arch, node, lowered))
            log(f"diagnosis: {name} seed {seed}: measured {measured.instructions:,}, "
                f"calibrated {predicted_instructions(arch, table):,.0f}")
    return {name: {kind: {"measured": m, "predicted": round(p), "ratio": round(p / m, 3) if m else None}
                   for kind, (m, p) in sorted(kinds.items())} for name, kinds in spent.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--board", default="stm32l4r5zi", help="a Cortex-M4 board (default stm32l4r5zi)")
    parser.add_argument("--probes", type=int, default=240)
    parser.add_argument("--seed", type=int, default=0, help="seed of the probes")
    parser.add_argument("--heldout", type=int, default=20)
    parser.add_argument("--calibrated", help="an already calibrated board file (skips the fit)")
    parser.add_argument("--board-out", help="where to write the calibrated board file")
    parser.add_argument("--out", default="benchmarks/results/calibration.json")
    parser.add_argument("--diagnose", type=int, default=0, metavar="N",
                        help=f"also N profiled networks per space (seeds from {DIAGNOSIS_SEED}): measured vs "
                             f"predicted per op kind, to find what the features miss (default 0)")
    args = parser.parse_args()
    mcu.require_toolchain()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tinyevo-calibration-") as work:
        path = Path(args.calibrated) if args.calibrated else Path(args.board_out or Path(work) / "calibrated.toml")
        if not args.calibrated:
            calibrate_board(args.board, path, args.probes, args.seed, progress=log)
        fit_seconds = time.perf_counter() - start
        calibrated, today = load_board(path), load_board(args.board)
        rows = []
        for number, (space, seed, arch) in enumerate(heldout_architectures(args.heldout), 1):
            measured = measure(arch, Path(work) / "heldout", seed, profile=False).instructions
            rows.append({"space": space, "seed": seed, "macs": int(macs(arch)), "ops": len(arch.live_nodes()),
                         "measured_instructions": measured,
                         "calibrated_instructions": predicted_instructions(arch, calibrated.calibration),
                         "board_file_instructions": sum(layer_cycles(arch, today).values())})
            log(f"held out {number}/{args.heldout}: {space} seed {seed}: measured {measured:,}, "
                f"calibrated {rows[-1]['calibrated_instructions']:,.0f}, "
                f"board file {rows[-1]['board_file_instructions']:,.0f}")
        diagnosis = diagnose(calibrated.calibration, args.diagnose, Path(work)) if args.diagnose else None
    document = {"board": today.name, "core": calibrated.calibration["core"],
                "emulator": calibrated.calibration["emulator"], "probes": calibrated.calibration["probes"],
                "probe_seed": calibrated.calibration["seed"], "heldout_seeds_from": HELDOUT_SEED,
                "fit_residuals": calibrated.calibration["residuals"],
                "calibrated": relative_errors(rows, "calibrated_instructions"),
                "board_file": relative_errors(rows, "board_file_instructions"),
                "heldout": rows, **({"diagnosis": diagnosis} if diagnosis else {}),
                "fit_seconds": round(fit_seconds, 1),
                "heldout_seconds": round(time.perf_counter() - start - fit_seconds, 1)}
    save_and_print_json(document, args.out)


if __name__ == "__main__":
    main()
