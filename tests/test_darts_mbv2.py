"""DARTS on mbv2 (``tinyevo.darts.relaxed_mbv2``): one-hot weights give the subnet's forward and the
cost model's figures; the expected cost is differentiable; a tiny search ends on an mbv2 genome."""
import numpy as np
import pytest
import torch

from tinyevo.darts.expected_cost_mbv2 import expected_cost_mbv2
from tinyevo.darts.relaxed_mbv2 import RelaxedMbv2, one_hot_choices
from tinyevo.darts.search import DartsSearch, DartsSettings
from tinyevo.errors import TinyevoError
from tinyevo.estimate.training import cached_dataset
from tinyevo.hardware.cost import estimate_cost
from tinyevo.hardware.limits import Constraints
from tinyevo.spaces.mbv2 import MobileNetV2Space

torch.set_num_threads(1)
SPACE = MobileNetV2Space(input_shape=(16, 16, 1), num_classes=10, resolutions=[16], widths=[0.2],
                         feature_mix_layer=False)


def genomes(count):
    rng = np.random.default_rng(0)
    return [SPACE.sample(rng) for _ in range(count)]


@pytest.mark.parametrize("genome", genomes(3))
def test_relaxed_mbv2_with_one_hot_weights_is_the_subnet(genome):
    """Oracle: ``tinyevo.nn.build(space.decode(genome))`` with the supernet's extracted weights."""
    net = RelaxedMbv2(SPACE, 0.2, 16, seed=1)
    generator = torch.Generator().manual_seed(1)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1, generator=generator)
            m.running_var.uniform_(0.5, 2, generator=generator)
    net.eval()
    module = net.supernet.subnet_module(genome).eval()
    x = torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.allclose(net(x, one_hot_choices(SPACE, genome)), module(x), atol=1e-5, rtol=1e-4)


def test_mbv2_expected_cost_of_one_hot_weights_is_the_cost_models_figure():
    space = MobileNetV2Space(input_shape=(32, 32, 3), resolutions=[32], widths=[0.3])
    for genome in [space.sample(np.random.default_rng(s)) for s in range(6)]:
        figures = expected_cost_mbv2(space, 0.3, 32, one_hot_choices(space, genome))
        cost = estimate_cost(space.decode(genome))
        assert [float(figures[m]) for m in ("macs", "flash_bytes", "peak_sram_bytes")] == \
            [cost.macs, cost.flash_bytes, cost.peak_sram_bytes]


def test_mbv2_expected_cost_is_differentiable():
    alphas = {k: torch.randn(n, len(c), dtype=torch.float64, generator=torch.Generator().manual_seed(i),
                             requires_grad=True)
              for i, (k, n, c) in enumerate([("kernel", 21, SPACE.kernels), ("expand", 21, SPACE.expands),
                                             ("depth", 5, SPACE.depths)])}
    weights = {k: torch.softmax(a, 1) for k, a in alphas.items()}
    cost = expected_cost_mbv2(SPACE, 0.2, 16, weights)
    for metric in ("macs", "flash_bytes", "peak_sram_bytes"):
        grads = torch.autograd.grad(cost[metric], list(alphas.values()), retain_graph=True)
        assert sum(float(g.abs().sum()) for g in grads) > 0, metric
    depth_grad, = torch.autograd.grad(cost["macs"], alphas["depth"])
    assert (depth_grad[:, -1] > 0).all()  # more weight on the deepest stage costs more MACs
    assert torch.autograd.gradcheck(
        lambda d: expected_cost_mbv2(SPACE, 0.2, 16, {**weights, "depth": torch.softmax(d, 1)})["macs"],
        alphas["depth"].detach().requires_grad_())


@pytest.mark.slow
def test_tiny_mbv2_search_ends_on_a_genome_and_refuses_nb201_options():
    data = cached_dataset("digits", None, 0, {})
    space = MobileNetV2Space(input_shape=data.input_shape, num_classes=10, resolutions=[8], widths=[0.2],
                             feature_mix_layer=False)
    settings = DartsSettings(epochs=1, data_fraction=0.1, batch_size=32)
    result = DartsSearch(space, data, settings, seed=0, progress=False,
                         constraints=Constraints(max_flash_bytes=20_000)).run()
    space.check(result.genome)
    assert "expected_cost" in result.history[0]
    with pytest.raises(TinyevoError, match="no remedy"):
        DartsSearch(space, data, DartsSettings(remedy="shrink"), progress=False)
