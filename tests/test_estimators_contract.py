"""The contract every registered estimator keeps (survey section I-C: one interface, many strategies).

For each name in ``ESTIMATORS`` a tiny case (digits, a few dozen rows or epochs; a three-row
NAS-Bench-201 table written here; an mbv2 supernet for 8x8 inputs) is built twice, in two fresh
folders, and checked: ``evaluate`` returns exactly the metrics the estimator declares in
``provides``, as the runner accepts them (finite numbers, accuracy in [0, 1]); the estimator
survives pickling (process pools ship it); and the same seed gives the same metrics, measured
times (``timings``) aside. A newly registered estimator without a case here fails the test.
"""
from __future__ import annotations

import csv
import gzip
import json
import math
import pickle

import pytest
import torch

from tinyevo.errors import TinyevoError
from tinyevo.estimate import ESTIMATORS, EvalContext, Trainer, as_trainer
from tinyevo.run.jobs import clean_metrics
from tinyevo.spaces import create_space
from tinyevo.spaces.chain import ChainSpace
from tinyevo.spaces.mbv2 import MobileNetV2Space

torch.set_num_threads(1)
CHAIN = ChainSpace(input_shape=(8, 8, 1), num_classes=10)
NET = CHAIN.decode(CHAIN.parse("c8k3s2-gap"))
FAST = dict(dataset="digits", lr=1e-2, batch_size=64)
CELL = "|nor_conv_3x3~0|+|skip_connect~0|none~1|+|skip_connect~0|none~1|nor_conv_1x1~2|"
MBV2 = dict(input_shape=(8, 8, 1), num_classes=10, resolutions=(8, 12), widths=(0.2,), depths=(1,),
            kernels=(3,), expands=(2,), feature_mix_layer=False)


def training_case(tmp_path):
    return ESTIMATORS.create("training", epochs=1, data_fraction=0.3, **FAST), [(NET, EvalContext(seed=3))]


def learning_curve_case(tmp_path):
    # A competitor at accuracy 1.0 cannot be beaten: the candidate is stopped at the first decision.
    competitors = {"directions": {"accuracy": "max"}, "trials": [{"accuracy": 1.0}]}
    estimator = ESTIMATORS.create("learning_curve", epochs=8, min_epochs=6, data_fraction=0.2,
                                  prediction_samples=200, **FAST)
    return estimator, [(NET, EvalContext(seed=3, extra={"competitors": competitors}))]


def inheritance_case(tmp_path):
    estimator = ESTIMATORS.create("inheritance", epochs=1, scratch_epochs=1, data_fraction=0.3, **FAST)
    child = CHAIN.decode(CHAIN.parse("c12k3s2-gap"))
    return estimator, [(NET, EvalContext(trial_id=0, seed=1, run_dir=tmp_path)),
                       (child, EvalContext(trial_id=1, seed=2, parents=(0,), run_dir=tmp_path))]


def tabular_case(tmp_path):
    path = tmp_path / "nb201_tiny.csv.gz"
    columns = ["index", "arch", "cifar10-test", "cifar10-val", "cifar100-test", "cifar100-val",
               "imagenet-test", "imagenet-val"]
    with gzip.open(path, "wt", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(columns)
        writer.writerow([0, CELL, 91.5, 90.25, 70.0, 69.0, 45.0, 44.0])
    space = create_space("nb201")
    return ESTIMATORS.create("tabular", path=str(path)), [(space.decode(CELL), EvalContext(genome=CELL))]


def supernet_case(tmp_path):
    from tinyevo.estimate.supernet import Supernet, train_supernet

    space = MobileNetV2Space(**MBV2)
    net = Supernet(space, width=0.2, seed=0)
    train_supernet(net, "digits", epochs=1, data_fraction=0.2, lr=1e-2, seed=0, progress=False)
    path = net.save(tmp_path / "supernet.npz")
    genome = net.largest()
    estimator = ESTIMATORS.create("supernet", supernet_path=str(path), dataset="digits",
                                  calibration_batches=2, batch_size=32)
    return estimator, [(space.decode(genome), EvalContext(genome=genome, space=space, seed=3))]


CASES = {"training": training_case, "learning_curve": learning_curve_case, "inheritance": inheritance_case,
         "tabular": tabular_case, "supernet": supernet_case}


def run_case(name: str, folder) -> tuple:
    folder.mkdir()
    estimator, calls = CASES[name](folder)
    estimator = pickle.loads(pickle.dumps(estimator))
    metrics = [estimator.evaluate(architecture, context) for architecture, context in calls]
    return estimator, calls, metrics[-1]


@pytest.mark.parametrize("name", ESTIMATORS.names())
def test_every_estimator_keeps_the_contract(name, tmp_path):
    assert name in CASES, f"estimator {name!r} is registered but has no contract case in this file"
    estimator, calls, metrics = run_case(name, tmp_path / "first")
    assert estimator.name == name
    assert set(metrics) == set(estimator.provides), "returns exactly the metrics it declares"
    assert "accuracy" in estimator.provides and set(estimator.timings) <= set(estimator.provides)
    assert clean_metrics(metrics) == metrics  # what the runner stores, unchanged
    assert 0.0 <= metrics["accuracy"] <= 1.0
    assert estimator.capabilities.trains == isinstance(estimator, Trainer)
    settings = estimator.settings()
    assert json.loads(json.dumps(settings)) == settings  # what a run's config stores
    assert type(estimator)(**settings).settings() == settings  # its declared options rebuild it
    for _, context in calls:
        for field in estimator.needs:
            assert getattr(context, field) not in (None, -1, ()), f"the case must give {field}"
    _, _, again = run_case(name, tmp_path / "second")
    timed = set(estimator.timings)
    assert {k: v for k, v in again.items() if k not in timed} == {k: v for k, v in metrics.items()
                                                                    if k not in timed}
    assert all(isinstance(metrics[k], float) and math.isfinite(metrics[k]) and metrics[k] >= 0 for k in timed)


def test_an_estimator_that_does_not_train_cannot_train_the_final_models():
    with pytest.raises(TinyevoError, match="estimator 'tabular' does not train models"):
        as_trainer(ESTIMATORS.create("tabular", path="nb201_12epoch.csv.gz"))  # read only when asked
    trainer = ESTIMATORS.create("training", **FAST)
    assert as_trainer(trainer) is trainer
