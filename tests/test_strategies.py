"""The contract every registered strategy keeps, on every space (DESIGN.md: ask/tell, explicit RNG).

Each strategy is driven through ``ask``/``tell`` alone, as the runner drives it: a deterministic fake
evaluation (a hash of the architecture's key, so isomorphic genomes score alike; one architecture in
eight fails), repeats answered with the earlier trial, batches of varying size. Checked for each:

- same seed, same run: the asked genomes and told results are identical on a fresh space and
  strategy; another seed gives another run;
- every asked genome is valid: it decodes, passes the space's own check, survives the JSON round
  trip the store makes, and (fixed-length spaces) its choice vector gives it back;
- ask/tell is enough: candidates are ``Candidate`` records, their parents are trials told before,
  and the strategies that learn (all but ``random``) breed children from told trials;
- a strategy that needs a fixed-length decision view (``needs_fixed_length``: ``reinforce``)
  refuses a variable-length space with one line that names it.
"""
from __future__ import annotations

import hashlib
import json

import pytest

from tinyevo.errors import TinyevoError
from tinyevo.strategies import FAILED, OK, STRATEGIES, Candidate, Trial, create_strategy
from tinyevo.spaces import create_space

#: Spaces of every encoding: NAS-Bench-201 cells (fixed), MCUNet's MobileNetV2 (fixed, gated
#: genes), Genetic CNN's bits (fixed, canonical per stage) and chains of layers (variable length).
#: mbv2 at a small input keeps decoding quick.
SPACES = {"nb201": {}, "chain": {}, "mbv2": {"input_shape": (64, 64, 3)}, "dag": {}, "blocks": {},
          "densenet": {}, "nasnet": dict(input_shape=(12, 12, 3), blocks=2, cells_per_stage=1, reductions=1, channels=4),
          "kws": {}, "tcn": {}}
#: Small populations, so that every strategy breeds within a few asks (the contract does not
#: depend on sizes); ``evolution`` also crosses parents. A strategy not listed runs as registered.
OPTIONS = {"regularized": dict(population_size=6, tournament_size=3),
           "unas": dict(population_size=6, tournament_size=3),
           "evolution": dict(population_size=6, crossover_rate=0.5),
           "mcunet": dict(population_size=6, offspring_size=6, elite_size=2, truncation_size=2),
           "nsga2": dict(population_size=6)}
ASKS = 30
BATCHES = (1, 3, 2, 5)
_SPACES: dict = {}


def space_of(name: str):
    """One space object per name for the whole file (the nb201 space remembers keys)."""
    if name not in _SPACES:
        _SPACES[name] = create_space(name, **SPACES[name])
    return _SPACES[name]


def fake_evaluation(space, genome, trial_id: int) -> Trial:
    """A result that depends on the architecture alone (its key), never on the strategy."""
    key = space.key(genome)
    digest = hashlib.sha256(key.encode()).digest()
    if digest[0] % 8 == 0:
        return Trial(trial_id, genome, FAILED, {}, key=key)  # one in eight fails
    metrics = {"accuracy": int.from_bytes(digest[1:5], "big") / 2 ** 32,
               "peak_sram_bytes": float(int.from_bytes(digest[5:8], "big"))}
    return Trial(trial_id, genome, OK, metrics, key=key)


def drive(strategy_name: str, space_name: str, seed: int, asks: int = ASKS) -> list[tuple]:
    """Run a strategy through ask/tell only; the log of (genome JSON, origin, trial id, status,
    metrics). Checks every candidate on its way."""
    space = space_of(space_name)
    strategy = create_strategy(strategy_name, space, seed=seed, **OPTIONS.get(strategy_name, {}))
    known: dict[str, Trial] = {}
    told: set[int] = set()
    log: list[tuple] = []
    step = 0
    while len(log) < asks:
        candidates = strategy.ask(BATCHES[step % len(BATCHES)])
        step += 1
        assert candidates, f"{strategy_name} asked nothing"
        trials = []
        for candidate in candidates:
            check_candidate(space, candidate, told)
            key = space.key(candidate.genome)
            if key in known:  # a repeat: the runner answers with the earlier trial, same id
                earlier = known[key]
                trial = Trial(earlier.id, candidate.genome, earlier.status, dict(earlier.metrics),
                              candidate.parents, candidate.origin, key)
            else:
                trial = fake_evaluation(space, candidate.genome, len(known))
                trial.parents, trial.origin = tuple(candidate.parents), candidate.origin
                known[key] = trial
            trials.append(trial)
            log.append((space.to_json(candidate.genome), candidate.origin, trial.id, trial.status,
                        tuple(sorted(trial.metrics.items()))))
        strategy.tell(trials)
        told.update(t.id for t in trials)
    return log


def check_candidate(space, candidate, told: set[int]) -> None:
    assert isinstance(candidate, Candidate)
    genome = candidate.genome
    assert space.is_valid(genome), f"invalid genome {genome!r:.200}"  # decodes, space's own checks
    assert json.loads(space.to_json(genome)) == genome  # what the store keeps and a resume reads
    if space.encoding == "fixed":
        assert space.from_vector(space.to_vector(genome)) == genome
    assert set(candidate.parents) <= told, "a parent must be a trial told before"


CASES = [(strategy, space) for strategy in STRATEGIES.names() for space in SPACES]


@pytest.mark.parametrize("strategy_name,space_name", CASES)
def test_strategy_contract(strategy_name, space_name):
    if getattr(STRATEGIES.get(strategy_name), "needs_fixed_length", False) and \
            space_of(space_name).encoding != "fixed":
        with pytest.raises(TinyevoError, match=f"space {space_name!r} has a variable-length") as refusal:
            create_strategy(strategy_name, space_of(space_name), seed=7)
        assert "\n" not in str(refusal.value)
        return
    first = drive(strategy_name, space_name, seed=7)
    assert drive(strategy_name, space_name, seed=7) == first, "same seed must give the same run"
    assert drive(strategy_name, space_name, seed=8, asks=8) != first[:8], "the seed must matter"
    genomes = [entry[0] for entry in first]
    assert len(set(genomes)) > len(genomes) // 2, "mostly new architectures, not one repeated"
    if strategy_name != "random":  # a strategy that learns breeds from what it was told
        assert any(origin not in ("sample", "trivial", "trivial+mutation", "seeded") for _, origin, *_ in first), \
            f"{strategy_name} never bred a child in {ASKS} asks"


def test_every_registered_strategy_is_covered():
    """The cases come from the registry, so a newly registered strategy is checked too."""
    assert {"random", "evolution", "regularized", "mcunet", "unas", "nsga2"} <= set(STRATEGIES.names())
    assert {s for s, _ in CASES} == set(STRATEGIES.names())
