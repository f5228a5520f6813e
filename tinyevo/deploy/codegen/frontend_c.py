"""The audio front-end in C: ``tinyevo_frontend.{c,h}`` from a ``tinyevo.audio.FrontEnd`` and the
model's input quantization, so firmware goes from int16 PCM to the model's int8 input.

    files = render_frontend(frontend, input_scale, input_zero_point)   # name -> text
    info = frontend_metadata(frontend, input_scale, input_zero_point)  # the metadata.json entry
    binary = build_frontend_host(out_dir)                               # host check with gcc
    features, inputs = run_frontend_host(binary, pcm, frontend)        # float32 and int8 maps

Float32 arithmetic (Cortex-M4F has a single-precision FPU): the same steps as the float64
reference (``FrontEnd.__call__``), in one buffer of ``n_fft`` floats: the real frame read as
``n_fft / 2`` complex values, a radix-2 FFT of those in place and the split into the real signal's
power spectrum in place (twiddles from one quarter-wave cosine table; half the symmetric window
stored, or none when the frame is the FFT's length: then it is a twiddle), the filterbank as one
weight per FFT bin between the mel edges plus the edges' first bins (``FrontEnd.filter_bins``)
and, for MFCC, the DCT as one quarter wave of n_mels + 1 floats (``dct_quarter_wave``). ``TOLERANCE`` is what the host test holds it to against the
reference. Entry points: ``tinyevo_frontend_features(pcm, float *features, float *scratch)`` and
``tinyevo_frontend_run(pcm, int8_t *input, float *scratch)`` (quantized as the model's input,
``np.round`` semantics through ``lrintf``); no static buffers: the caller lends the scratch
(``TINYEVO_FRONTEND_SCRATCH_FLOATS``). The model library's ``tinyevo_model_run_pcm(pcm, output)``
(``emit.render_c`` with a front-end) lends its arena beside the input tensor and has the features
written straight into that tensor (``frontend_placement``). Needs ``<math.h>`` (``logf``,
``lrintf``: link with ``-lm`` on the host).
"""
from __future__ import annotations

import os
import subprocess
import tempfile
from importlib import resources
from pathlib import Path

import numpy as np

from tinyevo.audio.frontend import LOG_OFFSET, FrontEnd
from tinyevo.deploy.codegen.host import OPTIMIZE, SANITIZE, SANITIZER_ENV, STRICT, host_compiler
from tinyevo.deploy.codegen.kernels import template
from tinyevo.errors import TinyevoError

SOURCE, HEADER = "tinyevo_frontend.c", "tinyevo_frontend.h"
ARITHMETIC = "float32"
#: The C features against the float64 reference: |c - python| <= atol + rtol * |python|; the int8
#: input may then differ by one step where a feature lies near a rounding boundary.
TOLERANCE = {"atol": 2e-3, "rtol": 1e-4, "int8_steps": 1}
VALUES_PER_LINE = 8


def float_list(values) -> str:
    """C float literals, ``VALUES_PER_LINE`` per line (9 significant digits: exact for float32)."""
    items = [c_float(v) for v in np.asarray(values, dtype=np.float64).ravel()]
    if not items:
        return "    0.0f"
    return ",\n".join("    " + ", ".join(items[i:i + VALUES_PER_LINE])
                      for i in range(0, len(items), VALUES_PER_LINE))


def c_float(value: float) -> str:
    """A C float literal of ``value``: 9 significant digits, always with a point or exponent."""
    text = f"{float(value) + 0.0:.9g}"  # + 0.0: no "-0"
    return f"{text}f" if any(c in text for c in ".en") else f"{text}.0f"


def int_list(values) -> str:
    items = [str(int(v)) for v in np.asarray(values).ravel()]
    return ",\n".join("    " + ", ".join(items[i:i + 16]) for i in range(0, len(items), 16))


def window_code(frontend: FrontEnd) -> tuple[str, str]:
    """The window table (half the symmetric periodic Hann window) and ``FE_WINDOW(i)``; no table
    when the frame is ``n_fft`` samples: then w[i] = 0.5 - 0.5 cos(2 pi i / FE_FFT), a twiddle."""
    if frontend.window_from_twiddles:
        return "", ("/* Periodic Hann window of FE_FRAME = FE_FFT samples from the twiddle table. */\n"
                    "#define FE_WINDOW(i) (0.5f - 0.5f * fe_cos((i) <= FE_HALF ? (i) : FE_FFT - (i)))\n")
    table = ("/* Periodic Hann window w[n] for n <= FE_FRAME / 2; w[FE_FRAME - n] = w[n] gives the rest. */\n"
             f"static const float fe_window[FE_FRAME / 2 + 1] = {{\n"
             f"{float_list(frontend.window[:frontend.frame_samples // 2 + 1])}\n}};\n")
    return table, "#define FE_WINDOW(i) fe_window[(i) <= FE_FRAME / 2 ? (i) : FE_FRAME - (i)]\n"


