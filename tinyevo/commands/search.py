"""``tinyevo search`` and ``tinyevo show``: run a search into a folder, then read its results."""
from __future__ import annotations

import argparse
import json

from tinyevo.commands import arguments
from tinyevo.commands.report import report_hint
from tinyevo.commands.tinynas import json_object
from tinyevo.config import CHOICES, SearchConfig, load_config, merge
from tinyevo.hardware.execution import SEARCHED
from tinyevo.hardware.limits import BY_METRIC, LIMITS
from tinyevo.strategies.base import DEFAULT_STRATEGY

EPILOG = """\
examples:
  tinyevo search --dataset digits --board stm32f746 --budget 20 --out runs/digits
  tinyevo search --space chain --dataset mnist --data-dir ~/data/mnist --max-sram 64KB \\
                 --max-flash 256KB --max-latency 50ms --strategy nsga2 --out runs/mnist
  tinyevo search --config search.toml --out runs/x     # flags override the file
  tinyevo search --execution streamed --max-sram 16KB --out runs/streamed   # then export --format c
  tinyevo search --runtime tflm --max-sram 64KB --out runs/tflm   # then export (a .tflite for TFLM)
  tinyevo show runs/digits --json

Rerunning the same command resumes the run in --out; a larger --budget extends a finished one
(the space, strategy, board, constraints, --execution and --runtime of a run cannot change).
SRAM and flash limits default to the board's own. Sizes: 1 KB = 1024 bytes.
"""

# flag -> (config field, type, help)
FLAGS = {
    "--space": ("space", str, "search space (tinyevo list spaces); default chain"),
    "--dataset": ("dataset", str, "digits (default, offline), mnist1d, mnist, fashion-mnist, cifar10, npz, "
                                  "imagefolder (your images: --data-dir DIR with DIR/<class>/*.jpg, or "
                                  "DIR/train/<class>/ and DIR/test/<class>/), wavfolder (WAV clips as MFCC "
                                  "maps: --data-dir DIR with DIR/<class>/*.wav, or files named "
                                  "<label>_<speaker>_<n>.wav as in the Free Spoken Digit Dataset); "
                                  "loader options in the TOML file's [dataset_options]"),
    "--data-dir": ("data_dir", str, "folder (or .npz file for --dataset npz) with the data already on disk"),
    "--board": ("board", str, "target board (tinyevo list boards); default stm32f746"),
    "--execution": ("execution", str, "how peak SRAM is counted. layer_by_layer (default): whole tensors, "
                                      "op after op, as uNAS counts them. streamed: the first, "
                                      "high-resolution layers run row by row through small line buffers "
                                      "(MCUNetV2), with in-place kernels, as `tinyevo export --format c` "
                                      "deploys them: peak SRAM is the arena the generated C declares, "
                                      "smaller wherever the first layers set the peak, so --max-sram "
                                      "admits larger models"),
    "--runtime": ("runtime", str, "whose arena peak SRAM is: c (default) counts the activations as "
                                  "--execution says (the generated C's arena); tflm measures the "
                                  "tensor arena TFLite Micro needs for the exported .tflite (the "
                                  "smallest it allocates the model in: its planner's offsets, its own "
                                  "tensors and op data, the kernels' temporary memory, alignment), so "
                                  "--max-sram bounds the arena the .tflite is flashed with. Needs the "
                                  "tflite-micro package; layer by layer only"),
    "--strategy": ("strategy", str, f"search strategy (tinyevo list strategies), or darts "
                                  f"(gradient-based, nb201 space); default {DEFAULT_STRATEGY}"),
    "--strategy-options": ("strategy_options", json_object, "the strategy's options as JSON, e.g. "
                                                            "'{\"remedy\": \"shrink\", \"epochs\": 20}' "
                                                            "for --strategy darts (see the README)"),
    "--estimator": ("estimator", str, "performance estimator (tinyevo list estimators): training (default), "
                                      "learning_curve (training that stops candidates unlikely to beat the "
                                      "best or reach the Pareto front; give --epochs 10 or more), "
                                      "inheritance (children start from their parent's weights)"),
    "--budget": ("budget", int, "number of candidates to train (default 30)"),
    "--max-seconds": ("max_seconds", float, "wall-clock budget in seconds"),
    "--eval-timeout": ("eval_timeout", str, "wall-time limit of one evaluation: auto (default: 20x the "
                                            "run's median evaluation time, at least 60 s, at most 2 h), "
                                            "none, or seconds (600, 90s, 15min); a candidate over it is "
                                            "recorded failed"),
    "--seed": ("seed", arguments.seed, "random seed: same seed, same run (default 0)"),
    **{limit.flag: (f"constraints.{limit.key}", str, limit.help()) for limit in LIMITS},
    "--epochs": ("fidelity.epochs", int, "training epochs per candidate during the search (default 3)"),
    "--data-fraction": ("fidelity.data_fraction", float, "share of the training data per candidate"),
    "--resolution": ("fidelity.resolution", float, "input scale during the search, e.g. 0.5"),
    "--width-scale": ("fidelity.width_scale", float, "channel scale during the search, e.g. 0.5"),
    "--augment": ("estimator_options.augment", str, "random crops and flips of the training batches, "
                                                    "e.g. crop+flip (CIFAR: pad 4, crop, mirror half), "
                                                    "crop2, flip; audio feature maps: shiftN (time roll), "
                                                    "tmaskN, fmaskN (SpecAugment masks); default none"),
    "--final-epochs": ("final_epochs", int, "epochs of the final training of front models (default 10)"),
    "--final-models": ("final_models", int, "how many front models get final training (default 5)"),
    "--executor": ("executor.kind", str, "serial (default), process or ray"),
    "--workers": ("executor.workers", int, "parallel evaluations for --executor process"),
    "--ray-address": ("executor.address", str, "Ray cluster to use, e.g. auto or ray://head:10001"),
}


