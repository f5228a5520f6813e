"""Build and run a generated C library on an emulated Cortex-M3, M4 or M33: the MCU runner.

    lib = generate_c(qmodel, "out/")                      # tinyevo.deploy.codegen.emit
    image = build_mcu("out/", inputs, core="cortex-m4")   # arm-none-eabi-gcc -mcpu=cortex-m4 ...
    result = run_mcu(image)                                # qemu-system-arm -M mps2-an386
    result.outputs, result.instructions, image.model_sizes.flash

``CORES`` says how each emulated core is built and run:

=============  ==============  ==========================  =========================  ===========
core           QEMU machine    instruction set             memory (code / SRAM)       SysTick clock
=============  ==============  ==========================  =========================  ===========
cortex-m3      ``mps2-an385``  Armv7-M, no DSP extension   0x00000000 / 0x20000000    25 MHz
cortex-m4      ``mps2-an386``  Armv7E-M, DSP (SMLAD)       0x00000000 / 0x20000000    25 MHz
cortex-m33     ``mps2-an505``  Armv8-M mainline, DSP       0x10000000 / 0x38000000    20 MHz
=============  ==============  ==========================  =========================  ===========

The library is compiled with ``arm-none-eabi-gcc -mcpu=CORE -mthumb -mfloat-abi=soft -O2``: on the
M4 and M33 ``__ARM_FEATURE_DSP`` is set and the dot products use SMLAD, on the M3 the portable C
loops run. It is linked with a bare-metal harness (``runtime_c/cortex_m``: vector table, the
core's linker script, ``main_mcu.c``) and the int8 inputs, which are compiled into the image. The
M33 of the AN505 starts in the secure state with its vector table at 0x10000000, so its image lives
at the secure aliases of the board's code memory and SRAM. QEMU runs the image with semihosting
(outputs come back as hex lines on stdout) and ``-icount shift=0``: the virtual clock advances one
nanosecond per executed instruction, so the SysTick ticks counted around ``tinyevo_model_run``
(24-bit counter, wraps counted by its interrupt) are executed instructions. The ratio (40
instructions per tick at the AN385/AN386's 25 MHz, 50 at the AN505's 20 MHz) is measured in every
run by a loop of known length (``instructions_per_tick``); counts are exact to one tick.

``profile=True`` also counts each op: a copy of the model's source calls ``tinyevo_mcu_mark(i)``
before op ``i`` and after the last one (``McuRun.layers``). Ops run one after the other only in a
layer-by-layer library (``execution="layer_by_layer"``); a streamed one is refused.

``mcu_available()`` says whether the toolchain (``arm-none-eabi-gcc``, ``arm-none-eabi-size``,
``qemu-system-arm``) is installed; ``mcu_missing()`` names what is missing. Failures (a compile
error, a fault or timeout in the emulator, outputs that do not parse) raise ``TinyevoError``.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from tinyevo.errors import TinyevoError

CC, SIZE, QEMU = "arm-none-eabi-gcc", "arm-none-eabi-size", "qemu-system-arm"
TOOLCHAIN = (CC, SIZE, QEMU)
INSTALL_HINT = ("apt-get install -y --no-install-recommends gcc-arm-none-eabi libnewlib-arm-none-eabi "
                "qemu-system-arm")


@dataclass(frozen=True)
class Core:
    """How one emulated core is compiled for and run: its QEMU machine, its gcc target, the
    linker script of the machine's memory map and the clock SysTick counts."""

    name: str
    machine: str
    cpu: str  # gcc's -mcpu
    linker_script: str  # in runtime_c/cortex_m
    systick_mhz: float  # the machine's processor clock (SysTick's CLKSOURCE = 1)
    dsp: bool  # __ARM_FEATURE_DSP: the SMLAD paths of tinyevo_runtime.h

    @property
    def target(self) -> list[str]:
        return [f"-mcpu={self.cpu}", "-mthumb", "-mfloat-abi=soft"]

    def emulator(self) -> str:
        return f"{QEMU} -M {self.machine} -icount shift=0"