def dct_quarter_wave(frontend: FrontEnd) -> np.ndarray:
    """sqrt(2 / M) cos(pi j / 2M), j = 0 .. M (M = n_mels): a quarter wave of period 4M, from which
    every entry of the orthonormal DCT-II, sqrt(2 / M) cos(pi k (2m + 1) / 2M) (row 0 over
    sqrt(2)), folds: M + 1 floats instead of the n_mfcc x M table."""
    m = frontend.n_mels
    return np.sqrt(2.0 / m) * np.cos(np.pi * np.arange(m + 1) / (2 * m))


def coefficient_code(frontend: FrontEnd) -> tuple[str, str]:
    """The DCT's quarter-wave table (MFCC) and the body of ``fe_coefficient``."""
    if frontend.kind != "mfcc":
        return "", "    return FE_MEL(c);"
    table = ("/* sqrt(2 / FE_MELS) cos(pi j / (2 FE_MELS)), j <= FE_MELS: a quarter wave of period 4 FE_MELS,\n"
             " * from which every entry of the orthonormal DCT-II folds (fe_coefficient). */\n"
             f"static const float fe_dct[FE_MELS + 1] = {{\n{float_list(dct_quarter_wave(frontend))}\n}};\n")
    body = ("    /* sum over m of sqrt(2 / M) cos(pi c (2m + 1) / 2M) mel[m], M = FE_MELS, the angle's index\n"
            "     * j = c (2m + 1) mod 4M folded into the quarter wave; m and M - 1 - m share a cosine up to\n"
            "     * the sign (-1)^c, so half the products; row 0 scaled by 1 / sqrt(2). */\n"
            "    const float sign = (c & 1) ? -1.0f : 1.0f;\n"
            "    float sum = 0.0f;\n"
            "    int32_t j = c;\n"
            "    for (int32_t m = 0; m < (FE_MELS + 1) / 2; ++m) {\n"
            "        const float w = j <= FE_MELS ? fe_dct[j]\n"
            "                        : j <= 2 * FE_MELS ? -fe_dct[2 * FE_MELS - j]\n"
            "                        : j <= 3 * FE_MELS ? -fe_dct[j - 2 * FE_MELS] : fe_dct[4 * FE_MELS - j];\n"
            "        const int32_t mirror = FE_MELS - 1 - m;\n"
            "        sum += w * (mirror > m ? FE_MEL(m) + sign * FE_MEL(mirror) : FE_MEL(m));\n"
            "        j += 2 * c;\n"
            "        if (j >= 4 * FE_MELS) {\n"
            "            j -= 4 * FE_MELS;\n"
            "        }\n"
            "    }\n"
            "    return c == 0 ? sum * 0.707106781f : sum;")
    return table, body


