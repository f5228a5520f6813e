"""``tinyevo calibrate``: fit a board's latency model to instructions counted on the emulated core
(``tinyevo.deploy.closed_loop``)."""
from __future__ import annotations

import argparse
from pathlib import Path

EPILOG = """\
examples:
  tinyevo calibrate --board nrf52840                       # writes nRF52840-calibrated.toml
  tinyevo calibrate --board stm32l4r5zi --out l4.toml --probes 60 --seed 1
  tinyevo calibrate --board stm32f103c8                    # Cortex-M3: QEMU mps2-an385
  tinyevo calibrate --board nrf5340                        # Cortex-M33: QEMU mps2-an505
  tinyevo search --space mbv2 --board l4.toml ...          # latency_ms, energy_mj from the fit

How it works: each probe (one op of a kind over a grid of shapes: conv2d, pointwise, depthwise and
grouped convolutions, dense, pools, add, concat, batch norm, standalone relu, and small blocks;
channel counts that take the kernels' blocks of four and counts that do not), and one network per
3 probes (seeded samples of the image spaces at small settings), is built with random weights,
quantized, generated as layer-by-layer C (no in-place kernels, as the search counts memory by
default), compiled for the board's core and run profiled
on QEMU (mps2-an385 for the Cortex-M3, without the DSP extension: the portable C loops;
mps2-an386 for the Cortex-M4; mps2-an505 for the Armv8-M Cortex-M33) with -icount shift=0,
which counts executed instructions.
Per op kind, instructions are fitted as a non-negative linear function of what the kernel loops
over (tinyevo.hardware.calibration.FEATURES: a per-call constant, MACs inside the input, output
elements, pixels, channels, im2col patches, dot-product calls, the elements of the kernel's generic
path when it does not take the blocks of four channels, elements a concat requantizes, whether the
layer's C function is shared with another layer, ...; scipy nnls, on relative errors). The board
file written is the original one plus a [calibration] table (core, emulator, coefficients per
kind, fit residuals, date, probe count).

Cycles from instructions: cycles = instructions x cycles_per_instruction (1.0 in the file), which
assumes one instruction per cycle: zero-wait-state flash and SRAM, no cache misses, no pipeline
stalls, multi-cycle instructions counted as one. Edit cycles_per_instruction for a board where
that is known to be off (flash wait states at high clocks, a dual-issue Cortex-M7). A Cortex-M7
board needs --core cortex-m4 (same Armv7E-M instruction set) until an M7 is emulated.
"""


def add_parser(sub) -> None:
    p = sub.add_parser("calibrate", help="fit a board's latency model to the emulated core (QEMU)",
                       description="Measure single-layer probes and small networks on the emulated "
                                   "core of a board and write a board file whose latency and energy "
                                   "come from the fitted per-op instruction counts.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--board", required=True, help="board name (tinyevo list boards) or TOML file")
    p.add_argument("--out", help="board file to write (default BOARD-calibrated.toml)")
    p.add_argument("--probes", type=int, default=240, help="single-layer probes to measure "
                   "(default 240, about 0.6 s each; at least 13, one per kind), plus one network per 3")
    p.add_argument("--seed", type=int, default=0, help="seed of the probes' shapes and weights (default 0)")
    p.add_argument("--core", help="emulated core to measure on: cortex-m3, cortex-m4 or cortex-m33 "
                   "(default: the board's core)")
    p.set_defaults(handler=run_calibrate)


def run_calibrate(args: argparse.Namespace) -> int:
    from tinyevo.deploy.closed_loop import calibrate_board
    from tinyevo.hardware import load_board

    out = Path(args.out) if args.out else Path(f"{load_board(args.board).name}-calibrated.toml")
    calibrate_board(args.board, out, args.probes, args.seed, args.core,
                    progress=lambda line: print(line, flush=True))
    return 0
