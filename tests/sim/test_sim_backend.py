"""SimBackend: the backend conformance suite under the virtual loop, and step semantics."""

from __future__ import annotations

import pytest
from backends.conformance import CHECKS, Check, Target, run_check

from spex_graph.backends.base import GenerationRequest
from spex_graph.sim import H100_7B, MATH_LIKE, SimBackend, SimEngine, SimTask, run_virtual
from spex_graph.sim.workload import parse_steps

_ENGINES: list[SimEngine] = []


def _make() -> SimBackend:
    engine = SimEngine(H100_7B)
    _ENGINES.append(engine)
    return SimBackend(engine, MATH_LIKE)


TARGET = Target(
    name="sim",
    make=_make,
    engine_aborted=lambda rid: any(e.was_aborted(rid) for e in _ENGINES),
)


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_conformance(check: Check) -> None:
    run_virtual(run_check(TARGET, check))


def _request(
    prefix: str = "", stop: tuple[str, ...] = ("\n\n",), **kw: object
) -> GenerationRequest:
    task = SimTask()
    problem = task.load(1)[0]
    head = "".join(f"<{r}>{c}" for r, c in task.messages(problem))
    return GenerationRequest(
        prompt=head + prefix,
        seeds=(5,),
        request_id="r1",
        stop=stop,
        assistant_prefix=prefix,
        **kw,  # type: ignore[arg-type]
    )


def test_one_step_per_request_then_the_whole_rest_without_stop_strings() -> None:
    async def main() -> None:
        backend = SimBackend(SimEngine(H100_7B), MATH_LIKE)
        [first] = await backend.generate(_request())
        [tag] = parse_steps(first.text)
        assert tag.depth == 1 and first.stop_matched == "\n\n"
        assert first.completion_tokens == tag.tokens
        assert first.prompt_tokens == MATH_LIKE.prompt_tokens
        prefix = first.text + "\n\n"
        [second] = await backend.generate(_request(prefix))
        assert parse_steps(second.text)[0].depth == 2
        assert second.prompt_tokens == MATH_LIKE.prompt_tokens + tag.tokens
        assert second.cached_tokens == second.prompt_tokens - 1  # parent's KV was cached
        [rest] = await backend.generate(_request(prefix, stop=(), max_tokens=10_000))
        steps = parse_steps(rest.text)
        assert steps[-1].terminal and rest.stop_matched is None and rest.finish_reason == "stop"
        assert [s.depth for s in steps] == list(range(2, 2 + len(steps)))
        assert rest.completion_tokens == sum(s.tokens for s in steps)
        assert rest.text.split("\n\n")[0] == second.text  # same seed, same first step

    run_virtual(main())
