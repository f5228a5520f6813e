"""DARTS on nb201 (``tinyevo.darts``): the relaxation against the discrete network, the expected cost
against the cost model, the second-order gradient against autograd, seeding, resume, and the front
doors (CLI and ``tinyevo.search``)."""
import json

import numpy as np
import pytest
import torch

import tinyevo
from tinyevo import cli
from tinyevo.darts import bilevel
from tinyevo.darts.bilevel import second_order_gradient
from tinyevo.darts.discrete import discrete_state
from tinyevo.darts.expected_cost import cost_tables, expected_cost, multilinear
from tinyevo.darts.relaxed_nb201 import RelaxedNb201, one_hot, skip_count
from tinyevo.darts.remedies import shrink
from tinyevo.darts.search import DartsSearch, DartsSettings
from tinyevo.errors import TinyevoError
from tinyevo.estimate.training import cached_dataset
from tinyevo.hardware.cost import estimate_cost
from tinyevo.hardware.limits import Constraints
from tinyevo.nn import build
from tinyevo.spaces.nb201 import NB201_OPS, NasBench201Space, format_cell

torch.set_num_threads(1)
SMALL = NasBench201Space(input_shape=(8, 8, 3), num_classes=5, channels=4, cells_per_stage=2)
#: Cells with dead code and all-zero nodes: a conv into a node the output ignores, a skip of zeros.
SPECIAL = [
    format_cell(["nor_conv_3x3", "none", "none", "skip_connect", "none", "none"]),  # dead conv
    format_cell(["none", "none", "skip_connect", "none", "skip_connect", "none"]),  # zero output
    format_cell(["none", "nor_conv_1x1", "avg_pool_3x3", "none", "none", "nor_conv_3x3"]),
    format_cell(["avg_pool_3x3", "nor_conv_3x3", "nor_conv_1x1", "skip_connect", "skip_connect", "none"]),
    format_cell(["none"] * 6),
]


def random_batch_norms(net, generator):
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1, generator=generator)
            m.running_var.uniform_(0.5, 2, generator=generator)
            m.weight.data.uniform_(0.5, 1.5, generator=generator)
            m.bias.data.uniform_(-0.5, 0.5, generator=generator)


def cells(count, seed=0):
    rng = np.random.default_rng(seed)
    return SPECIAL + [SMALL.sample(rng) for _ in range(count)]


@pytest.mark.parametrize("genome", cells(6))
def test_relaxed_forward_with_one_hot_weights_is_the_discrete_network(genome):
    """Oracle: ``tinyevo.nn.build(space.decode(genome))`` loaded with the relaxed network's weights."""
    torch.manual_seed(0)
    net = RelaxedNb201(SMALL)
    random_batch_norms(net, torch.Generator().manual_seed(1))
    net.eval()
    module = build(SMALL.decode(genome))
    module.load_state_dict(discrete_state(net, genome))
    module.eval()
    x = torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.allclose(net(x, one_hot(genome)), module(x), atol=1e-5, rtol=1e-5)


def test_expected_cost_of_one_hot_weights_is_the_cost_models_figure():
    """Oracle: ``estimate_cost`` of the decoded network, for every metric, on 60 cells."""
    for genome in cells(55, seed=3):
        figures = expected_cost(SMALL, one_hot(genome).double())
        cost = estimate_cost(SMALL.decode(genome))
        assert [float(figures[m]) for m in ("macs", "flash_bytes", "peak_sram_bytes")] == \
            [cost.macs, cost.flash_bytes, cost.peak_sram_bytes], genome


