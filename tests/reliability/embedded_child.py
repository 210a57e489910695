"""Start the embedded engine from the reasoner's loop thread, print its pid, then end.

`python embedded_child.py MODE`: MODE "exit" returns normally, "raise" dies of an
uncaught exception, "wait" sleeps until a signal (SIGINT, SIGTERM, SIGKILL) ends it.
"""

from __future__ import annotations

import sys
import time

from spex_graph.backends.embedded import EmbeddedBackend
from spex_graph.runtime.loop import run_on_shared_loop

if __name__ == "__main__":
    backend = EmbeddedBackend("qwen2.5-coder-0.5b", parallel=1, ctx_per_slot=512)
    run_on_shared_loop(backend.health())  # starts llama-server from the shared loop's thread
    assert backend.server is not None
    print(backend.server.pid, flush=True)
    if sys.argv[1] == "raise":
        raise RuntimeError("the application failed")
    if sys.argv[1] == "wait":
        time.sleep(120)
