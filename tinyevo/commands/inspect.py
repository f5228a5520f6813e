"""``tinyevo list``, ``tinyevo sample`` and ``tinyevo cost``: look before you search."""
from __future__ import annotations

import argparse
import json

import numpy as np

from tinyevo.commands import arguments
from tinyevo.hardware.execution import SEARCHED
from tinyevo.model_file import genome_document, load_architecture
from tinyevo.units import format_bytes


def add_parser(sub) -> None:
    p = sub.add_parser("list", help="list search spaces, boards, strategies or estimators",
                       description="List what tinyevo knows by name.")
    p.add_argument("what", choices=["spaces", "boards", "strategies", "estimators"])
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(handler=run_list)

    p = sub.add_parser("sample", help="draw a random architecture from a search space",
                       description="Draw a random genome of a space and show it. With --json the "
                                   "output is a genome file that `tinyevo cost` reads.")
    p.add_argument("--space", required=True, help="search space name (see `tinyevo list spaces`)")
    p.add_argument("--seed", type=arguments.seed, default=0, help="random seed (default 0)")
    p.add_argument("--count", type=arguments.count, default=1, help="how many genomes (default 1)")
    p.add_argument("--board", default="stm32f746", help="board for the cost column (default stm32f746)")
    p.add_argument("--json", action="store_true", help="print the genome file(s) as JSON")
    p.set_defaults(handler=run_sample)

    p = sub.add_parser("cost", help="what an architecture costs on a microcontroller",
                       description="Params, MACs, flash, peak SRAM, latency and energy of an "
                                   "architecture file or genome file on a board.")
    p.add_argument("file", help="JSON file: an architecture (examples/resnet8.json) or a genome file")
    p.add_argument("--board", default="stm32f746", help="board name or TOML file (default stm32f746)")
    p.add_argument("--execution", default=SEARCHED.execution, metavar="{layer_by_layer,streamed}",
                   help="how peak SRAM is counted, as `tinyevo search --execution`: layer_by_layer "
                        "(default; whole tensors, op after op) or streamed (the first layers row "
                        "by row, in-place kernels: the arena of `tinyevo export --format c`)")
    p.add_argument("--runtime", default=SEARCHED.runtime, metavar="{c,tflm}",
                   help="whose arena peak SRAM is, as `tinyevo search --runtime`: c (default, as "
                        "--execution counts it) or tflm (the tensor arena TFLite Micro needs for "
                        "the model's .tflite, measured with its interpreter)")
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    p.set_defaults(handler=run_cost)


def run_list(args: argparse.Namespace) -> int:
    names, rows = _catalogue(args.what)
    if args.json:
        print(json.dumps(rows if rows else names, indent=1))
    else:
        print_table(rows or [{"name": n} for n in names])
    return 0


def print_table(rows: list[dict]) -> None:
    """Rows as aligned columns under a header of their keys."""
    header = {key: key.replace("_", " ") for key in rows[0]}
    lines = [header] + [{key: str(value) for key, value in row.items()} for row in rows]
    widths = {key: max(len(line[key]) for line in lines) for key in header}
    for line in lines:
        print("  ".join(line[key].ljust(widths[key]) for key in header).rstrip())


def summary(entry) -> str:
    """The first sentence of a registered class's or function's docstring, without markup."""
    paragraph = (getattr(entry, "__doc__", None) or "").strip().split("\n\n")[0]
    sentence = " ".join(paragraph.split()).split(". ")[0].rstrip(".")
    return sentence.replace("``", "")


