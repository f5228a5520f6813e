"""The C emitter: a ``QuantizedModel`` and its memory plan become a self-contained C99 library.

    generate_c(qmodel, "out/")   # out/tinyevo_model.c, tinyevo_model.h, tinyevo_runtime.h, metadata.json

The library has one entry point, ``int tinyevo_model_run(const int8_t *input, int8_t *output)``
(and, with an audio front-end, ``tinyevo_model_run_pcm(const int16_t *pcm, int8_t *output)``, the
front-end run inside the arena: ``frontend_placement``);
one function per distinct layer shape, with the shapes as compile-time constants (``kernels``),
called once per op with that layer's constants; weights and quantization as ``const`` data
(flash); every activation in one static arena at the offsets of the memory plan (``planner``); no
``malloc``, no interpreter. It compiles with any C99 compiler; on Cortex-M with the DSP extension
the dot products use SMLAD. Build and run it on the host with ``tinyevo.deploy.codegen.host``.
"""
from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template

from tinyevo.audio.features import LAYOUTS, feature_shape
from tinyevo.audio.frontend import FrontEnd
from tinyevo.deploy.codegen.frontend_c import frontend_metadata, render_frontend
from tinyevo.deploy.codegen.kernels import (Concatenation, Fill, FullyConnectedRows, Kernel,
                                            TensorView, kernel_class, template)
from tinyevo.deploy.codegen.metadata import FORMAT_VERSION, ModelMetadata, OpInfo, TensorInfo
from tinyevo.deploy.codegen.planner import MemoryPlan, plan_memory
from tinyevo.deploy.quantized_model import QuantizedModel
from tinyevo.errors import TinyevoError
from tinyevo.hardware.execution import DEPLOYED
from tinyevo.units import align4

SOURCE, HEADER, RUNTIME, METADATA = "tinyevo_model.c", "tinyevo_model.h", "tinyevo_runtime.h", "metadata.json"


@dataclass
class GeneratedC:
    """The files of a generated library (name -> text) and what they were made from."""

    files: dict[str, str]
    plan: MemoryPlan
    metadata: ModelMetadata

    def write(self, out_dir: str | Path) -> list[Path]:
        out = Path(out_dir)
        if out.exists() and not out.is_dir():
            raise TinyevoError(f"{out}: exists and is not a folder; give --out a folder")
        out.mkdir(parents=True, exist_ok=True)
        paths = []
        for name, text in self.files.items():
            (out / name).write_text(text)
            paths.append(out / name)
        return paths


def generate_c(qmodel: QuantizedModel, out_dir: str | Path, in_place_kernels: bool = DEPLOYED.in_place_kernels,
               plan: MemoryPlan | None = None, execution: str = DEPLOYED.execution) -> GeneratedC:
    """Write the C library of ``qmodel`` into ``out_dir`` and return what was written."""
    generated = render_c(qmodel, in_place_kernels, plan, execution)
    generated.write(out_dir)
    return generated


def render_c(qmodel: QuantizedModel, in_place_kernels: bool = DEPLOYED.in_place_kernels,
             plan: MemoryPlan | None = None, execution: str = DEPLOYED.execution,
             frontend: FrontEnd | None = None) -> GeneratedC:
    """The library's files in memory (what ``generate_c`` writes); with ``frontend`` (a model of
    audio features) also the front-end from PCM to the model's int8 input (``frontend_c``)."""
    plan = plan or plan_memory(qmodel, in_place_kernels=in_place_kernels, execution=execution)
    kernels = build_kernels(qmodel, plan)
    functions = share_functions(kernels)
    metadata = build_metadata(qmodel, plan, kernels)
    placement = None
    if frontend is not None:
        _check_frontend(qmodel, frontend)
        placement = frontend_placement(qmodel, plan, frontend)
        metadata.arena_bytes = placement.arena_bytes
    fields = _model_fields(qmodel, plan, kernels, functions, placement)
    files = {SOURCE: template("model.c").substitute(fields),
             HEADER: template("model.h").substitute(fields),
             RUNTIME: resources.files("tinyevo.deploy.codegen").joinpath("runtime_c", RUNTIME).read_text()}
    if frontend is not None:
        files.update(_frontend_files(qmodel, frontend, metadata, placement))
    files[METADATA] = metadata.dumps()
    return GeneratedC(files, plan, metadata)