def add_parser(sub) -> None:
    p = sub.add_parser("search", help="search architectures that fit a board",
                       description="Search the most accurate architectures that fit a board's SRAM, "
                                   "flash and latency limits, and keep the Pareto front.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="TOML file with the settings (see tinyevo/config.py)")
    p.add_argument("--out", required=True, help="folder of the run (created; reused to resume)")
    p.add_argument("--objectives", help="comma-separated, e.g. accuracy,peak_sram_bytes (default) "
                                        "or accuracy,latency_ms; accuracy is maximized, the rest minimized")
    for flag, (field, kind, text) in FLAGS.items():
        choices = CHOICES.get(field)  # checked with the config (one-line error), listed here
        p.add_argument(flag, type=kind, help=text, metavar="{%s}" % ",".join(choices) if choices else None)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--measure-finalists", action="store_true",
                   help="run the final models on the emulated core of the board (QEMU, needs the ARM "
                        "toolchain) and keep their measured instructions, cycles (one per "
                        "instruction, or the board calibration's factor) and latency beside the "
                        "predicted latency; tinyevo show prints both")
    p.set_defaults(handler=run_search, resumes=True)

    p = sub.add_parser("show", help="the Pareto front and best model of a search",
                       description="Print the Pareto front of a run and its best model under the "
                                   "constraints, with validation and test accuracy and cost.")
    p.add_argument("run_dir", help="the --out folder of a search")
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    p.add_argument("--all", action="store_true", help="also list every trial with its status (ok, "
                                                      "infeasible, failed: with its error); JSON: \"all\"")
    p.set_defaults(handler=run_show)


def config_from_args(args: argparse.Namespace) -> SearchConfig:
    config = load_config(args.config) if args.config else SearchConfig()
    overrides = {field: getattr(args, flag[2:].replace("-", "_")) for flag, (field, _, _) in FLAGS.items()}
    if args.objectives:
        overrides["objectives"] = [o.strip() for o in args.objectives.split(",") if o.strip()]
    return merge(config, overrides)


def run_search(args: argparse.Namespace) -> int:
    from tinyevo.deploy.codegen import mcu
    from tinyevo.pipeline import SearchJob
    from tinyevo.runs.measure import measure_finalists
    from tinyevo.runs.results import write_results

    job = SearchJob.create(config_from_args(args), args.out)
    if args.measure_finalists:  # before the search, not after it
        from tinyevo.runs.measure import finalist_core
        finalist_core(job.board)  # a board whose core has an emulator, or one clear error
        mcu.require_toolchain()
    job.run(progress=not args.no_progress)
    if args.measure_finalists:
        measure_finalists(job.out_dir, progress=lambda line: print(line, flush=True))
    print_results(write_results(job.out_dir))
    return 0


def run_show(args: argparse.Namespace) -> int:
    from tinyevo.runs.results import load_results

    results = load_results(args.run_dir, every_trial=args.all)
    if args.json:
        print(json.dumps(results, indent=1))
    else:
        print_results(results)
        print(report_hint(args.run_dir))
    return 0


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def _figure(row: dict, metric: str) -> str:
    """A limited figure of a row in its unit (``tinyevo.hardware.limits``); - when it has none (a
    trial that failed before it was costed)."""
    limit = BY_METRIC[metric.replace("frontend_ram", "peak_sram").replace("frontend_", "")]
    return "-" if row.get(metric) is None else limit.format(row[metric])


