"""The mbv2 weight-sharing supernet: extracted subnets against tinyevo.nn, batch-norm recalibration
against nn.BatchNorm2d, sandwich training on digits, save/load, and the ``supernet`` estimator."""
from __future__ import annotations

import copy
import json
import pickle
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tinyevo.data import load_dataset
from tinyevo.errors import TinyevoError
from tinyevo.estimate import ESTIMATORS, EvalContext
from tinyevo.estimate.supernet import Supernet, SupernetEstimator, recalibrate_bn, train_supernet
from tinyevo.estimate.supernet_layers import ElasticConv2d
from tinyevo.estimate.training import evaluate_accuracy, to_input
from tinyevo.nn import build
from tinyevo.spaces.mbv2 import MobileNetV2Space

torch.set_num_threads(1)
TINY = dict(input_shape=(8, 8, 1), num_classes=10, resolutions=(16, 24, 32), widths=(0.2, 0.35))
#: Smaller still, for training on digits within seconds.
TRAINABLE = dict(input_shape=(8, 8, 1), num_classes=10, resolutions=(12, 16), widths=(0.2,),
                 depths=(1, 2), kernels=(3, 5), expands=(2, 3), feature_mix_layer=False)
FAST = dict(epochs=2, lr=1e-2, batch_size=64, progress=False)


def subnets(net: Supernet, count: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [net.largest(), net.smallest()] + [net.sample(rng) for _ in range(count)]


def batches(resolution: int, count: int = 2, rows: int = 8, seed: int = 0) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.rand(rows, 1, resolution, resolution, generator=generator) for _ in range(count)]