CORES = {core.name: core for core in (
    Core("cortex-m3", "mps2-an385", "cortex-m3", "tinyevo_mcu.ld", 25.0, False),
    Core("cortex-m4", "mps2-an386", "cortex-m4", "tinyevo_mcu.ld", 25.0, True),
    Core("cortex-m33", "mps2-an505", "cortex-m33", "tinyevo_mcu_an505.ld", 20.0, True),
)}
EMULATED_CORES = tuple(CORES)  # the ``core`` build_mcu and run_on_mcu take
#: a board's core (lower case, its FPU suffix dropped) -> the emulated core whose instructions stand
#: for it. The Cortex-M7 runs the Armv7E-M instruction set of the M4 (DSP included): its count is
#: the M4's, its cycles fewer (dual issue); boards with it need --core to say so.
BOARD_CORES = {"cortex-m4": "cortex-m4", "cortex-m3": "cortex-m3", "cortex-m33": "cortex-m33",
               "cortex-m0+": "cortex-m0plus", "cortex-m7": "cortex-m7"}
DEFAULT_CORE = "cortex-m4"
MACHINE = CORES[DEFAULT_CORE].machine  # the default core's machine: Cortex-M4 with the DSP extension
TARGET = CORES[DEFAULT_CORE].target
CFLAGS = ["-std=c99", "-Wall", "-Wextra", "-O2"]
LINK = ["--specs=rdimon.specs", "-nostartfiles"]
SOURCE, METADATA = "tinyevo_model.c", "metadata.json"
FRONTEND_SOURCE = "tinyevo_frontend.c"
HARNESS = ("main_mcu.c", "startup.c")
LINKER_SCRIPT = CORES[DEFAULT_CORE].linker_script
RUN_FUNCTION = "int tinyevo_model_run("
MARK = "tinyevo_mcu_mark"
_LINE = re.compile(r"^(calibration|output|ticks|mark|stack) (\d+) ?(\S*)$")


@dataclass(frozen=True)
class SectionSizes:
    """``arm-none-eabi-size`` (Berkeley format): text holds code and constants (weights)."""

    text: int
    data: int
    bss: int

    @property
    def flash(self) -> int:
        """What the image stores in flash: code, constants and the initial values of data."""
        return self.text + self.data

    @property
    def ram(self) -> int:
        """Static RAM: data and bss (the arena is bss)."""
        return self.data + self.bss

    def to_json(self) -> dict:
        return {"text": self.text, "data": self.data, "bss": self.bss, "flash": self.flash,
                "ram": self.ram}


@dataclass
class McuImage:
    """A Cortex-M executable of one generated model with its inputs linked in."""

    elf: Path
    model_sizes: SectionSizes  # the generated library alone (tinyevo_model.o)
    image_sizes: SectionSizes  # the whole executable (harness, inputs, libc's memcpy, ...)
    samples: int
    output_shape: tuple[int, ...]
    functions: list[str]  # op functions in call order
    macs: list[int]  # per op, from metadata.json
    profiled: bool = False
    core: str = DEFAULT_CORE  # the emulated core it was built for (CORES)


@dataclass
class McuRun:
    """What the emulated run printed, parsed."""

    outputs: np.ndarray  # int8 (N, *output shape)
    instructions: list[int]  # per sample, executed inside tinyevo_model_run
    instructions_per_tick: float
    layers: list[dict] = field(default_factory=list)  # profiled: function, macs, instructions
    #: the first sample's stack high-water mark below the harness's call of tinyevo_model_run (the
    #: RAM the arena does not count; includes a SysTick interrupt frame where one landed on top);
    #: None from a harness that does not print it
    stack_bytes: int | None = None
    stack_window_bytes: int | None = None  # the painted window: stack_bytes == it means "at least"

    def instructions_per_mac(self, macs: int) -> float | None:
        return self.instructions[0] / macs if macs else None


def mcu_missing() -> list[str]:
    """The programs of the toolchain that are not on PATH (empty when it is complete)."""
    return [tool for tool in TOOLCHAIN if shutil.which(tool) is None]


def mcu_available() -> bool:
    """Whether the ARM toolchain and QEMU are installed."""
    return not mcu_missing()


def harness_dir() -> Path:
    """``runtime_c/cortex_m``: startup code, linker script and harness."""
    return Path(str(resources.files("tinyevo.deploy.codegen").joinpath("runtime_c", "cortex_m")))