def _check_frontend(qmodel: QuantizedModel, frontend: FrontEnd) -> None:
    """One line when the front-end's features are not the model's input, as a (frames,
    coefficients, 1) map or a (1, frames, coefficients) sequence (the same bytes in the same order)."""
    spec = qmodel.input_spec
    if tuple(spec.shape[1:]) not in {feature_shape(frontend, layout) for layout in LAYOUTS}:
        raise TinyevoError(f"the audio front-end gives {frontend.output_shape} features (frames, "
                           f"coefficients, channels) but the model's input is {tuple(spec.shape[1:])}; "
                           f"export the model with the front-end it was trained on")


@dataclass(frozen=True)
class FrontEndPlacement:
    """Where ``tinyevo_model_run_pcm`` runs the front-end in the model's arena, before the first
    layer (when only the input tensor will be live): the features written at the arena's start,
    the scratch after them at ``scratch_offset`` (4-byte aligned), then the features moved to the
    input tensor's offset (``memmove``, when that is not 0). The arena grows to ``arena_bytes``,
    max(the plan's arena, align4(input) + scratch): the front-end's ``FrontEndCost.peak_with``."""

    scratch_offset: int
    scratch_bytes: int
    arena_bytes: int


def frontend_placement(qmodel: QuantizedModel, plan: MemoryPlan, frontend: FrontEnd) -> FrontEndPlacement:
    scratch = frontend.cost().scratch_bytes
    offset = align4(plan.tensor_bytes[qmodel.input])
    return FrontEndPlacement(offset, scratch, max(plan.arena_bytes, offset + scratch))


def _frontend_files(qmodel: QuantizedModel, frontend: FrontEnd, metadata: ModelMetadata,
                    placement: FrontEndPlacement) -> dict[str, str]:
    """The front-end's C files, its entry in ``metadata`` (with where it runs in the arena)."""
    spec = qmodel.input_spec
    files = render_frontend(frontend, spec.scale, spec.zero_point)
    metadata.frontend = {**frontend_metadata(frontend, spec.scale, spec.zero_point),
                         "scratch_offset": placement.scratch_offset, "arena_bytes": placement.arena_bytes,
                         "model_entry_point": "tinyevo_model_run_pcm"}
    metadata.files[-1:-1] = list(files)  # before metadata.json
    return files


PCM_ENTRY = """
/* PCM in, class scores out, the front-end inside the arena: the features at the arena's start, the
 * front-end's scratch after them (offset ${SCRATCH_OFFSET}, ${SCRATCH_BYTES} bytes), both before the
 * first layer runs; then the features moved to the input tensor (offset ${INPUT_OFFSET}) and the
 * network run. */
int tinyevo_model_run_pcm(const int16_t *pcm, int8_t *output)
{
    int8_t *arena = tinyevo_arena.bytes;
    tinyevo_frontend_run(pcm, arena, tinyevo_arena.floats + ${SCRATCH_FLOAT_OFFSET});
${MOVE}${CALLS}
    memcpy(output, arena + ${OUTPUT_OFFSET}, ${OUTPUT_BYTES});
    return 0;
}
"""
PCM_DECLARATION = """
/* With the audio front-end (tinyevo_frontend.c): one int16 clip of TINYEVO_FRONTEND_CLIP_SAMPLES
 * (tinyevo_frontend.h) in, TINYEVO_OUTPUT_BYTES out, the front-end run inside the arena. Returns 0. */
int tinyevo_model_run_pcm(const int16_t *pcm, int8_t *output);
"""


WINDOW_KINDS = ("conv_2d", "depthwise_conv_2d", "max_pool_2d", "average_pool_2d")


def build_kernels(qmodel: QuantizedModel, plan: MemoryPlan) -> list[Kernel]:
    """One kernel per op of the plan's order, wired to the arena offsets. A streamed op computes
    one output row per call (its row variable ``row{index}``): a window op reads its input rings
    and gets the row; a row-local op gets the row of each tensor (shapes of one row)."""
    ops = {op.name: op for op in qmodel.ops}
    streamed = set(plan.streamed_ops)

    def view(tensor: str, row: str | None = None, whole_rows: bool = True) -> TensorView:
        spec = qmodel.tensors[tensor]
        shape = tuple(spec.shape[1:])
        ring = plan.rows.get(tensor, 0)
        if ring and not whole_rows:
            shape = (1, *shape[1:])
        return TensorView(tensor, plan.offsets[tensor], shape, spec.zero_point, ring, row)

    kernels = []
    for index, name in enumerate(plan.order):
        op = ops[name]
        cls = kernel_class(op)
        symbol = f"layer{index}"
        scratch = plan.scratch.get(name, (None, 0))[0]
        extra = {}
        if cls is Concatenation:
            extra["requantize"] = tuple(ops[s].params if s in plan.fused else None for s in op.inputs)
        row = f"row{index}"
        if name not in streamed:
            inputs = tuple(view(plan.source(s)) for s in op.inputs)
            kernels.append(cls(symbol, op, inputs, view(name), scratch, **extra))
        elif name in plan.stream.accumulators:  # one row of the flattened map per call
            source = plan.source(op.inputs[0])
            height, width, channels = qmodel.tensors[ops[source].inputs[0]].shape[1:]
            spec = qmodel.tensors[source]
            row_view = TensorView(source, plan.offsets[source], (1, width, channels), spec.zero_point,
                                  plan.rows[source], row)
            kernels.append(FullyConnectedRows(symbol, op, (row_view,), view(name), scratch, row=row, rows=height))
        elif op.kind in WINDOW_KINDS and cls is not Fill:
            inputs = tuple(view(plan.source(s)) for s in op.inputs)
            kernels.append(cls(symbol, op, inputs, view(name, row), None, row=row, **extra))
        else:
            inputs = tuple(view(plan.source(s), row, whole_rows=False) for s in op.inputs)
            kernels.append(cls(symbol, op, inputs, view(name, row, whole_rows=False), None, **extra))
    return kernels


