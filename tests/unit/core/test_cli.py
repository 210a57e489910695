"""The `spex` CLI: options, one-line errors, and a solve on the fake backend."""

from __future__ import annotations

import socket

import pytest

from spex_graph.cli import build_parser, main


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_solve_on_the_fake_backend_prints_answer_and_path(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["solve", "What is 6 x 7?", "--backend", "fake", "--width", "4"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("answer: ")
    assert "path (" in out and "1. " in out


def test_invalid_option_is_a_one_line_error(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["solve", "q", "--backend", "fake", "--width", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("spex: error:") and "width" in err and "\n" not in err


def test_unknown_algorithm_is_rejected_by_argparse() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["solve", "q", "--algorithm", "dfs"])


def test_server_backend_without_url_names_the_fix(capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("SPEX_BACKEND_URL", raising=False)
    assert main(["solve", "q", "--backend", "sglang"]) == 2
    assert "--backend-url" in capsys.readouterr().err


def test_unreachable_server_is_a_one_line_error(capsys) -> None:  # type: ignore[no-untyped-def]
    url = f"http://127.0.0.1:{free_port()}"
    assert main(["solve", "q", "--backend", "sglang", "--backend-url", url]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("spex: error:") and url in err and "\n" not in err


def test_run_writes_jsonl_and_prints_accuracy(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "r.jsonl"
    code = main(
        [
            "run",
            "--dataset",
            "gsm8k",
            "--limit",
            "3",
            "--backend",
            "fake",
            "--width",
            "2",
            "--out",
            str(out),
            "--concurrency",
            "2",
        ]
    )
    assert code == 0
    rows = out.read_text().splitlines()
    assert len(rows) == 3
    assert "accuracy: " in capsys.readouterr().out
