"""A benchmark mode keeps a few objects per finished query, not its whole trace.

Every full garbage collection walks every object alive, so whatever a run keeps
per finished query makes each later query cost more CPU (issue 11: CPU per query
must stay flat from 100 to 1,000 queries).
"""

from __future__ import annotations

import gc

from spex_graph.bench.modes import spex_config
from spex_graph.bench.runner import run_mode
from spex_graph.sim import sim_context
from spex_graph.sim.clock import run_virtual


def _objects_alive_after(queries: int) -> int:
    """GC-tracked objects alive once a baseline mode of `queries` has finished, its
    engines and result still held."""

    async def main() -> int:
        ctx, engines = sim_context(algorithm="rebase", width=4, spex=spex_config("baseline"))
        run = await run_mode("baseline", ctx, ctx.task.load(limit=queries), concurrency=8)
        assert not [r for r in run.results if "error" in r]
        assert len(run.results) == queries and engines["policy"].stats.finished > 1000
        gc.collect()
        return len(gc.get_objects())

    return run_virtual(main())


def test_objects_kept_per_finished_query_stay_few() -> None:
    few, many = _objects_alive_after(40), _objects_alive_after(100)
    per_query = (many - few) / 60
    # now ~3 (the result dict); the engines' request logs kept ~65 more, and a
    # task per waiting query ~5
    assert per_query < 6, f"{per_query:.1f} objects kept per finished query"


def test_the_bench_young_generation_is_restored_after_the_run() -> None:
    from spex_graph.bench.collector import YOUNG_GENERATION, young_generation

    before = gc.get_threshold()
    with young_generation():
        assert gc.get_threshold() == (YOUNG_GENERATION, *before[1:])
    assert gc.get_threshold() == before
    with young_generation(None):
        assert gc.get_threshold() == before
    try:
        with young_generation(before[0] + 1):
            raise RuntimeError("a failed run")
    except RuntimeError:
        pass
    assert gc.get_threshold() == before


def test_a_finished_spex_query_is_freed_without_the_cycle_collector() -> None:
    """A finished query's session, speculator, flights and completions go as soon as
    nothing refers to them; in a cycle they would wait for a full collection, which
    is rare in a long run and walks every search in flight."""
    import weakref

    from spex_graph.runtime.dispatcher import QuerySession

    sessions: list[weakref.ref[QuerySession]] = []
    speculators: list[weakref.ref[object]] = []

    def keep(session: QuerySession) -> None:
        sessions.append(weakref.ref(session))
        assert session.speculator is not None
        speculators.append(weakref.ref(session.speculator))

    async def main() -> None:
        ctx, _ = sim_context(algorithm="rebase", width=4, spex=spex_config("spex"))
        ctx.dispatcher.on_close.insert(0, keep)
        run = await run_mode("spex", ctx, ctx.task.load(limit=6), concurrency=3)
        assert not [r for r in run.results if "error" in r]

    gc.collect()
    gc.disable()
    try:
        run_virtual(main())
        alive = [ref for ref in sessions + speculators if ref() is not None]
    finally:
        gc.enable()
    assert len(sessions) == 6
    assert not alive, f"{len(alive)} of 12 sessions and speculators wait for the collector"