def streaming_code(plan: MemoryPlan, kernels: list[Kernel]) -> str:
    """The C of the streamed prefix: for each row of the cut, every streamed op is asked for the
    last row its readers need (reverse order), then sweeps let each op compute one more row when
    one is due and its input rows are written, until none can (the schedule of
    ``tinyevo.hardware.streaming.row_schedule``, which sized the rings)."""
    stream = plan.stream
    index = {k.op.name: i for i, k in enumerate(kernels)}
    lines = ["    /* streamed: the first ops run row by row through line buffers (rings) */", "    {"]
    lines.append("        " + " ".join(f"int32_t row{index[n]} = 0;" for n in stream.nodes))
    lines.append(f"        for (int32_t step = 0; step < {stream.heights[stream.cut]}; ++step) {{")
    for name in reversed(stream.nodes):
        i = index[name]
        if name == stream.cut:
            lines.append(f"            const int32_t last{i} = step;")
            continue
        needs = [_last_row(stream.windows[r], f"last{index[r]}") for r in stream.readers[name]]
        expr = needs[0]
        for other in needs[1:]:
            expr = f"tinyevo_max({expr}, {other})"
        lines.append(f"            const int32_t last{i} = tinyevo_min({stream.heights[name] - 1}, {expr});")
    lines.append("            for (int32_t progress = 1; progress;) {")
    lines.append("                progress = 0;")
    for name in stream.nodes:
        i, op = index[name], kernels[index[name]].op
        ready = [f"row{index[s]} > tinyevo_min({stream.heights[s] - 1}, "
                 f"{_last_row(stream.windows[name], f'row{i}')})"
                 for s in dict.fromkeys(plan.source(t) for t in op.inputs) if s in index]
        condition = " && ".join([f"row{i} <= last{i}", *ready])
        lines.append(f"                if ({condition}) {{")
        lines.append(f"                    {kernels[i].call()}")
        lines.append(f"                    ++row{i};")
        lines.append("                    progress = 1;")
        lines.append("                }")
    lines.append("            }")
    lines += ["        }", "    }"]
    return "\n".join(lines)


def _last_row(window, wanted: str) -> str:
    offset = (window.kernel - 1) * window.dilation - window.pad_top
    scaled = wanted if window.stride == 1 else f"{wanted} * {window.stride}"
    return scaled if offset == 0 else f"{scaled} {'+' if offset > 0 else '-'} {abs(offset)}"


def share_functions(kernels: list[Kernel]) -> list[str]:
    """The C functions the kernels call, one per distinct ``function_key`` (layers of the same
    shape share code; their constants are passed in); sets each kernel's ``function``."""
    names: dict[tuple, str] = {}
    counts: dict[str, int] = {}
    sources = []
    for k in kernels:
        key = k.function_key()
        if key is None:
            continue
        if key not in names:
            variant = k.variant()
            names[key] = f"{variant}_{counts.get(variant, 0)}"
            counts[variant] = counts.get(variant, 0) + 1
            sources.append(k.function_source(names[key]))
        k.function = names[key]
    return sources


