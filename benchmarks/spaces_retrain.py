"""Retrain ResNet-8 and the spaces benchmark's models with its final trainer at other epoch counts.

    python benchmarks/spaces_retrain.py [--from benchmarks/results/spaces.json] [--bound half]
        [--epochs 2 8] [--data-fraction 0.25] [--spaces dag nb201 ...] [--seed 0] [--out FILE]
        [--models SPACE=GENOME ... [--space-options JSON]]

Issue 15's question "does the gap to ResNet-8 shrink with a longer final training?": the models a
``benchmarks/spaces.py`` run chose under ``--bound`` (read from its JSON as genome strings, rebuilt
through each space's ``parse`` with the report's CIFAR settings of the space, their peak SRAM and flash checked
against the JSON's) and ResNet-8 (``examples/resnet8.json``) are each trained by the benchmark's
final trainer (``spaces.final_trainer``: same optimizer, lr, schedule, batch, crop + flip, seed) for
each of ``--epochs``. ``--data-fraction`` below 1 trains every model on the same seeded share of the
45,000 training rows (the trainer's ``data_fraction``; the validation and test splits are whole):
cheaper, and the same subset for all. Test accuracy is reported; nothing is chosen by it.

``--models`` trains hand-written models instead of a report's (e.g. ``chain=c16k3s1-c32k3s2-gap``,
``blocks=conv_c8_k3-res_c8-res_c16_s2``; each parsed by its space built with the benchmark's CIFAR
settings, ``--space-options`` over them as in ``benchmarks/spaces.py``), beside ResNet-8: what a
model of a given shape reaches under this trainer, whether or not a search found it. Each row has
the model's peak SRAM and flash as the search counts them and whether it is within ``--bound``.

Output: one JSON document on stdout, kept in ``--out`` after each training (a rerun skips the
trainings already there with the same settings).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from common import fraction, log, positive_int, print_json, repo_path, set_threads
import spaces as bench
from tinyevo.config import SearchConfig
from tinyevo.errors import TinyevoError
from tinyevo.estimate import EvalContext
from tinyevo.hardware import load_board
from tinyevo.hardware.cost_model import search_cost_model
from tinyevo.model_file import load_architecture
from tinyevo.spaces import create_space


def models_of(report: dict, bound: str, names) -> list[dict]:
    """ResNet-8 and each space's chosen model under ``bound`` (one per seed) of a spaces report."""
    models = [{"space": "resnet8", "architecture": bench.RESNET8_FILE}]
    for space, entry in report["spaces"].items():
        if names and space not in names:
            continue
        for row in entry["bounds"].get(bound, {}).get("per_seed", []):
            if row.get("status") == "ok":
                models.append({"space": space, "options": entry["options"], "architecture": row["architecture"],
                               "search_seed": row["seed"],
                               "peak_sram_bytes": row["peak_sram_bytes"], "flash_bytes": row["flash_bytes"]})
    return models


def given_models(texts: list[str], overrides: dict | None) -> list[dict]:
    """ResNet-8 and each ``SPACE=GENOME`` of ``--models``, with its space's CIFAR settings."""
    models = [{"space": "resnet8", "architecture": bench.RESNET8_FILE}]
    for text in texts:
        space, _, genome = text.partition("=")
        if not genome:
            raise ValueError(f"{text!r}: write SPACE=GENOME, e.g. chain=c16k3s1-c32k3s2-gap")
        models.append({"space": space, "options": bench.space_options(space, overrides), "architecture": genome})
    return models


