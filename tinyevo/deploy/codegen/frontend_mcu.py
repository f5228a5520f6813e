"""The generated front-end on the emulated Cortex-M4 (``tinyevo.deploy.codegen.mcu``): its
instructions per clip, its outputs, and the sizes of its code and data.

    run = run_frontend_mcu(frontend, pcm, input_scale, input_zero_point, "build/")
    run.instructions, run.inputs, run.sizes.flash

The front-end is float32, so by default it is built for the Cortex-M4F's single-precision FPU
(``-mfloat-abi=hard -mfpu=fpv4-sp-d16``, newlib's hard-float libm for ``logf`` and ``lrintf``);
``fpu=False`` builds it soft-float (every float operation a library call), as on a Cortex-M4
without FPU. The clip (int16) is linked into the image as the harness's input bytes; the count is
of ``tinyevo_model_run``, which copies the clip and runs ``tinyevo_frontend_run``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinyevo.audio.frontend import FrontEnd
from tinyevo.deploy.codegen.frontend_c import render_frontend
from tinyevo.deploy.codegen.kernels import template
from tinyevo.deploy.codegen.mcu import SectionSizes, build_mcu, run_mcu

FPU_FLAGS = ["-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"]


@dataclass
class FrontEndMcuRun:
    instructions: list[int]  # per clip
    inputs: np.ndarray  # int8 (N, frames, coefficients, 1): the model inputs it wrote
    sizes: SectionSizes  # the front-end's object (code + tables, static buffers + the clip copy)


def write_harness_library(frontend: FrontEnd, input_scale: float, input_zero_point: int, folder: Path) -> Path:
    """The front-end's C files plus the harness's ``tinyevo_model.{c,h}`` and ``metadata.json``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in render_frontend(frontend, input_scale, input_zero_point).items():
        (folder / name).write_text(text)
    clip_bytes, feature_bytes = 2 * frontend.clip_samples, frontend.frames * frontend.coefficients
    (folder / "tinyevo_model.h").write_text(
        "#include <stdint.h>\n"
        f"#define TINYEVO_INPUT_BYTES {clip_bytes}\n#define TINYEVO_OUTPUT_BYTES {feature_bytes}\n"
        "int tinyevo_model_run(const int8_t *input, int8_t *output);\n")
    (folder / "tinyevo_model.c").write_text(template("frontend_mcu.c").template)
    (folder / "metadata.json").write_text(json.dumps({
        "input": {"bytes": clip_bytes, "shape": [1, frontend.clip_samples]},
        "output": {"shape": [1, *frontend.output_shape]}, "op_order": []}))
    return folder


def run_frontend_mcu(frontend: FrontEnd, pcm: np.ndarray, input_scale: float, input_zero_point: int,
                     folder: str | Path, fpu: bool = True) -> FrontEndMcuRun:
    """Build the front-end for the Cortex-M4(F), run ``pcm`` (int16 (N, samples)) on QEMU."""
    library = write_harness_library(frontend, input_scale, input_zero_point, Path(folder))
    clips = np.ascontiguousarray(np.asarray(pcm, dtype=np.int16).reshape(-1, frontend.clip_samples))
    image = build_mcu(library, clips.view(np.int8).reshape(len(clips), -1, 1, 1),
                      extra_cflags=FPU_FLAGS if fpu else [], libraries=["-lm"])
    run = run_mcu(image)
    return FrontEndMcuRun(run.instructions, run.outputs, image.model_sizes)
