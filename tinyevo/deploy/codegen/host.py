"""Build and run a generated C library on the host with gcc: the host runner.

    lib = generate_c(qmodel, "out/")                    # tinyevo.deploy.codegen.emit
    binary = build_host("out/", sanitize=True)          # -> Path("out/tinyevo_host_sanitized")
    outputs = run_host(binary, inputs)                  # int8 (N, H, W, C) in -> int8 (N, h, w, c) out
    us = time_host(binary, inputs[0], repeats=200)      # mean microseconds per inference

API (stable; ``tinyevo.deploy.codegen.mcu`` and ``benchmarks/deploy.py`` use it):

- ``build_host(out_dir, sanitize=False, cc=None, opt=None, binary=None) -> Path``: compiles
  ``out_dir/tinyevo_model.c`` with the harness ``runtime_c/main_host.c`` as strict C99
  (``-std=c99 -Wall -Wextra -Werror``); ``sanitize=True`` adds
  ``-O0 -fsanitize=address,undefined -fno-sanitize-recover=all`` (any finding aborts the run),
  otherwise ``-O3``. Returns the executable's path (inside ``out_dir`` unless ``binary`` is given).
- ``run_host(binary, inputs) -> np.ndarray``: one process for the whole batch; inputs go through
  a file, outputs come back through a file. ``inputs`` is int8 of shape (N, H, W, C) or (H, W, C);
  the result is int8 of shape (N, *output shape), the shape read from ``metadata.json`` beside the
  binary (or (N, bytes) without it).
- ``time_host(binary, sample, repeats=100) -> float``: mean wall microseconds per inference of one
  sample, measured inside the process (``clock_gettime``), after one warm-up run.

Failures (no compiler, a compile error, a sanitizer finding, a crash) raise ``TinyevoError`` with
the compiler's or the program's message.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path

import numpy as np

from tinyevo.errors import TinyevoError

HARNESS = "main_host.c"
SOURCE, METADATA = "tinyevo_model.c", "metadata.json"
FRONTEND_SOURCE = "tinyevo_frontend.c"  # codegen.frontend_c.SOURCE (that module imports this one)
STRICT = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]
#: No optimization and no -g: a sanitized build exists to check the library, and at -O1 gcc spends about
#: eight times as long on a generated model (unrolled kernels, instrumented); the sanitizers name the
#: function without -g, and -O0 hides no access from them.
SANITIZE = ["-O0", "-fsanitize=address,undefined", "-fno-sanitize-recover=all"]
OPTIMIZE = ["-O3"]  # what a release firmware build uses; no -march: the code stays portable
#: Sanitizers abort on the first finding; leak checking is pointless (the library never allocates)
#: and fails under ptrace in some containers.
SANITIZER_ENV = {"ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0:halt_on_error=1",
                 "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1"}


def host_compiler(cc: str | None = None) -> str:
    """The C compiler to use: ``cc``, else $CC, else gcc; an error naming it when missing."""
    name = cc or os.environ.get("CC") or "gcc"
    if shutil.which(name) is None:
        raise TinyevoError(f"C compiler {name!r} not found; install gcc or set CC")
    return name


def harness_path() -> Path:
    """The host harness's C source (``runtime_c/main_host.c``)."""
    return Path(str(resources.files("tinyevo.deploy.codegen").joinpath("runtime_c", HARNESS)))


def build_host(out_dir: str | Path, sanitize: bool = False, cc: str | None = None,
               opt: list[str] | None = None, binary: str | Path | None = None) -> Path:
    """Compile the library in ``out_dir`` with the host harness; returns the executable."""
    out = Path(out_dir)
    if not (out / SOURCE).is_file():
        raise TinyevoError(f"{out}: no {SOURCE}; write the library with generate_c first")
    target = Path(binary) if binary else out / ("tinyevo_host_sanitized" if sanitize else "tinyevo_host")
    flags = opt if opt is not None else (SANITIZE if sanitize else OPTIMIZE)
    frontend = out / FRONTEND_SOURCE  # a model of audio features: its PCM entry point calls it
    extra = [str(frontend)] if frontend.is_file() else []
    command = [host_compiler(cc), *STRICT, *flags, "-I", str(out), str(out / SOURCE), *extra,
               str(harness_path()), "-o", str(target), *(["-lm"] if extra else [])]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise TinyevoError(f"compiling {out / SOURCE} failed:\n{done.stderr.strip()}")
    return target


def _output_shape(binary: Path) -> tuple[int, ...] | None:
    path = binary.parent / METADATA
    if not path.is_file():
        return None
    return tuple(json.loads(path.read_text())["output"]["shape"][1:])


def _run(binary: Path, inputs: np.ndarray, extra: list[str]) -> tuple[bytes, str]:
    with tempfile.TemporaryDirectory(prefix="tinyevo_host_") as tmp:
        source, target = Path(tmp) / "inputs.bin", Path(tmp) / "outputs.bin"
        source.write_bytes(np.ascontiguousarray(inputs, dtype=np.int8).tobytes())
        env = {**os.environ, **SANITIZER_ENV}
        done = subprocess.run([str(binary), str(source), str(target), *extra], capture_output=True,
                              text=True, env=env)
        if done.returncode != 0:
            raise TinyevoError(f"{binary} failed (exit {done.returncode}):\n"
                               f"{(done.stderr or done.stdout).strip()[-4000:]}")
        return target.read_bytes(), done.stdout


def run_host(binary: str | Path, inputs: np.ndarray) -> np.ndarray:
    """Outputs of the compiled model for a batch of int8 NHWC inputs, one process for all."""
    binary = Path(binary)
    x = np.asarray(inputs)
    if x.dtype != np.int8:
        raise TinyevoError(f"run_host takes int8 inputs, got {x.dtype}")
    x = x[None] if x.ndim == 3 else x
    raw, stdout = _run(binary, x, [])
    count = len(x)
    if f"samples {count}" not in stdout:
        raise TinyevoError(f"{binary}: the input size does not match the model ({stdout.strip()})")
    out = np.frombuffer(raw, dtype=np.int8).reshape(count, -1)
    shape = _output_shape(binary)
    return out.reshape(count, *shape) if shape else out


def time_host(binary: str | Path, sample: np.ndarray, repeats: int = 100) -> float:
    """Mean wall-clock microseconds per inference of ``sample`` (after one untimed run)."""
    x = np.asarray(sample, dtype=np.int8)
    x = x[None] if x.ndim == 3 else x[:1]
    _, stdout = _run(Path(binary), x, [str(int(repeats))])
    for line in stdout.splitlines():
        if line.startswith("ns_per_inference "):
            return float(line.split()[1]) / 1000.0
    raise TinyevoError(f"{binary}: printed no timing ({stdout.strip()})")
