"""REINFORCE (B. Zoph, Q. V. Le, ICLR 2017): a controller that emits a space's decisions one at a
time, trained by policy gradient on the accuracy of the networks it proposed.

The decisions are the space's fixed-length view (``SearchSpace.dimensions``: nb201's six edges,
mbv2's resolution, width, depths, kernels and expand ratios, ...); a space without one (``chain``,
``blocks``) is refused with ``VariableLengthSpace``. Two controllers (``controller``):

- ``lstm`` (the default): Zoph & Le's autoregressive controller, an LSTM whose step ``i`` reads
  the embedding of decision ``i - 1`` and ends in a softmax over the choices of decision ``i``.
  It is the default because the decisions of most spaces are not independent: an mbv2 stage's
  depth decides which of its kernel and expand genes exist at all, a nasnet block's op only
  matters with the state it reads; the LSTM can condition one on the other.
- ``factorized``: one independent softmax per decision (the REINFORCE baseline of the NAS-Bench-101
  and NAS-Bench-201 papers), for spaces whose decisions are independent, such as nb201's edges.

The controller works in batches of ``batch_size`` architectures (default 8; Zoph & Le: m
architectures per update). An ``ask`` that finds no drawn architecture left samples a whole batch
in one unroll of the controller (the LSTM runs once per decision on a [batch_size, hidden] state,
not once per architecture) and hands them out in order; ``tell`` keeps the results until at least
``batch_size`` are told, then makes one Adam step on all of them and drops the architectures drawn
from the old policy that were not asked yet, so every later ask comes from the updated one:

    loss = - mean_k (R_k - b) log P(a_k) - entropy_weight * mean_k H(a_k)

with ``b`` an exponential moving average of the rewards (``baseline_decay``; it starts at the
first batch's mean, so the first batch teaches nothing spurious) and ``H`` the entropy of the
controller's distributions along the path it took. The reward is MnasNet's (M. Tan et al., CVPR
2019), ``R = accuracy x prod_m (cost_m / target_m) ** w`` over the targeted cost figures, with
``w = over_target_weight`` (default -0.07, MnasNet's soft exponent) above a target and
``under_target_weight`` (default 0: within budget the reward is the accuracy, the best network that
fits; -0.07 is MnasNet's soft reward, which also favours cheaper networks) at or below it. The
targets are the run's hard limits (``Strategy.set_limits``: ``--max-sram``, ``--max-flash``, ...)
and the ``targets`` option (soft targets, e.g. ``{max_sram = "64KB"}``), which wins for the figure
it names: a network between a soft target and the hard limit is trained and penalised. The
runner never trains a candidate over a hard limit: it comes back ``infeasible`` and, like a
failed one, gets the reward ``penalty`` (default 0, the worst accuracy), so the controller learns
the bounds from the cost model alone. With a "min" first objective the reward is minus its value
and no cost factor applies.

The controller samples with replacement, as Zoph & Le's does: an architecture it proposes again
costs no evaluation (the runner answers it with the earlier trial) and still counts in its update;
the entropy bonus keeps it from settling on one too early (a run whose controller proposes
``max_consecutive_skips`` known architectures in a row stops, as for every strategy).

Same seed, same told results, same asks: the controller's weights start from a ``torch.Generator``
seeded with the strategy's seed (uniform in [-0.08, 0.08], Zoph & Le's initialization), it computes
in float64, and its choices are drawn with the strategy's ``numpy`` Generator.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from tinyevo.errors import TinyevoError
from tinyevo.hardware.limits import BY_KEY, BY_METRIC
from tinyevo.strategies.base import DEFAULT_OBJECTIVES, OK, STRATEGIES, Candidate, Strategy, Trial
from tinyevo.spaces.base import SearchSpace

#: How often a sampled vector that the space cannot build is drawn again.
DRAW_TRIES = 50
#: Zoph & Le initialize the controller's weights uniformly in [-INIT_RANGE, INIT_RANGE].
INIT_RANGE = 0.08
CONTROLLERS = ("lstm", "factorized")
DEFAULT_LEARNING_RATES = {"lstm": 0.01, "factorized": 0.1}


class VariableLengthSpace(TinyevoError):
    """A strategy that needs a fixed-length decision view was given a space without one."""


@dataclass
class ReinforceConfig:
    """The settings of a REINFORCE search, by the names of its options."""

    controller: str = "lstm"  # lstm | factorized
    #: Architectures per controller batch: sampled in one unroll, trained on in one Adam step.
    batch_size: int = 8
    #: Units of the LSTM's state (and of its choice embeddings); Zoph & Le use 35.
    hidden_size: int = 32
    #: Adam's step size; default 0.01 for the lstm, 0.1 for the factorized policy (Adam moves a
    #: logit by about this much per step, and a softmax of its own logits has far fewer weights
    #: to share the move than the LSTM).
    learning_rate: float | None = None
    #: The moving-average baseline keeps this share of itself at each reward.
    baseline_decay: float = 0.9
    #: Weight of the entropy bonus (keeps the controller exploring).
    entropy_weight: float = 0.01
    #: MnasNet's exponent above a target (negative: over-budget networks are penalised).
    over_target_weight: float = -0.07
    #: MnasNet's exponent at or below a target (0: plain accuracy within budget).
    under_target_weight: float = 0.0
    #: Soft targets by TOML key or metric (``{"max_sram": "64KB"}``), before the run's hard limits.
    targets: dict = field(default_factory=dict)
    #: Reward of a failed or infeasible trial.
    penalty: float = 0.0

    def __post_init__(self):
        if self.controller not in CONTROLLERS:
            raise TinyevoError(f"reinforce option controller must be one of {', '.join(CONTROLLERS)}, "
                               f"got {self.controller!r}")
        _check("batch_size", self.batch_size, integer=True, low=1)
        _check("hidden_size", self.hidden_size, integer=True, low=1)
        if self.learning_rate is None:
            self.learning_rate = DEFAULT_LEARNING_RATES[self.controller]
        _check("learning_rate", self.learning_rate, low=0, open_low=True)
        _check("baseline_decay", self.baseline_decay, low=0, high=1)
        _check("entropy_weight", self.entropy_weight, low=0)
        for name in ("over_target_weight", "under_target_weight", "penalty"):
            _check(name, getattr(self, name))
        self.targets = parse_targets(self.targets)

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> "ReinforceConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise TinyevoError(f"unknown reinforce option {unknown[0]!r}; choose from: "
                               f"{', '.join(sorted(known))}")
        return cls(**options)


def _check(name: str, value, integer: bool = False, low: float | None = None,
           high: float | None = None, open_low: bool = False) -> None:
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind) or not math.isfinite(value):
        raise TinyevoError(f"reinforce option {name} must be {'an integer' if integer else 'a number'}, "
                           f"got {value!r}")
    if (low is not None and (value < low or (open_low and value == low))) or \
            (high is not None and value >= high):
        bounds = f"{'>' if open_low else '>='} {low}" if low is not None else ""
        bounds += f"{' and ' if bounds else ''}< {high}" if high is not None else ""
        raise TinyevoError(f"reinforce option {name} must be {bounds}, got {value!r}")


def parse_targets(targets) -> dict[str, float]:
    """``{"max_sram": "64KB", "flash_bytes": 4500}`` as ``{cost metric: value in its unit}``."""
    if not isinstance(targets, dict):
        raise TinyevoError(f"reinforce option targets must be a table such as "
                           f"{{max_sram = \"64KB\"}}, got {targets!r}")
    parsed = {}
    for name, value in targets.items():
        limit = BY_KEY.get(name) or BY_METRIC.get(name)
        if limit is None:
            raise TinyevoError(f"unknown reinforce target {name!r}; choose from: "
                               f"{', '.join(sorted(BY_KEY))}")
        parsed[limit.metric] = limit.parse(value)
        if parsed[limit.metric] <= 0:
            raise TinyevoError(f"reinforce target {name} must be positive, got {value!r}")
    return dict(sorted(parsed.items()))


# --- controllers --------------------------------------------------------------------------------
#: ``choose(i, logits)``: the choices of decision ``i`` (a LongTensor [batch]) given its logits.
Chooser = Callable[[int, torch.Tensor], torch.Tensor]


class FactorizedPolicy(nn.Module):
    """One softmax per decision, independent of the others; starts uniform."""

    def __init__(self, sizes: list[int], generator: torch.Generator, hidden_size: int = 0):
        super().__init__()
        self.logits = nn.ParameterList(nn.Parameter(torch.zeros(k, dtype=torch.float64)) for k in sizes)

    def unroll(self, batch: int, choose: Chooser) -> list[torch.Tensor]:
        steps = []
        for i, logits in enumerate(self.logits):
            steps.append(logits.expand(batch, -1))
            choose(i, steps[-1])
        return steps


class LSTMController(nn.Module):
    """Zoph & Le's controller: an LSTM cell run once per decision; step ``i`` reads the embedding
    of the choice made at step ``i - 1`` (a learned start vector at step 0) and its state goes
    through decision ``i``'s own linear layer to that decision's logits."""

    def __init__(self, sizes: list[int], generator: torch.Generator, hidden_size: int = 32):
        super().__init__()
        self.hidden_size = hidden_size
        self.cell = nn.LSTMCell(hidden_size, hidden_size, dtype=torch.float64)
        self.start = nn.Parameter(torch.zeros(hidden_size, dtype=torch.float64))
        self.embeddings = nn.ModuleList(nn.Embedding(k, hidden_size, dtype=torch.float64) for k in sizes)
        self.heads = nn.ModuleList(nn.Linear(hidden_size, k, dtype=torch.float64) for k in sizes)
        with torch.no_grad():
            for parameter in self.parameters():
                parameter.uniform_(-INIT_RANGE, INIT_RANGE, generator=generator)

    def unroll(self, batch: int, choose: Chooser) -> list[torch.Tensor]:
        inputs = self.start.expand(batch, -1)
        state = None
        steps = []
        for i, (embedding, head) in enumerate(zip(self.embeddings, self.heads)):
            state = self.cell(inputs, state)
            steps.append(head(state[0]))
            inputs = embedding(choose(i, steps[-1]))
        return steps


POLICIES = {"lstm": LSTMController, "factorized": FactorizedPolicy}


# --- the strategy -------------------------------------------------------------------------------
@STRATEGIES.register("reinforce")
class Reinforce(Strategy):
    """Policy-gradient search over a fixed-length space; every option of ``ReinforceConfig`` can be
    passed as a keyword."""

    name = "reinforce"
    #: Refuses a space without a fixed-length decision view (``VariableLengthSpace``).
    needs_fixed_length = True

    def __init__(self, space: SearchSpace, seed: int = 0, objectives=DEFAULT_OBJECTIVES, **options):
        super().__init__(space, seed, objectives)
        self.config = ReinforceConfig.from_options(options)
        self.dimensions = space.dimensions()
        if space.encoding != "fixed" or not self.dimensions:
            raise VariableLengthSpace(
                f"strategy 'reinforce' needs a space with a fixed-length decision view; space "
                f"{space.name!r} has a variable-length encoding: use nb201, mbv2, dag, densenet or "
                f"nasnet, or another strategy")
        generator = torch.Generator().manual_seed(int(seed))
        self.policy = POLICIES[self.config.controller](
            [len(choices) for _, choices in self.dimensions], generator, self.config.hidden_size)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=self.config.learning_rate)
        self.baseline: float | None = None
        self.updates = 0  # controller steps taken
        self._asked: dict[str, list[int]] = {}  # genome JSON -> the decisions that made it
        self._drawn: list[list[int]] = []  # sampled by the current policy, not asked yet
        self._told: list[tuple[list[int], float]] = []  # (decisions, reward) since the last step

    def settings(self) -> dict:
        """The settings that rebuild this strategy (stored with a run, checked on resume)."""
        return asdict(self.config)

    # --- ask -----------------------------------------------------------------------------------
    def ask(self, n: int) -> list[Candidate]:
        return [self._draw() for _ in range(n)]

    def _draw(self) -> Candidate:
        """The controller's next architecture; a vector the space cannot build is skipped."""
        for _ in range(DRAW_TRIES):
            if not self._drawn:
                self._drawn = self.sample_vectors(self.config.batch_size)
            vector = self._drawn.pop(0)
            genome = self.space.from_vector(vector)
            if self.space.is_valid(genome):
                self._asked[self.space.to_json(genome)] = vector
                return Candidate(genome, origin="controller")
        raise TinyevoError(f"space {self.space.name!r} built none of {DRAW_TRIES} vectors the "
                           f"reinforce controller drew; check the space's options")

    def sample_vectors(self, n: int) -> list[list[int]]:
        """``n`` architectures in one unroll: decision after decision, each row drawn from its
        softmax with one uniform number of the strategy's generator (row order)."""
        columns: list[np.ndarray] = []

        def draw(i: int, logits: torch.Tensor) -> torch.Tensor:
            cumulative = np.cumsum(torch.softmax(logits, dim=1).numpy(), axis=1)
            thresholds = self.rng.random(n) * cumulative[:, -1]
            choices = (cumulative <= thresholds[:, None]).sum(axis=1)  # searchsorted, side right
            columns.append(np.minimum(choices, cumulative.shape[1] - 1))
            return torch.from_numpy(columns[-1])

        with torch.no_grad():
            self.policy.unroll(n, draw)
        return np.stack(columns, axis=1).tolist()

    def probabilities(self, vector: list[int]) -> list[np.ndarray]:
        """The controller's distribution over each decision's choices along ``vector``."""
        with torch.no_grad():
            steps = self._teacher_forced(torch.tensor([vector]))
            return [torch.softmax(logits[0], dim=0).numpy() for logits in steps]

    def _teacher_forced(self, vectors: torch.Tensor) -> list[torch.Tensor]:
        return self.policy.unroll(len(vectors), lambda i, logits: vectors[:, i])

    # --- tell ----------------------------------------------------------------------------------
    def tell(self, trials: list[Trial]) -> None:
        vectors = [self._vector_of(trial) for trial in trials]
        self._told += [(v, self.reward(t)) for v, t in zip(vectors, trials) if v is not None]
        self._asked.clear()
        if len(self._told) >= self.config.batch_size:
            told, self._told, self._drawn = self._told, [], []
            self._update([v for v, _ in told], [r for _, r in told])

    def _vector_of(self, trial: Trial) -> list[int] | None:
        """The decisions behind a told trial: those drawn for it, else its genome's own vector
        (a result told to warm-start the controller); None when it has none."""
        asked = self._asked.get(self.space.to_json(trial.genome))
        if asked is not None:
            return asked
        try:
            return [int(v) for v in self.space.to_vector(trial.genome)]
        except (TinyevoError, ValueError, KeyError, TypeError, IndexError):
            return None

    def reward(self, trial: Trial) -> float:
        """MnasNet's reward of a trial; ``penalty`` when it failed or broke a hard limit."""
        value = trial.value(self.objective)
        if trial.status != OK or value is None or not math.isfinite(value):
            return float(self.config.penalty)
        if self.objective.direction == "min":
            return -value
        return value * self.cost_factor(trial.metrics)

    def cost_factor(self, metrics: dict[str, float]) -> float:
        """``prod_m (cost_m / target_m) ** w`` over the targets the trial reports."""
        factor = 1.0
        for metric, target in self.targets().items():
            cost = metrics.get(metric)
            if cost is None or cost <= 0:
                continue
            over = cost > target
            weight = self.config.over_target_weight if over else self.config.under_target_weight
            factor *= (cost / target) ** weight
        return factor

    def targets(self) -> dict[str, float]:
        """The run's hard limits (``set_limits``), overridden by the ``targets`` option."""
        return {**self.limits, **self.config.targets}

    def _update(self, vectors: list[list[int]], rewards: list[float]) -> None:
        if self.baseline is None:
            self.baseline = float(np.mean(rewards))
        advantages = torch.tensor([r - self.baseline for r in rewards], dtype=torch.float64)
        for r in rewards:
            self.baseline = self.config.baseline_decay * self.baseline + (1 - self.config.baseline_decay) * r
        batch = torch.tensor(vectors)
        steps = self._teacher_forced(batch)
        log_probs = [torch.log_softmax(logits, dim=1) for logits in steps]
        chosen = sum(lp.gather(1, batch[:, i:i + 1]).squeeze(1) for i, lp in enumerate(log_probs))
        entropy = sum(-(lp.exp() * lp).sum(dim=1) for lp in log_probs)
        loss = -(advantages * chosen).mean() - self.config.entropy_weight * entropy.mean()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.updates += 1
