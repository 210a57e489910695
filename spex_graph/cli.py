"""The `spex` command line: solve one question, run a dataset, benchmark the engine."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from spex_graph import interrupts
from spex_graph.config import ALGORITHMS
from spex_graph.defaults import BACKENDS
from spex_graph.errors import SpexError

#: `--spex` choices: auto leaves the choice to the library's default.
SPEX_MODES = ("auto", "on", "off")
#: Default search width on the embedded CPU engine (every branch costs real CPU time).
CPU_WIDTH = 4


def _search_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--algorithm", default="rebase", choices=ALGORITHMS)
    parser.add_argument(
        "--width",
        type=int,
        default=None,
        help=f"search width (default {CPU_WIDTH} on the embedded CPU engine, else the algorithm's)",
    )
    parser.add_argument("--backend", default="embedded", choices=BACKENDS)
    parser.add_argument("--backend-url", default=None, help="server URL (sglang, openai)")
    parser.add_argument("--model", default=None, help="model name (embedded: 1.5b or 0.5b)")
    parser.add_argument("--max-depth", type=int, default=None)
    parser.add_argument("--step-max-tokens", type=int, default=256)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chat-template", default="chatml")
    parser.add_argument("--request-timeout", type=float, default=600.0)
    parser.add_argument(
        "--spex",
        default="auto",
        choices=SPEX_MODES,
        help="SPEX techniques: auto (the library default), on, or off (plain search)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for `spex`."""
    parser = argparse.ArgumentParser(
        prog="spex", description="Reward-guided Tree-of-Thought search on LangGraph."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    solve = sub.add_parser("solve", help="search one question; print the answer and the path")
    solve.add_argument("question")
    solve.add_argument("--task", default="gsm8k", help="prompt format: gsm8k, math500, game24")
    solve.add_argument("--json", action="store_true", help="print the result as JSON")
    _search_options(solve)

    run = sub.add_parser("run", help="search a dataset; print accuracy and write JSONL")
    run.add_argument("--dataset", default="gsm8k", help="gsm8k, math500 or game24")
    run.add_argument("--limit", type=int, default=10)
    run.add_argument("--offset", type=int, default=0)
    run.add_argument("--concurrency", type=int, default=1)
    run.add_argument("--out", default=None, help="JSONL path (default runs/<dataset>-<alg>.jsonl)")
    run.add_argument(
        "--fresh",
        action="store_true",
        help="start over: empty --out and its checkpoints (default: resume, skipping "
        "problems already in --out and continuing interrupted searches)",
    )
    _search_options(run)

    bench_engine = sub.add_parser("bench-engine", help="embedded engine batching throughput")
    bench_engine.add_argument("--branches", default="1,8")
    bench_engine.add_argument("--tokens", type=int, default=64)
    bench_engine.add_argument("--model", default=None)

    bench = sub.add_parser("bench", help="baseline vs SPEX (ablations, oracle) side by side")
    bench.add_argument("--backend", default="sim", choices=("sim", *BACKENDS))
    bench.add_argument("--backend-url", default=None)
    bench.add_argument("--model", default=None)
    bench.add_argument("--algorithm", default="rebase", choices=ALGORITHMS)
    bench.add_argument("--width", type=int, default=16)
    bench.add_argument("--queries", type=int, default=64)
    bench.add_argument("--concurrency", type=int, default=1)
    bench.add_argument("--modes", default="baseline,spex,oracle")
    bench.add_argument("--dataset", default="gsm8k", help="real backends: gsm8k, math500, game24")
    bench.add_argument(
        "--preset",
        default="artifact",
        help="sim: artifact (the paper's setting), modern (today's stack) or legacy",
    )
    bench.add_argument("--gpu", default="h100", help="sim: h100 or h200 for the preset's GPUs")
    bench.add_argument(
        "--profile", default=None, help="sim: h100-7b, h200-7b or h100-8b for both engines"
    )
    bench.add_argument("--shared-engine", action="store_true", help="sim: policy+PRM on one GPU")
    bench.add_argument(
        "--spec-decoding",
        nargs="?",
        const="eagle3",
        default=None,
        help="sim: add baseline+sd and spex+sd modes with EAGLE-style speculative decoding "
        "(eagle3, the default, or eagle2)",
    )
    bench.add_argument(
        "--workload",
        default="synthetic",
        help="sim: synthetic (the preset's trees) or replay:PATH (spex record-trees JSONL)",
    )
    bench.add_argument(
        "--allocation",
        default=None,
        help="REBASE rounding: reference (default, the reference code's) or largest-remainder",
    )
    bench.add_argument(
        "--early-termination",
        nargs="?",
        const="paper",
        default=False,
        choices=("paper", "safe"),
        help="ET rule of the et-only mode, also added to spex (bare flag: paper)",
    )
    bench.add_argument("--rollouts", type=int, default=None, help="MCTS rollouts")
    bench.add_argument("--step-max-tokens", type=int, default=256)
    bench.add_argument("--seed", type=int, default=0)
    bench.add_argument("--json", default=None, help="write the JSON report here")
    bench.add_argument("--plot", default=None, help="write a PNG timeline (first query) here")
    bench.add_argument("--trace", default=None, help="save the spex mode's traces (JSON) here")

    et_replay = sub.add_parser(
        "et-replay", help="replay early-termination rules offline on recorded search trees"
    )
    et_replay.add_argument("paths", nargs="+", metavar="PATH", help="spex record-trees files")
    et_replay.add_argument(
        "--mix", default="0,0.25,0.5,0.75,1", help="reward-quality rates q (reward mixed with gold)"
    )
    et_replay.add_argument("--prune-margin", type=float, default=0.3)
    et_replay.add_argument("--json", default=None, help="write the reports (JSON) here")

    trace = sub.add_parser("trace", help="render a saved trace: timeline and search tree")
    trace.add_argument("path", help="a trace written by spex bench --trace")
    trace.add_argument("--query", default=None, help="query id (default: the first)")
    trace.add_argument(
        "--out", default="trace.html", help="HTML report (self-contained), PNG or SVG output"
    )

    ev = sub.add_parser("eval-reward", help="how well the CPU reward ranks correct solutions")
    ev.add_argument("--dataset", default="gsm8k")
    ev.add_argument("--limit", type=int, default=50)
    ev.add_argument("--samples", type=int, default=4)
    ev.add_argument("--backend", default="embedded", choices=BACKENDS)
    ev.add_argument("--backend-url", default=None)
    ev.add_argument("--model", default=None)
    ev.add_argument("--max-tokens", type=int, default=400)
    ev.add_argument("--threads", type=int, default=None, help="embedded engine CPU threads")
    ev.add_argument("--json", default=None)

    rec = sub.add_parser("record-trees", help="record full search trees on a real engine (JSONL)")
    rec.add_argument("--dataset", default="gsm8k", help="gsm8k, math500 or game24")
    rec.add_argument("--limit", type=int, default=20)
    rec.add_argument("--offset", type=int, default=0)
    rec.add_argument("--concurrency", type=int, default=1)
    rec.add_argument("--out", required=True, help="JSONL path (.gz to compress); appends, resumes")
    _search_options(rec)

    setup = sub.add_parser("setup", help="build the embedded engine and assemble the model")
    setup.add_argument("--model", default=None)
    return parser


def _spex_config(mode: str) -> Any:
    """The SpexConfig for ``--spex``: None (library default) for auto."""
    from spex_graph.policies import SpexConfig

    return {"auto": None, "on": SpexConfig(), "off": SpexConfig.baseline()}[mode]


def _reasoner(
    args: argparse.Namespace, task: str, spex: Any = None, checkpointer: Any = None
) -> Any:
    from spex_graph.defaults import make_backend
    from spex_graph.reasoner import SpexReasoner

    policy = make_backend(args.backend, args.backend_url, _model_name(args.model))
    width = args.width
    if width is None and args.backend == "embedded":
        width = CPU_WIDTH
    return SpexReasoner(
        policy,
        task=task,
        algorithm=args.algorithm,
        width=width,
        max_depth=args.max_depth,
        step_max_tokens=args.step_max_tokens,
        temperature=args.temperature,
        seed=args.seed,
        chat_template=args.chat_template,
        request_timeout_s=args.request_timeout,
        spex=spex if spex is not None else _spex_config(args.spex),
        checkpointer=checkpointer,
    )


def _model_name(model: str | None) -> str | None:
    aliases = {"1.5b": "qwen2.5-coder-1.5b", "0.5b": "qwen2.5-coder-0.5b"}
    return aliases.get(model, model) if model else None


def _health(reasoner: Any) -> None:
    from spex_graph.runtime.loop import run_on_shared_loop

    run_on_shared_loop(reasoner.context.policy.health())


def cmd_solve(args: argparse.Namespace) -> int:
    """`spex solve`: one question, with a live progress line on stderr."""
    from spex_graph.progress import ProgressLine, search_with_progress

    if not args.question.strip():
        raise SpexError('the question is empty; pass the problem text: spex solve "What is 2+2?"')
    reasoner = _reasoner(args, args.task)
    try:
        _health(reasoner)
        started = time.perf_counter()
        live = ProgressLine(sys.stderr)
        try:
            result = asyncio.run(search_with_progress(reasoner, args.question, live.show))
        finally:
            live.close()
        elapsed = time.perf_counter() - started
    finally:
        reasoner.close()
    if args.json:
        print(result.model_dump_json(indent=2))
        return 0
    print(f"answer: {result.answer}")
    print(f"path ({len(result.chosen_path)} steps, leaf {result.chosen_node}):")
    for i, step in enumerate(result.chosen_path, 1):
        print(f"  {i}. {step}")
    print(
        f"votes: {json.dumps({k: round(v, 3) for k, v in result.votes.items()})}  "
        f"nodes: {result.nodes}  tokens: {result.tokens_primary}  time: {elapsed:.1f}s"
    )
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """`spex run`: a dataset, with a progress bar and a JSONL of results; resumable."""
    from tqdm import tqdm

    from spex_graph import resume
    from spex_graph.progress import SearchProgress
    from spex_graph.runtime.loop import run_on_shared_loop
    from spex_graph.tasks import get_task

    def _postfix(progress: SearchProgress) -> str:
        return f"acc={correct}/{bar.n} | {progress.line()}"

    task = get_task(args.dataset)
    problems = task.load(limit=args.limit, offset=args.offset)
    out = Path(args.out or f"runs/{args.dataset}-{args.algorithm}.jsonl")
    out.parent.mkdir(parents=True, exist_ok=True)
    checkpoints = out.with_name(out.name + ".checkpoints.sqlite")
    if args.fresh:
        out.unlink(missing_ok=True)
        checkpoints.unlink(missing_ok=True)
    resume.repair_tail(out)
    done = resume.finished_rows(out)
    todo = [p for p in problems if p.id not in done]
    correct = sum(bool(done[p.id].get("correct")) for p in problems if p.id in done)
    if len(todo) < len(problems):
        print(f"resuming: {len(problems) - len(todo)} of {len(problems)} already in {out}")
    key = resume.run_key({k: v for k, v in vars(args).items() if k not in _RUN_ONLY})
    saver = run_on_shared_loop(resume.open_checkpointer(checkpoints))
    reasoner = _reasoner(args, args.dataset, checkpointer=saver)
    failed = 0
    try:
        _health(reasoner)
        with (
            out.open("a", encoding="utf-8") as fh,
            tqdm(
                total=len(problems), initial=len(problems) - len(todo), desc=args.dataset, unit="q"
            ) as bar,
        ):

            async def one(problem: Any, gate: asyncio.Semaphore) -> None:
                nonlocal correct, failed
                async with gate:
                    started = time.perf_counter()
                    thread = f"{args.dataset}:{problem.id}:{key}"
                    try:
                        result = await resume.search_resumable(
                            reasoner,
                            problem,
                            thread,
                            on_progress=lambda p: bar.set_postfix_str(_postfix(p)),
                        )
                        row = result.model_dump(mode="json")
                        correct += bool(result.correct)
                    except SpexError as exc:
                        failed += 1
                        row = {"question": problem.question, "error": str(exc)}
                    row.update(id=problem.id, gold=problem.gold)
                    row["wall_s"] = round(time.perf_counter() - started, 3)
                    fh.write(json.dumps(row) + "\n")
                    fh.flush()
                    bar.update(1)
                    bar.set_postfix_str(f"acc={correct}/{bar.n}")

            async def all_of() -> None:
                gate = asyncio.Semaphore(max(1, args.concurrency))
                await asyncio.gather(*(one(p, gate) for p in todo))

            try:
                asyncio.run(all_of())
            except KeyboardInterrupt:
                raise KeyboardInterrupt(
                    f"finished rows are in {out}; run the same command again to resume"
                ) from None
    finally:
        reasoner.close()
        run_on_shared_loop(resume.close_checkpointer(saver))
    n = len(problems)
    print(f"accuracy: {correct}/{n} = {correct / max(n, 1):.1%}  failed: {failed}  results: {out}")
    if failed:
        print(
            f'spex: {failed} of {n} queries failed (rows with "error" in {out}); '
            "run the same command again to retry them",
            file=sys.stderr,
        )
        return 1
    return 0


_RUN_ONLY = ("limit", "offset", "concurrency", "out", "fresh", "command", "request_timeout")
"""`spex run` options that do not change a search (a checkpoint resumes across them)."""


def cmd_bench_engine(args: argparse.Namespace) -> int:
    """`spex bench-engine`: aggregate tokens/s at several branch counts."""
    from spex_graph.backends.embedded import EmbeddedBackend
    from spex_graph.backends.embedded.bench import bench_engine, format_report, save_batch_cost

    branches = [int(b) for b in args.branches.split(",") if b.strip()]
    if not branches or min(branches) < 1:
        raise SpexError("--branches takes positive integers, e.g. --branches 1,8")
    backend = EmbeddedBackend(
        model=_model_name(args.model) or "qwen2.5-coder-1.5b", parallel=max(branches)
    )

    async def go() -> Any:
        try:
            return await bench_engine(backend, branches, tokens=args.tokens)
        finally:
            await backend.aclose()

    results = asyncio.run(go())
    print(format_report(results))
    cost = save_batch_cost(backend.model, results)
    if cost is not None:
        print(f"batch cost: {cost:.2f} per extra sequence (SpexConfig.auto speculates at <= 0.05)")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    """`spex bench`: every mode on the same workload, one table."""
    from spex_graph.bench import BenchSpec, build_report, format_table, run_bench

    for flag, target in (("--json", args.json), ("--plot", args.plot), ("--trace", args.trace)):
        if target and not Path(target).resolve().parent.is_dir():
            raise SpexError(
                f"{flag} {target}: folder {Path(target).parent} does not exist; create it first"
            )
    options = {"rollouts": args.rollouts} if args.rollouts else {}
    spec = BenchSpec(
        backend=args.backend,
        algorithm=args.algorithm,
        width=args.width,
        queries=args.queries,
        concurrency=args.concurrency,
        modes=args.modes,
        dataset=args.dataset,
        preset=args.preset,
        gpu=args.gpu,
        profile=args.profile,
        shared_engine=args.shared_engine,
        early_termination=args.early_termination,
        seed=args.seed,
        backend_url=args.backend_url,
        model=_model_name(args.model),
        algorithm_options=options,
        step_max_tokens=args.step_max_tokens,
        spec_decoding=args.spec_decoding,
        allocation=args.allocation,
        workload=args.workload,
    )
    print(f"spex bench: {spec.backend} {spec.algorithm} width {spec.width}, modes {spec.modes}")
    runs = run_bench(spec, progress=lambda line: print(line, flush=True))
    report = build_report(spec, runs)
    print(format_table(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
        print(f"wrote {args.json}")
    if args.plot:
        from spex_graph.bench.plot import node_rewards, plot_timelines

        panels, rewards = [], []
        for run in runs:
            if run.mode in ("baseline", "spex", "oracle") and run.results:
                first = str(run.results[0].get("query_id"))
                panels.append((f"{run.mode}: query {first}", run.records.get(first, [])))
                tree = run.trees.get(first)
                rewards.append(node_rewards(tree) if tree is not None else {})
        print(f"wrote {plot_timelines(panels, args.plot, rewards)}")
    if args.trace:
        from spex_graph.bench.trace_view import save_traces

        print(f"wrote {save_traces(runs, args.trace)}")
    return 0


def cmd_et_replay(args: argparse.Namespace) -> int:
    """`spex et-replay`: every early-termination rule on recorded trees, one table each."""
    from spex_graph.bench.et_replay import ReplaySettings, format_replay, replay_files

    try:
        mixes = tuple(float(m) for m in args.mix.split(",") if m.strip())
    except ValueError:
        raise SpexError(f"--mix takes rates in [0, 1], e.g. 0,0.5,1; got {args.mix!r}") from None
    if not mixes or not all(0.0 <= m <= 1.0 for m in mixes):
        raise SpexError(f"--mix takes rates in [0, 1], e.g. 0,0.5,1; got {args.mix!r}")
    if not args.prune_margin > 0:
        raise SpexError(f"--prune-margin must be > 0, got {args.prune_margin}")
    settings = ReplaySettings(prune_margin=args.prune_margin, mixes=mixes)
    reports = replay_files(args.paths, settings)
    print("\n\n".join(format_replay(r) for r in reports))
    if args.json:
        Path(args.json).write_text(json.dumps([r.as_dict() for r in reports], indent=2))
        print(f"wrote {args.json}")
    return 0


def cmd_trace(args: argparse.Namespace) -> int:
    """`spex trace`: render one query's timeline and tree."""
    from spex_graph.bench.trace_view import render_trace

    print(f"wrote {render_trace(args.path, args.out, args.query)}")
    return 0


def cmd_eval_reward(args: argparse.Namespace) -> int:
    """`spex eval-reward`: AUC and top-1 accuracy of the CPU reward signals."""
    from spex_graph.defaults import make_backend
    from spex_graph.reward_eval import sample_and_score, summarise
    from spex_graph.runtime.loop import run_on_shared_loop
    from spex_graph.tasks import get_task

    if args.limit < 1 or args.samples < 1:
        raise SpexError("--limit and --samples must be at least 1")
    task = get_task(args.dataset)
    problems = task.load(limit=args.limit)
    backend = make_backend(
        args.backend, args.backend_url, _model_name(args.model), threads=args.threads
    )
    started = time.perf_counter()
    try:
        run_on_shared_loop(backend.health())
        samples = run_on_shared_loop(
            sample_and_score(backend, task, problems, args.samples, max_tokens=args.max_tokens)
        )
    finally:
        run_on_shared_loop(backend.aclose())
    summary = summarise(samples, task)
    for key, value in summary.items():
        print(f"{key:>24}: {value:.3f}" if isinstance(value, float) else f"{key:>24}: {value}")
    print(f"{'time':>24}: {time.perf_counter() - started:.0f}s")
    if args.json:
        rows = [vars(s) for s in samples]
        Path(args.json).write_text(json.dumps({"summary": summary, "samples": rows}, indent=2))
    return 0


def cmd_record_trees(args: argparse.Namespace) -> int:
    """`spex record-trees`: full searches (no SPEX), every node written out."""
    from spex_graph.bench.record_trees import record_trees
    from spex_graph.tasks import get_task

    task = get_task(args.dataset)
    problems = task.load(limit=args.limit, offset=args.offset)
    from spex_graph.policies import SpexConfig

    reasoner = _reasoner(args, args.dataset, spex=SpexConfig.baseline())
    try:
        _health(reasoner)
        n = record_trees(
            reasoner.context,
            problems,
            Path(args.out),
            concurrency=args.concurrency,
            progress=lambda line: print(line, flush=True),
        )
    finally:
        reasoner.close()
    print(f"recorded {n} problems into {args.out}")
    return 0


def cmd_setup(args: argparse.Namespace) -> int:
    """`spex setup`: prepare the embedded engine (build once, assemble the model)."""
    from spex_graph.backends.embedded import setup

    setup(_model_name(args.model) or "qwen2.5-coder-1.5b")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `spex` console script."""
    args = build_parser().parse_args(argv)
    handlers = {
        "solve": cmd_solve,
        "run": cmd_run,
        "bench-engine": cmd_bench_engine,
        "bench": cmd_bench,
        "eval-reward": cmd_eval_reward,
        "trace": cmd_trace,
        "et-replay": cmd_et_replay,
        "record-trees": cmd_record_trees,
        "setup": cmd_setup,
    }
    try:
        with interrupts.sigterm_like_ctrl_c():
            return handlers[args.command](args)
    except SpexError as exc:
        print(f"spex: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        hint = f"; {exc}" if str(exc) else ""
        print(f"spex: {interrupts.interrupted_reason()}{hint}", file=sys.stderr)
        return interrupts.interrupted_exit_code()


if __name__ == "__main__":
    sys.exit(main())