def print_rows(rows: list[dict], status: bool = False) -> None:
    """Trials as a table under a header; ``status`` adds a column for it (ok, infeasible, failed)."""
    first = f"{'status':<10}  " if status else ""
    print(f"  {'trial':>5}  {first}{'search':>8}  {'val acc':>8}  {'test acc':>8}  {'int8 acc':>8}  "
          f"{'params':>9}  {'MACs':>11}  {'flash':>9}  {'peak SRAM':>9}  {'latency':>9}  architecture")
    for row in rows:
        first = f"{row['status']:<10}  " if status else ""
        error = f"  ({row['error']})" if row.get("error") else ""
        print(f"  {row['trial']:>5}  {first}{_pct(row['val_accuracy']):>8}  "
              f"{_pct(row.get('final_val_accuracy')):>8}  {_pct(row.get('test_accuracy')):>8}  "
              f"{_pct(row.get('int8_test_accuracy')):>8}  {_count(row.get('params')):>9}  "
              f"{_figure(row, 'macs'):>11}  {_figure(row, 'flash_bytes'):>9}  "
              f"{_figure(row, 'peak_sram_bytes'):>9}  {_figure(row, 'latency_ms'):>9}  {row['describe']}{error}")


def _count(value) -> str:
    return "-" if value is None else f"{value:,}"


def no_front(results: dict) -> str:
    """Why a run has no Pareto front yet."""
    if not results["evaluated"] and not results["trials"]:
        return "no trial has been evaluated yet"
    if results["failed"] and results["failed"] == results["trials"] - results["infeasible"]:
        return "no model: every evaluated trial failed (why: above)"
    return "no model fits the constraints yet"


def print_measured(rows: list[dict]) -> None:
    """Predicted vs emulator-measured latency of the models ``--measure-finalists`` ran, and the RAM
    each took there: the library's static RAM (arena included) plus its measured stack (``-`` for a
    record measured before the harness counted the stack)."""
    measured = [row for row in rows if row.get("measured")]
    if not measured:
        return
    print("measured on the emulated core (QEMU instruction count; cycles = instructions x "
          "cycles_per_instruction):")
    print(f"  {'trial':>5}  {'core':<10}  {'instructions':>12}  {'cycles':>12}  {'measured':>9}  "
          f"{'predicted':>9}  {'pred. cycles':>12}  {'stack B':>8}  {'RAM B':>9}")
    for row in measured:
        m = row["measured"]
        predicted = "-" if m.get("predicted_latency_ms") is None else f"{m['predicted_latency_ms']:.3f}ms"
        cycles = "-" if m.get("predicted_cycles") is None else f"{m['predicted_cycles']:,.0f}"
        stack, ram = ("-" if m.get(key) is None else f"{m[key]:,}" for key in ("stack_bytes", "ram_bytes"))
        print(f"  {row['trial']:>5}  {m['core']:<10}  {m['instructions']:>12,}  {m['cycles']:>12,.0f}  "
              f"{m['latency_ms']:>7.3f}ms  {predicted:>9}  {cycles:>12}  {stack:>8}  {ram:>9}")


def print_results(results: dict) -> None:
    peak = results.get("execution", SEARCHED.execution).replace("_", " ")
    if results.get("runtime", "c") == "tflm":
        peak = "as the TFLite Micro arena"
    print(f"run {results['run']}: {results['space']} on {results['dataset']} for {results['board']} "
          f"(peak SRAM {peak}), "
          f"{results['strategy']}; {results['evaluated']} evaluated, {results['infeasible']} rejected "
          f"by constraints, {results['failed']} failed")
    if results.get("incomplete"):
        print(f"incomplete run: {results['incomplete']}")
    for failure in results.get("failures", []):
        print(f"  trial {failure['trial']} failed: {failure['error']}")
    if not results["front"]:
        print(no_front(results))
        return
    print(f"Pareto front ({', '.join(results['objectives'])}; by the search's accuracy, which is "
          f"measured at the search fidelity; val/test/int8 are of the final training):")
    print_rows(results["front"])
    print_measured(results["front"])
    with_frontend = [row for row in results["front"] if "frontend_ram_bytes" in row]
    if with_frontend:
        row = with_frontend[0]
        print(f"SRAM, flash and MACs are network + audio front-end, the front-end run in the network's "
              f"arena (e.g. trial {row['trial']}: front-end +{_figure(row, 'frontend_ram_bytes')} peak SRAM, "
              f"{_figure(row, 'frontend_flash_bytes')} flash, {row['frontend_macs']:,} MACs)")
    if "all" in results:
        print(f"every trial ({len(results['all'])}; a failed one's error after its architecture):")
        print_rows(results["all"], status=True)
    best = results["best"]
    print(f"best model under the constraints: trial {best['trial']} "
          f"(val {_pct(best.get('final_val_accuracy', best['val_accuracy']))}, "
          f"test {_pct(best.get('test_accuracy'))}, int8 {_pct(best.get('int8_test_accuracy'))})")