def build_metadata(qmodel: QuantizedModel, plan: MemoryPlan, kernels: list[Kernel]) -> ModelMetadata:
    def output_bytes(view: TensorView) -> int:  # a streamed tensor: its ring
        rows = plan.rows.get(view.name)
        height, width, channels = qmodel.tensors[view.name].shape[1:]
        return (rows or height) * width * channels

    ops = [OpInfo(k.op.name, k.op.kind, k.function, [t.name for t in k.inputs], k.output.name,
                  k.output.offset, output_bytes(k.output), k.in_place,
                  list(plan.scratch[k.op.name]) if k.op.name in plan.scratch else None,
                  k.macs(), k.flash_bytes()) for k in kernels]
    notes = [plan.schedule.note] if plan.schedule and plan.schedule.note else []
    return ModelMetadata(
        qmodel.name, plan.arena_bytes, plan.peak_bytes, sum(k.flash_bytes() for k in kernels),
        sum(k.macs() for k in kernels), TensorInfo.of(qmodel.input, qmodel.input_spec),
        TensorInfo.of(qmodel.output, qmodel.output_spec), ops, [SOURCE, HEADER, RUNTIME, METADATA],
        plan.in_place_kernels, plan.schedule.search if plan.schedule else "", notes=notes,
        execution=_execution(plan))


def _execution(plan: MemoryPlan) -> dict:
    if not plan.stream:
        return {"mode": "layer_by_layer", "streamed_ops": []}
    stream = plan.stream
    return {"mode": "streamed", "streamed_ops": list(stream.nodes), "cut": stream.cut,
            "ring_rows": {t: plan.rows[t] for t in stream.nodes if t in plan.rows},
            "stream_bytes": stream.stream_bytes}


def _model_fields(qmodel: QuantizedModel, plan: MemoryPlan, kernels: list[Kernel],
                  functions: list[str], placement: FrontEndPlacement | None = None) -> dict:
    source, output = qmodel.input_spec, qmodel.output_spec
    streamed = set(plan.streamed_ops)
    calls = "\n".join(([streaming_code(plan, kernels)] if streamed else [])
                      + [f"    {k.call()}" for k in kernels if k.op.name not in streamed])
    data = "".join(k.data() for k in kernels)
    arena = plan.arena_bytes if placement is None else placement.arena_bytes
    pcm = dict(FRONTEND_INCLUDE="", ARENA_FLOATS="", PCM_ENTRY="", PCM_DECLARATION="")
    if placement is not None:
        pcm = dict(FRONTEND_INCLUDE='#include "tinyevo_frontend.h"\n',
                   ARENA_FLOATS=f"    float floats[{(arena + 3) // 4}];\n",
                   PCM_ENTRY=Template(PCM_ENTRY).substitute(
                       INPUT_OFFSET=plan.offsets[qmodel.input], SCRATCH_OFFSET=placement.scratch_offset,
                       SCRATCH_BYTES=placement.scratch_bytes, SCRATCH_FLOAT_OFFSET=placement.scratch_offset // 4,
                       CALLS=calls, OUTPUT_OFFSET=plan.offsets[qmodel.output],
                       MOVE=(f"    memmove(arena + {plan.offsets[qmodel.input]}, arena, "
                             f"{plan.tensor_bytes[qmodel.input]});\n" if plan.offsets[qmodel.input] else ""),
                       OUTPUT_BYTES=plan.tensor_bytes[qmodel.output]),
                   PCM_DECLARATION=PCM_DECLARATION)
    return dict(**pcm,
        MODEL_NAME=_c_text(qmodel.name or "model"), FORMAT_VERSION=FORMAT_VERSION,
        OP_COUNT=len(kernels), MACS=sum(k.macs() for k in kernels),
        FLASH_BYTES=sum(k.flash_bytes() for k in kernels), ARENA_BYTES=arena,
        KERNELS="\n".join(functions), LAYERS=data, CALLS=calls,
        INPUT_OFFSET=plan.offsets[qmodel.input], INPUT_BYTES=plan.tensor_bytes[qmodel.input],
        OUTPUT_OFFSET=plan.offsets[qmodel.output], OUTPUT_BYTES=plan.tensor_bytes[qmodel.output],
        INPUT_HEIGHT=source.shape[1], INPUT_WIDTH=source.shape[2], INPUT_CHANNELS=source.shape[3],
        INPUT_SCALE=f"{source.scale:.9g}", INPUT_ZERO_POINT=source.zero_point,
        OUTPUT_HEIGHT=output.shape[1], OUTPUT_WIDTH=output.shape[2], OUTPUT_CHANNELS=output.shape[3],
        OUTPUT_SCALE=f"{output.scale:.9g}", OUTPUT_ZERO_POINT=output.zero_point)


def _c_text(text: str) -> str:
    """``text`` safe inside a C string literal and a comment."""
    return "".join(c if c.isalnum() or c in "_-. " else "_" for c in text)
