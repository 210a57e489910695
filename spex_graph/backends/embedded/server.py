"""Manage one ``llama-server`` subprocess on a free loopback port.

The process is started lazily (`ensure_running`), watched (a dead process is
restarted by the next `ensure_running`), and stopped by `stop`, at interpreter
exit (atexit: normal exit, an uncaught exception, Ctrl-C) and when the Python
process dies any other way (SIGTERM, SIGKILL, a crash) through
``PR_SET_PDEATHSIG`` with SIGKILL (a server whose parent is gone has nobody to
serve, and a SIGTERM can leave it hung in its own cleanup, as one llama-server
was seen to be after `langgraph dev` stopped). Linux sends that signal when the
*thread* that forked the child ends, so every server is forked from one spawner
thread that lives as long as the process, whichever thread asked for the start. Each start writes
its own log, ``~/.cache/spex-graph/logs/llama-server-<model>-port<port>-pid<pid>.log``
(see `log_path`; the newest 20 per model are kept), whose last line is quoted
when the server fails to start.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import functools
import os
import queue
import signal
import socket
import subprocess
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from spex_graph.errors import BackendUnavailableError

T = TypeVar("T")

LOOPBACK = "127.0.0.1"
_LOG_MAX = 5 * 1024 * 1024
_LOGS_KEPT = 20  # per model
_HEADER = "=== spex: starting"


def log_dir(config: ServerConfig) -> Path:
    """Where server logs go: ``config.log_dir``, else ``logs/`` beside the models folder
    (``~/.cache/spex-graph/logs``)."""
    return config.log_dir or config.model.parent.parent / "logs"


def log_path(config: ServerConfig, port: int) -> Path:
    """The log file of one server start: ``llama-server-<model>-port<port>-pid<pid>.log``.

    The port and the id of the Python process that owns the server make the name unique
    among live servers, so two engines of the same model never write into one file.
    """
    return log_dir(config) / f"llama-server-{config.model.stem}-port{port}-pid{os.getpid()}.log"


def _prune_logs(current: Path) -> None:
    """Keep the newest `_LOGS_KEPT` logs of this model; every start makes a new name."""
    model_prefix = current.name.split("-port", 1)[0] + "-port"
    logs = [p for p in current.parent.glob(f"{model_prefix}*.log") if p != current]
    logs.sort(key=lambda p: p.stat().st_mtime if p.exists() else 0.0)
    for old in logs[: max(0, len(logs) - (_LOGS_KEPT - 1))]:
        with contextlib.suppress(OSError):
            old.unlink()


def pick_free_port(preferred: int | None = None, host: str = LOOPBACK) -> int:
    """Return `preferred` if it can be bound on `host`, else a free port the kernel picks."""
    if preferred:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, preferred))
                return preferred
            except OSError:
                pass
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerConfig:
    """How to run llama-server.

    Attributes:
        binary: the llama-server executable.
        model: the GGUF file.
        parallel: number of slots (sequences decoded together).
        ctx_per_slot: context tokens per slot (the KV pool is parallel * ctx_per_slot).
        threads: CPU threads for decoding and prompt processing (default: all cores).
        kv_unified: one KV buffer shared by all slots.
        cache_ram_mib: size of the host-RAM prompt cache (0 disables it).
        poll: llama.cpp thread polling level; 0 makes idle worker threads sleep instead of
            spinning, which avoids a collapse when other processes share the cores.
        port: preferred port (another free one is picked if it is taken).
        extra_args: more command-line arguments.
        startup_timeout: seconds to wait for the model to load.
        log_dir: where the server log goes.
    """

    binary: Path
    model: Path
    parallel: int = 8
    ctx_per_slot: int = 4096
    threads: int | None = None
    kv_unified: bool = True
    cache_ram_mib: int = 2048
    poll: int = 0
    port: int | None = None
    extra_args: Sequence[str] = ()
    startup_timeout: float = 180.0
    log_dir: Path | None = None

    def command(self, port: int) -> list[str]:
        """The llama-server command line for `port`."""
        threads = str(self.threads or os.cpu_count() or 2)
        cmd = [
            str(self.binary),
            "--model",
            str(self.model),
            "--host",
            LOOPBACK,
            "--port",
            str(port),
            "--parallel",
            str(self.parallel),
            "--ctx-size",
            str(self.parallel * self.ctx_per_slot),
            "--cont-batching",
            "--threads",
            threads,
            "--threads-batch",
            threads,
            "--cache-ram",
            str(self.cache_ram_mib),
            "--poll",
            str(self.poll),
            "--no-webui",
            "--slots",
            "--metrics",
        ]
        cmd.append("--kv-unified" if self.kv_unified else "--no-kv-unified")
        cmd.extend(self.extra_args)
        return cmd


_LIVE: weakref.WeakSet[LlamaServer] = weakref.WeakSet()


@atexit.register
def _stop_all_at_exit() -> None:
    for server in list(_LIVE):
        server.stop_sync()


def _pdeathsig() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class _Spawner:
    """A daemon thread that forks every server, so the parent-death signal fires only
    when the whole process ends (not when a worker or loop thread exits)."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def run(self, job: Callable[[], T]) -> T:
        """Run `job` on the spawner thread and return its result."""
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._serve, name="spex-spawner", daemon=True
                )
                self._thread.start()
        done: Future[T] = Future()
        self._jobs.put((job, done))
        return done.result()

    def _serve(self) -> None:
        while True:
            job, done = self._jobs.get()
            try:
                done.set_result(job())
            except BaseException as exc:  # handed to the caller
                done.set_exception(exc)


