"""Offsets of buffers in one static arena, from their sizes and lifetimes (dynamic storage allocation).

Two buffers may share bytes only if their lifetimes (first step, last step, both inclusive) do not
meet. The arena can never be smaller than the largest sum of sizes live at one step
(``live_lower_bound``). ``assign_offsets`` first places the buffers first-fit in the orders TFLM's
``GreedyMemoryPlanner`` and TinyEngine use (largest first; earliest first; ...), which usually
reach that bound, then in seeded random orders. Where none does (a long chain whose maps must
alternate between the bottom and the top of the arena, say), it solves the layout exactly as an
integer program (``exact_offsets``, HiGHS through ``scipy.optimize.milp``): the smallest arena, at
the bound whenever some layout reaches it. Graphs too large for it (``EXACT_MAX_PAIRS``) keep the
best first-fit layout. The result is deterministic (the solver stops at a node limit, not a
clock, short of ``EXACT_SECONDS``, a safety net no graph here comes near).
"""
from __future__ import annotations

import math

import numpy as np
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, milp

Span = tuple[int, int]
RANDOM_TRIES = 200
EXACT_MAX_PAIRS = 600  # pairs of buffers live together: larger graphs keep the heuristics
EXACT_NODES = 1000  # branch-and-bound nodes HiGHS may solve (deterministic, unlike a time limit)
EXACT_SECONDS = 30.0  # a safety net only: the node limit comes first (at most ~3 s measured)


def overlaps(a: Span, b: Span) -> bool:
    """Whether two inclusive step ranges share a step."""
    return a[0] <= b[1] and b[0] <= a[1]


def live_lower_bound(sizes: dict[str, int], spans: dict[str, Span]) -> int:
    """The largest total size of buffers live at one step: no arena can be smaller."""
    events = sorted((step, delta) for b, (first, last) in spans.items()
                    for step, delta in ((first, sizes[b]), (last + 1, -sizes[b])))
    live = peak = 0
    for _, delta in events:  # at a step, the buffers that died before it leave first
        live += delta
        peak = max(peak, live)
    return peak


def arena_bytes(offsets: dict[str, int], sizes: dict[str, int]) -> int:
    return max((offsets[b] + sizes[b] for b in offsets), default=0)


def meetings(spans: dict[str, Span]) -> dict[str, list[str]]:
    """Buffer -> the other buffers live at some step of its lifetime (a sweep over the starts)."""
    meets: dict[str, list[str]] = {b: [] for b in spans}
    live: list[str] = []
    for b in sorted(spans, key=lambda b: spans[b][0]):
        live = [other for other in live if spans[other][1] >= spans[b][0]]
        for other in live:
            meets[b].append(other)
            meets[other].append(b)
        live.append(b)
    return meets


