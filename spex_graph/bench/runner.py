"""Run every benchmark mode on the same workload and seeds, in one process.

On the simulated engine each mode runs on a fresh virtual clock with fresh
engines (exact, repeatable numbers); on a real backend the modes run one after
another against the same engine in real time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from spex_graph.backends.base import AbortAccounting, Backend
from spex_graph.bench.archive import PackedSequence, packed_records, packed_trees
from spex_graph.bench.collector import YOUNG_GENERATION, young_generation
from spex_graph.bench.modes import SD_SUFFIX, auto_choice, parse_modes, spex_config
from spex_graph.context import SearchContext
from spex_graph.errors import ConfigError, SpexError
from spex_graph.graph import build_search_graph
from spex_graph.policies.config import SpexConfig
from spex_graph.runtime.trace import RequestRecord
from spex_graph.tasks.base import Problem
from spex_graph.tree import SearchTree

SIM = "sim"


@dataclass(frozen=True)
class BenchSpec:
    """What to benchmark (the `spex bench` options).

    Attributes:
        backend: sim, embedded, sglang, openai or fake.
        algorithm, width: the search.
        queries, concurrency: workload size and queries in flight at once.
        modes: comma-separated modes (see spex_graph.bench.modes.MODES).
        dataset: gsm8k / math500 / game24 for real backends; the sim uses its
            synthetic MATH-like trees.
        preset: sim: the calibrated setting (artifact, modern, legacy; see
            spex_graph.sim.presets): workload, policy and reward GPUs, depth cap.
        gpu: sim: h100 or h200 for the preset's engines.
        profile: sim: a named profile (h100-7b, h200-7b, h100-8b) for both engines
            instead of the preset's (None = the preset's).
        shared_engine: sim: policy and reward on one GPU instead of two.
        early_termination: the early-termination rule ("paper" or "safe") of the
            `et-only` mode, also added to the `spex` mode; False: `spex` without
            it and `et-only` with "paper".
        seed: base seed shared by every mode.
        backend_url, model: for server and embedded backends.
        algorithm_options: extra algorithm knobs (e.g. {"rollouts": 10}).
        step_max_tokens: per-step token cap.
        spec_decoding: sim: token-level speculative decoding (eagle2, eagle3) for the
            `+sd` modes; setting it adds baseline+sd and spex+sd to the modes.
        allocation: REBASE's rounding (reference or largest-remainder).
        workload: sim: "synthetic" (the preset's trees) or "replay:PATH" (trees
            recorded by `spex record-trees`, replayed on the preset's GPUs).
    """

    backend: str = SIM
    algorithm: str = "rebase"
    width: int = 16
    queries: int = 64
    concurrency: int = 1
    modes: str = "baseline,spex,oracle"
    dataset: str = "gsm8k"
    preset: str = "artifact"
    gpu: str = "h100"
    profile: str | None = None
    shared_engine: bool = False
    early_termination: Literal[False, "paper", "safe"] = False
    seed: int = 0
    backend_url: str | None = None
    model: str | None = None
    algorithm_options: dict[str, Any] = field(default_factory=dict)
    step_max_tokens: int = 256
    spec_decoding: str | None = None
    allocation: str | None = None
    workload: str = "synthetic"


@dataclass
class ModeRun:
    """Everything one mode produced.

    Attributes:
        mode: the mode's name.
        results: SearchResult dicts in problem order ({"error": ...} for failed queries).
        trees: final trees (JSON-mode dicts) by query id (a run keeps them packed,
            see spex_graph.bench.archive).
        records: per-query request traces by query id (packed likewise).
        started_at, finished_at: clock readings around the whole mode.
        engine_busy: busy seconds per simulated engine (None on real backends).
        engine_log: the policy engine's most recent requests (its bounded log window,
            sim only; kept packed).
        wall_s: real seconds the mode took on this machine.
        engine_tokens: output tokens the policy engine generated, aborted requests'
            included: the sim engine's own counter; on a real backend that counts
            aborted tokens, the engine's per-request counts summed (None elsewhere).
        aborted_tokens: of those, tokens of requests aborted before they finished, or
            whose results were dropped (None: the backend cannot count them, see
            `backends.base.AbortAccounting`).
        step_tokens: tokens of every generated node of the final trees.
        preset: the simulator preset (sim only).
    """

    mode: str
    results: list[dict[str, Any]]
    trees: Mapping[str, dict[str, Any]]
    records: Mapping[str, list[RequestRecord]]
    started_at: float
    finished_at: float
    engine_busy: dict[str, float] | None = None
    engine_log: Sequence[Any] = field(default_factory=list)
    wall_s: float = 0.0
    engine_tokens: int | None = None
    aborted_tokens: int | None = 0
    preset: str | None = None

    @property
    def makespan(self) -> float:
        """Time from the first query's start to the last query's answer."""
        return self.finished_at - self.started_at


ContextFactory = Callable[[SpexConfig], SearchContext]


async def run_mode(
    mode: str,
    ctx: SearchContext,
    problems: list[Problem],
    concurrency: int,
    chosen: dict[str, frozenset[tuple[int, ...]]] | None = None,
) -> ModeRun:
    """Search every problem through the LangGraph graph with `concurrency` in flight."""
    if mode == "oracle":
        if chosen is None:
            raise ConfigError("the oracle mode needs the baseline's trees; run baseline first")
        from spex_graph.policies.oracle import OracleSpeculator

        until_end = ctx.algorithm.name == "bon"
        ctx.speculator_factory = lambda c, s, p: OracleSpeculator(
            c, s, p, c.spex, chosen=chosen.get(p.id, frozenset()), until_end=until_end
        )
    records = packed_records()
    trees = packed_trees()
    ctx.dispatcher.on_close.append(
        lambda session: records.__setitem__(session.query_id, session.records)
    )
    graph = build_search_graph()
    clock = ctx.dispatcher.clock
    results: list[dict[str, Any]] = [{} for _ in problems]
    queue = iter(enumerate(problems))

    async def one(problem: Problem) -> dict[str, Any]:
        try:
            out = await graph.ainvoke(
                {"problem": dataclasses.asdict(problem), "query_id": problem.id},
                context=ctx,
            )
        except SpexError as exc:  # one failed query must not sink the others
            return {"query_id": problem.id, "error": str(exc)}
        trees[problem.id] = out["tree"]
        return dict(out["result"])

    async def worker() -> None:
        # `concurrency` workers take problems in order: no task per waiting query,
        # so a long run holds nothing per query it has not started
        for index, problem in queue:
            results[index] = await one(problem)

    started = clock()
    wall = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, len(problems))))))
    finished = clock()
    return ModeRun(
        mode=mode,
        results=results,
        trees=trees,
        records=records,
        started_at=started,
        finished_at=finished,
        wall_s=time.perf_counter() - wall,
    )


def chosen_paths(run: ModeRun) -> dict[str, frozenset[tuple[int, ...]]]:
    """Path keys of every node each query's search generated (the oracle's foresight)."""
    out: dict[str, frozenset[tuple[int, ...]]] = {}
    for query_id, data in run.trees.items():
        tree = SearchTree.model_validate(data)
        out[query_id] = frozenset(tree.path_key(n.id) for n in tree.nodes[1:])
    return out


def abort_accounting(backend: Backend) -> AbortAccounting | None:
    """The backend as an `AbortAccounting`, when it counts the tokens of aborted requests."""
    if backend.capabilities.counts_aborted_tokens and isinstance(backend, AbortAccounting):
        return backend
    return None


def run_bench(
    spec: BenchSpec,
    progress: Callable[[str], None] = print,
    *,
    gc_young: int | None = YOUNG_GENERATION,
) -> list[ModeRun]:
    """Run every mode of `spec`; baseline first. `gc_young`: the garbage collector's
    young generation during the run (see spex_graph.bench.collector; None: as it is)."""
    with young_generation(gc_young):
        return _run_modes(spec, progress)


def _run_modes(spec: BenchSpec, progress: Callable[[str], None]) -> list[ModeRun]:
    modes = parse_modes(spec.modes)
    if spec.spec_decoding is not None:
        modes += [m for m in ("baseline+sd", "spex+sd") if m not in modes]
    sd_modes = [m for m in modes if m.endswith(SD_SUFFIX)]
    if sd_modes and spec.backend != SIM:
        raise ConfigError(
            f"mode {sd_modes[0]!r} needs --backend sim; on SGLang, start the server with "
            "speculative decoding (integrations/sglang) and run the plain modes"
        )
    options = dict(spec.algorithm_options)
    if spec.allocation is not None:
        if spec.algorithm != "rebase":
            raise ConfigError("--allocation applies to --algorithm rebase only")
        options["allocation"] = spec.allocation
    if spec.queries < 1 or spec.concurrency < 1 or spec.width < 1:
        raise ConfigError("--queries, --concurrency and --width must be at least 1")
    runs: list[ModeRun] = []
    chosen: dict[str, frozenset[tuple[int, ...]]] | None = None
    if spec.backend == SIM:
        from spex_graph.sim import PROFILES, sim_context
        from spex_graph.sim.clock import run_virtual
        from spex_graph.sim.engine import RequestLog
        from spex_graph.sim.presets import get_preset
        from spex_graph.sim.spec_decoding import get_spec_decoding

        preset = get_preset(spec.preset)
        sd = get_spec_decoding(spec.spec_decoding or "eagle3")
        recorded = None
        if spec.workload.startswith("replay:"):
            from spex_graph.sim.recorded import load_recorded_workload

            recorded = load_recorded_workload(spec.workload.removeprefix("replay:"), spec.seed)
        elif spec.workload != "synthetic":
            raise ConfigError(f"unknown --workload {spec.workload!r}; use synthetic or replay:PATH")
        policy_profile, reward_profile = preset.profiles(spec.gpu)
        if spec.profile is not None:
            if spec.profile not in PROFILES:
                raise ConfigError(
                    f"unknown profile {spec.profile!r}; choose from {', '.join(PROFILES)}"
                )
            policy_profile = reward_profile = PROFILES[spec.profile]

        for mode in modes:

            async def sim_mode(
                mode: str = mode, chosen: dict[str, frozenset[tuple[int, ...]]] | None = chosen
            ) -> ModeRun:
                ctx, engines = sim_context(
                    algorithm=spec.algorithm,
                    width=spec.width,
                    profile=policy_profile,
                    reward_profile=reward_profile,
                    spec_decoding=sd if mode.endswith(SD_SUFFIX) else None,
                    workload=preset.workload,
                    shared_engine=spec.shared_engine or preset.shared_engine,
                    spex=spex_config(mode, early_termination=spec.early_termination),
                    seed=spec.seed,
                    step_max_tokens=spec.step_max_tokens,
                    max_depth=preset.max_depth if recorded is None else recorded.max_depth,
                    algorithm_options=options,
                    recorded=recorded,
                )
                problems = ctx.task.load(limit=spec.queries)
                run = await run_mode(mode, ctx, problems, spec.concurrency, chosen)
                policy = engines["policy"]
                run.engine_busy = {name: e.stats.busy_time for name, e in engines.items()}
                run.engine_log = PackedSequence(RequestLog, policy.log)
                # the engine's own per-iteration counter (reward passes generate nothing)
                run.engine_tokens = policy.stats.tokens_generated
                run.aborted_tokens = policy.stats.aborted_tokens.get("policy", 0)
                run.preset = preset.name if recorded is None else f"{preset.name}+replay"
                return run

            runs.append(run_virtual(sim_mode()))
            progress(f"  {mode}: {runs[-1].wall_s:.1f}s")
            if mode == "baseline":
                chosen = chosen_paths(runs[-1])
        return runs

    from spex_graph.defaults import make_backend
    from spex_graph.runtime.loop import run_on_shared_loop
    from spex_graph.tasks import get_task

    policy = make_backend(spec.backend, spec.backend_url, spec.model)
    run_on_shared_loop(policy.health())
    counter = abort_accounting(policy)
    problems = get_task(spec.dataset).load(limit=spec.queries)
    try:
        for mode in modes:
            ctx = SearchContext.create(
                policy,
                task=spec.dataset,
                algorithm=spec.algorithm,
                width=spec.width,
                seed=spec.seed,
                step_max_tokens=spec.step_max_tokens,
                algorithm_options=options,
                spex=spex_config(mode, early_termination=spec.early_termination),
            )
            before = run_on_shared_loop(counter.aborted_tokens()) if counter else 0
            run = run_on_shared_loop(run_mode(mode, ctx, problems, spec.concurrency, chosen))
            if counter is None:
                run.aborted_tokens = None
            else:
                run.aborted_tokens = run_on_shared_loop(counter.aborted_tokens()) - before
                run.engine_tokens = run.aborted_tokens + sum(
                    r.completion_tokens
                    for records in run.records.values()
                    for r in records
                    if r.kind == "policy"
                )
            runs.append(run)
            why = f" (SpexConfig.auto: {auto_choice(policy)})" if mode == "auto" else ""
            progress(f"  {mode}: {runs[-1].wall_s:.1f}s{why}")
            if mode == "baseline":
                chosen = chosen_paths(runs[-1])
    finally:
        run_on_shared_loop(policy.aclose())
    return runs
