"""Benchmark: TinyNAS (MCUNet's two-stage search) on MNIST for two SRAM budgets, against random
search of the unoptimized space, regularized evolution with the training estimator, and
hand-designed networks scaled to fit.

    python benchmarks/tinynas.py [--quick] [--data PATH] [--budgets 16KB,64KB] [--device cpu]
                                 [--results-dir benchmarks/results] > benchmarks/results/tinynas.json

Data: ``../shared/datasets/mnist70k.npz`` split with seed ``SPLIT_SEED`` into ``--train-rows``
(of which 10 % validation) and ``--test-rows`` test rows (subsets, for 2 shared CPU cores).

For each budget (peak SRAM <= LABEL, flash <= the board's 1 MB; peak SRAM counted as the C code
generator deploys the model, ``tinyevo.tinynas.deployed_cost``, for every method):

- ``tinynas``: ``TinyNASJob``: stage 1 over the (width x resolution) grid (``--samples`` models per
  sub-space, MACs CDF plot saved), the chosen sub-space's supernet (``--supernet-epochs``), the
  ``mcunet`` evolution (``--population`` x ``--generations``), the winner fine-tuned from inherited
  weights for ``--final-epochs``;
- ``random_unoptimized``: random search of the whole unoptimized space (every width and resolution
  of the grid together), each candidate trained by the training estimator (``--search-epochs`` on
  ``--search-fraction`` of the training rows), for the same wall time as TinyNAS's search (stage 1 +
  supernet + evolution); the best by validation accuracy retrained for ``--final-epochs``;
- ``regularized``: regularized evolution, same space, estimator and wall time;
- ``mobilenetv2``: the original MobileNetV2 (depths 2,3,4,3,3, k3, e6) at the largest width and
  resolution of the grid that fit; ``ds_cnn``: a DS-CNN-style net (3x3 stride-2 conv, four
  depthwise-separable blocks, MLPerf Tiny's KWS model shape) with the most channels that fit;
  both trained from scratch for ``--final-epochs``.

Every final model: float ``test_accuracy`` and ``int8_test_accuracy`` (the int8 reference executor);
``seconds`` is the method's wall time, search and final training included.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from common import log, print_json, quick_path, repo_path
from tinyevo.arch import GraphBuilder
from tinyevo.errors import TinyevoError
from tinyevo.estimate import EvalContext
from tinyevo.estimate.training import TrainingEstimator
from tinyevo.hardware import load_board
from tinyevo.run import Budget, Constraints, Runner
from tinyevo.runs.int8 import int8_record
from tinyevo.strategies import create_strategy
from tinyevo.spaces.mbv2 import MobileNetV2Space
from tinyevo.tinynas.cost import deployed_cost
from tinyevo.tinynas.job import TinyNASJob, TinyNASSettings
from tinyevo.units import parse_bytes

DEFAULT_DATA = "../shared/datasets/mnist70k.npz"
SPLIT_SEED = 0
BOARD = "stm32f746"
ORIGINAL_MOBILENETV2 = {"depth": [2, 3, 4, 3, 3], "kernel": 3, "expand": 6}


def settings_of(args) -> dict:
    quick = args.quick
    pick = (lambda q, full: q if quick else full)
    return {
        "train_rows": args.train_rows or pick(300, 6000), "test_rows": args.test_rows or pick(200, 2000),
        "widths": args.widths or pick([0.2, 0.3], [0.2, 0.3, 0.4, 0.5]),
        "resolutions": args.resolutions or pick([12, 16], [16, 20, 28, 36]),
        "space_options": pick(dict(depths=[1, 2], kernels=[3, 5], expands=[3, 6], feature_mix_layer=False),
                              dict(depths=[1, 2], kernels=[3, 5], expands=[3, 6]))
        if not args.full_space else {},
        "samples": args.samples or pick(3, 50), "supernet_epochs": args.supernet_epochs or pick(1, 3),
        "population": args.population or pick(4, 20), "generations": args.generations or pick(1, 4),
        "val_rows": args.val_rows or pick(100, 300), "calibration_batches": 2, "final_epochs": args.final_epochs or pick(1, 2),
        "search_epochs": 1, "search_fraction": pick(1.0, 0.5), "batch_size": 64, "seed": args.seed,
        "device": args.device, "board": BOARD, "torch_threads": torch.get_num_threads(),
    }


def subset_npz(path: Path, train_rows: int, test_rows: int, folder: Path) -> Path:
    """The seeded subset as an .npz with its own test split (x_test, y_test)."""
    with np.load(path, allow_pickle=False) as data:
        x, y = data["x"], data["y"]
    order = np.random.default_rng(SPLIT_SEED).permutation(len(y))
    train, test = order[:train_rows], order[train_rows:train_rows + test_rows]
    out = folder / "mnist_subset.npz"
    np.savez(out, x=x[train], y=y[train], x_test=x[test], y_test=y[test])
    return out


def record(arch, trained, estimator, data, seed, seconds, **extra) -> dict:
    cost = deployed_cost(arch, BOARD)
    return {"test_accuracy": estimator.accuracy(trained, "test"),
            **int8_record(trained.architecture, trained.module, data, seed),
            "peak_sram_bytes": cost["peak_sram_bytes"], "flash_bytes": cost["flash_bytes"],
            "macs": cost["macs"], "seconds": round(seconds, 1), "architecture": arch.name, **extra}


def trainer(npz: Path, s: dict, epochs: int, fraction: float = 1.0) -> TrainingEstimator:
    return TrainingEstimator(dataset="npz", data_dir=str(npz), dataset_seed=s["seed"], epochs=epochs,
                             batch_size=s["batch_size"], data_fraction=fraction, seed=s["seed"],
                             device=s["device"])


def final_training(arch, genome, npz: Path, s: dict, started: float, **extra) -> dict:
    estimator = trainer(npz, s, s["final_epochs"])
    trained = estimator.fit(arch, EvalContext(genome=genome, seed=s["seed"]))
    return record(arch, trained, estimator, estimator.data(), s["seed"], time.perf_counter() - started,
                  **extra)


# --- the methods ---------------------------------------------------------------------------------
def run_tinynas(npz: Path, limit: int, s: dict, work: Path, plot: Path) -> tuple[dict, float]:
    started = time.perf_counter()
    settings = TinyNASSettings(dataset="npz", data_dir=str(npz), board=BOARD, max_sram=limit,
                               seed=s["seed"], widths=s["widths"], resolutions=s["resolutions"],
                               space_options=s["space_options"], samples=s["samples"],
                               supernet_epochs=s["supernet_epochs"], batch_size=s["batch_size"],
                               population=s["population"], generations=s["generations"],
                               val_rows=s["val_rows"], calibration_batches=s["calibration_batches"],
                               finetune_epochs=s["final_epochs"],
                               device=s["device"])
    summary = TinyNASJob(settings, work, progress=True).run()
    shutil.copyfile(summary["cdf_plot"], plot)
    shutil.copyfile(work / "stage1.json", plot.with_suffix(".json"))  # the data behind the plot
    seconds = summary["seconds"]
    search_seconds = seconds["stage1"] + seconds["supernet"] + seconds["evolution"]
    best = summary["best"]
    return {"test_accuracy": summary["test_accuracy"], "int8_test_accuracy": summary["int8_test_accuracy"],
            "peak_sram_bytes": best["peak_sram_bytes"], "flash_bytes": best["flash_bytes"],
            "macs": best["macs"], "seconds": round(time.perf_counter() - started, 1),
            "search_seconds": round(search_seconds, 1), "architecture": best["describe"],
            "sub_space": summary["sub_space"], "supernet_accuracy": summary["supernet_accuracy"],
            "subnets_scored": summary["evaluated"], "stage_seconds": seconds,
            "cdf_plot": str(plot)}, search_seconds


def whole_space(s: dict, data) -> MobileNetV2Space:
    return MobileNetV2Space(input_shape=data.input_shape, num_classes=data.num_classes,
                            widths=s["widths"], resolutions=s["resolutions"], **s["space_options"])


def run_search(strategy: str, npz: Path, limit: int, s: dict, seconds: float) -> dict:
    """Random search or regularized evolution with the training estimator for ``seconds``."""
    started = time.perf_counter()
    estimator = trainer(npz, s, s["search_epochs"], s["search_fraction"])
    space = whole_space(s, estimator.data())
    options = {} if strategy == "random" else dict(population_size=max(2, s["population"] // 2),
                                                    tournament_size=max(2, s["population"] // 8))
    runner = Runner(space, create_strategy(strategy, space, seed=s["seed"], **options), estimator,
                    budget=Budget(seconds=seconds), constraints=limits(limit), board=BOARD,
                    progress=False, cost_model=deployed_cost)
    trials = runner.run()
    done = [t for t in trials if t.status == "ok"]
    best = max(done, key=lambda t: (t.metrics["accuracy"], -t.id))
    arch = space.decode(best.genome)
    arch.name = space.describe(best.genome)
    return final_training(arch, best.genome, npz, s, started, candidates_trained=runner.evaluated,
                          rejected_by_limits=sum(t.status == "infeasible" for t in trials),
                          search_val_accuracy=best.metrics["accuracy"])


def limits(limit: int) -> Constraints:
    return Constraints(max_peak_sram_bytes=limit, max_flash_bytes=load_board(BOARD).flash_bytes)


def run_mobilenetv2(npz: Path, limit: int, s: dict) -> dict:
    """The original MobileNetV2 at the (width, resolution) of most MACs in the grid that fits."""
    started = time.perf_counter()
    data = trainer(npz, s, 1).data()
    space = MobileNetV2Space(input_shape=data.input_shape, num_classes=data.num_classes,
                             widths=s["widths"], resolutions=s["resolutions"])
    fitting = []
    for width in s["widths"]:
        for resolution in s["resolutions"]:
            slots = len(space.dimensions()) - 7
            genome = {"resolution": resolution, "width": width, "depth": ORIGINAL_MOBILENETV2["depth"],
                      "kernel": [3] * (slots // 2), "expand": [6] * (slots // 2)}
            arch = space.decode(genome)
            cost = deployed_cost(arch, BOARD)
            if limits(limit).violation(cost) == 0:
                fitting.append((cost["macs"], width, resolution, genome, arch))
    if not fitting:
        return {"error": "no width and resolution of the grid fits"}
    _, width, resolution, genome, arch = max(fitting, key=lambda f: f[:3])
    arch.name = f"MobileNetV2 w{width:g} r{resolution}"
    return final_training(arch, genome, npz, s, started)


def ds_cnn(input_shape, num_classes: int, channels: int):
    """DS-CNN style (MLPerf Tiny KWS shape): 3x3 stride-2 conv, four depthwise-separable blocks."""
    g = GraphBuilder(tuple(input_shape), name=f"DS-CNN c{channels}")
    x = g.conv_bn_act(g.input, channels, kernel=3, stride=2)
    for _ in range(4):
        x = g.depthwise_separable(x, channels, kernel=3)
    return g.build(g.dense(g.flatten(g.global_avg_pool(x)), num_classes))


def run_ds_cnn(npz: Path, limit: int, s: dict) -> dict:
    started = time.perf_counter()
    data = trainer(npz, s, 1).data()
    fitting = [c for c in range(8, 257, 8)
               if limits(limit).violation(deployed_cost(ds_cnn(data.input_shape, data.num_classes, c), BOARD)) == 0]
    if not fitting:
        return {"error": "no channel count fits"}
    arch = ds_cnn(data.input_shape, data.num_classes, max(fitting))
    return final_training(arch, None, npz, s, started)


# --- the whole benchmark -------------------------------------------------------------------------
def main(argv=None) -> int:
    try:
        return run(argv)
    except TinyevoError as error:
        print(f"tinynas benchmark: error: {error}", file=sys.stderr)
        return 2


def run(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a reduced run in under a minute")
    parser.add_argument("--data", default=DEFAULT_DATA, help="an .npz with arrays x and y (MNIST)")
    parser.add_argument("--budgets", help="peak SRAM limits, comma-separated (default 16KB,64KB; "
                                           "16KB with --quick)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-rows", type=int)
    parser.add_argument("--test-rows", type=int)
    parser.add_argument("--widths", type=lambda t: [float(v) for v in t.split(",")])
    parser.add_argument("--resolutions", type=lambda t: [int(v) for v in t.split(",")])
    parser.add_argument("--full-space", action="store_true", help="mbv2's full depths, kernels, expands")
    parser.add_argument("--samples", type=int, help="stage 1 models per sub-space")
    parser.add_argument("--supernet-epochs", type=int)
    parser.add_argument("--population", type=int)
    parser.add_argument("--generations", type=int)
    parser.add_argument("--final-epochs", type=int)
    parser.add_argument("--val-rows", type=int, help="validation rows each subnet is scored on")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--results-dir", help="where the CDF plots go (default benchmarks/results; with "
                                                 "--quick a temporary folder)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    data_path = repo_path(args.data)
    if not data_path.is_file():
        print(f"tinynas benchmark: error: {data_path}: no such data file; pass --data", file=sys.stderr)
        return 2
    s = settings_of(args)
    budgets = args.budgets or ("16KB" if args.quick else "16KB,64KB")
    results_dir = (repo_path(args.results_dir) if args.results_dir
                   else quick_path("") if args.quick else repo_path("benchmarks/results"))
    results_dir.mkdir(parents=True, exist_ok=True)
    document = {"benchmark": "tinynas", "data": str(args.data), "split_seed": SPLIT_SEED,
                "quick": args.quick, "settings": s, "budgets": {}, "plots": {}}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tinynas-bench-") as folder:
        npz = subset_npz(data_path, s["train_rows"], s["test_rows"], Path(folder))
        for label in budgets.split(","):
            limit = parse_bytes(label)
            suffix = "_quick" if args.quick else ("_" + args.device if args.device != "cpu" else "")
            plot = results_dir / f"tinynas_cdf_{label}{suffix}.png"
            log(f"budget {label}: TinyNAS")
            methods = {}
            methods["tinynas"], search_seconds = run_tinynas(npz, limit, s, Path(folder) / label, plot)
            for name in ("random_unoptimized", "regularized"):
                log(f"budget {label}: {name} for {search_seconds:.0f} s")
                methods[name] = run_search("random" if name == "random_unoptimized" else name, npz,
                                           limit, s, search_seconds)
            log(f"budget {label}: hand-designed references")
            methods["mobilenetv2"] = run_mobilenetv2(npz, limit, s)
            methods["ds_cnn"] = run_ds_cnn(npz, limit, s)
            document["budgets"][label] = methods
            document["plots"][label] = str(plot)
    document["total_seconds"] = round(time.perf_counter() - started, 1)
    print_json(document)
    return 0


if __name__ == "__main__":
    sys.exit(main())
