"""`spex` CLI on a slow scripted engine, for tests that must kill a run mid-search.

The `fake` backend becomes a ScriptedBackend with `SLOW_S` seconds per request
whose token logprobs vary with the text (so a reward that reads them changes
if they are lost), and whose requests fail for the problem ids in `FAIL_IDS`.
Run as `python slow_cli.py run --backend fake ...`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import sys

from spex_graph import cli, defaults
from spex_graph.backends.base import Completion, GenerationRequest
from spex_graph.backends.fake import ScriptedBackend
from spex_graph.errors import BackendRequestError
from spex_graph.tasks import get_task


class SlowBackend(ScriptedBackend):
    """Scripted engine with latency, text-dependent logprobs and chosen failures."""

    fail_questions: tuple[str, ...] = ()

    def _one(self, request: GenerationRequest, seed: int) -> Completion:
        if any(q in request.prompt for q in self.fail_questions):
            raise BackendRequestError("injected engine failure for this problem")
        completion = super()._one(request, seed)
        if not request.logprobs:
            return completion
        digest = hashlib.sha1(f"{completion.text}|{seed}".encode()).digest()
        logprobs = tuple(-3.0 * digest[i % 20] / 255 for i in range(completion.completion_tokens))
        return dataclasses.replace(completion, token_logprobs=logprobs)


def make_backend(name: str, url: str | None = None, model: str | None = None) -> SlowBackend:
    delay = float(os.environ.get("SLOW_S", "0.05"))
    backend = SlowBackend(latency=lambda _request: delay)
    fail_ids = {i for i in os.environ.get("FAIL_IDS", "").split(",") if i}
    if fail_ids:
        dataset = os.environ.get("FAIL_DATASET", "gsm8k")
        problems = get_task(dataset).load(limit=None)
        backend.fail_questions = tuple(p.question for p in problems if p.id in fail_ids)
    return backend


if __name__ == "__main__":
    defaults.make_backend = make_backend  # type: ignore[assignment]
    sys.exit(cli.main(sys.argv[1:]))