def render_frontend(frontend: FrontEnd, input_scale: float, input_zero_point: int) -> dict[str, str]:
    """The front-end's C files (name -> text) writing the model's int8 input."""
    edges, weights = frontend.filter_bins
    window_table, window_macro = window_code(frontend)
    quarter = np.cos(2 * np.pi * np.arange(frontend.n_fft // 4 + 1) / frontend.n_fft)
    dct_table, coefficient = coefficient_code(frontend)
    fields = dict(
        KIND=frontend.kind, FRAME=frontend.frame_samples, HOP=frontend.hop_samples, FFT=frontend.n_fft,
        MELS=frontend.n_mels, WINDOW_TABLE=window_table, WINDOW_MACRO=window_macro,
        QUARTER=float_list(quarter), EDGES=int_list(edges), SCRATCH_FLOATS=frontend.scratch_floats,
        WEIGHT_COUNT=max(1, len(weights)), WEIGHTS=float_list(weights), DCT_TABLE=dct_table,
        COEFFICIENT=coefficient, LOG_OFFSET=c_float(LOG_OFFSET)[:-1], SAMPLE_RATE=frontend.sample_rate,
        CLIP_SAMPLES=frontend.clip_samples, FRAMES=frontend.frames, COEFFICIENTS=frontend.coefficients,
        INPUT_SCALE=c_float(input_scale)[:-1], INPUT_ZERO_POINT=int(input_zero_point))
    return {SOURCE: template("frontend.c").substitute(fields), HEADER: template("frontend.h").substitute(fields)}


def frontend_metadata(frontend: FrontEnd, input_scale: float, input_zero_point: int) -> dict:
    """The ``frontend`` entry of ``metadata.json``: settings, arithmetic, tolerance, cost, files.
    ``ram_bytes`` is the front-end on its own (scratch + feature map); run by the model's PCM entry
    point it takes ``scratch_bytes`` of the model's arena (where: ``emit`` adds ``scratch_offset``
    and the arena's size with it)."""
    cost = frontend.cost()
    return {"settings": frontend.to_json(), "arithmetic": ARITHMETIC, "tolerance": TOLERANCE,
            "output_shape": list(frontend.output_shape), "input_scale": float(input_scale),
            "input_zero_point": int(input_zero_point), "ram_bytes": cost.ram_bytes,
            "scratch_bytes": cost.scratch_bytes, "flash_bytes": cost.flash_bytes,
            "feature_bytes": cost.feature_bytes, "pcm_bytes": cost.pcm_bytes, "macs": cost.macs,
            "logs": cost.logs, "files": [SOURCE, HEADER],
            "entry_points": ["tinyevo_frontend_run", "tinyevo_frontend_features"]}


HARNESS = "frontend_host.c"


def build_frontend_host(out_dir: str | Path, sanitize: bool = False, cc: str | None = None) -> Path:
    """Compile ``out_dir/tinyevo_frontend.c`` with the harness ``runtime_c/frontend_host.c`` (strict
    C99, as ``host.build_host``); returns the executable."""
    out = Path(out_dir)
    target = out / ("tinyevo_frontend_host_sanitized" if sanitize else "tinyevo_frontend_host")
    harness = Path(str(resources.files("tinyevo.deploy.codegen").joinpath("runtime_c", HARNESS)))
    command = [host_compiler(cc), *STRICT, *(SANITIZE if sanitize else OPTIMIZE), "-I", str(out),
               str(out / SOURCE), str(harness), "-o", str(target), "-lm"]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise TinyevoError(f"compiling {out / SOURCE} failed:\n{done.stderr.strip()}")
    return target


def run_frontend_host(binary: str | Path, pcm: np.ndarray, frontend: FrontEnd) -> tuple[np.ndarray, np.ndarray]:
    """(float32 features, int8 inputs), each (N, frames, coefficients, 1), of int16 clips (N, samples)."""
    clips = np.ascontiguousarray(np.asarray(pcm, dtype=np.int16).reshape(-1, frontend.clip_samples))
    with tempfile.TemporaryDirectory(prefix="tinyevo_frontend_") as tmp:
        paths = [Path(tmp) / name for name in ("pcm.bin", "features.bin", "inputs.bin")]
        paths[0].write_bytes(clips.tobytes())
        done = subprocess.run([str(binary), *map(str, paths)], capture_output=True, text=True,
                              env={**os.environ, **SANITIZER_ENV})
        if done.returncode != 0 or f"clips {len(clips)}" not in done.stdout:
            raise TinyevoError(f"{binary} failed (exit {done.returncode}):\n{(done.stderr or done.stdout).strip()}")
        shape = (len(clips), *frontend.output_shape)
        return (np.frombuffer(paths[1].read_bytes(), np.float32).reshape(shape),
                np.frombuffer(paths[2].read_bytes(), np.int8).reshape(shape))


PCM_HARNESS = "model_pcm_host.c"


def build_pcm_host(out_dir: str | Path, sanitize: bool = False, cc: str | None = None) -> Path:
    """Compile a model library with its front-end (``out_dir``: ``tinyevo_model.c`` and
    ``tinyevo_frontend.c``) with the harness ``runtime_c/model_pcm_host.c``, which runs
    ``tinyevo_model_run_pcm``: PCM in, the model's outputs out."""
    out = Path(out_dir)
    target = out / ("tinyevo_pcm_host_sanitized" if sanitize else "tinyevo_pcm_host")
    harness = Path(str(resources.files("tinyevo.deploy.codegen").joinpath("runtime_c", PCM_HARNESS)))
    command = [host_compiler(cc), *STRICT, *(SANITIZE if sanitize else OPTIMIZE), "-I", str(out),
               str(out / "tinyevo_model.c"), str(out / SOURCE), str(harness), "-o", str(target), "-lm"]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise TinyevoError(f"compiling {out} with its front-end failed:\n{done.stderr.strip()}")
    return target


def run_pcm_host(binary: str | Path, pcm: np.ndarray, frontend: FrontEnd) -> np.ndarray:
    """The model's int8 outputs (N, output bytes) for int16 clips (N, samples), PCM to class scores in C."""
    clips = np.ascontiguousarray(np.asarray(pcm, dtype=np.int16).reshape(-1, frontend.clip_samples))
    with tempfile.TemporaryDirectory(prefix="tinyevo_pcm_") as tmp:
        source, target = Path(tmp) / "pcm.bin", Path(tmp) / "outputs.bin"
        source.write_bytes(clips.tobytes())
        done = subprocess.run([str(binary), str(source), str(target)], capture_output=True, text=True,
                              env={**os.environ, **SANITIZER_ENV})
        if done.returncode != 0 or f"clips {len(clips)}" not in done.stdout:
            raise TinyevoError(f"{binary} failed (exit {done.returncode}):\n{(done.stderr or done.stdout).strip()}")
        return np.frombuffer(target.read_bytes(), np.int8).reshape(len(clips), -1)