def require_toolchain() -> None:
    missing = mcu_missing()
    if missing:
        raise TinyevoError(f"{', '.join(missing)} not found; install the ARM toolchain and QEMU: "
                           f"{INSTALL_HINT}")


def _call(command: list[str], what: str, timeout: float = 600.0) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise TinyevoError(f"{what} did not finish within {timeout:.0f} s") from None
    if done.returncode != 0:
        message = (done.stderr.strip() + "\n" + done.stdout.strip()).strip()
        raise TinyevoError(f"{what} failed (exit {done.returncode}):\n{message[-4000:]}")
    return done.stdout


def section_sizes(path: str | Path) -> SectionSizes:
    """text/data/bss of an object file or executable, from ``arm-none-eabi-size``."""
    out = _call([SIZE, "-B", str(path)], f"{SIZE} {path}")
    numbers = out.strip().splitlines()[-1].split()
    return SectionSizes(int(numbers[0]), int(numbers[1]), int(numbers[2]))


def _metadata(out: Path) -> dict:
    path = out / METADATA
    if not path.is_file():
        raise TinyevoError(f"{out}: no {METADATA}; write the library with generate_c first")
    return json.loads(path.read_text())


def profiled_source(source: str, functions: list[str]) -> str:
    """The model's C source with ``tinyevo_mcu_mark(i)`` before the call of op ``i`` and
    ``tinyevo_mcu_mark(len(functions))`` after the last call. ``functions`` names the function
    each op calls, in op order (``metadata.json``'s ``op_order``; ops may share one). An op
    without a call (a reshape done in place) gets its mark beside the next one: it counts zero."""
    lines = source.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.startswith(RUN_FUNCTION))
        close = next(i for i in range(start, len(lines)) if lines[i].rstrip() == "}")
    except StopIteration:
        raise TinyevoError(f"no {RUN_FUNCTION.strip('(')} in the model's source") from None
    body, index = [], 0
    for line in lines[start + 1:close]:
        called = line.strip().split("(", 1)[0]
        # ops may share a function; the calls come in op order
        j = next((k for k in range(index, len(functions)) if functions[k] == called), -1)
        if j >= 0:
            indent = line[:len(line) - len(line.lstrip())]
            body.extend(f"{indent}{MARK}({k});" for k in range(index, j + 1))
            index = j + 1
            last = len(body)
        body.append(line)
    if index == 0:
        last = 1  # no calls at all: mark after the opening brace's first statement
    tail = [f"    {MARK}({k});" for k in range(index, len(functions) + 1)]
    body[last + 1:last + 1] = tail
    return "\n".join([*lines[:start], f"void {MARK}(int index);", lines[start], *body, *lines[close:]]) + "\n"


def _inputs_source(inputs: np.ndarray) -> str:
    values = np.ascontiguousarray(inputs, dtype=np.int8).ravel()
    rows = [", ".join(str(int(v)) for v in values[i:i + 32]) for i in range(0, len(values), 32)]
    body = ",\n    ".join(rows) if rows else "0"
    return ("/* int8 samples for the tinyevo MCU harness (written by tinyevo.deploy.codegen.mcu). */\n"
            "#include <stdint.h>\n\n"
            f"const uint32_t tinyevo_mcu_sample_count = {len(inputs)};\n"
            f"const int8_t tinyevo_mcu_inputs[] = {{\n    {body}\n}};\n")


def target_flags(extra_cflags: list[str], core: str = DEFAULT_CORE) -> list[str]:
    """The core's target (``Core.target``), without its float ABI when ``extra_cflags`` gives one
    (e.g. ``-mfloat-abi=hard -mfpu=fpv4-sp-d16`` for the Cortex-M4F's FPU): with two, gcc links
    the libraries of neither."""
    target = CORES[check_core(core)].target
    if any(flag.startswith("-mfloat-abi=") for flag in extra_cflags):
        return [flag for flag in target if not flag.startswith("-mfloat-abi=")]
    return target