def _catalogue(what: str) -> tuple[list[str], list[dict]]:
    if what == "boards":
        from tinyevo.deploy.codegen.mcu import CORES, board_core
        from tinyevo.hardware import list_boards, load_board
        boards = [load_board(n) for n in list_boards()]

        def emulated(board) -> str:  # where tinyevo calibrate and --measure-finalists run its code
            core = board.calibration["core"] if board.calibration else board_core(board.core)
            return f"{core} ({CORES[core].machine})" if core in CORES else "-"
        return [b.name for b in boards], [
            {"name": b.name, "core": b.core, "clock_mhz": b.clock_mhz,
             "sram": format_bytes(b.sram_bytes), "flash": format_bytes(b.flash_bytes),
             "emulated": emulated(b)} for b in boards]
    if what == "spaces":
        from tinyevo.spaces import SPACES
        return SPACES.names(), [{"name": n, "encoding": SPACES.get(n).encoding,
                                 "what": summary(SPACES.get(n))} for n in SPACES.names()]
    if what == "strategies":
        from tinyevo.darts.job import DARTS
        from tinyevo.strategies import STRATEGIES
        rows = [{"name": n, "what": summary(STRATEGIES.get(n))} for n in STRATEGIES.names()]
        # DARTS trains while it searches, so it is a one-shot pipeline of its own, not an ask/tell strategy
        rows.append({"name": DARTS, "what": "Gradient-based one-shot search (DARTS, Liu et al. 2019) on "
                                             "nb201 or mbv2, trained bilevel, then discretized"})
        return [row["name"] for row in rows], sorted(rows, key=lambda row: row["name"])
    from tinyevo.estimate import ESTIMATORS
    return ESTIMATORS.names(), [{"name": n, "what": summary(ESTIMATORS.get(n))} for n in ESTIMATORS.names()]


def run_sample(args: argparse.Namespace) -> int:
    from tinyevo.hardware import estimate_cost, load_board
    from tinyevo.spaces import create_space

    space, board = create_space(args.space), load_board(args.board)
    rng = np.random.default_rng(args.seed)
    documents = []
    for _ in range(args.count):
        genome = space.sample(rng)
        cost = estimate_cost(space.decode(genome), board)
        documents.append({**genome_document(space, genome), "cost": cost.to_dict()})
    if args.json:
        print(json.dumps(documents[0] if len(documents) == 1 else documents, indent=1))
        return 0
    for doc in documents:
        c = doc["cost"]
        print(f"{doc['describe']}\n    params {c['params']:,}  MACs {c['macs']:,}  "
              f"flash {format_bytes(c['flash_bytes'])}  peak SRAM {format_bytes(c['peak_sram_bytes'])}  "
              f"latency {c['latency_ms']:.2f} ms on {board.name}")
    return 0


def run_cost(args: argparse.Namespace) -> int:
    from tinyevo.hardware import load_board
    from tinyevo.hardware.cost_model import search_cost_model

    cost_model = search_cost_model(args.execution, args.runtime)  # the search's, same settings
    board = load_board(args.board)  # a wrong board name fails before reading the file
    arch = load_architecture(args.file)
    cost = cost_model(arch, board).to_dict()
    report = {"model": arch.name or args.file, "board": board.name, "execution": args.execution,
              "runtime": args.runtime, **cost,
              "fits_sram": cost["peak_sram_bytes"] <= board.sram_bytes,
              "fits_flash": cost["flash_bytes"] <= board.flash_bytes,
              "fits_flash_deployed": cost["deployed_flash_bytes"] <= board.flash_bytes}
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    print(f"{report['model']} on {board.name} ({board.core}, {board.clock_mhz:g} MHz, "
          f"{format_bytes(board.sram_bytes)} SRAM, {format_bytes(board.flash_bytes)} flash)")
    rows = [("params", f"{cost['params']:,}"), ("MACs", f"{cost['macs']:,}"),
            ("flash", f"{cost['flash_bytes']:,} bytes ({_share(cost['flash_bytes'], board.flash_bytes)}; "
                      f"weights, biases, scales)"),
            ("deployed", f"{cost['deployed_flash_bytes']:,} bytes of flash "
                         f"({_share(cost['deployed_flash_bytes'], board.flash_bytes)}; the generated C "
                         f"library: code and constants, estimate)"),
            ("peak SRAM", f"{cost['peak_sram_bytes']:,} bytes "
                          f"({_share(cost['peak_sram_bytes'], board.sram_bytes)}; "
                          f"{_counted(args)})"),
            ("latency", f"{cost['latency_ms']:.2f} ms (estimate)"),
            ("energy", f"{cost['energy_mj']:.3f} mJ (estimate)")]
    for label, value in rows:
        print(f"  {label:<10} {value}")
    return 0


def _counted(args: argparse.Namespace) -> str:
    return "TFLite Micro arena" if args.runtime == "tflm" else args.execution.replace("_", " ")


def _share(used: int, available: int) -> str:
    return f"{100 * used / available:.1f}% of the board's"