def test_expected_cost_mixes_the_figures_of_the_cells_it_mixes():
    """Half nor_conv_3x3, half none on edge 3<-2 (every other edge one-hot): the expected MACs and
    flash are the means of the two cells' cost-model figures."""
    ops = ["nor_conv_3x3", "nor_conv_1x1", "skip_connect", "avg_pool_3x3", "nor_conv_1x1"]
    with_conv, without = (format_cell(ops + [last]) for last in ("nor_conv_3x3", "none"))
    weights = one_hot(with_conv).double()
    weights[5] = 0
    weights[5, NB201_OPS.index("nor_conv_3x3")] = weights[5, NB201_OPS.index("none")] = 0.5
    figures = expected_cost(SMALL, weights)
    a, b = estimate_cost(SMALL.decode(with_conv)), estimate_cost(SMALL.decode(without))
    assert float(figures["macs"]) == (a.macs + b.macs) / 2
    assert float(figures["flash_bytes"]) == (a.flash_bytes + b.flash_bytes) / 2


def test_expected_cost_is_differentiable():
    alpha = torch.randn(6, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0),
                        requires_grad=True)
    tables = cost_tables(SMALL)
    for metric in ("macs", "flash_bytes"):
        assert torch.autograd.gradcheck(lambda a: multilinear(torch.softmax(a, 1), tables[metric]), alpha)
    for metric in ("macs", "flash_bytes", "peak_sram_bytes"):
        grad, = torch.autograd.grad(expected_cost(SMALL, torch.softmax(alpha, 1))[metric], alpha)
        assert grad.abs().sum() > 0
        conv = NB201_OPS.index("nor_conv_3x3")
        assert (grad[:, conv] > 0).all(), metric  # more weight on a 3x3 conv costs more


def test_second_order_gradient_matches_autograd_unrolled_gradient(monkeypatch):
    """Oracle: the exact gradient of L_val(w - xi grad_w L_train(w, alpha), alpha) by double backward.
    Liu et al.'s central finite difference approximates its Hessian-vector product; with a small
    step (1e-5 instead of their 0.01, which on this ReLU net crosses kinks) it must agree closely."""
    monkeypatch.setattr(bilevel, "FINITE_DIFFERENCE", 1e-5)
    space = NasBench201Space(input_shape=(4, 4, 2), num_classes=3, channels=2, cells_per_stage=1)
    torch.manual_seed(0)
    net = RelaxedNb201(space).double()
    with torch.no_grad():
        net.alpha.normal_()
    net.eval()  # fixed batch-norm statistics: the losses are then functions of w and alpha only
    gen = torch.Generator().manual_seed(1)
    xw, xa = (torch.randn(8, 2, 4, 4, generator=gen, dtype=torch.float64) for _ in range(2))
    yw, ya = (torch.randint(3, (8,), generator=gen) for _ in range(2))
    xi = 0.05
    second_order_gradient(net, (xw, yw), (xa, ya), xi, weight_decay=0.0)
    approx = net.alpha.grad.clone()
    weights = net.weight_parameters()
    train = torch.nn.functional.cross_entropy(net(xw), yw)
    grads = torch.autograd.grad(train, weights, create_graph=True)
    unrolled = [p - xi * g for p, g in zip(weights, grads)]
    names = [n for n, _ in net.named_parameters() if n != "alpha"]
    params = {**dict(zip(names, unrolled)), "alpha": net.alpha}
    val = torch.nn.functional.cross_entropy(torch.func.functional_call(net, params, (xa,)), ya)
    exact, = torch.autograd.grad(val, net.alpha)
    assert torch.allclose(approx, exact, rtol=1e-3, atol=2e-5)


def test_shrink_drops_each_edges_weakest_op():
    net = RelaxedNb201(SMALL)
    with torch.no_grad():
        net.alpha.copy_(torch.arange(30, dtype=torch.float32).reshape(6, 5).flip(1))  # op 4 weakest
    shrink(net, keep_at_least=2)
    assert net.op_mask[:, 4].sum() == 0 and net.op_mask[:, :4].all()
    assert torch.allclose(net.edge_weights()[:, 4], torch.zeros(6))


@pytest.fixture(scope="module")
def digits():
    return cached_dataset("digits", None, 0, {})


