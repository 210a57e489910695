"""``python -m spex_graph.backends.embedded setup|bench [--model 0.5b]`` (for Makefiles and CI)."""

from __future__ import annotations

import argparse
import asyncio

from spex_graph.backends.embedded import DEFAULT_MODEL, setup
from spex_graph.backends.embedded.bench import run_bench


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and run `setup` or the engine benchmark."""
    parser = argparse.ArgumentParser(prog="python -m spex_graph.backends.embedded")
    parser.add_argument("command", choices=("setup", "bench"))
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--branches", default="1,8", help="comma-separated branch counts")
    parser.add_argument("--tokens", type=int, default=64)
    args = parser.parse_args(argv)
    if args.command == "setup":
        setup(args.model)
    else:
        branches = tuple(int(b) for b in args.branches.split(","))
        print(asyncio.run(run_bench(args.model, branches, args.tokens)))


if __name__ == "__main__":
    main()
