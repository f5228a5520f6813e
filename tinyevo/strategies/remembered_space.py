"""A view of a search space whose ``is_valid`` and ``key`` are kept by genome, one decode for both.

A model-based strategy draws many mutations of the same few members at every step (``surrogate``:
100 per child) and each draw is checked by decoding it (``SearchSpace._retry`` -> ``is_valid``),
then decoded again for its architecture key. Both are pure functions of the genome, so the view
keeps them by the genome's JSON (a string genome as it is), and where the space uses the base
class's ``is_valid`` and ``key`` (``decode`` succeeds / ``decode(genome).fingerprint()``) a single
decode answers both. The view is a shallow copy of the space with the two methods replaced on the
instance, so the space's own methods (``mutate``, ``sample``, ``_retry``) call the kept ones and
draw exactly what they would draw on the space itself: the same genomes, the same random numbers.
"""
from __future__ import annotations

import copy
import json

from tinyevo.errors import InvalidArchitecture
from tinyevo.spaces.base import Genome, SearchSpace

#: Genomes kept at most (a pool of 100 draws a child: the last 200 children or more); the oldest
#: are forgotten first.
KEPT = 20_000
#: Decoded architectures kept (the newest: the pool's members, whose cost the runner asks for
#: right after the pool's validity check decoded them).
DECODED_KEPT = 1_024
_DECODE_ERRORS = (InvalidArchitecture, ValueError, KeyError, TypeError, IndexError)
_INVALID = object()


def remembering(space: SearchSpace) -> SearchSpace:
    """The view of ``space`` (a view is returned as it is)."""
    if getattr(space, "_remembers", None) is not None:
        return space
    view = copy.copy(space)
    memo = _Memo(space)
    view.is_valid, view.key, view.decode = memo.is_valid, memo.key, memo.decode
    view._remembers = space  # the space this is a view of
    return view


def decoder_of(space: SearchSpace, strategy_space) -> object:
    """``space.decode``, or the kept decodes of ``strategy_space`` when it is a remembering view of
    ``space`` (the runner costs the genomes whose validity the strategy's view just decoded)."""
    if getattr(strategy_space, "_remembers", None) is space:
        return strategy_space.decode
    return space.decode


def genome_text(genome: Genome) -> str:
    """What the view keeps a genome by: its JSON (keys sorted), a string genome as it is."""
    return genome if isinstance(genome, str) else json.dumps(genome, sort_keys=True, default=str)


class _Memo:
    def __init__(self, space: SearchSpace):
        self.space = space
        cls = type(space)
        self.shared = cls.is_valid is SearchSpace.is_valid and cls.key is SearchSpace.key
        self.valid: dict[str, bool] = {}
        self.keys: dict[str, object] = {}  # text -> key, or _INVALID (decode failed)
        self.decoded: dict[str, object] = {}  # text -> architecture, the newest DECODED_KEPT

    def decode(self, genome: Genome, text: str | None = None):
        """``space.decode(genome)``, the newest ones kept (an architecture is not changed once
        built); raises as the space does."""
        text = genome_text(genome) if text is None else text
        arch = self.decoded.get(text)
        if arch is None:
            arch = self.space.decode(genome)
            keep(self.decoded, text, arch, DECODED_KEPT)
        return arch

    def _decode(self, text: str, genome: Genome) -> None:
        """Shared path: one decode gives the verdict and the key."""
        try:
            key = self.decode(genome, text).fingerprint()
        except _DECODE_ERRORS:
            key = _INVALID
        keep(self.keys, text, key)
        keep(self.valid, text, key is not _INVALID)

    def is_valid(self, genome: Genome, text: str | None = None) -> bool:
        return self._kept(self.valid, genome, text, lambda g: bool(self.space.is_valid(g)))

    def key(self, genome: Genome, text: str | None = None) -> str:
        """``space.key(genome)``; ``text``: ``genome_text(genome)`` when the caller has it."""
        key = self._kept(self.keys, genome, text, self.space.key)
        if key is _INVALID:
            return self.space.key(genome)  # raises as the space does
        return key

    def _kept(self, kept: dict, genome: Genome, text: str | None, own):
        """``kept[text]``, filled on a miss by the shared decode or by the space's ``own`` method."""
        text = genome_text(genome) if text is None else text
        if text not in kept:
            if self.shared:
                self._decode(text, genome)
            else:
                keep(kept, text, own(genome))
        return kept[text]


def keep(kept: dict, text: str, value, limit: int = KEPT) -> None:
    """``kept[text] = value``, the oldest entry forgotten once ``kept`` holds ``limit``."""
    if len(kept) >= limit:
        del kept[next(iter(kept))]
    kept[text] = value
