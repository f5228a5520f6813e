"""A dataset of raw clips as the features a candidate's own front-end computes from them.

``featurized(data, record)``: ``data`` holds PCM clips (``wavfolder`` with ``features="pcm"``) and
``record`` is a candidate's ``Architecture.frontend`` (``tinyevo.audio.features``). The result has
the same rows, labels and splits (the split was made on the clips, seeded, before any feature), its
``x`` the float32 features in the network's layout (scale 1, as ``features="mfcc"`` gives them).
Each clip's features depend on that clip alone (no statistic is fitted to the data), so nothing of
the validation or test clips reaches training.

Features are computed once per front-end setting and kept per process (the last ``CACHE_SIZE``
settings, least recently used dropped first): a search meets the same setting many times.
"""
from __future__ import annotations

import json
from collections import OrderedDict

from tinyevo.audio.features import network_features, read_record
from tinyevo.data.base import Dataset
from tinyevo.errors import TinyevoError

CACHE_SIZE = 8
_CACHE: OrderedDict = OrderedDict()  # (id(data), record JSON) -> (data, featurized data)


def featurized(data: Dataset, record: dict) -> Dataset:
    """``data``'s clips as the features of ``record`` (cached per process)."""
    key = (id(data), json.dumps(record, sort_keys=True))
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key][1]
    result = compute(data, record)
    _CACHE[key] = (data, result)  # the source is held too, so that its id cannot be reused
    while len(_CACHE) > CACHE_SIZE:
        _CACHE.popitem(last=False)
    return result


def compute(data: Dataset, record: dict) -> Dataset:
    if data.meta.get("features") != "pcm":
        raise TinyevoError(f"the architecture has its own audio front-end but dataset {data.name!r} does "
                           f"not hold raw clips; load it with features=\"pcm\" (dataset_options)")
    frontend, layout = read_record(record)
    rate = data.meta.get("frontend", {}).get("sample_rate")
    if rate is not None and rate != frontend.sample_rate:
        raise TinyevoError(f"the architecture's front-end expects {frontend.sample_rate} Hz clips but dataset "
                           f"{data.name!r} holds {rate} Hz ones; set the space's frontend_base sample_rate "
                           f"to {rate}")
    parts = [network_features(record, data.x_train), data.y_train, network_features(record, data.x_val),
             data.y_val, network_features(record, data.x_test), data.y_test]
    meta = {**data.meta, "features": frontend.kind, "frontend": frontend.to_json(), "layout": layout}
    return Dataset(data.name, *parts, data.num_classes, 1.0, meta)
