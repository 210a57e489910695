"""SIGTERM inside asyncio.run ends the run like Ctrl-C, with nothing left unretrieved.

Each case runs in a child process (signal handlers belong to the main thread).
The signal is sent from inside a task's step, the moment at which the handler
used to raise KeyboardInterrupt into that task: the task then kept it as an
exception nobody retrieved, and the run printed "Task exception was never
retrieved" with a traceback.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import pytest

CHILD = textwrap.dedent(
    """
    import asyncio, os, signal, sys
    from spex_graph.interrupts import interrupted_exit_code, sigterm_like_ctrl_c

    ignored = sys.argv[1] == "ignored"
    signal.signal(signal.SIGINT, signal.SIG_IGN if ignored else signal.default_int_handler)
    cleaned = []

    async def worker(n):
        try:
            await asyncio.sleep(0.05)  # every worker has started
            if n == 0:
                os.kill(os.getpid(), signal.SIGTERM)  # the handler runs inside this step
            await asyncio.sleep(30)
        finally:
            cleaned.append(n)

    async def main():
        await asyncio.gather(*(worker(n) for n in range(3)))

    with sigterm_like_ctrl_c():
        try:
            asyncio.run(main())
        except KeyboardInterrupt:
            print("stopped", sorted(cleaned), flush=True)
            sys.exit(interrupted_exit_code())
    """
)


@pytest.mark.parametrize("sigint", ["default", "ignored"])
def test_sigterm_from_inside_a_task_stops_the_run_cleanly(sigint: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, sigint], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 128 + signal.SIGTERM, done.stderr
    assert done.stdout.strip() == "stopped [0, 1, 2]", "every task's finally ran"
    assert "Traceback" not in done.stderr and "never retrieved" not in done.stderr, done.stderr
