"""The embedded CPU engine: a local Qwen2.5-Coder GGUF served by a managed llama-server.

Why llama-server (option a) and not an in-process batched engine on
llama-cpp-python's low-level API (option b): both run the same ggml kernels
(the server is built from the llama.cpp tree vendored in the
llama-cpp-python 0.3.36 sdist), so they batch equally well; llama-server
already has continuous batching over ``--parallel`` slots, per-request
seeds, stop strings, token logprobs, abort on connection close, and prefix
sharing (``n_cmpl`` siblings get the parent's KV by ``seq_cp``; other
requests reuse the slot and host-RAM prompt caches), a crash cannot take the
Python process down, and only the server target is compiled (~7 min on 2
cores) instead of the whole Python extension.

Measured on the 2-vCPU dev machine (AMD EPYC, AVX2 build, 2 threads, quiet
moments; the machine is shared, so numbers vary by +-20%):

* raw ggml decode (llama-batched-bench, shared 128-token prefix), 1.5B:
  1 seq 25-30 tok/s, 4 seqs 37, 8 seqs 26-28, 16 seqs 42 tok/s (aggregate).
  Single-stream decode is already compute-bound here, so batching gains at
  most ~1.4x; ``-DGGML_NATIVE=ON`` (AVX-512) and ``--no-repack`` change nothing.
* through llama-server + this backend (`bench.py`, 32-64 tokens), 1.5B:
  1 branch 27-30 tok/s, 8 branches 21-24 tok/s; 0.5B: 43 vs 61 tok/s (1.40x).
  The issue's "12.6 tok/s single" baseline was 1 thread / high-level API;
  against it 8 branches are ~1.7x, against our own single stream they are not.
* with other processes on the cores, 2 spinning threads collapse (1 tok/s);
  ``--poll 0`` (sleeping workers) keeps them usable, so it is the default.

Public API: `EmbeddedBackend`, `ensure_model`, `ensure_llama_server`, `setup`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from spex_graph.backends.embedded.backend import EmbeddedBackend
from spex_graph.backends.embedded.build import ensure_llama_server
from spex_graph.backends.embedded.models import DEFAULT_MODEL, MODELS, ensure_model

__all__ = [
    "DEFAULT_MODEL",
    "MODELS",
    "EmbeddedBackend",
    "ensure_llama_server",
    "ensure_model",
    "setup",
]


def setup(model: str = DEFAULT_MODEL) -> tuple[Path, Path]:
    """Assemble and verify `model` and build llama-server, printing progress.

    Returns (model file, llama-server binary). Everything lands in the cache
    directory; a second call is instant.
    """

    def progress(msg: str) -> None:
        print(f"[spex setup] {msg}", file=sys.stderr, flush=True)

    model_path = ensure_model(model, progress=progress)
    progress(f"model ready: {model_path}")
    binary = ensure_llama_server(progress=progress)
    progress(f"llama-server ready: {binary}")
    logs = model_path.parent.parent / "logs"
    progress(f"engine logs: {logs}/llama-server-<model>-port<port>-pid<pid>.log (one per start)")
    return model_path, binary
