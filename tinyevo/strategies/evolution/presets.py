"""Named evolutionary searches with the settings of their papers.

- ``regularized`` (the default single-objective evolution; the run's default strategy is
  ``tinyevo.strategies.DEFAULT_STRATEGY``): regularized (aging) evolution, E. Real,
  A. Aggarwal, Y. Huang, Q. V. Le, "Regularized Evolution for Image Classifier Architecture
  Search", AAAI 2019. Tournament selection of sample size S, one-gene mutation, the oldest member
  discarded. The paper ran 20,000 models with P=100, S=25. tinyevo targets budgets of a few
  hundred models, where a small, greedy population does better: P=40, S=40 (with S = P the
  tournament always picks the best living member; the search stays regularized because every
  member, the best included, dies after P newer ones arrive), plus a restart at a confirmed local
  optimum (``restart="auto"``: on a fixed-length space, once every one-gene neighbour of the best
  member since the last restart was asked for, the population is discarded and 10 fresh samples
  start it again; see ``restart``). Chosen on NAS-Bench-201 (benchmarks/nb201.py) with seeds
  100-499, kept apart from the benchmark's seeds 0-49. Mean regret at 100 / 300 distinct
  architectures, 400 seeds each: this preset 0.374 / 0.133 (the best-validation cell found by 397
  of 400 searches; 0.130 is the floor); P=30, S=30 without restart (the previous preset)
  0.376 / 0.164 (382); ``unas`` (P=100, S=25) 0.995 / 0.139 (394); a steady-state GA (uniform
  crossover at 0.5, discard worst, P=25, S=5) 0.493 / 0.184. On seeds 100-299: a restart after 50
  to 120 results without a new best (instead of at a confirmed optimum) 0.32-0.35 / 0.14-0.15;
  growing P with the budget, or S < P, did no better at 100 and worse at 300; two-gene mutations
  at rate 0.2-0.4 were worse at 100. Earlier sweeps (no restart): P=25, S=5: 0.51 / 0.25; P=50,
  S=40: 0.38 / 0.20; Optuna's TPE 0.40 / 0.21. The benchmark's own seeds:
  benchmarks/results/nb201.json.
- ``mcunet``: the evolution of TinyNAS, J. Lin, W.-M. Chen, Y. Lin, J. Cohn, C. Gan, S. Han,
  "MCUNet: Tiny Deep Learning on IoT Devices", NeurIPS 2020, after Once-for-All (H. Cai et al.,
  ICLR 2020): generations of 100, the top-20 kept (elitism) and bred from, 50 children by
  crossover and 50 by mutation (each gene changed with probability 0.1), 30 generations
  (a budget of ``MCUNET_GENERATIONS + 1`` generations of 100).
- ``unas``: aging evolution as in uNAS, E. Liberis, L. Dudziak, N. D. Lane, "uNAS: Constrained
  Neural Architecture Search for Microcontrollers", EuroMLSys 2021: population 100, sample 25.

Every preset takes the options of ``EvolutionConfig`` as keyword overrides.
"""
from __future__ import annotations

from tinyevo.strategies.base import DEFAULT_OBJECTIVES, STRATEGIES
from tinyevo.strategies.evolution.algorithm import Evolution
from tinyevo.strategies.evolution.genes import is_fixed_length
from tinyevo.spaces.base import SearchSpace

MCUNET_GENERATIONS = 30

REGULARIZED = dict(population_size=40, tournament_size=40, population_update="discard_oldest",
                   parent_selection="tournament", crossover_rate=0.0, mutation="auto",
                   restart="auto", restart_size=10)
MCUNET = dict(population_size=100, offspring_size=100, generational=True,
              parent_selection="truncation", truncation_size=20, population_update="elitism",
              elite_size=20, crossover="auto", crossover_rate=0.5, mutation_rate=0.0,
              gene_mutation_rate=0.1, avoid_duplicates=False)
UNAS = dict(population_size=100, tournament_size=25, population_update="discard_oldest",
            parent_selection="tournament", crossover_rate=0.0, mutation="auto")


def _preset(name: str, settings: dict, space, seed, objectives, overrides) -> Evolution:
    strategy = Evolution(space, seed, objectives, **{**settings, **overrides})
    strategy.name = name
    return strategy


@STRATEGIES.register("regularized")
def regularized(space: SearchSpace, seed: int = 0, objectives=DEFAULT_OBJECTIVES,
                **overrides) -> Evolution:
    """Regularized (aging) evolution, Real et al. 2019."""
    return _preset("regularized", REGULARIZED, space, seed, objectives, overrides)


@STRATEGIES.register("mcunet")
def mcunet(space: SearchSpace, seed: int = 0, objectives=DEFAULT_OBJECTIVES,
           **overrides) -> Evolution:
    """TinyNAS evolution, Lin et al. 2020 (per-gene mutation needs a fixed-length space)."""
    mutation = "per_gene" if is_fixed_length(space) else "space"
    return _preset("mcunet", {**MCUNET, "mutation": mutation}, space, seed, objectives, overrides)


@STRATEGIES.register("unas")
def unas(space: SearchSpace, seed: int = 0, objectives=DEFAULT_OBJECTIVES,
         **overrides) -> Evolution:
    """Aging evolution with uNAS's population 100 and sample 25, Liberis et al. 2021."""
    return _preset("unas", UNAS, space, seed, objectives, overrides)
