"""Random search: every candidate drawn uniformly from the space. The baseline every NAS paper needs."""
from __future__ import annotations

from tinyevo.errors import TinyevoError
from tinyevo.strategies.base import DEFAULT_OBJECTIVES, STRATEGIES, Candidate, Strategy, Trial


@STRATEGIES.register("random")
class RandomSearch(Strategy):
    """Samples the space; results teach it nothing."""

    name = "random"

    def __init__(self, space, seed: int = 0, objectives=DEFAULT_OBJECTIVES, **options):
        if options:
            raise TinyevoError(f"strategy 'random' takes no option {sorted(options)[0]!r}")
        super().__init__(space, seed, objectives)

    def settings(self) -> dict:
        return {}

    def ask(self, n: int) -> list[Candidate]:
        return [Candidate(self.space.sample(self.rng), origin="sample") for _ in range(n)]

    def tell(self, trials: list[Trial]) -> None:
        pass
