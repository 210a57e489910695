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


TWICE = textwrap.dedent(
    """
    import asyncio, os, signal, sys, time
    from spex_graph.interrupts import interrupted_exit_code, sigterm_like_ctrl_c

    signal.signal(signal.SIGINT, signal.SIG_IGN)

    async def stuck():
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)  # the second one must not wait for the step
        time.sleep(60)  # a step that never yields

    with sigterm_like_ctrl_c():
        try:
            asyncio.run(stuck())
        except KeyboardInterrupt:
            sys.exit(interrupted_exit_code())
    """
)


def test_a_second_sigterm_stops_a_step_that_never_yields() -> None:
    done = subprocess.run([sys.executable, "-c", TWICE], capture_output=True, timeout=30)
    assert done.returncode == 128 + signal.SIGTERM, done.stderr


LATE = textwrap.dedent(
    """
    import asyncio, os, signal, sys
    from spex_graph.interrupts import interrupted_exit_code, sigterm_like_ctrl_c

    signal.signal(signal.SIGINT, signal.SIG_IGN)

    async def work():
        pass

    try:
        with sigterm_like_ctrl_c():
            loop = asyncio.new_event_loop()
            task = loop.create_task(work())
            # SIGTERM in the loop's last pass: the stop is queued after the loop's own
            # stop callback, and the loop ends before running it
            task.add_done_callback(lambda _: os.kill(os.getpid(), signal.SIGTERM))
            loop.run_until_complete(task)
            loop.close()
    except KeyboardInterrupt:
        sys.exit(interrupted_exit_code())
    print("carried on")
    """
)


def test_a_sigterm_queued_on_a_loop_that_stopped_is_not_lost() -> None:
    done = subprocess.run([sys.executable, "-c", LATE], capture_output=True, text=True, timeout=30)
    assert done.returncode == 128 + signal.SIGTERM, done.stdout + done.stderr
    assert "carried on" not in done.stdout