_SPAWNER = _Spawner()


@dataclass(eq=False)
class LlamaServer:
    """One llama-server subprocess: start on demand, health-wait, restart after death, stop.

    Attributes:
        config: how to run it.
        restarts: how many times it was (re)started after the first start.
    """

    config: ServerConfig
    restarts: int = 0
    _proc: subprocess.Popen[bytes] | None = None
    _port: int = 0
    _ready: bool = False
    _starts: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _log_path: Path | None = None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>`` of the current process."""
        return f"http://{LOOPBACK}:{self._port}"

    @property
    def pid(self) -> int | None:
        """Process id of the running server, or None."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    @property
    def log_path(self) -> Path | None:
        """The current server log file."""
        return self._log_path

    def is_alive(self) -> bool:
        """Whether the process is running (it may still be loading)."""
        return self._proc is not None and self._proc.poll() is None

    def exit_code(self) -> int | None:
        """Exit code of the last process if it has exited, else None."""
        return None if self._proc is None else self._proc.poll()

    async def ensure_running(self) -> str:
        """Start the server if it is not running and wait until it answers; return its URL."""
        for attempt in range(3):
            proc = await self._spawn(avoid_port=attempt > 0)
            if self._ready and proc.poll() is None:
                return self.base_url
            try:
                await self._wait_ready(proc)
                return self.base_url
            except _PortTaken:
                continue
        raise BackendUnavailableError(
            f"llama-server could not bind a loopback port after 3 tries; see {self._log_path}"
        )

    async def _spawn(self, *, avoid_port: bool) -> subprocess.Popen[bytes]:
        # Off the event loop: file and process calls block, and ASGI servers such as
        # `langgraph dev` refuse blocking calls on their loop.
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            None, functools.partial(self._spawn_if_needed, avoid_port=avoid_port)
        )

    def _spawn_if_needed(self, *, avoid_port: bool) -> subprocess.Popen[bytes]:
        with self._lock:
            if self._proc is not None and self._proc.poll() is None:
                return self._proc
            if self._starts:
                self.restarts += 1
            self._starts += 1
            self._ready = False
            preferred = None if avoid_port else self.config.port
            self._port = pick_free_port(preferred)
            self._log_path = log_path(self.config, self._port)
            self._log_path.parent.mkdir(parents=True, exist_ok=True)
            _prune_logs(self._log_path)
            rotate = self._log_path.is_file() and self._log_path.stat().st_size > _LOG_MAX
            with self._log_path.open("wb" if rotate else "ab") as log:
                log.write(
                    f"=== spex: starting {' '.join(self.config.command(self._port))}\n".encode()
                )
                log.flush()
                command = self.config.command(self._port)
                self._proc = _SPAWNER.run(
                    lambda: subprocess.Popen(
                        command,
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        preexec_fn=_pdeathsig,
                    )
                )
            _LIVE.add(self)
            return self._proc

    async def _wait_ready(self, proc: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + self.config.startup_timeout
        url = f"{self.base_url}/health"
        async with httpx.AsyncClient(timeout=2.0) as client:
            while True:
                code = proc.poll()
                if code is not None:
                    last = self._log_tail()
                    if "bind" in last.lower() or "address already in use" in last.lower():
                        raise _PortTaken
                    raise BackendUnavailableError(
                        f"llama-server exited with code {code} while starting: {last!r} "
                        f"(log: {self._log_path})"
                    )
                if proc is not self._proc:
                    raise BackendUnavailableError("llama-server was restarted while starting")
                with contextlib.suppress(httpx.HTTPError):
                    response = await client.get(url)
                    if response.status_code == 200:
                        self._ready = True
                        return
                if time.monotonic() > deadline:
                    self.stop_sync()
                    raise BackendUnavailableError(
                        f"llama-server did not become ready within "
                        f"{self.config.startup_timeout:.0f}s (log: {self._log_path})"
                    )
                await asyncio.sleep(0.1)

    def _log_tail(self) -> str:
        if self._log_path is None or not self._log_path.is_file():
            return ""
        text = self._log_path.read_text(errors="replace")
        lines = [ln for ln in text[text.rfind(_HEADER) :].splitlines()[1:] if ln]
        for line in reversed(lines):
            if "error" in line.lower() or "failed" in line.lower():
                return line.strip()
        return lines[-1].strip() if lines else ""

    def kill(self) -> None:
        """SIGKILL the process (tests simulate a crash with this)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()

    def stop_sync(self, timeout: float = 5.0) -> None:
        """Terminate the process and wait for it (kill after `timeout` seconds)."""
        with self._lock:
            proc, self._proc, self._ready = self._proc, None, False
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    async def stop(self) -> None:
        """Terminate the process without blocking the event loop."""
        await asyncio.to_thread(self.stop_sync)


class _PortTaken(Exception):
    """The server could not bind its port (someone took it after we picked it)."""