def compile_flags(out_dir: str | Path, extra_cflags: list[str] | None = None,
                  core: str = DEFAULT_CORE) -> list[str]:
    """The flags every object of an MCU build for ``core`` is compiled with: the target,
    ``CFLAGS``, ``extra_cflags`` and the library's and the harness's folders as include paths."""
    extra = list(extra_cflags or [])
    return [*target_flags(extra, core), *CFLAGS, *extra, "-I", str(out_dir), "-I", str(harness_dir())]


def compile_model(source: Path, model_object: Path, flags: list[str]) -> Path:
    """``arm-none-eabi-gcc -c`` of the model's source into ``model_object``."""
    cpu = next((flag.split("=", 1)[1] for flag in flags if flag.startswith("-mcpu=")), "Cortex-M")
    _call([CC, *flags, "-c", str(source), "-o", str(model_object)], f"compiling {source} for {cpu}")
    return model_object


def constant_bytes(path: str | Path) -> int:
    """Bytes of an object's read-only data sections (``.rodata*``, where the generated library's
    ``static const`` arrays go), from ``arm-none-eabi-size -A``."""
    out = _call([SIZE, "-A", str(path)], f"{SIZE} -A {path}")
    rows = (line.split() for line in out.splitlines())
    return sum(int(row[1]) for row in rows if len(row) == 3 and row[0].startswith(".rodata"))


def board_core(core: str) -> str | None:
    """The ``BOARD_CORES`` name of a board's ``core`` ("Cortex-M4F" -> "cortex-m4"), None if unknown."""
    name = core.lower().replace(" ", "")
    name = name[:-1] if name.endswith("f") and name[:-1] in BOARD_CORES else name
    return BOARD_CORES.get(name)


def check_core(core: str) -> str:
    """``core`` if an emulated core of ``EMULATED_CORES``, else one clear error."""
    if core not in EMULATED_CORES:
        raise TinyevoError(f"no emulated core {core!r}; the emulator runs: {', '.join(EMULATED_CORES)}")
    return core


def build_mcu(out_dir: str | Path, inputs: np.ndarray, profile: bool = False,
              build_dir: str | Path | None = None, extra_cflags: list[str] | None = None,
              libraries: list[str] | None = None, core: str = DEFAULT_CORE) -> McuImage:
    """Compile the library in ``out_dir`` for ``core`` (one of ``EMULATED_CORES``) and link it with
    the harness and ``inputs`` (int8, (N, H, W, C) or (H, W, C)); the files go to ``build_dir``
    (default ``out_dir/mcu`` or ``out_dir/mcu_profiled``); ``libraries`` (e.g. ``["-lm"]``) end
    the link."""
    check_core(core)
    require_toolchain()
    out = Path(out_dir)
    if not (out / SOURCE).is_file():
        raise TinyevoError(f"{out}: no {SOURCE}; write the library with generate_c first")
    meta = _metadata(out)
    x = np.asarray(inputs)
    if x.dtype != np.int8:
        raise TinyevoError(f"build_mcu takes int8 inputs, got {x.dtype}")
    x = x[None] if x.ndim == 3 else x
    if len(x) == 0 or x[0].size != meta["input"]["bytes"]:
        raise TinyevoError(f"inputs of shape {x.shape} do not fit the model's input {meta['input']['shape']}")
    functions = [op["function"] for op in meta["op_order"]]
    macs = [int(op.get("macs", 0)) for op in meta["op_order"]]
    build = Path(build_dir) if build_dir else out / ("mcu_profiled" if profile else "mcu")
    build.mkdir(parents=True, exist_ok=True)
    source = out / SOURCE
    if profile and meta.get("execution", {}).get("streamed_ops"):
        raise TinyevoError(f"{out}: a streamed library runs its first ops interleaved, row by row, so "
                           f"they cannot be counted one by one; profile a layer-by-layer build "
                           f"(generate_c(..., execution='layer_by_layer'))")
    if profile:
        source = build / "tinyevo_model_profiled.c"
        source.write_text(profiled_source((out / SOURCE).read_text(), functions))
    (build / "tinyevo_mcu_inputs.c").write_text(_inputs_source(x))
    harness = harness_dir()
    flags = compile_flags(out, extra_cflags, core)
    if profile:
        flags.append(f"-DTINYEVO_MCU_MARKS={len(functions) + 1}")
    model_object = compile_model(source, build / "tinyevo_model.o", flags)
    objects = [str(model_object)]
    frontend = out / FRONTEND_SOURCE  # a model of audio features: its PCM entry point calls it
    if frontend.is_file() and f'#include "{FRONTEND_SOURCE}"' not in (out / SOURCE).read_text():
        objects.append(str(compile_model(out / FRONTEND_SOURCE, build / "tinyevo_frontend.o", flags)))
        libraries = [*(libraries or []), "-lm"]
    elf = build / "tinyevo_model.elf"
    script = CORES[core].linker_script  # includes tinyevo_mcu_sections.ld: -L the harness
    _call([CC, *flags, *LINK, "-L", str(harness), "-T", str(harness / script),
           *(str(harness / f) for f in HARNESS), str(build / "tinyevo_mcu_inputs.c"), *objects,
           *(libraries or []), "-o", str(elf)],
          f"linking {elf}")
    shape = tuple(meta["output"]["shape"][1:])
    return McuImage(elf, section_sizes(model_object), section_sizes(elf), len(x), shape, functions,
                    macs, profile, core)


