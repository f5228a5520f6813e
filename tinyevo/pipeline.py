"""One search from a ``SearchConfig`` to a run folder: the job behind ``tinyevo search``.

``SearchJob`` wires the config's space, board, strategy, estimator, executor and constraints into the
runner. The run folder (``tinyevo.runs``) holds every trial as it finishes and the run's settings;
running the same command again resumes. After the search, the Pareto-front models are trained at
full fidelity and kept (``tinyevo.runs.final.finalize``) so that export never retrains.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tinyevo.audio.features import dataset_frontend
from tinyevo.config import SearchConfig
from tinyevo.darts.job import DARTS, check_darts, run_darts
from tinyevo.errors import TinyevoError
from tinyevo.hardware.limits import BY_FIELD
from tinyevo.runs.config import dataset_options, objectives_of
from tinyevo.runs.estimators import run_estimator, trains
from tinyevo.runs.final import finalize
from tinyevo.runs.folder import RunLock, check_out_dir
from tinyevo.runs.layout import CONFIG_KEY, FINISHED_KEY, RUN_MARKERS, STORE_FILE
from tinyevo.strategies.base import Trial


def frontend_base(dataset, space: str) -> dict:
    """The settings a search with front-end genes starts from: those of the dataset's raw clips."""
    if dataset.meta.get("features") != "pcm":
        raise TinyevoError(f"space option frontend searches the front-end, so it needs the raw clips: "
                           f"give the dataset features = \"pcm\" (dataset_options), or drop the "
                           f"{space} option frontend")
    return dict(dataset.meta["frontend"])


@dataclass
class SearchJob:
    """Everything a search needs, built from a config (``SearchJob.create``)."""

    config: SearchConfig
    out_dir: Path
    space: object
    board: object
    dataset: object = None
    extras: dict = field(default_factory=dict)

    @classmethod
    def create(cls, config: SearchConfig, out_dir: str | Path) -> "SearchJob":
        from tinyevo.hardware import load_board
        from tinyevo.spaces import create_space

        out_dir = check_out_dir(out_dir, RUN_MARKERS)
        board = load_board(config.board)
        dataset = None
        space_options = dict(config.space_options)
        if trains(config) or config.strategy == DARTS:
            from tinyevo.estimate.training import cached_dataset  # the estimator's copy, loaded once
            dataset = cached_dataset(config.dataset, config.data_dir, config.seed, dataset_options(config))
            space_options.setdefault("input_shape", list(dataset.input_shape))
            space_options.setdefault("num_classes", dataset.num_classes)
            if space_options.get("frontend") is not None:
                space_options.setdefault("frontend_base", frontend_base(dataset, config.space))
        try:
            space = create_space(config.space, **space_options)
        except TypeError as error:
            raise TinyevoError(f"bad space_options for {config.space!r}: {error}") from None
        return cls(config, Path(out_dir), space, board, dataset)

    # --- the pieces ----------------------------------------------------------------------------
    def estimator(self, final: bool = False):
        """The search's estimator, or (``final``) the training of the final models."""
        return run_estimator(self.config, final)

    def strategy(self):
        from tinyevo.strategies import create_strategy

        try:
            return create_strategy(self.config.strategy, self.space, seed=self.config.seed,
                                   objectives=objectives_of(self.config), **self.config.strategy_options)
        except TypeError as error:
            raise TinyevoError(f"bad strategy_options for {self.config.strategy!r}: {error}") from None

    def executor(self):
        from tinyevo.run import create_executor

        e = self.config.executor
        options = {"workers": e.workers} if e.kind == "process" else {}
        if e.kind == "ray":
            options = {"address": e.address}
        return create_executor(e.kind, **options)

    def frontend(self):
        """The front-end that made the dataset's features (its cost is every candidate's), or None."""
        return None if self.dataset is None else dataset_frontend(self.dataset.meta)

    def constraints(self):
        return self.config.constraints.build(self.board)

    def check_feasible(self) -> None:
        """Fail at once, with the numbers, when even the smallest architectures break a limit."""
        try:
            smallest = self.space.smallest()
        except NotImplementedError:
            return
        from tinyevo.run.constraints import ConstraintFilter

        constraints = self.constraints()
        costs_of = ConstraintFilter(constraints, self.board, execution=self.config.execution_model(),
                                    frontend=self.frontend())  # the runner's
        costs = [costs_of.cost(self.space.decode(g)) for g in smallest]
        if costs and all(constraints.violation(c) > 0 for c in costs):
            broken = constraints.excess(costs[0])
            limit = BY_FIELD[next(iter(broken))]
            raise TinyevoError(f"no architecture of space {self.space.name!r} fits: even the smallest "
                               f"has {limit.metric} = {costs[0][limit.metric]:g} over the limit "
                               f"{constraints.limits()[limit.field]:g}; loosen {limit.flag}")

    # --- running -------------------------------------------------------------------------------
    def run(self, progress: bool = True) -> list[Trial]:
        from tinyevo.run import Budget, Runner
        from tinyevo.run.resume import check_config
        from tinyevo.store import Store

        if self.config.strategy == DARTS:
            check_darts(self.config, self.space)
        self.check_feasible()
        darts = self.config.strategy == DARTS  # a one-shot pipeline of its own, not an ask/tell strategy
        strategy = None if darts else self.strategy()
        estimator = self.estimator()  # a bad name fails before any write
        executor = self.executor()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if darts:
            with RunLock(self.out_dir):
                return self.run_darts(progress)
        budget = Budget(evaluations=self.config.budget, seconds=self.config.max_seconds)
        with executor, RunLock(self.out_dir), Store(self.out_dir / STORE_FILE) as store:
            runner = Runner(self.space, strategy, estimator, store, budget,
                            self.constraints(), self.board, executor, progress=progress,
                            run_dir=self.out_dir, execution=self.config.execution_model(),
                            eval_timeout=self.config.eval_timeout, frontend=self.frontend())
            check_config(store, runner.config())  # refuse a folder of another run before writing
            store.set(CONFIG_KEY, self.config.to_dict())
            store.set(FINISHED_KEY, False)  # until this session has done all it was asked
            trials = runner.run()
            if trains(self.config):
                finalize(self.config, self.space, self.out_dir, trials, store, progress)
            store.set(FINISHED_KEY, True)
        return trials

    def run_darts(self, progress: bool = True) -> list[Trial]:
        """DARTS as its own one-shot pipeline (``tinyevo.darts.job``), then the same final training."""
        from tinyevo.store import Store

        with Store(self.out_dir / STORE_FILE) as store:
            trials = run_darts(self.config, self.space, self.board, self.dataset, store, self.out_dir,
                               progress)
            store.set(CONFIG_KEY, self.config.to_dict())
            finalize(self.config, self.space, self.out_dir, trials, store, progress)
        return trials
