"""The main job: Tree-of-Thought search with a real model on this machine's CPU.

Runs a few GSM8K problems and one Game of 24 puzzle with REBASE on the
embedded engine (llama.cpp, Qwen2.5-Coder-Instruct) and prints each answer,
whether it is correct, and the time taken, with a live line (layer, nodes,
tokens/s, best answer so far) while each search runs. `--spex auto` (the
default) leaves SPEX to the library's automatic choice; `on`/`off` force it.
Ctrl-C stops it with one line.

    python examples/demo.py [--model 1.5b|0.5b] [--gsm8k 3] [--width 4] [--spex auto|on|off]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from spex_graph import SpexReasoner, interrupts
from spex_graph.backends.embedded import EmbeddedBackend
from spex_graph.defaults import make_backend
from spex_graph.policies import SpexConfig
from spex_graph.progress import ProgressLine, search_with_progress
from spex_graph.runtime.loop import run_on_shared_loop
from spex_graph.tasks import get_task

MODELS = {"1.5b": "qwen2.5-coder-1.5b", "0.5b": "qwen2.5-coder-0.5b"}


SPEX = {"auto": None, "on": SpexConfig(), "off": SpexConfig.baseline()}


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
    args = parser.parse_args()

    backend = (
        make_backend("fake") if args.backend == "fake" else EmbeddedBackend(MODELS[args.model])
    )
    print(f"starting the {args.backend} engine ({MODELS[args.model]}, CPU) ...", flush=True)
    started = time.perf_counter()
    run_on_shared_loop(backend.health())
    print(f"engine ready in {time.perf_counter() - started:.1f}s", flush=True)

    jobs = [("gsm8k", p) for p in get_task("gsm8k").load(limit=args.gsm8k)]
    jobs += [("game24", p) for p in get_task("game24").load(limit=1)]
    solved = 0
    total_started = time.perf_counter()
    for task_name, problem in jobs:
        reasoner = SpexReasoner(
            backend,
            task=task_name,
            algorithm="rebase",
            width=args.width,
            step_max_tokens=160,
            spex=SPEX[args.spex],
        )
        question = problem.question.replace("\n", " ")
        print(f"\n[{task_name}] {question[:100]}{'...' if len(question) > 100 else ''}")
        t0 = time.perf_counter()
        live = ProgressLine(sys.stdout, prefix="   ")
        try:
            result = asyncio.run(search_with_progress(reasoner, problem, live.show))
        finally:
            live.close()
        elapsed = time.perf_counter() - t0
        solved += bool(result.correct)
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
    run_on_shared_loop(backend.aclose())
    print(
        f"\nsolved {solved}/{len(jobs)} in {time.perf_counter() - total_started:.1f}s "
        f"(REBASE width {args.width}, --spex {args.spex})"
    )


if __name__ == "__main__":
    main()
