"""Float against int8 test accuracy of one architecture, trained on an .npz dataset (issue #6).

Trains a genome of a space (default: the best chain of ``benchmarks/mnist_constrained.py``) with the
training estimator on all training rows, then quantizes it as ``tinyevo export`` does (batch norm
folded, per-channel int8 weights, activations calibrated on a seeded sample of training rows) and
measures the test accuracy of tinyevo's int8 reference executor, which matches TFLM bit for bit.
Prints one JSON document: float and int8 test accuracy and their difference in percentage points.

    python benchmarks/int8_accuracy.py --genome mp2-flat-f16 --epochs 10
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from tinyevo.data import load_dataset
from tinyevo.estimate.training import TrainingEstimator
from tinyevo.hardware import estimate_cost, load_board
from tinyevo.runs.int8 import int8_accuracy, quantize_trained
from tinyevo.spaces import create_space

ROOT = Path(__file__).resolve().parent.parent


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--genome", required=True, help="genome string of the space (as in the logs)")
    parser.add_argument("--space", default="chain", help="search space (default: %(default)s)")
    parser.add_argument("--space-options", default="{}", help="JSON options of the space")
    parser.add_argument("--data", default=str(ROOT.parent / "shared/datasets/mnist70k.npz"),
                        help="an .npz with x and y (default: %(default)s)")
    parser.add_argument("--test-size", type=int, default=10_000, help="test rows (default 10000)")
    parser.add_argument("--epochs", type=int, default=10, help="training epochs (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="seed of training and calibration")
    parser.add_argument("--board", default="stm32f746", help="board for the cost figures")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)

    data = load_dataset("npz", path=args.data, seed=0, test_size=args.test_size)
    space = create_space(args.space, input_shape=data.input_shape, num_classes=data.num_classes,
                         **json.loads(args.space_options))
    architecture = space.decode(space.parse(args.genome))
    start = time.perf_counter()
    estimator = TrainingEstimator(dataset=data, epochs=args.epochs, seed=args.seed)
    trained = estimator.fit(architecture)
    float_accuracy = estimator.accuracy(trained, "test")
    qmodel = quantize_trained(trained.architecture, trained.module, data, args.seed)
    quantized = int8_accuracy(qmodel, data, trained.architecture, "test")
    cost = estimate_cost(architecture, load_board(args.board)).to_dict()
    print(json.dumps({
        "genome": args.genome, "space": args.space, "epochs": args.epochs, "seed": args.seed,
        "float_test_accuracy": float_accuracy, "int8_test_accuracy": quantized,
        "difference_pp": round(100 * (float_accuracy - quantized), 3),
        "peak_sram_bytes": cost["peak_sram_bytes"], "flash_bytes": cost["flash_bytes"],
        "seconds": round(time.perf_counter() - start, 1)}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
