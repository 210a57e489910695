"""SIGTERM ends a command-line run the way Ctrl-C does.

Process managers, `timeout`, `docker stop` and job schedulers stop a process
with SIGTERM, whose default action kills Python on the spot: no `finally` runs,
so a backend's engine is not stopped and a half-written row may be left. Inside
`with sigterm_like_ctrl_c():`, SIGTERM goes through the Ctrl-C path instead:
inside `asyncio.run` the main task is cancelled (every query's `finally` closes
its session and aborts its requests), elsewhere KeyboardInterrupt is raised.
The entry point then prints one line and exits 128 + the signal number
(130 for SIGINT, 143 for SIGTERM), as a shell reports a killed job.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

_received: list[int] = []
_pending: list[bool] = [False]  # a stop queued on the event loop and not yet raised


@contextlib.contextmanager
def sigterm_like_ctrl_c() -> Iterator[None]:
    """While inside, SIGTERM goes to the current SIGINT handler (KeyboardInterrupt
    when SIGINT is ignored, as in a background job); the previous SIGTERM handler
    is restored on the way out. Does nothing off the main thread (Python runs
    signal handlers there only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _received.clear()
    _pending[0] = False
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
        if _pending[0]:  # queued on a loop that stopped before running it
            raise KeyboardInterrupt
    finally:
        _pending[0] = False
        signal.signal(signal.SIGTERM, previous)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    _received.append(signum)
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler):  # asyncio.run's own (cancels its main task) or the default
        handler(signal.SIGINT, frame)
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        raise KeyboardInterrupt from None
    if _pending[0]:  # a second SIGTERM: do not wait for the step to yield
        raise KeyboardInterrupt
    # Raised here, inside whatever task step was interrupted, KeyboardInterrupt
    # would also become that task's never-retrieved exception; raised from a loop
    # callback it leaves run_until_complete cleanly and asyncio.run cancels the tasks.
    _pending[0] = True
    loop.call_soon_threadsafe(_raise_keyboard_interrupt)


def _raise_keyboard_interrupt() -> None:
    if _pending[0]:
        _pending[0] = False
        raise KeyboardInterrupt


def received_signal() -> int:
    """The signal that interrupted the run: SIGTERM if one arrived, else SIGINT."""
    return _received[-1] if _received else int(signal.SIGINT)


def interrupted_exit_code() -> int:
    """128 + the interrupting signal's number (130 for Ctrl-C, 143 for SIGTERM)."""
    return 128 + received_signal()


def interrupted_reason() -> str:
    """ "interrupted" or "terminated (SIGTERM)", for the one-line message."""
    return "terminated (SIGTERM)" if received_signal() == signal.SIGTERM else "interrupted"
