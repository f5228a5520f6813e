"""Reading the JSON files users hand to the CLI: an architecture, or a genome of a named space.

An architecture file is what ``Architecture.dumps()`` writes. A genome file is
``{"space": NAME, "options": {...}, "genome": ...}`` as ``tinyevo sample --json`` writes it.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tinyevo.arch import OPS, Architecture
from tinyevo.errors import InvalidArchitecture, TinyevoError
from tinyevo.hardware.board import list_boards, load_board
from tinyevo.spaces import create_space
from tinyevo.units import format_bytes


def read_json(path: str | Path, what: str = "file") -> object:
    path = Path(path)
    if not path.exists():
        raise TinyevoError(f"{path}: no such {what}; check the path")
    if path.is_dir():
        raise TinyevoError(f"{path}: is a folder, expected a JSON {what}")
    try:
        return json.loads(path.read_text())
    except OSError as error:
        raise TinyevoError(f"{path}: cannot read the {what} ({error.strerror or error}); check its "
                           f"permissions") from None
    except UnicodeDecodeError:
        raise TinyevoError(f"{path}: not a text file; expected JSON") from None
    except json.JSONDecodeError as error:
        raise TinyevoError(f"{path}: malformed JSON at line {error.lineno}, column {error.colno}: "
                           f"{error.msg}") from None


def genome_document(space, genome) -> dict:
    return {"format": "tinyevo.genome", "space": space.name, "options": space.options(),
            "genome": genome, "describe": space.describe(genome)}


def architecture_from_data(data: object, source: str = "input") -> Architecture:
    """An Architecture from parsed JSON: either an architecture or a genome document."""
    if isinstance(data, dict) and "space" in data and "genome" in data:
        options = data.get("options") or {}
        if not isinstance(options, dict):
            raise TinyevoError(f"{source}: 'options' must be an object of space options")
        try:
            space = create_space(str(data["space"]), **options)
        except TypeError as error:
            raise TinyevoError(f"{source}: bad options for space {data['space']!r}: {error}") from None
        try:
            return space.decode(data["genome"])
        except InvalidArchitecture as error:
            raise TinyevoError(f"{source}: genome does not decode: {error}") from None
        except (KeyError, ValueError, TypeError, IndexError) as error:
            raise TinyevoError(f"{source}: not a valid {space.name} genome ({error!r})") from None
    try:
        return Architecture.from_json(data)
    except InvalidArchitecture as error:
        raise TinyevoError(f"{source}: {error}") from None
    except (ValueError, TypeError) as error:
        raise TinyevoError(f"{source}: not a valid architecture ({error})") from None


#: Bounds of an architecture a user hands in, far beyond any microcontroller model, so that a typo
#: (10^9 filters, a kernel of 99, 5,000 layers) is refused in a line instead of costing minutes or
#: allocating gigabytes.
MAX_OPERATORS = 2000
MAX_BYTES = 1 << 30  # of int8 weights, or of one int8 activation tensor
MAX_KERNEL = 15  # a kernel side above this must fit in its input


def check_bounds(arch: Architecture, source: str) -> Architecture:
    """``arch`` if it is within the bounds above; a one-line TinyevoError naming the excess."""
    if len(arch.nodes) > MAX_OPERATORS:
        raise TinyevoError(f"{source}: {len(arch.nodes):,} operators, more than the {MAX_OPERATORS:,} "
                           f"tinyevo takes (microcontroller models have tens to hundreds); make it smaller")
    for node in arch.live_nodes():
        kernel = node.attrs.get("kernel")
        if kernel is None:
            continue
        height, width = arch.input_shapes(node)[0][:2]
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else tuple(kernel)[:2]
        if kh > max(height, MAX_KERNEL) or kw > max(width, MAX_KERNEL):
            raise TinyevoError(f"{source}: {node.name} has a {kh}x{kw} kernel on a {height}x{width} "
                               f"input; give a kernel that fits its input")
    biggest = max((int(np.prod(shape)) for shape in arch.shapes.values()), default=0)
    weights = sum(OPS[n.op].weight_count(n.attrs, arch.input_shapes(n)) for n in arch.live_nodes())
    if max(weights, biggest) > MAX_BYTES:
        boards = [load_board(name) for name in list_boards()]
        what, memory, most = (("weights", "flash", max(b.flash_bytes for b in boards)) if weights >= biggest
                              else ("activations in one tensor", "SRAM", max(b.sram_bytes for b in boards)))
        raise TinyevoError(f"{source}: needs {max(weights, biggest) / 1e9:,.1f} GB of int8 {what}; it "
                           f"cannot fit any board (the largest has {format_bytes(most)} of {memory}); "
                           f"make it smaller")
    return arch


def load_architecture(path: str | Path) -> Architecture:
    """The architecture of a user's architecture or genome file, within ``check_bounds``."""
    return check_bounds(architecture_from_data(read_json(path, "architecture or genome file"), str(path)),
                        str(path))
