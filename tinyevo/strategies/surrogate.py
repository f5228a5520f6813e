"""``surrogate``: aging evolution whose children are chosen by a model of accuracy (NPENAS-like).

Model-based NAS (BANANAS, White et al. 2021; NPENAS, Wei et al. 2022) trains a cheap model of
accuracy over the genomes evaluated so far and, at each step, evaluates the one candidate out of
many mutations of the best ones that the model expects to improve most. This strategy is
``regularized`` evolution (aging population, tournament of the whole population, one-gene
mutation, restart at a confirmed local optimum; ``presets``) with that step in place of its
random mutation:

1. ``initial_size`` random samples (10, fewer than the population: the model starts early);
2. then each child: ``pool_size`` draws of a mutation of the ``parents`` best living members
   (default 1: the best, whose one-gene neighbours regularized evolution also breeds from; draws
   that repeat, were asked before or break the run's hard constraints left out), scored by the
   expected improvement (EI) of the model over the best fitness told so far; the best-scoring
   one is asked. So the search is regularized evolution's local search from the best member,
   visiting the neighbours the model likes first, and it restarts as that one does: once every
   neighbour of the best since the last restart was asked for -- or earlier, once the model
   confirms the local optimum (one objective, fixed-length spaces, ``restart_pi``, default 0.01):
   when no candidate of the pool has a probability above ``restart_pi`` of beating the best
   member since the last restart, the population is discarded and ``restart_size`` fresh samples
   start it again, as at a confirmed optimum. The neighbours the model rules out are not spent,
   so a search visits more basins. With probability ``explore_rate`` (default 0) the child is a
   plain random mutation instead.
3. ``model_budget`` (default None: the whole run): after that many results children are plain
   random mutations, as in ``regularized``.

Tuned on NAS-Bench-201 cifar10 only, on seeds 1000 and up, kept apart from the benchmark's 0-49
(docs/surrogate_tuning.md): breeding from the 2 or 5 best instead of the best stalled late (mean
regret at 300: 0.24 and 0.25-0.44 against 0.13), a random mutation at every other step was worse
at every budget; so were two-gene mutations in the pool and random samples in the pool. The
model-confirmed restart at 0.01 (with the model for the whole run) lowered mean regret at 25 /
50 / 100 on seeds 1000-1049 (0.768 / 0.390 / 0.217 against 0.817 / 0.413 / 0.256) and kept the
floor at 300; at 0.1 it restarted too early.

The model (``model``): ``"gp"``, scikit-learn's ``GaussianProcessRegressor`` (constant x Matern
5/2 + white noise, targets normalized; its hyperparameters fitted again as the results grow by half, ``REFIT_GROWTH``, and kept in between), or ``"forest"``, a ``RandomForestRegressor`` whose spread over trees
is the uncertainty. Features: ``surrogate_features.GenomeEncoder`` (one-hot on fixed-length spaces,
a hashed bag of JSON tokens on variable-length ones), so every space works.

Cost: the pool is mostly the same neighbours of the best member from one step to the next, so
the strategy works on a ``remembered_space.remembering`` view of the space (validity and key kept
by genome, one decode for both: the pool's draws are the space's own) and keeps the cost model's
verdict and figures by genome (the runner keeps them too, ``Runner.genome_cost``). What is left
on MNIST's chain space is mostly the cost model on each new member of the pool (about 20 per
child) and its decode: docs/surrogate_tuning.md, third round.

Several objectives: accuracy (each objective the cost model does not give) is modelled; the cost
objectives come exactly from the cost model (``Strategy.set_costs``: the runner's
``genome_cost``); a candidate is scored by the expected improvement of a random-weight augmented
Chebyshev scalarization (ParEGO, Knowles 2006) of the normalized objectives, by Monte Carlo over the
model's predictive distribution; the parents are the population's non-dominated members. Hard
constraints are as in every evolutionary strategy: a candidate that breaks one is never asked.
"""
from __future__ import annotations

import math
import warnings

import numpy as np

from tinyevo.errors import TinyevoError
from tinyevo.strategies.base import DEFAULT_OBJECTIVES, OK, STRATEGIES, Candidate, Trial
from tinyevo.strategies.evolution.algorithm import Evolution
from tinyevo.strategies.evolution.presets import REGULARIZED
from tinyevo.strategies.remembered_space import genome_text, keep, remembering
from tinyevo.strategies.surrogate_features import GenomeEncoder
from tinyevo.spaces.base import SearchSpace

