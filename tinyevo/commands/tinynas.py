"""``tinyevo tinynas``: MCUNet's two-stage search (search-space optimization, then evolution on a
weight-sharing supernet) for a dataset and a board, into a folder that resumes."""
from __future__ import annotations

import argparse
import json

from tinyevo.errors import TinyevoError
from tinyevo.commands import arguments
from tinyevo.hardware.execution import DEPLOYED, check_runtime
from tinyevo.hardware.limits import BY_KEY
from tinyevo.units import format_bytes

EPILOG = """\
what it does (Lin et al. 2020, MCUNet, section 3.1):
  stage 1  for every (width, resolution) sub-space of mbv2, sample --samples models, keep those
           within the SRAM and flash limits, choose the sub-space whose fitting models have the
           highest mean MACs; the MACs CDFs are drawn in OUT/stage1_cdf.png (MCUNet Figure 3)
  stage 2  train the supernet of that sub-space (sandwich rule), evolve with the mcunet preset
           (population 100, top 20, 50 crossover + 50 mutation at p=0.1, 30 generations) scoring
           subnets by inherited weights, fine-tune the best from its inherited weights, report
           float and int8 test accuracy
  Peak SRAM is counted as the C code generator deploys the model (the first layers streamed row
  by row through line buffers, in-place kernels): it is the arena of `export --format c`.

examples:
  tinyevo tinynas --dataset digits --board stm32f746 --max-sram 16KB --out runs/tn
  tinyevo tinynas --dataset npz --data-dir mnist.npz --max-sram 64KB --max-flash 512KB \\
                  --generations 10 --population 50 --supernet-epochs 3 --out runs/tn-mnist
  tinyevo show runs/tn                         # the winner, its accuracy and cost
  tinyevo export runs/tn --out model.tflite    # the fine-tuned winner as int8 .tflite

Rerunning the same command resumes (stage 1 and the supernet are read back, the evolution replays
its store); a larger --generations extends a finished run. Sizes: 1 KB = 1024 bytes.
"""


def _floats(text: str) -> list[float]:
    return _list(text, float)


def _ints(text: str) -> list[int]:
    return _list(text, int)