def first_fit(names: list[str], sizes: dict[str, int], spans: dict[str, Span],
              align: dict[str, int] | None = None, meets: dict[str, list[str]] | None = None) -> dict[str, int]:
    """Each buffer, in the order given, at the lowest offset free over its whole lifetime (a
    multiple of ``align[name]`` where given, e.g. 4 for int32 data). ``meets``: ``meetings(spans)``,
    if known already."""
    offsets: dict[str, int] = {}
    align = align or {}
    meets = meets if meets is not None else meetings(spans)
    for name in names:
        taken = sorted((offsets[other], offsets[other] + sizes[other]) for other in meets[name]
                       if other in offsets and sizes[other])
        step = align.get(name, 1)
        offset = 0
        for start, end in taken:
            if offset + sizes[name] <= start:
                break
            offset = -(-max(offset, end) // step) * step
        offsets[name] = offset
    return offsets


def assign_offsets(sizes: dict[str, int], spans: dict[str, Span], seed: int = 0,
                   random_tries: int = RANDOM_TRIES, align: dict[str, int] | None = None,
                   exact: bool = True) -> dict[str, int]:
    """Offsets with the smallest arena found: first fit in the heuristic orders, then in seeded
    random orders, stopping once the lower bound is reached; if none reaches it, the exact layout
    (``exact_offsets``) where the graph is small enough for it."""
    names = sorted(spans)
    bound = live_lower_bound(sizes, spans)
    orders = [sorted(names, key=lambda b: (-sizes[b], spans[b][0], b)),
              sorted(names, key=lambda b: (spans[b][0], -sizes[b], b)),
              sorted(names, key=lambda b: (-sizes[b] * (spans[b][1] - spans[b][0] + 1), b)),
              sorted(names, key=lambda b: (spans[b][0] - spans[b][1], -sizes[b], b))]
    rng, meets = np.random.default_rng(seed), meetings(spans)
    best: dict[str, int] = {}
    for attempt in range(len(orders) + random_tries):
        order = orders[attempt] if attempt < len(orders) else [names[i] for i in rng.permutation(len(names))]
        offsets = first_fit(order, sizes, spans, align, meets)
        if not best or arena_bytes(offsets, sizes) < arena_bytes(best, sizes):
            best = offsets
        if arena_bytes(best, sizes) <= bound:
            return best
    if exact:
        best = exact_offsets(sizes, spans, arena_bytes(best, sizes), align)[0] or best
    return best


def exact_offsets(sizes: dict[str, int], spans: dict[str, Span], above: int,
                  align: dict[str, int] | None = None) -> tuple[dict[str, int] | None, bool]:
    """The smallest arena below ``above`` bytes, as an integer program solved by HiGHS
    (``scipy.optimize.milp``; the model: ``_layout_program``). Returns (offsets, optimal): the best
    layout found under ``above`` (None if there is none or the solver stopped first), and whether
    it is proven to be the smallest (with None: whether ``above`` is). Graphs of more than
    ``EXACT_MAX_PAIRS`` pairs of buffers live together are not tried: (None, False)."""
    align = align or {}
    names = [b for b in sorted(spans) if sizes[b]]
    index, meets = {b: i for i, b in enumerate(names)}, meetings({b: spans[b] for b in names})
    pairs = sorted((index[a], index[b]) for a in names for b in meets[a] if index[a] < index[b])
    if len(pairs) > EXACT_MAX_PAIRS:
        return None, False
    if not names:
        return dict.fromkeys(spans, 0), True
    unit = math.gcd(*(sizes[b] for b in names), *(align.get(b, 1) for b in names))
    size = np.array([sizes[b] // unit for b in names], dtype=float)
    step = np.array([align.get(b, 1) // unit for b in names], dtype=float)
    low, high = -(-live_lower_bound(sizes, spans) // unit), (above - 1) // unit
    if low > high or (size > high).any():
        return None, True
    result = milp(**_layout_program(size, step, pairs, low, high),
                  options={"node_limit": EXACT_NODES, "time_limit": EXACT_SECONDS, "mip_rel_gap": 0})
    if result.x is None:
        return None, result.status == 2  # 2: infeasible, so nothing is below ``above``
    offsets = {b: int(round(result.x[i])) * int(step[i]) * unit for i, b in enumerate(names)}
    offsets.update(dict.fromkeys((b for b in spans if not sizes[b]), 0))
    if check_no_overlap(offsets, sizes, spans) or arena_bytes(offsets, sizes) >= above:
        return None, False  # never trust a layout that does not check out
    return offsets, result.status == 0


def _layout_program(size: np.ndarray, step: np.ndarray, pairs: list[tuple[int, int]], low: int,
                    high: int) -> dict:
    """The arguments of ``milp`` (c, integrality, bounds, constraints), in units of ``unit`` bytes (the
    greatest common divisor of the sizes and alignments, which loses no layout): buffer ``i`` at
    ``step_i * k_i`` (``k_i`` an integer); for each pair of buffers live together a binary ``z``
    (which one lies below) with ``off_i + size_i <= off_j + M (1 - z)`` and ``off_j + size_j <=
    off_i + M z``; ``off_i + size_i <= arena`` for all; the arena, minimized, in [low, high]
    (M = high)."""
    n, big = len(size), high
    arena = n + len(pairs)  # variables: k_0 .. k_n-1, one z per pair, the arena
    rows, columns, values, upper = [], [], [], []
    for p, (i, j) in enumerate(pairs):
        rows += [2 * p] * 3 + [2 * p + 1] * 3
        columns += [i, j, n + p, j, i, n + p]
        values += [step[i], -step[j], big, step[j], -step[i], -big]
        upper += [big - size[i], -size[j]]
    for i in range(n):
        rows += [2 * len(pairs) + i] * 2
        columns += [i, arena]
        values += [step[i], -1.0]
        upper.append(-size[i])
    matrix = sparse.csr_array((values, (rows, columns)), shape=(len(upper), arena + 1))
    lower = np.zeros(arena + 1)
    lower[arena] = low
    top = np.concatenate([np.floor((high - size) / step), np.ones(len(pairs)), [high]])
    cost = np.zeros(arena + 1)
    cost[arena] = 1
    return dict(c=cost, integrality=np.ones(arena + 1), bounds=Bounds(lower, top),
                constraints=LinearConstraint(matrix, -np.inf, np.array(upper)))


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
