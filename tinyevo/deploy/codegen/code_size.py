"""The code bytes of a model's generated C library on a Cortex-M4, measured with the ARM toolchain.

    size = measure_code(arch)        # one compile of tinyevo_model.c, a few seconds
    size.code, size.constants        # .text + .data, and the .rodata of the constant arrays

The search's cost model counts the constants a model stores (``tinyevo.hardware.cost.flash_parts``),
not its code; ``tinyevo.hardware.deployed_flash`` estimates both from the architecture. Code size
depends on the architecture only (the shapes the kernels are specialized to, which layers share a
function), not on the weight values, so the int8 model compiled here has random
weights drawn from a seeded ``numpy.random.Generator`` and is calibrated on random inputs. Its
library (``generate_c``, the deployed execution of ``tinyevo export --format c``) is compiled as
``build_mcu`` compiles it (``arm-none-eabi-gcc -mcpu=cortex-m4 -mthumb -mfloat-abi=soft -O2``) and
``arm-none-eabi-size`` of ``tinyevo_model.o`` gives flash (text + data); the ``static const``
arrays (weights, biases, scales as the generator lays them out) are its ``.rodata``, so the code is
flash minus ``.rodata``: the functions, with their literal pools and alignment padding.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tinyevo.arch import Architecture
from tinyevo.deploy.codegen.emit import SOURCE, generate_c
from tinyevo.deploy.codegen.mcu import (CC, CFLAGS, require_toolchain, compile_flags, compile_model,
                                        constant_bytes, section_sizes, target_flags)
from tinyevo.deploy.quantize import quantize
from tinyevo.deploy.quantized_model import QuantizedModel
from tinyevo.nn.build import build, randomize_batch_norms

CALIBRATION_COUNT = 4
HOW = f"{CC} {' '.join([*target_flags([]), *CFLAGS])} -c tinyevo_model.c"


@dataclass(frozen=True)
class CodeSize:
    """Flash of the generated library's object, split into code and constants."""

    code: int  # text + data - .rodata: functions, literal pools, padding, initialized data
    constants: int  # .rodata: the constant arrays as the generator lays them out
    how: str = HOW


def random_quantized_model(arch: Architecture, rng: np.random.Generator,
                           calibration_count: int = CALIBRATION_COUNT) -> QuantizedModel:
    """The int8 model of ``arch`` with weights and batch norms drawn from ``rng``, calibrated on
    ``calibration_count`` random inputs (float NCHW)."""
    module = build(arch).eval()
    with torch.no_grad():
        for name, parameter in module.named_parameters():
            fan_in = max(1, int(np.prod(parameter.shape[1:]))) if parameter.dim() > 1 else 1
            values = rng.uniform(-1.0, 1.0, parameter.shape) / np.sqrt(fan_in)
            parameter.copy_(torch.as_tensor(values, dtype=parameter.dtype))
    randomize_batch_norms(module, rng)
    h, w, c = arch.input_shape
    calibration = rng.normal(size=(calibration_count, c, h, w)).astype(np.float32)
    return quantize(arch, module, calibration)


def measure_code(arch: Architecture, seed: int = 0) -> CodeSize:
    """Compile the generated library of ``arch`` (random int8 weights from ``seed``) for the
    Cortex-M4 and split its flash into code and constants. Needs the ARM toolchain."""
    require_toolchain()
    qmodel = random_quantized_model(arch, np.random.default_rng(seed))
    with tempfile.TemporaryDirectory(prefix="tinyevo-code-") as folder:
        out = Path(folder)
        generate_c(qmodel, out)
        model_object = compile_model(out / SOURCE, out / "tinyevo_model.o", compile_flags(out))
        constants = constant_bytes(model_object)
        return CodeSize(section_sizes(model_object).flash - constants, constants)
