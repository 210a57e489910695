"""A larger young generation for the garbage collector while a benchmark runs.

A search step allocates thousands of objects that live for that step only.
With CPython's default first threshold (700 allocations), many of them are
still alive at two young collections and get promoted to the oldest
generation; that fills it fast enough that a full collection comes about every
twelve queries, and a full collection walks every object alive, including
every tree of every search in flight. CPU per query then grows with the number
of queries in flight (at concurrency 100: lower for a 100-query run, whose
queries drain towards the end, than for 1,000 queries).

With a young generation of 10,000 allocations the step's objects die before
they are promoted, full collections become rare, and CPU per query no longer
depends on what else is in flight. The setting is process-wide, so only the
benchmark sets it, for the length of the run, and restores it; an application
running many searches in one process can do the same with `gc.set_threshold`.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

YOUNG_GENERATION = 10_000
"""Allocations between young collections during a benchmark (CPython's default: 700)."""


@contextmanager
def young_generation(size: int | None = YOUNG_GENERATION) -> Iterator[None]:
    """Run the block with the collector's first threshold at least `size` (None:
    leave the collector as it is); the previous thresholds come back after."""
    previous = gc.get_threshold()
    if size is None or previous[0] >= size:
        yield
        return
    gc.set_threshold(size, *previous[1:])
    try:
        yield
    finally:
        gc.set_threshold(*previous)
