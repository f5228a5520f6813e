"""Reading the JSON files users hand to the CLI: an architecture, or a genome of a named space.

An architecture file is what ``Architecture.dumps()`` writes. A genome file is
``{"space": NAME, "options": {...}, "genome": ...}`` as ``tinyevo sample --json`` writes it.
"""
from __future__ import annotations

import json
from pathlib import Path

from tinyevo.arch import Architecture
from tinyevo.errors import InvalidArchitecture, TinyevoError
from tinyevo.spaces import create_space


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


def load_architecture(path: str | Path) -> Architecture:
    return architecture_from_data(read_json(path, "architecture or genome file"), str(path))
