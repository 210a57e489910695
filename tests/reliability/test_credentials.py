"""Credentials never reach messages, logs or reports (issue #11, item 8).

A password in a backend URL and an API key on a failing request against real
local HTTP servers: the one-line errors, httpx's INFO log lines, the `spex`
CLI's stderr and the benchmark's JSON spec must not contain either. The
servers still get the credentials (basic auth, bearer key).
"""

from __future__ import annotations

import base64
import logging
import os
import subprocess
import sys
from typing import Any

import pytest
from backends.fake_http import closed_port_url
from backends.fake_openai_server import FakeOpenAIServer
from backends.fake_sglang_server import FakeSGLangServer

from spex_graph.backends._common import make_request
from spex_graph.backends.openai_compat import OpenAICompatBackend
from spex_graph.backends.sglang import SGLangBackend
from spex_graph.bench.report import build_report
from spex_graph.bench.runner import BenchSpec
from spex_graph.errors import SpexError
from spex_graph.redact import redact_url
from spex_graph.rewards.base import ScoreRequest
from spex_graph.rewards.prm import SGLangPRM

PASSWORD = "hunter2-Pa55"
API_KEY = "sk-test-9f8e7d6c5b4a"
SECRETS = (PASSWORD, API_KEY, "s3cr3tuser")


def with_credentials(url: str) -> str:
    return url.replace("http://", f"http://s3cr3tuser:{PASSWORD}@")


def assert_clean(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, text


@pytest.fixture
def httpx_log(caplog: Any) -> Any:
    caplog.set_level(logging.DEBUG, logger="httpx")
    caplog.set_level(logging.DEBUG, logger="httpcore")
    return caplog


def test_redact_url_hides_user_password_and_query_keys() -> None:
    assert redact_url("http://u:p@h:1/v1?api_key=k&x=1") == "http://***@h:1/v1?api_key=***&x=1"
    assert redact_url("https://h:8000") == "https://h:8000"
    assert redact_url(None) is None


@pytest.mark.parametrize("fault", ["500", "503", "drop", "garbage"])
async def test_openai_errors_and_logs_hold_no_credentials(fault: str, httpx_log: Any) -> None:
    with FakeOpenAIServer() as server:
        server.set_fault(fault, "/v1/completions")
        backend = OpenAICompatBackend(
            with_credentials(server.url), "fake-model", api_key=API_KEY, chat=False
        )
        with pytest.raises(SpexError) as info:
            await backend.generate(make_request(prompt="hello", seeds=(1,), request_id="r1"))
        await backend.aclose()
    message = str(info.value)
    assert "***@127.0.0.1" in message
    assert_clean(message)
    assert_clean(httpx_log.text)
    assert "127.0.0.1" in httpx_log.text  # the log lines were captured


async def test_the_server_still_gets_the_credentials() -> None:
    with FakeOpenAIServer() as server:
        backend = OpenAICompatBackend(with_credentials(server.url), "fake-model", chat=False)
        await backend.generate(make_request(prompt="hello", seeds=(1,), request_id="r1"))
        await backend.aclose()
        auth = server.headers_seen[-1].get("Authorization") or server.headers_seen[-1].get(
            "authorization"
        )
    assert auth == "Basic " + base64.b64encode(f"s3cr3tuser:{PASSWORD}".encode()).decode()


async def test_sglang_and_prm_errors_hold_no_credentials(httpx_log: Any) -> None:
    with FakeSGLangServer() as server:
        server.set_fault("500", "/generate", "/v1/score", "/tokenize", "/v1/tokenize")
        backend = SGLangBackend(with_credentials(server.url), api_key=API_KEY)
        with pytest.raises(SpexError) as info:
            await backend.generate(make_request(prompt="hello", seeds=(1,), request_id="r1"))
        await backend.aclose()
        prm = SGLangPRM(
            with_credentials(server.url), good_token_id=1, bad_token_id=2, api_key=API_KEY
        )
        with pytest.raises(SpexError) as prm_info:
            await prm.score(ScoreRequest("q", ("step",), "r2"))
        await prm.aclose()
    assert_clean(str(info.value))
    assert_clean(str(prm_info.value))
    assert_clean(httpx_log.text)


async def test_unreachable_server_error_holds_no_credentials() -> None:
    backend = SGLangBackend(with_credentials(closed_port_url()), api_key=API_KEY)
    with pytest.raises(SpexError) as info:
        await backend.health()
    await backend.aclose()
    assert_clean(str(info.value))


def test_cli_stderr_holds_no_credentials() -> None:
    url = with_credentials(closed_port_url())
    cli = [sys.executable, "-m", "spex_graph.cli", "solve", "q?", "--backend", "sglang"]
    proc = subprocess.run(
        [*cli, "--backend-url", url],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
    )
    assert proc.returncode == 2, proc.stderr
    assert "cannot connect" in proc.stderr
    assert_clean(proc.stderr + proc.stdout)


def test_bench_report_spec_holds_no_credentials() -> None:
    spec = BenchSpec(backend="sglang", backend_url=with_credentials("http://127.0.0.1:1"))
    report = build_report(spec, [])
    assert report["spec"]["backend_url"] == "http://***@127.0.0.1:1"
    assert_clean(str(report))
