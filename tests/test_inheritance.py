"""Weight inheritance on digits: a child starts where its parent stopped.

Oracles: the parent's accuracy computed with plain torch from its saved .npz, the parent module's
outputs (function-preserving morphisms), the parent's tensors compared bit for bit, parameter
counts from the IR, and the plain training estimator (a child with no parent weights).
"""
from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch

from tinyevo.arch import Architecture
from tinyevo.data import load_dataset
from tinyevo.errors import TinyevoError
from tinyevo.estimate import ESTIMATORS, EvalContext
from tinyevo.estimate.inheritance import InheritanceEstimator
from tinyevo.estimate.morphism import inherit
from tinyevo.estimate.training import TrainingEstimator
from tinyevo.estimate.weights_store import (load_weights, prune_weights, save_weights, stored_trial_ids,
                                            weights_path)
from tinyevo.nn import build
from tinyevo.spaces.chain import ChainSpace

torch.set_num_threads(1)
SPACE = ChainSpace(input_shape=(8, 8, 1), num_classes=10)
PARENT = "c8k3s1-c16k3s2-gap"
FAST = dict(lr=1e-2, batch_size=32)


def arch_of(text: str) -> Architecture:
    return SPACE.decode(SPACE.parse(text))


def read_npz(path) -> tuple[Architecture, dict[str, np.ndarray]]:
    with np.load(path, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    return Architecture.from_json(json.loads(str(arrays.pop("architecture.json")))), arrays


def plain_torch_accuracy(path) -> float:
    """Validation accuracy of saved weights: torch forward pass, arg-max, compared with the labels."""
    architecture, arrays = read_npz(path)
    module = build(architecture)
    module.load_state_dict({name: torch.from_numpy(array) for name, array in arrays.items()})
    data = load_dataset("digits")
    x = torch.from_numpy(data.x_val).float().mul(data.scale).permute(0, 3, 1, 2)
    with torch.no_grad():
        predicted = module.eval()(x).argmax(1).numpy()
    return float(np.mean(predicted == data.y_val))


def randomized(architecture: Architecture, seed: int) -> torch.nn.Module:
    """A module with random weights and random batch-norm statistics (nothing is the identity)."""
    torch.manual_seed(seed)
    module = build(architecture)
    for layer in module.modules():
        if isinstance(layer, torch.nn.BatchNorm2d):
            layer.running_mean.uniform_(-0.5, 0.5)
            layer.running_var.uniform_(0.5, 2.0)
            layer.weight.data.uniform_(0.5, 1.5)
            layer.bias.data.uniform_(-0.3, 0.3)
    return module.eval()


@pytest.fixture(scope="module")
def trained_parent(tmp_path_factory):
    """Trial 0, trained from scratch for 2 epochs; its weights are in ``run_dir``."""
    run_dir = tmp_path_factory.mktemp("run")
    metrics = InheritanceEstimator(scratch_epochs=2, **FAST).evaluate(
        arch_of(PARENT), EvalContext(trial_id=0, seed=1, run_dir=run_dir))
    return run_dir, metrics


def test_a_child_identical_to_its_parent_starts_with_its_parents_accuracy(trained_parent):
    run_dir, parent_metrics = trained_parent
    oracle = plain_torch_accuracy(weights_path(run_dir, 0))
    assert oracle > 0.5  # the parent learned (chance is 0.1), so a fresh network would not match it
    child = InheritanceEstimator(epochs=0, **FAST).evaluate(
        arch_of(PARENT), EvalContext(trial_id=1, seed=2, parents=(0,), run_dir=run_dir))
    assert child["accuracy"] == oracle == parent_metrics["accuracy"]
    assert child["inherited_fraction"] == 1.0 and child["inherited_from"] == 0 and child["epochs"] == 0


MORPHISMS = {  # parent -> child, each one function-preserving step of network morphism
    "widen conv": ("c8k3s1-c8k3s2-gap", "c16k3s1-c8k3s2-gap"),
    "widen separable": ("ds8k3s1-c8k3s2-gap", "ds12k3s1-c8k3s2-gap"),
    "widen before flatten": ("c8k3s1-c8k3s2-flat", "c8k3s1-c13k3s2-flat"),
    "widen dense": ("c8k3s1-gap-f16", "c8k3s1-gap-f32"),
    "deepen conv": ("c8k3s1-c8k3s2-gap", "c8k3s1-c8k3s1-c8k3s2-gap"),
    "deepen separable": ("c8k3s1-c8k3s2-gap", "c8k3s1-ds8k3s1-c8k3s2-gap"),
    "deepen and widen": ("c8k3s1-c8k3s2-gap", "c8k3s1-c16k5s1-c8k3s2-gap"),
    "deepen at the input": ("c8k3s1-gap", "c4k3s1-c8k3s1-gap"),
    "deepen dense": ("c8k3s1-gap", "c8k3s1-gap-f32"),
    "enlarge kernel": ("c8k3s2-c8k3s2-gap", "c8k5s2-c8k3s2-gap"),
    "pooled to flattened head": ("c8k3s2-c8k3s2-gap-f16", "c8k3s2-c12k3s2-flat-f16"),
}


@pytest.mark.parametrize("parent_text, child_text", MORPHISMS.values(), ids=MORPHISMS.keys())
def test_function_preserving_widening_and_deepening(parent_text, child_text, tmp_path):
    parent_arch, child_arch = arch_of(parent_text), arch_of(child_text)
    parent = randomized(parent_arch, seed=0)
    save_weights(tmp_path, 5, parent.state_dict(), parent_arch)
    data = load_dataset("digits")
    x = torch.from_numpy(data.x_val[:64]).float().mul(data.scale).permute(0, 3, 1, 2)
    child = build(child_arch).eval()
    with torch.no_grad():
        expected = parent(x)
        assert not torch.allclose(child(x), expected, atol=1e-2)  # a fresh child computes something else
        inherit(child, child_arch, [load_weights(tmp_path, 5)], np.random.default_rng(0))
        torch.testing.assert_close(child.eval()(x), expected, atol=1e-5, rtol=0)


def altered(text: str, index: int, field: str, value) -> str:
    genome = SPACE.parse(text)
    genome[index][field] = value
    return SPACE.describe(genome)


def test_a_mutated_child_inherits_its_unchanged_layers_bit_for_bit(trained_parent):
    """Kernel 3 -> 5 in the first layer: every other tensor is the parent's, its centre too."""
    run_dir, _ = trained_parent
    child_text = altered(PARENT, 0, "kernel", 5)
    metrics = InheritanceEstimator(epochs=0, **FAST).evaluate(
        arch_of(child_text), EvalContext(trial_id=2, seed=3, parents=(0,), run_dir=run_dir))
    _, parent = read_npz(weights_path(run_dir, 0))
    _, child = read_npz(weights_path(run_dir, 2))
    altered_key = "layers.conv2d_1.conv.weight"
    assert sorted(parent) == sorted(child)
    for key in parent:
        if key != altered_key:
            assert np.array_equal(child[key], parent[key]), key
    assert child[altered_key].shape == (8, 1, 5, 5)
    assert np.array_equal(child[altered_key][:, :, 1:4, 1:4], parent[altered_key])
    ring = 8 * 1 * (25 - 9)  # taps of the 5x5 kernels outside the parent's 3x3 centre
    assert metrics["inherited_fraction"] == pytest.approx(1 - ring / arch_of(child_text).trainable_params())
    assert 0 < metrics["inherited_fraction"] < 1


def test_a_widened_layer_keeps_the_parents_channels(trained_parent, tmp_path):
    run_dir, _ = trained_parent
    _, parent = read_npz(weights_path(run_dir, 0))
    child_arch = arch_of(altered(PARENT, 1, "filters", 24))
    child = build(child_arch)
    info = inherit(child, child_arch, [load_weights(run_dir, 0)], np.random.default_rng(0))
    state = {key: tensor.numpy() for key, tensor in child.state_dict().items()}
    assert np.array_equal(state["layers.conv2d_1.conv.weight"], parent["layers.conv2d_1.conv.weight"])
    assert np.array_equal(state["layers.conv2d_2.conv.weight"][:16], parent["layers.conv2d_2.conv.weight"])
    assert info["inherited_fraction"] == 1.0  # replicas of the parent's channels, nothing fresh


def test_weights_are_found_by_trial_id_and_pruned(tmp_path):
    arch = arch_of(PARENT)
    for trial_id in range(4):
        save_weights(tmp_path, trial_id, randomized(arch, seed=trial_id).state_dict(), arch)
    save_weights(tmp_path, 5, randomized(arch_of("c8k3s1-gap"), seed=5).state_dict(), arch_of("c8k3s1-gap"))
    estimator = InheritanceEstimator(epochs=0, **FAST)
    metrics = estimator.evaluate(arch, EvalContext(trial_id=6, seed=9, parents=(5, 2), run_dir=tmp_path))
    assert metrics["inherited_from"] == 2  # of two parents, the one that gives the child most
    _, child = read_npz(weights_path(tmp_path, 6))
    _, two = read_npz(weights_path(tmp_path, 2))
    _, one = read_npz(weights_path(tmp_path, 1))
    key = "layers.conv2d_2.conv.weight"
    assert np.array_equal(child[key], two[key]) and not np.array_equal(child[key], one[key])
    assert prune_weights(tmp_path, keep_ids=[2, 6]) == [0, 1, 3, 5]
    assert stored_trial_ids(tmp_path) == [2, 6] and load_weights(tmp_path, 1) is None
    assert sorted(p.name for p in (tmp_path / "weights").iterdir()) == ["2.npz", "6.npz"]  # no temp files


def test_missing_parent_weights_train_from_scratch(tmp_path):
    arch = arch_of(PARENT)
    context = EvalContext(trial_id=3, seed=4, parents=(7,), run_dir=tmp_path)
    metrics = InheritanceEstimator(epochs=0, scratch_epochs=1, **FAST).evaluate(arch, context)
    plain = TrainingEstimator(epochs=1, **FAST).evaluate(arch, context)
    assert metrics["inherited_fraction"] == 0 and metrics["inherited_from"] == -1
    assert metrics["epochs"] == 1 and metrics["learning_curve"] == plain["learning_curve"]
    assert stored_trial_ids(tmp_path) == [3]  # kept for its own children
    no_run_dir = InheritanceEstimator(scratch_epochs=1, **FAST).evaluate(
        arch, EvalContext(seed=4, parents=(0,)))
    assert no_run_dir["inherited_from"] == -1 and no_run_dir["learning_curve"] == plain["learning_curve"]


def test_registered_picklable_and_checked():
    estimator = ESTIMATORS.create("inheritance", epochs=0, scratch_epochs=2)
    assert isinstance(estimator, InheritanceEstimator) and "run_dir" in estimator.needs
    assert pickle.loads(pickle.dumps(estimator)) == estimator
    with pytest.raises(TinyevoError, match="scratch_epochs"):
        InheritanceEstimator(epochs=-1)
    with pytest.raises(TinyevoError, match="scratch_epochs"):
        InheritanceEstimator(scratch_epochs=0)
    with pytest.raises(TinyevoError, match="optimizer"):
        InheritanceEstimator(optimizer="lion")


def test_evolution_children_inherit_through_a_process_pool(tmp_path):
    from tinyevo.run import Budget, ProcessExecutor, Runner
    from tinyevo.strategies import create_strategy

    space = ChainSpace(input_shape=(8, 8, 1), filters=(4, 8), kernels=(1, 3), units=(16,),
                       max_initial_layers=2)
    strategy = create_strategy("evolution", space, seed=0, population_size=2, tournament_size=2)
    estimator = InheritanceEstimator(epochs=1, scratch_epochs=1, **FAST)
    with ProcessExecutor(1) as pool:
        trials = Runner(space, strategy, estimator, budget=Budget(evaluations=4), executor=pool,
                        progress=False, run_dir=tmp_path).run()
    children = [t for t in trials if t.parents and t.status == "ok"]
    assert children and all(t.metrics["inherited_from"] in t.parents for t in children)
    assert all(0 < t.metrics["inherited_fraction"] <= 1 for t in children)
    # The runner pruned the weights no child can inherit any more: what is left is the population
    # (the possible parents of a longer run) and the most accurate trial (the one-objective front).
    ok = [t for t in trials if t.status == "ok"]
    best = max(t.metrics["accuracy"] for t in ok)
    keep = {member.trial.id for member in strategy.population} | {t.id for t in ok if t.metrics["accuracy"] == best}
    assert len(ok) > len(keep) and stored_trial_ids(tmp_path) == sorted(keep)


def test_pruning_keeps_possible_parents_the_front_and_trials_not_seen_yet(tmp_path):
    from types import SimpleNamespace

    from tinyevo.estimate.weights_store import possible_parents, prune_run_weights
    from tinyevo.strategies import Candidate, Objective, Trial

    arch = arch_of("c8k3s1-gap")
    for trial_id in range(8):
        save_weights(tmp_path, trial_id, randomized(arch, seed=trial_id).state_dict(), arch)
    seen = [Trial(id=i, genome=None, metrics={"accuracy": a}, key=str(i))
            for i, a in enumerate([0.5, 0.9, 0.6, 0.4, 0.7, 0.3])]
    failed = Trial(id=6, genome=None, status="failed", key="6")  # seen, never a parent, nothing on the front
    strategy = SimpleNamespace(
        population=[SimpleNamespace(trial=seen[2])],            # in the population
        _offspring={3: [SimpleNamespace(trial=seen[4])]},       # told, not merged into it yet
        _queue=[Candidate(genome=None, parents=(3,))])          # parent of a child not asked yet
    assert possible_parents(strategy) == {2, 3, 4}
    removed = prune_run_weights(tmp_path, strategy, seen + [failed], [Objective("accuracy", "max")])
    assert removed == [0, 5, 6]  # 1 is the front; 7 is a later trial a resumed run has not replayed
    assert stored_trial_ids(tmp_path) == [1, 2, 3, 4, 7]
    assert possible_parents(SimpleNamespace()) == set()  # random search: no parents
