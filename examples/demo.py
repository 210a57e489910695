"""The main job: Tree-of-Thought search with a real model on this machine's CPU.

Runs a few GSM8K problems and one Game of 24 puzzle with REBASE on the
embedded engine (llama.cpp, Qwen2.5-Coder-Instruct) and prints each answer,
whether it is correct, and the time taken, with a live line (layer, nodes,
tokens/s, best answer so far) while each search runs. `--spex auto` (the
default) leaves SPEX to the library's automatic choice (`SpexConfig.auto`),
and the demo says what it chose and why; `on`/`off` force it. Then it solves
the first problem again with `SpexConfig.baseline()` (the plain search) and
prints both runs side by side (`--compare 0` skips this). Ctrl-C stops it with
one line.

    python examples/demo.py [--model 1.5b|0.5b] [--gsm8k 3] [--width 4] [--spex auto|on|off]
                            [--compare 1] [--threads N]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import dataclass

from spex_graph import SpexReasoner, interrupts
from spex_graph.backends.base import Backend
from spex_graph.backends.embedded import EmbeddedBackend
from spex_graph.backends.embedded.bench import measured_batch_cost
from spex_graph.bench.modes import auto_choice
from spex_graph.defaults import make_backend
from spex_graph.policies import SpexConfig
from spex_graph.progress import ProgressLine, search_with_progress
from spex_graph.result import SearchResult
from spex_graph.runtime.loop import run_on_shared_loop
from spex_graph.tasks import get_task
from spex_graph.tasks.base import Problem

MODELS = {"1.5b": "qwen2.5-coder-1.5b", "0.5b": "qwen2.5-coder-0.5b"}


SPEX = {"auto": None, "on": SpexConfig(), "off": SpexConfig.baseline()}


@dataclass(frozen=True)
class Solved:
    """One search of one problem: its result and wall time."""

    task: str
    problem: Problem
    result: SearchResult
    seconds: float


def main() -> None:
    """Run the demo; Ctrl-C or SIGTERM ends it with one line."""
    try:
        with interrupts.sigterm_like_ctrl_c():
            demo()
    except KeyboardInterrupt:
        print(f"\ndemo: {interrupts.interrupted_reason()}", file=sys.stderr)
        sys.exit(interrupts.interrupted_exit_code())


def demo() -> None:
    """Run the demo."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="1.5b", choices=sorted(MODELS))
    parser.add_argument("--gsm8k", type=int, default=3, help="GSM8K problems to solve")
    parser.add_argument("--width", type=int, default=4, help="REBASE width")
    parser.add_argument("--backend", default="embedded", choices=("embedded", "fake"))
    parser.add_argument("--spex", default="auto", choices=sorted(SPEX), help="SPEX techniques")
    parser.add_argument(
        "--compare",
        type=int,
        default=1,
        help="solve this many of the problems again with the baseline, side by side",
    )
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: all)")
    args = parser.parse_args()

    backend = (
        make_backend("fake")
        if args.backend == "fake"
        else EmbeddedBackend(MODELS[args.model], threads=args.threads)
    )
    print(f"starting the {args.backend} engine ({MODELS[args.model]}, CPU) ...", flush=True)
    started = time.perf_counter()
    run_on_shared_loop(backend.health())
    print(f"engine ready in {time.perf_counter() - started:.1f}s", flush=True)
    print(f"SPEX {args.spex}: {spex_choice(backend, args.spex)}", flush=True)

    jobs = [("gsm8k", p) for p in get_task("gsm8k").load(limit=args.gsm8k)]
    jobs += [("game24", p) for p in get_task("game24").load(limit=1)]
    total_started = time.perf_counter()
    runs = [solve(backend, task, problem, args.width, SPEX[args.spex]) for task, problem in jobs]
    solved = sum(bool(run.result.correct) for run in runs)
    print(
        f"\nsolved {solved}/{len(jobs)} in {time.perf_counter() - total_started:.1f}s "
        f"(REBASE width {args.width}, --spex {args.spex})"
    )
    if args.spex != "off" and args.compare > 0:
        # after the other problems, so the baseline finds the engine's prompt cache as
        # cold for this problem as the first run did
        print(f"\nthe same problem{'s' if args.compare > 1 else ''} with SpexConfig.baseline():")
        baselines = [
            solve(backend, run.task, run.problem, args.width, SpexConfig.baseline())
            for run in runs[: args.compare]
        ]
        print()
        print(side_by_side(runs[: args.compare], baselines, args.spex))
        if args.spex == "auto" and SpexConfig.auto(backend) == SpexConfig.baseline():
            print(
                "auto chose the baseline on this engine: both columns ran the same code "
                "path, so their difference is run-to-run noise (the engine is not "
                "batch-invariant, and the machine's load varies)"
            )
    run_on_shared_loop(backend.aclose())


def spex_choice(backend: Backend, mode: str) -> str:
    """What `--spex mode` means on `backend`; for auto, what it chose and why."""
    if mode == "on":
        return "speculation and budget on (SpexConfig())"
    if mode == "off":
        return "the baseline (SpexConfig.baseline())"
    line = auto_choice(backend)
    if isinstance(backend, EmbeddedBackend):
        line += (
            "; measured on this machine by `spex bench-engine`"
            if measured_batch_cost(backend.model) is not None
            else "; assumed from the README's 2-core measurement until `spex bench-engine` "
            "measures this machine"
        )
    return line


def solve(
    backend: Backend, task: str, problem: Problem, width: int, spex: SpexConfig | None
) -> Solved:
    """Search one problem with a live progress line; print the chosen steps and answer."""
    reasoner = SpexReasoner(
        backend, task=task, algorithm="rebase", width=width, step_max_tokens=160, spex=spex
    )
    question = problem.question.replace("\n", " ")
    print(f"\n[{task}] {question[:100]}{'...' if len(question) > 100 else ''}")
    t0 = time.perf_counter()
    live = ProgressLine(sys.stdout, prefix="   ")
    try:
        result = asyncio.run(search_with_progress(reasoner, problem, live.show))
    finally:
        live.close()
    elapsed = time.perf_counter() - t0
    mark = "correct" if result.correct else "wrong"
    for i, step in enumerate(result.chosen_path, 1):
        print(f"   {i}. {step[:160]}")
    print(
        f"   answer: {result.answer}  gold: {problem.gold}  -> {mark}  "
        f"({elapsed:.1f}s, {result.nodes - 1} nodes, {result.tokens_primary} primary + "
        f"{result.tokens_speculative_used} speculative-used tokens, "
        f"{result.tokens_speculative_wasted} wasted)",
        flush=True,
    )
    return Solved(task, problem, result, elapsed)


def side_by_side(runs: list[Solved], baselines: list[Solved], mode: str) -> str:
    """A table: each problem's time and answer with `--spex mode` and with the baseline,
    and the speedup (baseline time / this time)."""
    head = f"{'problem':<12} {'--spex ' + mode:>22} {'baseline':>22} {'speedup':>8}"
    lines = [head, "-" * len(head)]
    for run, base in zip(runs, baselines, strict=True):
        lines.append(
            f"{run.problem.id:<12} {_cell(run):>22} {_cell(base):>22} "
            f"{base.seconds / run.seconds:>7.2f}x"
        )
    return "\n".join(lines)


def _cell(run: Solved) -> str:
    mark = "correct" if run.result.correct else "wrong"
    return f"{run.seconds:.1f}s  {run.result.answer} ({mark})"


if __name__ == "__main__":
    main()