def architecture_of(model: dict, cost_model, board):
    if model["space"] == "resnet8":
        return load_architecture(repo_path(bench.RESNET8_FILE))
    space = create_space(model["space"], **model["options"])  # the report's CIFAR settings
    arch = space.decode(space.parse(model["architecture"]) if hasattr(space, "parse") else model["architecture"])
    cost = cost_model(arch, board).to_dict()
    if "peak_sram_bytes" not in model:  # a given model: its figures as the search counts them
        model.update(peak_sram_bytes=cost["peak_sram_bytes"], flash_bytes=cost["flash_bytes"])
    if (cost["peak_sram_bytes"], cost["flash_bytes"]) != (model["peak_sram_bytes"], model["flash_bytes"]):
        raise SystemExit(f"{model['space']} {model['architecture']}: rebuilt at {cost['peak_sram_bytes']} B SRAM "
                         f"and {cost['flash_bytes']} B flash, not the report's {model['peak_sram_bytes']} and "
                         f"{model['flash_bytes']}")
    return arch


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="source", default="benchmarks/results/spaces.json")
    parser.add_argument("--bound", default="half")
    parser.add_argument("--epochs", type=positive_int, nargs="+", default=[2, 8])
    parser.add_argument("--data-fraction", type=fraction, default=1.0)
    parser.add_argument("--spaces", nargs="+")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", default=bench.DEFAULT_DATA)
    parser.add_argument("--out", default="runs/spaces_retrain.json")
    parser.add_argument("--models", nargs="+", metavar="SPACE=GENOME",
                        help="hand-written models to train instead of the report's")
    parser.add_argument("--space-options", type=bench.json_object, default={},
                        help="with --models: per-space CIFAR settings over the benchmark's, as in spaces.py")
    args = parser.parse_args(argv)
    set_threads(1)
    board, default = load_board(bench.BOARD), SearchConfig()
    cost_model = search_cost_model(default.execution, default.runtime)
    if args.models:
        try:
            models = given_models(args.models, args.space_options)
            archs = [architecture_of(m, cost_model, board) for m in models]
        except (TinyevoError, ValueError, TypeError) as error:  # InvalidArchitecture is a TinyevoError
            parser.error(f"--models: {error}")
    else:
        models = models_of(json.loads(repo_path(args.source).read_text()), args.bound, args.spaces)
        archs = [architecture_of(m, cost_model, board) for m in models]
    limits = bench.bounds_of(bench.reference_cost(board, default)).get(args.bound)
    for model in models:
        if limits and model["space"] != "resnet8":
            model["within_bound"] = (model["peak_sram_bytes"] <= limits["max_peak_sram_bytes"]
                                     and model["flash_bytes"] <= limits["max_flash_bytes"])
    data_dir = str(repo_path(args.data).resolve())
    out = repo_path(args.out)
    document = json.loads(out.read_text()) if out.exists() else {"rows": []}
    document.update(source="--models" if args.models else args.source, bound=args.bound,
                    data_fraction=args.data_fraction, seed=args.seed)
    for epochs in args.epochs:
        settings = dataclasses.replace(bench.Settings(), final_epochs=epochs)
        config = SearchConfig.from_dict(bench.trainer_settings(args.seed, settings, data_dir), "spaces retrain")
        trainer = dataclasses.replace(bench.final_trainer(config), data_fraction=args.data_fraction)
        for model, arch in zip(models, archs):
            done = [r for r in document["rows"] if r["space"] == model["space"] and r["architecture"] ==
                    model["architecture"] and r.get("options") == model.get("options")
                    and r["epochs"] == epochs and r["data_fraction"] == args.data_fraction]
            if done:
                continue
            start = bench.cpu_seconds()
            trained = trainer.fit(arch, EvalContext(seed=config.seed))
            row = {**model, "source": document["source"], "epochs": epochs, "data_fraction": args.data_fraction,
                   "train_rows": trained.metrics["train_rows"], "final_val_accuracy": trained.metrics["accuracy"],
                   "learning_curve": trained.metrics["learning_curve"],
                   "test_accuracy": trainer.accuracy(trained, "test"),
                   "cpu_seconds": round(bench.cpu_seconds() - start, 1)}
            log(f"{model['space']} {epochs} epochs on {row['train_rows']} rows: val {row['final_val_accuracy']:.4f} "
                f"test {row['test_accuracy']:.4f}, {row['cpu_seconds']} CPU s")
            document["rows"].append(row)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(document, indent=1))
    gaps = {}
    for row in document["rows"]:
        reference = next((r for r in document["rows"] if r["space"] == "resnet8" and r["epochs"] == row["epochs"]
                          and r["data_fraction"] == row["data_fraction"]), None)
        if reference and row["space"] != "resnet8":
            gaps.setdefault(f"{row['data_fraction']}x{row['epochs']}", {})[f"{row['space']} {row['architecture']}"] = round(
                row["test_accuracy"] - reference["test_accuracy"], 4)
    document["gap_to_resnet8"] = gaps
    out.write_text(json.dumps(document, indent=1))
    print_json(document)
    return 0


if __name__ == "__main__":
    sys.exit(main())
