"""What a user sees in the first minute: live progress inside a question, `--spex`,
one line on Ctrl-C, data sets that say how big they are, empty questions refused."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spex_graph.cli import build_parser, main
from spex_graph.policies import SpexConfig
from spex_graph.progress import ProgressLine, SearchProgress

ROOT = Path(__file__).resolve().parents[3]
SPEX = [sys.executable, "-m", "spex_graph.cli"]


def test_progress_folds_events() -> None:
    progress = SearchProgress(started=0.0)
    progress.update({"event": "select", "orders": [(0, 2)], "tree_size": 1})
    progress.update(
        {
            "event": "expand",
            "tree_size": 3,
            "new_nodes": [
                {"id": 1, "parent": 0, "depth": 1, "tokens": 30, "answer": None},
                {"id": 2, "parent": 0, "depth": 1, "tokens": 10, "answer": "387"},
            ],
        }
    )
    progress.update({"event": "expand", "tree_size": 4, "new_nodes": [
        {"id": 3, "parent": 1, "depth": 2, "tokens": 20, "answer": "407"}]})  # fmt: skip
    progress.update({"event": "evaluate", "rewards": {2: 0.4, 3: 0.9}})
    assert (progress.layer, progress.nodes, progress.tokens) == (2, 4, 60)
    assert progress.best_answer == "407"
    assert progress.line(now=2.0) == "layer 2 | 4 nodes | 30 tok/s | best: 407 | 2s"
    progress.update({"event": "answer", "answer": "387"})
    assert progress.best_answer == "387"


def test_progress_line_on_a_pipe_writes_a_line_per_layer() -> None:
    out = io.StringIO()
    line, progress = ProgressLine(out, prefix="> "), SearchProgress()
    for layer in (1, 1, 2):
        progress.layer = layer
        line.show(progress)
    line.close()
    lines = out.getvalue().splitlines()
    assert [ln.split(" | ")[0] for ln in lines] == ["> layer 1", "> layer 2"]


def test_solve_shows_live_progress_on_stderr(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["solve", "What is 6 x 7?", "--backend", "fake", "--width", "2"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("answer: ")
    layers = [ln for ln in captured.err.splitlines() if ln.startswith("layer ")]
    assert len(layers) >= 3 and " nodes | " in layers[-1] and " tok/s | best: " in layers[-1]


@pytest.mark.parametrize("question", ["", "   ", "\n\t"])
def test_empty_question_is_refused_before_the_engine_starts(capsys, question) -> None:  # type: ignore[no-untyped-def]
    # the embedded backend would start llama-server; the error comes first
    assert main(["solve", question, "--backend", "embedded", "--model", "no-such-model"]) == 2
    assert capsys.readouterr().err.strip() == (
        'spex: error: the question is empty; pass the problem text: spex solve "What is 2+2?"'
    )


@pytest.mark.parametrize(("flag", "speculation"), [("on", True), ("off", False)], ids=["on", "off"])
def test_spex_flag_switches_speculation(flag: str, speculation: bool, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from spex_graph import cli

    seen = {}
    real = cli._reasoner

    def spy(args, task, spex=None):  # type: ignore[no-untyped-def]
        reasoner = real(args, task, spex)
        seen["spex"] = reasoner.context.spex
        return reasoner

    monkeypatch.setattr(cli, "_reasoner", spy)
    assert main(["solve", "What is 6 x 7?", "--backend", "fake", "--spex", flag]) == 0
    assert seen["spex"].speculation is speculation
    if flag == "off":
        assert seen["spex"] == SpexConfig.baseline()


def test_spex_flag_defaults_to_the_library_default() -> None:
    from spex_graph.cli import _spex_config

    assert build_parser().parse_args(["solve", "q"]).spex == "auto"
    assert _spex_config("auto") is None  # SpexReasoner then applies its own default


def test_cli_width_defaults_to_4_on_the_cpu_engine() -> None:
    from spex_graph.cli import _reasoner

    args = build_parser().parse_args(["solve", "q", "--model", "0.5b"])
    reasoner = _reasoner(args, "gsm8k")
    assert reasoner.context.config.width == 4  # lazy backend: nothing started
    args = build_parser().parse_args(["solve", "q", "--backend", "fake"])
    assert _reasoner(args, "gsm8k").context.config.width != 4


def test_run_asking_for_more_problems_than_exist_says_how_many() -> None:
    proc = subprocess.run(
        [*SPEX, "run", "--dataset", "gsm8k", "--limit", "2000", "--backend", "fake"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "spex: error: gsm8k has 1,319 problems; offset 0 + limit 2000 asks for 681 more "
        "than exist (use a limit of at most 1319)"
    ]


def _interrupt(
    command: list[str], ready: str, signum: int = signal.SIGINT
) -> subprocess.CompletedProcess[str]:
    """Start ``command``, wait for ``ready`` on its output, press Ctrl-C (or send
    ``signum``)."""
    env = {**os.environ, "SPEX_FAKE_LATENCY_S": "0.3", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # as in a terminal, even when the tests run as a background job (SIGINT ignored)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert proc.stdout is not None
    seen = ""
    deadline = time.monotonic() + 60
    while ready not in seen and time.monotonic() < deadline:
        seen += proc.stdout.readline()
    assert ready in seen, seen
    proc.send_signal(signum)
    rest, _ = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(command, proc.returncode, seen + rest, "")


STOPS = [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated (SIGTERM)")]


@pytest.mark.parametrize(("signum", "code", "reason"), STOPS)
def test_ctrl_c_or_sigterm_in_solve_ends_with_one_line(signum: int, code: int, reason: str) -> None:
    done = _interrupt([*SPEX, "solve", "What is 6 x 7?", "--backend", "fake"], "layer 1 |", signum)
    assert done.returncode == code
    assert "Traceback" not in done.stdout
    assert done.stdout.strip().splitlines()[-1] == f"spex: {reason}"


@pytest.mark.parametrize(("signum", "code", "reason"), STOPS)
def test_ctrl_c_or_sigterm_in_the_demo_ends_with_one_line(
    signum: int, code: int, reason: str
) -> None:
    demo = [sys.executable, "examples/demo.py", "--backend", "fake", "--gsm8k", "2"]
    done = _interrupt(demo, "layer 1 |", signum)
    assert done.returncode == code
    assert "Traceback" not in done.stdout
    assert done.stdout.strip().splitlines()[-1] == f"demo: {reason}"


@pytest.mark.parametrize("flag", ["--plot", "--json", "--trace"])
def test_bench_output_in_a_missing_folder_is_refused_before_the_run(
    flag: str, tmp_path: Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    target = tmp_path / "missing" / "out.png"
    assert main(["bench", "--backend", "sim", "--queries", "1", flag, str(target)]) == 2
    captured = capsys.readouterr()
    assert captured.err.strip() == (
        f"spex: error: {flag} {target}: folder {target.parent} does not exist; create it first"
    )
    assert "spex bench:" not in captured.out  # nothing ran
