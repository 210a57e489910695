"""Rescore one `spex eval-reward --json` sample file with an old and the current arithmetic check.

The samples are drawn once; only the equation extraction differs between the two columns, so
the comparison is paired. The old check is read from git history (it is not a library option):

    spex eval-reward --dataset gsm8k --limit 36 --samples 4 --model 1.5b --max-tokens 256 \
        --threads 1 --json samples.json
    python benchmarks/reward_before_after.py samples.json --before 0b36ace^

The 1.5B samples behind the README's table are in
``benchmarks/reward-eval-1.5b-gsm8k-36x4.json.gz`` (the script reads .gz too).

`0b36ace` is the commit that taught the check consecutive lines, running chains, units and
times signs; its parent holds the extraction the issue found wanting.
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

from spex_graph.reward_eval import ScoredSample, combined_score, summarise
from spex_graph.rewards.verifiers import check_arithmetic
from spex_graph.tasks import get_task

Check = Callable[[str], Any]


def old_check(rev: str) -> Check:
    """`check_arithmetic` as it was at git revision `rev`."""
    root = Path(__file__).resolve().parent.parent
    source = subprocess.run(
        ["git", "show", f"{rev}:spex_graph/rewards/verifiers.py"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    module = types.ModuleType("verifiers_before")
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(source, f"{rev}:verifiers.py", "exec"), module.__dict__)
    return module.check_arithmetic  # type: ignore[no-any-return]


def rescore(rows: list[dict[str, Any]], check: Check, delimiter: str) -> list[ScoredSample]:
    """The samples with `checked`, `wrong` and the combined score recomputed by `check`."""
    out = []
    for row in rows:
        checked = wrong = 0
        for step in (s for s in row["text"].split(delimiter) if s.strip()):
            result = check(step)
            checked, wrong = checked + result.checked, wrong + result.wrong
        score = combined_score(row["confidence"], checked, wrong)
        out.append(ScoredSample(**{**row, "checked": checked, "wrong": wrong, "score": score}))
    return out


def coverage(samples: list[ScoredSample]) -> dict[str, str]:
    """How many solutions had an equation checked, and how many were flagged wrong."""
    correct = [s for s in samples if s.correct]
    incorrect = [s for s in samples if not s.correct]
    flagged_incorrect = sum(s.wrong > 0 for s in incorrect)
    with_equation = sum(s.checked > 0 for s in samples)
    return {
        "solutions with an equation checked": f"{with_equation}/{len(samples)}",
        "equations checked (all solutions)": str(sum(s.checked for s in samples)),
        "incorrect solutions flagged wrong": f"{flagged_incorrect}/{len(incorrect)}",
        "correct solutions flagged wrong": f"{sum(s.wrong > 0 for s in correct)}/{len(correct)}",
    }


def main() -> int:
    """Print before/after AUCs, accuracies and check coverage for one sample file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("samples", help="JSON written by spex eval-reward --json")
    parser.add_argument("--before", default="0b36ace^", help="git revision of the old check")
    parser.add_argument("--dataset", default="gsm8k")
    args = parser.parse_args()
    task = get_task(args.dataset)
    path = Path(args.samples)
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    rows = json.loads(raw)["samples"]
    before = rescore(rows, old_check(args.before), task.step_delimiter)
    after = rescore(rows, check_arithmetic, task.step_delimiter)
    stored = [(r["checked"], r["wrong"]) for r in rows]
    if stored != [(s.checked, s.wrong) for s in after]:
        print("note: the current check differs from the one that wrote the file")
    print(f"| metric | before ({args.before}) | after |")
    print("|---|---|---|")
    for (key, old), new in zip(
        summarise(before, task).items(), summarise(after, task).values(), strict=True
    ):
        cells = [f"{v:.3f}" if isinstance(v, float) else str(v) for v in (old, new)]
        print(f"| {key} | {cells[0]} | {cells[1]} |")
    for (key, old), new in zip(coverage(before).items(), coverage(after).values(), strict=True):
        print(f"| {key} | {old} | {new} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
