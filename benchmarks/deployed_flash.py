"""Check (and refit): the cost model's deployed flash against the compiled library, 14 models.

    python benchmarks/deployed_flash.py [--write] [--out benchmarks/results/deployed_flash.json]

The models are those of ``benchmarks/deploy.py`` (ResNet-8, DS-CNN, four seeded samples each of
``chain``, ``mbv2`` and ``nb201`` at its MCU-sized settings). Each is generated as a C library with
random int8 weights (``tinyevo export --format c``'s default plan) and compiled for the Cortex-M4
(``tinyevo.deploy.codegen.code_size.measure_code``: ``arm-none-eabi-size`` of ``tinyevo_model.o``,
flash = text + data, split into the ``.rodata`` constants and the code). Per model: the measured
flash, code and constants, and ``Cost.deployed_flash_bytes`` (``tinyevo.hardware.deployed_flash``)
with its relative error, before and after refitting ``CODE_BYTES`` to these 14 code sizes
(``fit_code_bytes``). ``--write`` puts the refitted coefficients into
``tinyevo/hardware/deployed_flash.py``: rerun it whenever the kernels change their code. Needs the
ARM toolchain; about a minute.
"""
from __future__ import annotations

import argparse
import re
import statistics
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import log, repo_path, save_and_print_json  # noqa: E402
from deploy import EXAMPLES, SPACE_OPTIONS  # noqa: E402  (its 14 models, the same settings)

from tinyevo.deploy.codegen.code_size import HOW, measure_code  # noqa: E402
from tinyevo.hardware import deployed_flash  # noqa: E402
from tinyevo.hardware.cost import flash_bytes  # noqa: E402
from tinyevo.model_file import load_architecture  # noqa: E402
from tinyevo.spaces import create_space  # noqa: E402

SEEDS = 4
SOURCE = Path(deployed_flash.__file__)


def models() -> list[tuple[str, object]]:
    chosen = [(Path(path).stem, load_architecture(repo_path(path))) for path in EXAMPLES]
    for name, options in SPACE_OPTIONS.items():
        space = create_space(name, **options)
        chosen += [(f"{name}_seed{seed}", space.decode(space.sample(np.random.default_rng(seed))))
                   for seed in range(SEEDS)]
    return chosen


def errors(rows: list[dict], key: str) -> dict:
    relative = [abs(r[key] - r["flash_bytes"]) / r["flash_bytes"] for r in rows]
    worst = max(range(len(rows)), key=lambda i: relative[i])
    return {"median_relative_error": statistics.median(relative), "worst_relative_error": max(relative),
            "worst_model": rows[worst]["name"]}


def write_coefficients(coefficients: dict[str, float]) -> None:
    """Replace the ``CODE_BYTES = {...}`` literal of ``tinyevo/hardware/deployed_flash.py``."""
    text = SOURCE.read_text()
    items = [f'"{name}": {value}' for name, value in coefficients.items()]
    lines, line = [], "   "
    for item in items:
        if len(line) + len(item) + 2 > 100:
            lines.append(line.rstrip())
            line = "   "
        line += f" {item},"
    lines.append(line.rstrip())
    literal = "CODE_BYTES = {\n" + "\n".join(lines) + "\n}"
    new, count = re.subn(r"CODE_BYTES = \{.*?\n\}", literal, text, count=1, flags=re.S)
    if count != 1:
        raise SystemExit(f"error: no CODE_BYTES literal in {SOURCE}")
    SOURCE.write_text(new)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true",
                        help="write the refitted CODE_BYTES into tinyevo/hardware/deployed_flash.py")
    parser.add_argument("--out", default="benchmarks/results/deployed_flash.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    chosen = models()
    rows = []
    for name, arch in chosen:
        size = measure_code(arch)
        parts = deployed_flash.deployed_flash_parts(arch)
        rows.append({"name": name, "flash_bytes": size.code + size.constants, "code_bytes": size.code,
                     "constant_bytes": size.constants, "estimated_constant_bytes": parts["constants"],
                     "estimated_code_bytes": parts["code"], "deployed_flash_bytes": sum(parts.values()),
                     "weights_flash_bytes": flash_bytes(arch)})
        log(f"{name}: flash {rows[-1]['flash_bytes']:,} (code {size.code:,}), estimate "
            f"{rows[-1]['deployed_flash_bytes']:,}")
    fitted = deployed_flash.fit_code_bytes([arch for _, arch in chosen], [r["code_bytes"] for r in rows])
    for row, (_, arch) in zip(rows, chosen):
        features = deployed_flash.code_features(arch)
        row["refitted_deployed_flash_bytes"] = row["estimated_constant_bytes"] + round(
            sum(fitted[k] * v for k, v in features.items()))
    document = {"compiled": HOW, "models": len(rows), "code_bytes_in_use": dict(deployed_flash.CODE_BYTES),
                "in_use": errors(rows, "deployed_flash_bytes"), "code_bytes_refitted": fitted,
                "refitted": errors(rows, "refitted_deployed_flash_bytes"),
                "written": bool(args.write), "rows": rows}
    if args.write:
        write_coefficients(fitted)
        log(f"wrote the refitted CODE_BYTES into {SOURCE}")
    save_and_print_json(document, args.out)


if __name__ == "__main__":
    main()
