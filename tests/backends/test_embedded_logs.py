"""Two embedded engines of the same model write two log files (a stand-in llama-server)."""

from __future__ import annotations

import asyncio
import os
import sys
import textwrap
from pathlib import Path

import pytest

from spex_graph.backends.embedded import server as server_mod
from spex_graph.backends.embedded.server import LlamaServer, ServerConfig, log_path

# Answers /health like llama-server and logs a line naming its port, as the real one does.
_FAKE_SERVER = textwrap.dedent(
    f"""\
    #!{sys.executable}
    import sys
    from http.server import BaseHTTPRequestHandler, HTTPServer

    port = int(sys.argv[sys.argv.index("--port") + 1])

    class Health(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"{{}}")

        def log_message(self, *args):
            pass

    print(f"fake llama-server listening on port {{port}}", flush=True)
    HTTPServer(("127.0.0.1", port), Health).serve_forever()
    """
)


@pytest.fixture
def config(tmp_path: Path) -> ServerConfig:
    binary = tmp_path / "llama-server"
    binary.write_text(_FAKE_SERVER)
    binary.chmod(0o755)
    model = tmp_path / "models" / "tiny-model-q4.gguf"
    model.parent.mkdir()
    model.write_bytes(b"GGUF")
    return ServerConfig(binary=binary, model=model, startup_timeout=30.0)


async def test_two_engines_of_one_model_write_separate_logs(config: ServerConfig) -> None:
    first, second = LlamaServer(config), LlamaServer(config)
    try:
        await first.ensure_running()
        await second.ensure_running()
        assert first.log_path is not None and second.log_path is not None
        assert first.log_path != second.log_path
        assert first.log_path.parent == config.model.parent.parent / "logs"
        for server in (first, second):
            assert server.log_path == log_path(config, server._port)
            assert f"-port{server._port}-pid{os.getpid()}.log" in server.log_path.name
        # each file holds its own server's start line and nothing of the other's
        await _wait_for_text(first.log_path, f"port {first._port}")
        await _wait_for_text(second.log_path, f"port {second._port}")
        assert f"port {second._port}" not in first.log_path.read_text()
        assert f"port {first._port}" not in second.log_path.read_text()
    finally:
        first.stop_sync()
        second.stop_sync()


async def test_old_logs_of_a_model_are_pruned(
    config: ServerConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server_mod, "_LOGS_KEPT", 3)
    logs = config.model.parent.parent / "logs"
    logs.mkdir()
    stale = [logs / f"llama-server-tiny-model-q4-port{1000 + k}-pid1.log" for k in range(4)]
    for k, path in enumerate(stale):
        path.write_text("old")
        os.utime(path, (1_000_000 + k, 1_000_000 + k))
    other_model = logs / "llama-server-other-port1-pid1.log"
    other_model.write_text("keep")
    server = LlamaServer(config)
    try:
        await server.ensure_running()
    finally:
        server.stop_sync()
    left = sorted(p.name for p in logs.iterdir())
    assert left == sorted([other_model.name, stale[2].name, stale[3].name, server.log_path.name])


async def _wait_for_text(path: Path, text: str) -> None:
    for _ in range(100):
        if text in path.read_text():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{text!r} never appeared in {path}")