def scramble_batch_norms(net: torch.nn.Module, seed: int = 0) -> None:
    """Non-trivial scales and offsets, so a wrong channel slice cannot hide behind 1 and 0."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.copy_(0.5 + torch.rand(module.weight.shape, generator=generator))
                module.bias.copy_(torch.randn(module.bias.shape, generator=generator) * 0.1)


@pytest.mark.parametrize("options,width,transform", [
    (TINY, None, True),                                    # elastic width, OFA kernel transforms
    ({**TINY, "feature_mix_layer": False}, 0.35, False),   # one width, plain centre crop
    ({**TINY, "expands": (1, 4)}, 0.2, True),              # expand ratio 1: no expand conv
])
def test_extracted_subnet_computes_what_the_supernet_computes(options, width, transform):
    space = MobileNetV2Space(**options)
    net = Supernet(space, width=width, kernel_transform=transform, seed=1)
    scramble_batch_norms(net)
    with torch.no_grad():  # transforms away from the identity, so the crop alone would not match
        for name, matrix in net.named_parameters():
            if ".transforms." in name:
                matrix.add_(torch.randn(matrix.shape, generator=torch.Generator().manual_seed(2)) * 0.1)
    for genome in subnets(net, 4):
        net.set_active(genome)
        recalibrate_bn(net, batches(genome["resolution"]))
        arch, state = net.extract(genome)
        module = build(space.decode(genome)).eval()
        module.load_state_dict(state)  # strict: every parameter and buffer of the IR is inherited
        x = batches(genome["resolution"], 1, 5, seed=9)[0]
        with torch.no_grad():
            expected, got = module(x), net.eval()(x)
        assert arch.fingerprint() == space.decode(genome).fingerprint()
        assert got.shape == (5, 10)
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_smaller_kernel_is_the_centre_of_the_largest_with_symmetric_padding():
    conv = ElasticConv2d(4, 6, kernels=(3, 5, 7), stride=1)
    x = torch.randn(2, 4, 9, 9)
    with torch.no_grad():
        expected = F.conv2d(x[:, :3], conv.weight[:5, :3, 2:5, 2:5], padding=1)  # PyTorch's own padding
        torch.testing.assert_close(conv(x[:, :3], 5, 3), expected)


def test_recalibration_equals_batch_norm_of_the_standalone_subnet():
    """Recalibrating the supernet gives the statistics nn.BatchNorm2d computes for the extracted net."""
    space = MobileNetV2Space(**TINY)
    net = Supernet(space, seed=3)
    genome = subnets(net, 1, seed=4)[2]
    calibration = batches(genome["resolution"], count=3, rows=6, seed=5)
    standalone = net.subnet_module(genome)
    recalibrate_bn(standalone, calibration)
    recalibrate_bn(net.set_active(genome), calibration)
    _, state = net.extract(genome)
    for key, value in standalone.state_dict().items():
        torch.testing.assert_close(state[key], value, atol=1e-6, rtol=1e-5)
    stem_mean = torch.stack([F.conv2d(F.pad(b, (0, 1, 0, 1)), state["layers.conv2d_1.conv.weight"],
                                      stride=2).mean(dim=(0, 2, 3)) for b in calibration]).mean(0)
    torch.testing.assert_close(state["layers.batch_norm_1.running_mean"], stem_mean, atol=1e-6, rtol=1e-5)


def test_genomes_outside_the_supernet_are_one_line_errors():
    net = Supernet(MobileNetV2Space(**TINY), width=0.2)
    genome = net.largest()
    with pytest.raises(TinyevoError, match="width"):
        net.set_active({**genome, "width": 0.35})
    with pytest.raises(TinyevoError, match="kernel"):
        net.set_active({**genome, "kernel": [9] * len(genome["kernel"])})
    with pytest.raises(TinyevoError, match="widths"):
        Supernet(MobileNetV2Space(**TINY), width=0.5)


def test_same_seed_same_supernet_other_seed_other_supernet():
    data = load_dataset("digits")
    runs = []
    for seed in (7, 7, 8):
        net = Supernet(MobileNetV2Space(**TRAINABLE), width=0.2, seed=seed)
        train_supernet(net, data, epochs=1, data_fraction=0.05, seed=seed, progress=False)
        runs.append(net.state_dict())
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])
    assert not all(torch.equal(runs[0][k], runs[2][k]) for k in runs[0])


# --- on a supernet trained once on digits ------------------------------------------------------------
@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def trained(digits, tmp_path_factory):
    untrained = Supernet(MobileNetV2Space(**TRAINABLE), width=0.2, seed=0)
    net = Supernet(MobileNetV2Space(**TRAINABLE), width=0.2, seed=0)
    history = train_supernet(net, digits, seed=0, **FAST)
    path = net.save(tmp_path_factory.mktemp("supernet") / "tiny.npz")
    return untrained, net, history, path  # tests that change batch-norm statistics work on copies


def calibrated_loss_and_accuracy(net: Supernet, genome: dict, data) -> tuple[float, float]:
    size = (genome["resolution"],) * 2
    train_x = torch.from_numpy(data.x_train[:256])
    recalibrate_bn(net.set_active(genome), [to_input(train_x[i:i + 64], data.scale, size)
                                            for i in range(0, 256, 64)])
    x_val, y_val = torch.from_numpy(data.x_val), torch.from_numpy(data.y_val)
    with torch.no_grad():
        loss = F.cross_entropy(net.eval()(to_input(x_val, data.scale, size)), y_val).item()
    return loss, evaluate_accuracy(net, x_val, y_val, data.scale, size)


def test_sandwich_training_lowers_validation_loss_on_digits(trained, digits):
    untrained, net, history, _ = (copy.deepcopy(item) for item in trained)
    for genome in (net.largest(), net.smallest()):
        before, _ = calibrated_loss_and_accuracy(untrained, genome, digits)
        after, accuracy = calibrated_loss_and_accuracy(net, genome, digits)
        assert after < before
    _, largest_accuracy = calibrated_loss_and_accuracy(net, net.largest(), digits)
    assert largest_accuracy > 0.2  # chance is 0.1; seeds 0-3 measured 0.38-0.44 after 2 epochs
    assert history["epochs"] == 2 and len(history["loss_largest"]) == 2


def test_save_load_round_trip_gives_identical_outputs(trained):
    _, net, _, path = trained
    loaded = Supernet.load(path)
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["width"] == 0.2 and meta["space"]["kernels"] == [3, 5] and meta["training"]["epochs"] == 2
    for genome in subnets(net, 3):
        x = batches(genome["resolution"], 1, 4)[0]
        with torch.no_grad():
            torch.testing.assert_close(loaded.set_active(genome).eval()(x), net.set_active(genome).eval()(x),
                                       atol=0, rtol=0)
    with pytest.raises(TinyevoError, match="no supernet"):
        Supernet.load(path.with_name("missing.npz"))


def test_supernet_estimator_matches_recalibrated_standalone_subnet(trained, digits):
    _, _, _, path = trained
    estimator = ESTIMATORS.create("supernet", supernet_path=str(path), dataset="digits",
                                  calibration_batches=3, batch_size=32)
    estimator = pickle.loads(pickle.dumps(estimator))
    space = MobileNetV2Space(**TRAINABLE)
    genome_a, genome_b = subnets(Supernet.load(path), 2, seed=11)[2:]
    start = time.perf_counter()
    first = estimator.evaluate(space.decode(genome_a), EvalContext(genome=genome_a, space=space))
    print(f"supernet estimator: {time.perf_counter() - start:.3f} s for one subnet")
    estimator.evaluate(space.decode(genome_b), EvalContext(genome=genome_b, space=space))
    again = estimator.evaluate(space.decode(genome_a), EvalContext(genome=genome_a, space=space))
    assert again["accuracy"] == first["accuracy"] and first["seconds"] > 0
    standalone = Supernet.load(path).subnet_module(genome_a)  # the oracle: nn.BatchNorm2d, tinyevo.nn
    size = (genome_a["resolution"],) * 2
    recalibrate_bn(standalone, [to_input(b, digits.scale, size) for b in estimator.calibration_rows(digits)])
    x_val, y_val = torch.from_numpy(digits.x_val), torch.from_numpy(digits.y_val)
    assert first["accuracy"] == pytest.approx(evaluate_accuracy(standalone, x_val, y_val, digits.scale, size))


def test_supernet_estimator_refuses_genomes_it_cannot_run(trained):
    _, _, _, path = trained
    estimator = SupernetEstimator(supernet_path=str(path), dataset="digits")
    space = MobileNetV2Space(**TRAINABLE)
    genome = space.smallest()[0]
    with pytest.raises(TinyevoError, match="genome"):
        estimator.evaluate(space.decode(genome), EvalContext())
    other = MobileNetV2Space(**{**TRAINABLE, "feature_mix_layer": True})
    with pytest.raises(TinyevoError, match="another network"):
        estimator.evaluate(other.decode(genome), EvalContext(genome=genome, space=other))
