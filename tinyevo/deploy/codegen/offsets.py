"""Offsets of buffers in one static arena, from their sizes and lifetimes (dynamic storage allocation).

Two buffers may share bytes only if their lifetimes (first step, last step, both inclusive) do not
meet. The arena can never be smaller than the largest sum of sizes live at one step
(``live_lower_bound``); placing buffers first-fit in a good order usually reaches it, but not
always (fragmentation), so ``assign_offsets`` tries the orders TFLM's ``GreedyMemoryPlanner`` and
TinyEngine use (largest first; earliest first), then seeded random orders, and keeps the smallest
arena. The result is deterministic.
"""
from __future__ import annotations

import numpy as np

Span = tuple[int, int]
RANDOM_TRIES = 200


def overlaps(a: Span, b: Span) -> bool:
    """Whether two inclusive step ranges share a step."""
    return a[0] <= b[1] and b[0] <= a[1]


def live_lower_bound(sizes: dict[str, int], spans: dict[str, Span]) -> int:
    """The largest total size of buffers live at one step: no arena can be smaller."""
    steps = {step for span in spans.values() for step in span}
    return max((sum(sizes[b] for b, span in spans.items() if span[0] <= step <= span[1])
                for step in steps), default=0)


def arena_bytes(offsets: dict[str, int], sizes: dict[str, int]) -> int:
    return max((offsets[b] + sizes[b] for b in offsets), default=0)


def first_fit(names: list[str], sizes: dict[str, int], spans: dict[str, Span],
              align: dict[str, int] | None = None) -> dict[str, int]:
    """Each buffer, in the order given, at the lowest offset free over its whole lifetime (a
    multiple of ``align[name]`` where given, e.g. 4 for int32 data)."""
    offsets: dict[str, int] = {}
    align = align or {}
    for name in names:
        taken = sorted((offsets[other], offsets[other] + sizes[other]) for other in offsets
                       if overlaps(spans[name], spans[other]) and sizes[other])
        step = align.get(name, 1)
        offset = 0
        for start, end in taken:
            if offset + sizes[name] <= start:
                break
            offset = -(-max(offset, end) // step) * step
        offsets[name] = offset
    return offsets


def assign_offsets(sizes: dict[str, int], spans: dict[str, Span], seed: int = 0,
                   random_tries: int = RANDOM_TRIES, align: dict[str, int] | None = None) -> dict[str, int]:
    """Offsets with the smallest arena found; stops early once the lower bound is reached."""
    names = sorted(spans)
    bound = live_lower_bound(sizes, spans)
    orders = [sorted(names, key=lambda b: (-sizes[b], spans[b][0], b)),
              sorted(names, key=lambda b: (spans[b][0], -sizes[b], b)),
              sorted(names, key=lambda b: (-sizes[b] * (spans[b][1] - spans[b][0] + 1), b)),
              sorted(names, key=lambda b: (spans[b][0] - spans[b][1], -sizes[b], b))]
    rng = np.random.default_rng(seed)
    best: dict[str, int] | None = None
    for attempt in range(len(orders) + random_tries):
        order = orders[attempt] if attempt < len(orders) else [names[i] for i in rng.permutation(len(names))]
        offsets = first_fit(order, sizes, spans, align)
        if best is None or arena_bytes(offsets, sizes) < arena_bytes(best, sizes):
            best = offsets
        if arena_bytes(best, sizes) <= bound:
            break
    return best or {}


def check_no_overlap(offsets: dict[str, int], sizes: dict[str, int], spans: dict[str, Span]) -> list[str]:
    """Pairs of buffers live at the same time whose bytes overlap (empty when the plan is sound)."""
    clashes = []
    names = sorted(offsets)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            apart = offsets[a] + sizes[a] <= offsets[b] or offsets[b] + sizes[b] <= offsets[a]
            if overlaps(spans[a], spans[b]) and not apart and sizes[a] and sizes[b]:
                clashes.append(f"{a} and {b}")
    return clashes
