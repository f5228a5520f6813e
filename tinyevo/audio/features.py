"""An audio front-end as the preprocessing stage of an architecture: ``Architecture.frontend``.

A network searched with front-end genes (``kws``/``tcn`` with ``frontend="search"``) reads the
features of its own front-end. Its architecture records that stage as a JSON object::

    {"settings": FrontEnd.to_json(), "layout": "map"}

``layout`` says how the (frames, coefficients) features are the network's input: ``"map"`` is
(frames, coefficients, 1), the 2-D map of the ``kws`` space; ``"sequence"`` is (1, frames,
coefficients), a 1-D sequence of coefficient vectors for the ``tcn`` space. Both hold the features
in the same order in memory (frame by frame, coefficient by coefficient), so the C front-end's
output feeds either network unchanged.

API::

    record = frontend_record(frontend, "sequence")      # what Architecture(frontend=...) holds
    frontend_of(architecture)                           # its FrontEnd, or None
    dataset_frontend(dataset.meta)                      # the FrontEnd that made a dataset's features
    feature_shape(frontend, layout)                     # the network's input shape
    network_features(record, pcm)                       # float32 (N, H, W, C) network inputs
    with_frontend_cost(network_cost, frontend)          # cost figures: network + front-end

This module reads architectures by their ``frontend`` attribute only: the IR does not import the
audio package, nor this module the IR.
"""
from __future__ import annotations

import numpy as np

from tinyevo.audio.frontend import FrontEnd
from tinyevo.errors import TinyevoError

LAYOUTS = ("map", "sequence")
#: The cost columns a candidate with a front-end gets beside the (network + front-end) totals.
FRONTEND_COLUMNS = ("frontend_ram_bytes", "frontend_flash_bytes", "frontend_macs")


def frontend_record(frontend: FrontEnd, layout: str) -> dict:
    """The ``Architecture.frontend`` object of ``frontend`` with its features laid out as ``layout``."""
    if layout not in LAYOUTS:
        raise TinyevoError(f"front-end layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    return {"settings": frontend.to_json(), "layout": layout}


def read_record(record: dict) -> tuple[FrontEnd, str]:
    """The FrontEnd and layout of an ``Architecture.frontend`` object; one line when malformed."""
    if not isinstance(record, dict) or set(record) != {"settings", "layout"} or record["layout"] not in LAYOUTS:
        raise TinyevoError(f"an architecture's frontend is {{\"settings\": {{...}}, \"layout\": "
                           f"{' or '.join(LAYOUTS)}}}, got {record!r:.80}")
    if not isinstance(record["settings"], dict):
        raise TinyevoError(f"an architecture's frontend settings must be an object, got {record['settings']!r:.60}")
    return FrontEnd.from_json(record["settings"]), record["layout"]


def frontend_of(architecture) -> FrontEnd | None:
    """The front-end an architecture records (``Architecture.frontend``), or None."""
    record = getattr(architecture, "frontend", None)
    return None if record is None else read_record(record)[0]


def dataset_frontend(meta: dict) -> FrontEnd | None:
    """The front-end that made a dataset's features (``wavfolder``'s ``meta``), or None: a dataset
    of raw clips (``features="pcm"``) or of anything else has none."""
    if meta.get("features") not in ("mfcc", "logmel"):
        return None
    return FrontEnd.from_json(meta["frontend"])


def feature_shape(frontend: FrontEnd, layout: str) -> tuple[int, int, int]:
    """The network's input shape: (frames, coefficients, 1) for a map, (1, frames, coefficients)
    for a sequence."""
    frames, coefficients, _ = frontend.output_shape
    return (frames, coefficients, 1) if layout == "map" else (1, frames, coefficients)


def network_features(record: dict, pcm: np.ndarray) -> np.ndarray:
    """The features of clips ``pcm`` ((N, samples) or (N, 1, samples, 1), int16 or floats in
    [-1, 1)) as the network of ``record`` reads them: float32 (N, H, W, C)."""
    frontend, layout = read_record(record)
    if len(pcm) == 0:  # an empty split
        return np.zeros((0, *feature_shape(frontend, layout)), np.float32)
    features = frontend(pcm)
    return features if layout == "map" else features.reshape(len(features), *feature_shape(frontend, layout))


def with_frontend_cost(cost, frontend: FrontEnd) -> dict:
    """The figures of a network's ``cost`` (a ``hardware.cost.Cost`` or a dict of figures) with the
    front-end's (``FrontEndCost.add_to``: peak SRAM the larger of the network's and the front-end's
    input tensor + scratch, both in the model's arena; flash and MACs added), and the front-end's
    own share in ``FRONTEND_COLUMNS``: ``frontend_ram_bytes`` is what it adds to the network's peak
    (``FrontEndCost.ram_added``, often 0), so peak SRAM = network's + it, as flash and MACs are."""
    share = frontend.cost()
    if isinstance(cost, dict):
        total = {**cost, "peak_sram_bytes": share.peak_with(cost["peak_sram_bytes"]),
                 "flash_bytes": cost["flash_bytes"] + share.flash_bytes, "macs": cost["macs"] + share.macs}
        network_peak = cost["peak_sram_bytes"]
    else:
        total = share.add_to(cost).to_dict()
        network_peak = cost.peak_sram_bytes
    return {**total, "frontend_ram_bytes": share.ram_added(network_peak),
            "frontend_flash_bytes": share.flash_bytes, "frontend_macs": share.macs}
