"""``tinyevo export``: write a searched model as an int8 .tflite, a float .onnx, an int8 QDQ .onnx
or a C99 library (generated code with a static memory plan)."""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from tinyevo.commands import arguments
from tinyevo.hardware.execution import DEPLOYED, LAYER_BY_LAYER, STREAMED, ExecutionModel

EPILOG = """\
examples:
  tinyevo export runs/digits --out model.tflite               # best model under the constraints
  tinyevo export runs/digits --trial 12 --format onnx --out model.onnx
  tinyevo export runs/digits --format onnx-qdq --out model_int8.onnx
  tinyevo export g.json --out g.tflite                        # random weights: a deployability check
  tinyevo export runs/digits --format c --out model_c/        # C99 library: tinyevo_model.{c,h},
                                                              # tinyevo_runtime.h, metadata.json

A run keeps the trained weights of its final Pareto-front models, so export never retrains.
The int8 model is calibrated on a seeded sample of the run's training data.
--format c writes a folder: call tinyevo_model_run(const int8_t *in, int8_t *out); the activations
live in one static arena (its size, the flash bytes and the I/O quantization are in metadata.json).
By default (--execution streamed) the first ops run row by row through small line buffers when
that shrinks the arena (MCUNetV2-style; metadata.json's "execution" says which ops); search with
`tinyevo search --execution streamed` to optimize that figure. --execution layer_by_layer keeps
whole tensors, as TFLM does.
"""


def add_parser(sub) -> None:
    p = sub.add_parser("export", help="write a searched model as .tflite, .onnx or a C library",
                       description="Quantize a model of a run (or a genome / architecture file) to "
                                   "int8 and write it for a microcontroller runtime.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", metavar="RUN_DIR|GENOME_FILE",
                   help="the --out folder of a search, or a genome / architecture JSON file")
    p.add_argument("--format", default="tflite",
                   help="tflite (int8, default), onnx (float), onnx-qdq (int8) or c (int8 C99 library)")
    p.add_argument("--out", required=True,
                   help="file to write (its folder must exist); for --format c, the library's folder")
    p.add_argument("--trial", type=int, help="trial id of the run's model to export (default: the best)")
    p.add_argument("--weights", help="trained weights (.npz state dict) for a genome / architecture file")
    p.add_argument("--seed", type=arguments.seed, default=0,
                   help="seed of the random weights and calibration of a genome file (default 0)")
    p.add_argument("--execution", default=DEPLOYED.execution, choices=(STREAMED, LAYER_BY_LAYER),
                   help="--format c: streamed (default: the first ops run row by row through line "
                        "buffers when that lowers the arena) or layer_by_layer (whole tensors)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(handler=run_export)


def run_export(args: argparse.Namespace) -> int:
    from tinyevo.export_job import export_model

    result = export_model(args.source, args.format, args.out, trial=args.trial, weights=args.weights,
                          seed=args.seed, warn=lambda line: print(line, file=sys.stderr),
                          execution=ExecutionModel.deployed(args.execution))
    print(json.dumps(asdict(result), indent=1) if args.json else summary(result))
    return 0


def _pct(value) -> str:
    return f"{100 * value:.2f}%"


def summary(result) -> str:
    """One line: what was written, how big, how accurate, how much RAM TFLM needs for it."""
    parts = [f"wrote {result.path} ({result.format}, {result.size_bytes:,} bytes)"]
    if result.trial is not None:
        parts.append(f"trial {result.trial} of {result.source}")
    if result.random_weights:
        parts.append("random weights")
    if result.test_accuracy is not None:
        parts.append(f"test accuracy {_pct(result.test_accuracy)} float")
    if result.int8_test_accuracy is not None:
        parts.append(f"{_pct(result.int8_test_accuracy)} int8")
    if result.arena_bytes is not None and result.format == "c":
        parts.append(f"static arena {result.arena_bytes:,} bytes, {result.flash_bytes:,} bytes of constants")
    elif result.arena_bytes is not None:
        parts.append(f"TFLM arena {result.arena_bytes:,} bytes")
    return ", ".join(parts)