def tiny_search(digits, run_dir=None, **options):
    space = NasBench201Space(digits.input_shape, digits.num_classes, channels=2, cells_per_stage=1)
    settings = DartsSettings(**{"epochs": 1, "data_fraction": 0.15, "batch_size": 32, **options})
    return DartsSearch(space, digits, settings, seed=4, run_dir=run_dir, progress=False)


def test_same_seed_same_search(digits):
    first, second = tiny_search(digits), tiny_search(digits)
    a, b = first.run(), second.run()
    assert a.genome == b.genome and a.history == b.history
    assert torch.equal(first.net.alpha, second.net.alpha)


def test_a_killed_search_resumes_from_its_last_epoch(digits, tmp_path, monkeypatch):
    whole = tiny_search(digits, epochs=2)
    whole.run()
    killed = tiny_search(digits, tmp_path, epochs=2)
    original = DartsSearch.epoch

    def die_in_second_epoch(self, epoch):
        if epoch == 1:
            raise KeyboardInterrupt
        return original(self, epoch)

    monkeypatch.setattr(DartsSearch, "epoch", die_in_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        killed.run()
    monkeypatch.setattr(DartsSearch, "epoch", original)
    resumed = tiny_search(digits, tmp_path, epochs=2)
    result = resumed.run()
    assert result.epochs == 2
    assert torch.equal(resumed.net.alpha, whole.net.alpha)
    assert [r["train_loss"] for r in result.history] == [r["train_loss"] for r in whole.state["history"]]


def test_other_settings_do_not_resume_a_checkpoint(digits, tmp_path):
    tiny_search(digits, tmp_path).run()
    with pytest.raises(TinyevoError, match="other settings"):
        tiny_search(digits, tmp_path, remedy="shrink").run()


@pytest.mark.parametrize("remedy", ["early_stop", "shrink", "perturbation"])
def test_each_remedy_ends_on_a_cell(digits, remedy):
    search = tiny_search(digits, epochs=2, remedy=remedy, tune_steps=1, max_skips=1)
    result = search.run()
    NasBench201Space().to_vector(result.genome)  # a valid cell string
    if remedy == "perturbation":
        assert sorted(r["edge"] for r in result.selection) == list(range(6))
        assert (search.net.op_mask.sum(1) == 1).all()
    if remedy == "early_stop" and result.epochs < 2:
        assert skip_count(result.history[-1]["genome"]) >= 1


def test_warmup_epochs_train_the_weights_and_leave_alpha_at_zero(digits):
    """During ``warmup_epochs`` only ``w`` moves: alpha is still all zeros after them (its
    initialization), the weights are not; the epoch after the warm-up moves alpha."""
    search = tiny_search(digits, epochs=2, warmup_epochs=1)
    start = [p.detach().clone() for p in search.net.weight_parameters()]
    search.state["history"].append(search.epoch(0))
    assert torch.equal(search.net.alpha, torch.zeros_like(search.net.alpha))
    assert any(not torch.equal(a, b) for a, b in zip(start, search.net.weight_parameters()))
    assert search.state["history"][0]["alpha_accuracy"] is None
    search.epoch(1)
    assert not torch.equal(search.net.alpha, torch.zeros_like(search.net.alpha))


def test_exclude_none_never_discretizes_an_edge_to_none():
    """Oracle by hand: alpha favouring ``none`` on edge 0 and ``avg_pool_3x3`` second: the plain
    argmax keeps none, Liu et al.'s rule the runner-up; an edge with none alone keeps it."""
    net = RelaxedNb201(NasBench201Space(channels=2, cells_per_stage=1))
    with torch.no_grad():
        net.alpha[:, 3] = 1.0  # nor_conv_3x3 elsewhere
        net.alpha[0] = torch.tensor([5.0, 0.0, 0.0, 0.0, 1.0])
    assert net.genome().startswith("|none~0|+|nor_conv_3x3~0|")
    net.exclude_none = True
    assert net.genome().startswith("|avg_pool_3x3~0|+|nor_conv_3x3~0|")
    net.op_mask[1] = torch.tensor([True, False, False, False, False])
    assert net.genome().startswith("|avg_pool_3x3~0|+|none~0|")


def test_perturbation_with_exclude_none_keeps_no_none(digits):
    search = tiny_search(digits, remedy="perturbation", tune_steps=1, exclude_none=True)
    result = search.run()
    assert "none" not in result.genome
    assert all("none" not in r["drops"] for r in result.selection)


def test_bad_darts_option_is_one_line():
    with pytest.raises(TinyevoError, match="remedy must be one of"):
        DartsSettings(remedy="magic")
    with pytest.raises(TinyevoError, match="unknown darts option 'epoch'"):
        DartsSettings.from_options({"epoch": 3})
    with pytest.raises(TinyevoError, match="warmup_epochs must be at least 0 and below epochs") as bad:
        DartsSettings(epochs=4, warmup_epochs=4)
    assert "\n" not in str(bad.value)


CONFIG = """
space = "nb201"
dataset = "digits"
strategy = "darts"
final_epochs = 1
final_models = 1
[space_options]
channels = 2
cells_per_stage = 1
"""


def test_cli_reaches_darts_and_says_when_the_cell_does_not_fit(tmp_path, capsys):
    """A flash limit above the smallest cell's but that no conv cell meets, without the penalty."""
    (tmp_path / "c.toml").write_text(CONFIG)
    smallest = estimate_cost(NasBench201Space((8, 8, 1), 10, 2, 1).decode(SPECIAL[0])).flash_bytes
    options = json.dumps({"epochs": 1, "data_fraction": 0.15, "cost_weight": 0.0})
    code = cli.main(["search", "--config", str(tmp_path / "c.toml"), "--out", str(tmp_path / "run"),
                     "--no-progress", "--strategy-options", options, "--max-flash", str(smallest + 10)])
    out = capsys.readouterr()
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert code == 0 and results["strategy"] == "darts"
    assert (tmp_path / "run" / "darts_checkpoint.npz").is_file()
    if not results["front"]:  # the cell holds a conv: over the limit, and said so in one line
        assert "darts: the discretized cell does not fit: flash_bytes" in out.err


def test_python_api_reaches_darts(tmp_path):
    (tmp_path / "c.toml").write_text(CONFIG)
    result = tinyevo.search(tmp_path / "run", config=tmp_path / "c.toml", progress=False,
                            strategy_options={"epochs": 1, "data_fraction": 0.15})
    assert result.summary["strategy"] == "darts" and result.best is not None
    assert result.best.test_accuracy is not None


def test_darts_on_a_space_it_cannot_relax_is_one_line_and_writes_nothing(tmp_path, capsys):
    code = cli.main(["search", "--strategy", "darts", "--space", "chain", "--out", str(tmp_path / "run"),
                     "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "--space nb201" in err
    assert not (tmp_path / "run").exists()


def test_second_order_search_with_a_limit_pushes_the_expected_cost_down(digits):
    """With an SRAM limit below every conv-bearing cell, the penalty lowers the expected MACs
    (the peak's proxy counts conv buffers, and convs cost the MACs) from their uniform start."""
    space = NasBench201Space(digits.input_shape, digits.num_classes, channels=2, cells_per_stage=1)
    settings = DartsSettings(epochs=1, order=2, data_fraction=0.15, batch_size=32, cost_weight=50.0)
    search = DartsSearch(space, digits, settings, seed=4, progress=False,
                         constraints=Constraints(max_peak_sram_bytes=300))
    uniform = float(expected_cost(space, search.net.edge_weights().detach())["macs"])
    result = search.run()
    assert result.history[0]["expected_cost"]["peak_sram_bytes"] > 0
    assert float(expected_cost(space, search.net.edge_weights().detach())["macs"]) < uniform