def _list(text: str, kind) -> list:
    try:
        values = [kind(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one value")
    return values


def json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        raise argparse.ArgumentTypeError(f"not JSON: {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object, e.g. '{\"depths\": [1, 2]}'")
    return value


#: The limits TinyNAS takes (``TinyNASSettings`` fields, TOML keys of ``tinyevo.hardware.limits``),
#: with the example of their help.
LIMIT_EXAMPLES = {"max_sram": "64KB", "max_flash": "512KB"}
# flag -> (settings field, type, help)
FLAGS = {
    "--dataset": ("dataset", str, "digits (default, offline), mnist, fashion-mnist, cifar10, mnist1d, npz, "
                                  "imagefolder (--data-dir DIR of one folder of images per class)"),
    "--data-dir": ("data_dir", str, "folder (or .npz file for --dataset npz) with the data on disk"),
    "--board": ("board", str, "target board (tinyevo list boards); default stm32f746"),
    **{BY_KEY[key].flag: (key, str, BY_KEY[key].help(example)) for key, example in LIMIT_EXAMPLES.items()},
    "--seed": ("seed", arguments.seed, "random seed: same seed, same run (default 0)"),
    "--widths": ("widths", _floats, "stage 1 width multipliers, e.g. 0.2,0.3,0.5 (default 0.2..1.0)"),
    "--resolutions": ("resolutions", _ints, "stage 1 input resolutions, e.g. 16,28,40 (default: "
                                            "48..160, or around the data's own size when smaller)"),
    "--samples": ("samples", int, "stage 1: random models per sub-space (default 1000)"),
    "--space-options": ("space_options", json_object, "other mbv2 options as JSON, e.g. "
                                                       "'{\"depths\": [1, 2], \"kernels\": [3, 5]}'"),
    "--supernet-epochs": ("supernet_epochs", int, "supernet training epochs (default 5)"),
    "--data-fraction": ("data_fraction", float, "share of the training rows the supernet trains on"),
    "--batch-size": ("batch_size", int, "training batch size (default 64)"),
    "--population": ("population", int, "evolution population (default 100)"),
    "--generations": ("generations", int, "evolution generations after the first (default 30)"),
    "--max-seconds": ("max_seconds", float, "wall-clock limit of the evolution in seconds"),
    "--val-rows": ("val_rows", int, "validation rows each subnet is scored on (default: all)"),
    "--finetune-epochs": ("finetune_epochs", int, "fine-tuning epochs of the winner (default 5)"),
    "--finetune-models": ("finetune_models", int, "how many of the best subnets to fine-tune (default 1)"),
    "--device": ("device", str, "cpu (default), cuda or auto"),
}


def add_parser(sub) -> None:
    p = sub.add_parser("tinynas", help="MCUNet's two-stage search (TinyNAS) for a board",
                       description="TinyNAS: optimize the search space for the board's memory, then "
                                   "evolve on a weight-sharing supernet of the chosen sub-space.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="folder of the run (created; reused to resume)")
    for flag, (_, kind, text) in FLAGS.items():
        p.add_argument(flag, type=kind, help=text)
    p.add_argument("--runtime", default=DEPLOYED.runtime, metavar="{%s}" % DEPLOYED.runtime,
                   help="whose arena peak SRAM is: c only (the generated C's, streamed). TinyNAS "
                        "does not measure TFLite Micro's arena (stage 1 alone costs thousands of "
                        "models); use `tinyevo search --space mbv2 --runtime tflm` for that")
    p.add_argument("--no-progress", action="store_true", help="no progress output on stderr")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(handler=run_tinynas, resumes=True)


def settings_from_args(args: argparse.Namespace):
    from tinyevo.tinynas.job import TinyNASSettings

    given = {field: getattr(args, flag[2:].replace("-", "_")) for flag, (field, _, _) in FLAGS.items()}
    return TinyNASSettings(**{k: v for k, v in given.items() if v is not None})


def run_tinynas(args: argparse.Namespace) -> int:
    from tinyevo.tinynas.job import TinyNASJob

    check_runtime(args.runtime)
    if args.runtime != DEPLOYED.runtime:
        raise TinyevoError("tinynas bounds the generated C's arena (runtime c) and does not measure "
                           "TFLite Micro's; use `tinyevo search --space mbv2 --runtime tflm` to "
                           "search under the TFLM arena")
    summary = TinyNASJob(settings_from_args(args), args.out, progress=not args.no_progress).run()
    print(json.dumps(summary, indent=1) if args.json else summary_text(summary))
    return 0


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def summary_text(summary: dict) -> str:
    best = summary.get("best") or {}
    if not best:
        raise TinyevoError(f"{summary['run']}: the evolution found no model within the limits; "
                           f"loosen the limits or search longer")
    return (f"TinyNAS run {summary['run']}: sub-space {summary['sub_space']} (stage 1 CDFs: "
            f"{summary['cdf_plot']}); {summary['evaluated']} subnets scored on the supernet, "
            f"{summary['infeasible']} rejected by the limits\n"
            f"best: trial {best['trial']} {best['describe']}\n"
            f"  supernet accuracy {_pct(summary['supernet_accuracy'])}, fine-tuned test accuracy "
            f"{_pct(summary['test_accuracy'])} float, {_pct(summary['int8_test_accuracy'])} int8\n"
            f"  peak SRAM {format_bytes(best['peak_sram_bytes'])} (deployed arena), flash "
            f"{format_bytes(best['flash_bytes'])}, {best['macs']:,} MACs\n"
            f"export it: tinyevo export {summary['run']} --out model.tflite")
