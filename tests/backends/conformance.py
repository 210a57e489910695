"""Backend conformance suite: async checks every Backend implementation must pass.

Use it from a test module:

    from backends.conformance import CHECKS, Target, run_check

    @pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
    async def test_conformance(target: Target, check: Check) -> None:
        await run_check(target, check)

A `Target` says how to build the backend (and an unreachable one), and what the
backend cannot do; a check the backend cannot meet is *skipped* with the
reason (a capability flag, or an explicit `Target` flag), never passed silently.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest

from spex_graph.backends.base import Backend, BackendCapabilities, Completion, GenerationRequest
from spex_graph.errors import BackendUnavailableError, RequestCancelledError


@dataclass
class Target:
    """A backend under test.

    Attributes:
        name: test id.
        make: builds a fresh backend (called inside the test's event loop).
        make_unreachable: builds the same backend pointed at a dead endpoint, or
            None when there is no server to be unreachable.
        prompt / messages: what to continue (raw prompt; chat messages).
        honours_max_tokens: the backend can cap generated tokens.
        reports_token_counts: completions carry prompt/completion token counts.
        reports_stop_matched: `stop_matched` names the stop string that ended a
            completion (chat APIs that apply stops themselves do not say).
        deterministic: same request+seed => same text; None = capabilities.seeded.
        slow_max_tokens: max_tokens of the request the cancel check interrupts
            (it must still be running `cancel_after_s` later).
        cancel_after_s: how long the cancel check lets the request run first.
        cancel_deadline_s: how soon after `cancel` the call must raise.
        engine_aborted: request_id -> whether the engine stopped that work (checked
            for `can_abort` backends when given).
    """

    name: str
    make: Callable[[], Backend]
    make_unreachable: Callable[[], Backend] | None = None
    prompt: str = "Question: what is 2 + 3?\nAnswer step by step.\nStep 1:"
    messages: tuple[tuple[str, str], ...] = (
        ("user", "Question: what is 2 + 3? Answer step by step."),
    )
    honours_max_tokens: bool = True
    reports_token_counts: bool = True
    deterministic: bool | None = None
    slow_max_tokens: int = 2000
    cancel_after_s: float = 0.15
    cancel_deadline_s: float = 1.0
    engine_aborted: Callable[[str], bool] | None = None
    reports_stop_matched: bool = True

    def request(self, **kwargs: object) -> GenerationRequest:
        """A request on this target's prompt (fresh request id unless given)."""
        base: dict[str, object] = {
            "prompt": self.prompt,
            "messages": self.messages,
            "seeds": (1,),
            "request_id": f"conf-{uuid.uuid4().hex[:12]}",
            "max_tokens": 24,
            "temperature": 0.8,
        }
        base.update(kwargs)
        return GenerationRequest(**base)  # type: ignore[arg-type]

    def is_deterministic(self, backend: Backend) -> bool:
        """Whether same seed => same text is expected."""
        if self.deterministic is not None:
            return self.deterministic
        return backend.capabilities.seeded


Check = Callable[[Target, Backend], Awaitable[None]]


def assert_one_line(exc: BaseException) -> None:
    """Errors reach users as one line that names a cause."""
    text = str(exc)
    assert text, f"{type(exc).__name__} has no message"
    assert "\n" not in text, f"multi-line message: {text!r}"
    assert len(text) < 400, f"message too long ({len(text)} chars): {text!r}"


def _valid(c: Completion) -> None:
    assert isinstance(c, Completion)
    assert isinstance(c.text, str)
    assert c.finish_reason in ("stop", "length"), c.finish_reason


# --------------------------------------------------------------------------- checks


async def check_protocol(t: Target, b: Backend) -> None:
    """The object satisfies the Backend protocol."""
    assert isinstance(b, Backend)
    assert isinstance(b.name, str) and b.name
    assert isinstance(b.capabilities, BackendCapabilities)
    assert b.capabilities.max_concurrency >= 1


async def check_n_in_seed_order(t: Target, b: Backend) -> None:
    """n seeds => n completions, completion i for seed i."""
    seeds = (5, 6, 7)
    out = await b.generate(t.request(seeds=seeds))
    assert len(out) == len(seeds)
    for c in out:
        _valid(c)
    if t.is_deterministic(b):
        for s, c in zip(seeds, out, strict=True):
            [single] = await b.generate(t.request(seeds=(s,)))
            assert single.text == c.text, f"seed {s}: not in seed order"
    assert await b.generate(t.request(seeds=())) == []


async def check_seed_determinism(t: Target, b: Backend) -> None:
    """Same seed => same text; different seeds => different texts."""
    if not b.capabilities.seeded:
        pytest.skip("capabilities.seeded is False: the engine does not honour seeds")
    a1 = await b.generate(t.request(seeds=(11,)))
    a2 = await b.generate(t.request(seeds=(11,)))
    assert a1[0].text == a2[0].text
    many = await b.generate(t.request(seeds=(21, 22, 23, 24)))
    assert len({c.text for c in many}) > 1, "different seeds gave identical samples"


async def check_stop_strings(t: Target, b: Backend) -> None:
    """Stop strings cut the text and are not included."""
    if t.is_deterministic(b):
        [base] = await b.generate(t.request(seeds=(3,), max_tokens=48))
        if len(base.text) < 8:
            pytest.skip(f"sample too short to pick a stop string from: {base.text!r}")
        k = len(base.text) // 2
        stop = base.text[k : k + 3]
        expected = base.text[: base.text.find(stop)]
        [cut] = await b.generate(t.request(seeds=(3,), max_tokens=48, stop=(stop,)))
        assert cut.text == expected
        assert stop not in cut.text
        assert cut.finish_reason == "stop"
        if t.reports_stop_matched:
            assert cut.stop_matched == stop
        else:
            assert cut.stop_matched in (stop, None)
    else:
        out = await b.generate(t.request(seeds=(1, 2), max_tokens=64, stop=("\n",)))
        for c in out:
            _valid(c)
            assert "\n" not in c.text
            if c.stop_matched is not None:
                assert c.stop_matched == "\n"


async def check_max_tokens(t: Target, b: Backend) -> None:
    """max_tokens is respected and reported as finish_reason "length"."""
    if not t.honours_max_tokens:
        pytest.skip("the backend cannot cap generated tokens (Target.honours_max_tokens)")
    [c] = await b.generate(t.request(max_tokens=4))
    assert c.finish_reason == "length"
    if t.reports_token_counts:
        assert 0 < c.completion_tokens <= 4


async def check_token_counts(t: Target, b: Backend) -> None:
    """Completions carry positive prompt and completion token counts."""
    if not t.reports_token_counts:
        pytest.skip("the backend reports no token counts (Target.reports_token_counts)")
    [c] = await b.generate(t.request(max_tokens=8))
    assert c.prompt_tokens > 0
    assert c.completion_tokens > 0
    assert c.cached_tokens >= 0


async def check_logprobs(t: Target, b: Backend) -> None:
    """logprobs=True returns one logprob (<= 0) per generated token."""
    if not b.capabilities.logprobs:
        pytest.skip("capabilities.logprobs is False")
    [c] = await b.generate(t.request(max_tokens=6, logprobs=True))
    assert c.token_logprobs, "no logprobs returned"
    assert all(lp <= 1e-6 for lp in c.token_logprobs)
    if t.reports_token_counts:
        assert len(c.token_logprobs) == c.completion_tokens


async def check_cancel(t: Target, b: Backend) -> None:
    """Cancelling an in-flight request raises RequestCancelledError promptly; later ones work."""
    req = t.request(seeds=(1, 2), max_tokens=t.slow_max_tokens)
    task = asyncio.create_task(b.generate(req))
    await asyncio.sleep(t.cancel_after_s)
    assert not task.done(), "the slow request finished before it could be cancelled"
    t0 = time.monotonic()
    await b.cancel(req.request_id)
    with pytest.raises(RequestCancelledError) as info:
        await asyncio.wait_for(task, t.cancel_deadline_s)
    assert time.monotonic() - t0 < t.cancel_deadline_s
    assert_one_line(info.value)
    if b.capabilities.can_abort and t.engine_aborted is not None:
        deadline = time.monotonic() + 2.0
        while not t.engine_aborted(req.request_id) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert t.engine_aborted(req.request_id), "the engine kept working after cancel"
    await b.cancel(req.request_id)  # again, after the fact: ignored
    [after] = await b.generate(t.request(max_tokens=4))
    _valid(after)


async def check_cancel_unknown(t: Target, b: Backend) -> None:
    """Cancelling an unknown id is a no-op."""
    await b.cancel("no-such-request")


async def check_concurrent(t: Target, b: Backend) -> None:
    """Many requests at once all complete, each with its own n."""
    reqs = [t.request(seeds=(i, i + 100), max_tokens=6) for i in range(8)]
    outs = await asyncio.gather(*(b.generate(r) for r in reqs))
    assert [len(o) for o in outs] == [2] * 8


async def check_health(t: Target, b: Backend) -> None:
    """health() passes on a working backend."""
    await b.health()


async def check_unreachable(t: Target, b: Backend) -> None:
    """An unreachable server gives BackendUnavailableError with a one-line message."""
    if t.make_unreachable is None:
        pytest.skip("no server: nothing can be unreachable")
    dead = t.make_unreachable()
    try:
        with pytest.raises(BackendUnavailableError) as info:
            await dead.generate(t.request())
        assert_one_line(info.value)
        with pytest.raises(BackendUnavailableError) as info:
            await dead.health()
        assert_one_line(info.value)
    finally:
        await dead.aclose()


async def check_aclose_idempotent(t: Target, b: Backend) -> None:
    """aclose() twice is fine; a closed backend refuses work with a one-line error."""
    await b.aclose()
    await b.aclose()
    with pytest.raises(BackendUnavailableError) as info:
        await b.generate(t.request())
    assert_one_line(info.value)


CHECKS: list[Check] = [
    check_protocol,
    check_n_in_seed_order,
    check_seed_determinism,
    check_stop_strings,
    check_max_tokens,
    check_token_counts,
    check_logprobs,
    check_cancel,
    check_cancel_unknown,
    check_concurrent,
    check_health,
    check_unreachable,
    check_aclose_idempotent,
]
"""Every check, in a sensible order."""

_NO_HEALTH_FIRST = {check_unreachable, check_health, check_aclose_idempotent}


async def run_check(t: Target, check: Check) -> None:
    """Build the backend, run `health()` (so capabilities are settled), run the check, close."""
    backend = t.make()
    try:
        if check not in _NO_HEALTH_FIRST:
            await backend.health()
        await check(t, backend)
    finally:
        await backend.aclose()