#: The strategy's own options and their defaults (the rest go to ``Evolution``).
SURROGATE_OPTIONS = dict(model="gp", pool_size=100, parents=1, explore_rate=0.0,
                         model_budget=None, min_observations=5, restart_pi=0.01)
SURROGATE_EVOLUTION = dict(REGULARIZED, initial_size=10)
MODELS = ("gp", "forest")
#: Monte Carlo draws of the modelled objectives per candidate (several objectives only).
MC_DRAWS = 64
#: The GP's hyperparameters are fitted again once the results grew by this factor since the last
#: fit (at 5, 8, 12, 18, ... results), and kept in between (the model itself is refitted at every
#: step).
REFIT_GROWTH = 1.5
#: Weight of the sum in the augmented Chebyshev scalarization.
AUGMENT = 0.05


@STRATEGIES.register("surrogate")
class Surrogate(Evolution):
    """Aging evolution proposing, among many mutations of the best members, the one with the
    best expected improvement under a surrogate of accuracy."""

    name = "surrogate"

    def __init__(self, space: SearchSpace, seed: int = 0, objectives=DEFAULT_OBJECTIVES, **options):
        own = {k: options.pop(k, v) for k, v in SURROGATE_OPTIONS.items()}
        # Validity and key kept by genome (the pool decodes the same neighbours step after step).
        super().__init__(remembering(space), seed, objectives, **{**SURROGATE_EVOLUTION, **options})
        if self.config.generational:
            raise TinyevoError("strategy 'surrogate' is steady state: generational=True is not an option")
        if own["model"] not in MODELS:
            raise TinyevoError(f"surrogate option model must be one of {', '.join(MODELS)}, "
                               f"got {own['model']!r}")
        for name in ("pool_size", "parents", "min_observations"):
            if int(own[name]) < 1:
                raise TinyevoError(f"surrogate option {name} must be at least 1, got {own[name]}")
        if not 0.0 <= float(own["explore_rate"]) <= 1.0:
            raise TinyevoError(f"surrogate option explore_rate must be in [0, 1], got {own['explore_rate']}")
        if own["restart_pi"] is not None and not 0.0 <= float(own["restart_pi"]) < 1.0:
            raise TinyevoError(f"surrogate option restart_pi must be in [0, 1) or None, got {own['restart_pi']}")
        if own["model_budget"] is not None and int(own["model_budget"]) < 1:
            raise TinyevoError(f"surrogate option model_budget must be at least 1 or None, got {own['model_budget']}")
        self.options = own
        self.encoder = GenomeEncoder(space)
        self._observed: list[Trial] = []  # every result told, OK or not, once per architecture
        self._observed_keys: set[str] = set()
        self._told_keys: dict[int, str] = {}  # id of an observed trial -> its key (self.key)
        self._features: dict[str, np.ndarray] = {}  # key -> encoding
        self._kernels: dict[str, object] = {}  # metric -> GP kernel with fitted hyperparameters
        self._fitted_at: dict[str, int] = {}  # metric -> observations at its last hyperparameter fit
        self.proposals = 0  # children chosen by the model
        self._verdicts: dict[str, bool] = {}  # genome text -> meets_constraints
        self._costs: dict[str, dict | None] = {}  # genome text -> cost_of

    def settings(self) -> dict:
        return {**super().settings(), **self.options}

    # --- the architecture key, once per genome -----------------------------------------------
    # The pool holds mostly the same neighbours of the best member from one step to the next:
    # ``self.space`` is a ``remembering`` view (validity and key kept by genome, one decode for
    # both) and the runner keeps the cost model's figures and verdict by genome
    # (``Runner.genome_cost``).
    def key(self, genome, text: str | None = None) -> str:
        """``space.key(genome)``, kept by genome (``text``: ``genome_text(genome)`` if known)."""
        return self.space.key(genome, text)

    def set_feasibility(self, check) -> None:
        super().set_feasibility(check)
        self._verdicts.clear()

    def set_costs(self, costs) -> None:
        super().set_costs(costs)
        self._costs.clear()

    def _meets(self, genome, text: str) -> bool:
        """``meets_constraints``, kept by genome text."""
        if text not in self._verdicts:
            keep(self._verdicts, text, self.meets_constraints(genome))
        return self._verdicts[text]

    def _cost(self, genome, text: str) -> dict | None:
        """``cost_of``, kept by genome text (the figures are only read)."""
        if text not in self._costs:
            keep(self._costs, text, self.cost_of(genome))
        return self._costs[text]

    # --- ask -----------------------------------------------------------------------------------
    def _hand_out(self) -> Candidate:
        if self._wants_initial() or not self._model_time():
            return super()._hand_out()
        if self.options["explore_rate"] and self.rng.random() < self.options["explore_rate"]:
            return super()._hand_out()
        candidate = self._proposal()
        if candidate is None:  # nothing new around the parents: evolution's own fallback
            return super()._hand_out()
        self._seen.add(self.key(candidate.genome))
        self.proposals += 1
        return candidate

    def _model_time(self) -> bool:
        ok = sum(1 for t in self._observed if t.status == OK)
        return (ok >= self.options["min_observations"]
                and (self.options["model_budget"] is None
                     or len(self._observed) < self.options["model_budget"]))

    def _proposal(self) -> Candidate | None:
        parents = self._parents()
        if not parents:
            return None
        pool, keys, texts = [], set(), []
        for draw in range(self.options["pool_size"]):
            parent = parents[draw % len(parents)]
            genome = self.mutation.mutate(parent.genome, self.rng)
            text = genome_text(genome)
            key = self.key(genome, text)
            if key in keys or key in self._seen or not self._meets(genome, text):
                continue
            keys.add(key)
            texts.append(text)
            pool.append(Candidate(genome, (parent.id,), "mutation+surrogate"))
        if not pool:
            return None
        genomes = [c.genome for c in pool]
        if len(self.objectives) > 1:
            return pool[int(np.argmax(self._scalarized_improvement(genomes, texts)))]
        mean, std = self.predict(self.objective.metric, genomes)
        mean = mean if self.objective.direction == "max" else -mean
        if self.options["restart_pi"] is not None and self._model_says_stuck(mean, std):
            self.population, self._restart_left = [], self.restart.restart_size
            self.restart.reset()
            self.restarts += 1
            return None
        return pool[int(np.argmax(self._improvement(mean, std)))]

    def _model_says_stuck(self, mean: np.ndarray, std: np.ndarray) -> bool:
        """A local optimum confirmed by the model: the probability that a candidate beats the
        best member since the last restart is below ``restart_pi`` for each of them."""
        best = getattr(self.restart, "best_fitness", -math.inf)
        if not self.restart.restart_size or not math.isfinite(best):
            return False
        from scipy.stats import norm
        return float(norm.cdf((mean - best) / std).max()) < float(self.options["restart_pi"])

    def _improvement(self, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
        """EI of fitness (``mean``, ``std``: the model's, sign-adjusted) over the best so far."""
        told = [self.fitness(t) for t in self._observed if t.status == OK]
        return expected_improvement(mean, std, max(told))

    def _parents(self):
        """The ``parents`` best living members (several objectives: non-dominated first)."""
        living = [i for i in self.population if math.isfinite(i.fitness)]
        if len(self.objectives) == 1:
            ranked = sorted(living, key=lambda i: (i.fitness, i.born), reverse=True)
        else:
            from tinyevo.strategies.pareto import pareto_front
            front = {id(t) for t in pareto_front([i.trial for i in living], self.objectives)}
            ranked = sorted(living, key=lambda i: (id(i.trial) in front, i.fitness, i.born),
                            reverse=True)
        return ranked[:self.options["parents"]]

    # --- the model -----------------------------------------------------------------------------
    def acquisition(self, genomes: list) -> np.ndarray:
        """Expected improvement of each genome (larger is better)."""
        if len(self.objectives) == 1:
            mean, std = self.predict(self.objective.metric, genomes)
            return self._improvement(mean if self.objective.direction == "max" else -mean, std)
        return self._scalarized_improvement(genomes)

    def predict(self, metric: str, genomes: list, texts: list | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The model's mean and standard deviation of ``metric`` for each genome (``texts``:
        their ``genome_text`` when known)."""
        told = [t for t in self._observed if t.status == OK and metric in t.metrics]
        x = self.encode([t.genome for t in told], [self._told_keys[id(t)] for t in told])
        y = np.array([float(t.metrics[metric]) for t in told])
        query = self.encode(genomes, texts=texts)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if self.options["model"] == "forest":
                return self._forest(x, y, query)
            return self._gp(metric, x, y, query)

    def encode(self, genomes: list, keys: list | None = None, texts: list | None = None) -> np.ndarray:
        """The features of each genome (kept by architecture key; ``keys`` or ``texts``: their
        keys or ``genome_text`` when known)."""
        if keys is None:
            texts = texts if texts is not None else [None] * len(genomes)
            keys = [self.key(g, t) for g, t in zip(genomes, texts)]
        new = {k: g for k, g in zip(keys, genomes) if k not in self._features}
        if new:
            self._features.update(zip(new, self.encoder.encode(list(new.values()))))
        return np.array([self._features[k] for k in keys]).reshape(len(keys), self.encoder.width)

    def _gp(self, metric: str, x, y, query):
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel
        refit = (metric not in self._kernels
                 or len(y) >= REFIT_GROWTH * self._fitted_at[metric])
        if refit:
            kernel = (ConstantKernel(1.0, (1e-2, 1e2)) * Matern(2.0, (0.1, 50.0), nu=2.5)
                      + WhiteKernel(0.1, (1e-5, 1.0)))
            model = GaussianProcessRegressor(kernel, normalize_y=True, random_state=self.seed)
        else:
            model = GaussianProcessRegressor(self._kernels[metric], normalize_y=True, optimizer=None)
        model.fit(x, y)
        if refit:
            self._kernels[metric], self._fitted_at[metric] = model.kernel_, len(y)
        mean, std = model.predict(query, return_std=True)
        return mean, np.maximum(std, 1e-9)

    def _forest(self, x, y, query):
        from sklearn.ensemble import RandomForestRegressor
        model = RandomForestRegressor(n_estimators=50, min_samples_leaf=2, random_state=self.seed,
                                      n_jobs=1).fit(x, y)
        per_tree = np.stack([tree.predict(query) for tree in model.estimators_])
        return per_tree.mean(axis=0), np.maximum(per_tree.std(axis=0), 1e-9)

    def _scalarized_improvement(self, genomes: list, texts: list | None = None) -> np.ndarray:
        """Monte Carlo expected improvement of a random-weight augmented Chebyshev scalarization
        of the objectives' losses, normalized over the results told so far."""
        told = [t for t in self._observed
                if t.status == OK and t.metrics.get("constraint_violation", 0) <= 0
                and all(o.metric in t.metrics for o in self.objectives)]
        if not told:
            return np.zeros(len(genomes))
        losses = np.array([[o.as_loss(float(t.metrics[o.metric])) for o in self.objectives]
                           for t in told])
        low, span = losses.min(axis=0), np.maximum(np.ptp(losses, axis=0), 1e-12)
        weights = self.rng.dirichlet(np.ones(len(self.objectives)))
        best = scalarize((losses - low) / span, weights).min()
        draws = np.empty((MC_DRAWS, len(genomes), len(self.objectives)))
        texts = texts if texts is not None else [genome_text(g) for g in genomes]
        costs = [self._cost(g, t) for g, t in zip(genomes, texts)]
        normal = self.rng.standard_normal((MC_DRAWS, len(genomes)))
        for column, objective in enumerate(self.objectives):
            exact = [c.get(objective.metric) if c else None for c in costs]
            if all(v is not None for v in exact):
                draws[:, :, column] = objective.as_loss(1.0) * np.array(exact, dtype=float)
            else:
                mean, std = self.predict(objective.metric, genomes, texts)
                draws[:, :, column] = objective.as_loss(1.0) * (mean + std * normal)
        scalar = scalarize((draws - low) / span, weights)
        return np.maximum(best - scalar, 0.0).mean(axis=0)

    # --- tell ----------------------------------------------------------------------------------
    def tell(self, trials: list[Trial]) -> None:
        for trial in trials:
            key = trial.key or self.key(trial.genome)
            if key not in self._observed_keys:
                self._observed_keys.add(key)
                self._observed.append(trial)
                self._told_keys[id(trial)] = self.key(trial.genome)
        super().tell(trials)


def scalarize(normalized: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Augmented Chebyshev scalarization of normalized losses (last axis: objectives)."""
    weighted = normalized * weights
    return weighted.max(axis=-1) + AUGMENT * weighted.sum(axis=-1)


def expected_improvement(mean: np.ndarray, std: np.ndarray, best: float) -> np.ndarray:
    """E[max(f - best, 0)] for f ~ N(mean, std^2), larger is better."""
    from scipy.stats import norm
    z = (mean - best) / std
    return (mean - best) * norm.cdf(z) + std * norm.pdf(z)