def run_mcu(image: McuImage, timeout: float = 300.0) -> McuRun:
    """Run ``image`` on the QEMU machine of its core (``CORES``: mps2-an386 for the Cortex-M4)
    and parse its outputs and counts."""
    require_toolchain()
    machine = CORES[check_core(image.core)].machine
    console = image.elf.with_suffix(".out")
    console.unlink(missing_ok=True)
    command = [QEMU, "-M", machine, "-display", "none", "-monitor", "none", "-serial", "null",
               "-chardev", f"file,id=semihost,path={console}",
               "-semihosting-config", "enable=on,target=native,chardev=semihost",
               "-icount", "shift=0", "-kernel", str(image.elf)]
    try:
        _call(command, f"{QEMU} running {image.elf}", timeout)
    except TinyevoError as error:
        printed = console.read_text(errors="replace")[-2000:] if console.is_file() else ""
        raise TinyevoError(f"{error}\n{printed}".strip()) from None
    stdout = console.read_text(errors="replace")
    return parse_output(stdout, image)


def parse_output(stdout: str, image: McuImage) -> McuRun:
    """The harness's lines (see ``runtime_c/cortex_m/main_mcu.c``) as an ``McuRun``."""
    outputs, ticks, marks, calibration, stack = {}, {}, {}, None, (None, None)
    for line in stdout.splitlines():
        match = _LINE.match(line.strip())
        if not match:
            continue
        kind, index, value = match.group(1), int(match.group(2)), match.group(3)
        if kind == "calibration":
            calibration = int(value) / index if index else None
        elif kind == "output":
            outputs[index] = bytes.fromhex(value)
        elif kind == "ticks":
            ticks[index] = int(value)
        elif kind == "stack":
            stack = (index, int(value))
        else:
            marks[index] = int(value)
    if "done" not in stdout or calibration is None or sorted(outputs) != list(range(image.samples)):
        raise TinyevoError(f"{image.elf}: the emulated run printed incomplete results:\n{stdout[-2000:]}")
    flat = np.stack([np.frombuffer(outputs[i], dtype=np.int8) for i in range(image.samples)])
    count = [round(ticks[i] * calibration) for i in range(image.samples)]
    layers = []
    if image.profiled:
        for i, (function, macs) in enumerate(zip(image.functions, image.macs)):
            spent = round((marks[i + 1] - marks[i]) * calibration)
            layers.append({"function": function, "macs": macs, "instructions": spent,
                           "instructions_per_mac": spent / macs if macs else None})
    return McuRun(flat.reshape(image.samples, *image.output_shape), count, calibration, layers, *stack)


def run_on_mcu(out_dir: str | Path, inputs: np.ndarray, profile: bool = False,
               timeout: float = 300.0, core: str = DEFAULT_CORE) -> tuple[McuImage, McuRun]:
    """``build_mcu`` then ``run_mcu``."""
    image = build_mcu(out_dir, inputs, profile=profile, core=core)
    return image, run_mcu(image, timeout)
