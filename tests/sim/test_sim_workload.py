"""The synthetic reasoning-tree workload, SimTask and the GPU profiles."""

from __future__ import annotations

import statistics

import pytest

from spex_graph.sim import (
    H100_7B,
    H100_8B,
    H200_7B,
    MATH_LIKE,
    SimTask,
    SyntheticWorkload,
    calibrate,
)
from spex_graph.sim.workload import parse_problem_id, parse_steps


def test_steps_are_a_pure_function_of_problem_seed_and_parent() -> None:
    a = MATH_LIKE.sample_path("sim-1", 7)
    b = MATH_LIKE.sample_path("sim-1", 7)
    c = MATH_LIKE.sample_path("sim-1", 8)
    assert a == b and a != c
    text = "\n\n".join(s.render() for s in a)
    assert parse_steps(text) == a
    assert a[-1].terminal and not any(s.terminal for s in a[:-1])


def test_empirical_statistics_match_the_parameters() -> None:
    w = MATH_LIKE
    paths = [w.sample_path(f"sim-{i % 40}", i) for i in range(3000)]
    depths = [len(p) for p in paths]
    tokens = [s.tokens for p in paths for s in p]
    correct = [p[-1].answer == w.gold(f"sim-{i % 40}") for i, p in enumerate(paths)]
    assert statistics.mean(depths) == pytest.approx(w.depth_mean, abs=0.3)
    assert min(depths) >= 3 and max(depths) <= w.depth_mean + w.depth_spread + 1
    assert statistics.mean(tokens) == pytest.approx(w.step_tokens_mean, abs=3)
    assert statistics.mean(correct) == pytest.approx(w.expected_correct_rate(), abs=0.04)
    assert 0.3 <= w.expected_correct_rate() <= 0.5
    wrong = {p[-1].answer for i, p in enumerate(paths) if not correct[i] and i % 40 == 0}
    assert len(wrong) <= w.n_wrong_answers


def test_fit_recovers_the_statistics() -> None:
    paths = [MATH_LIKE.sample_path("sim-0", i) for i in range(1500)]
    fitted = SyntheticWorkload.fit(
        [s.tokens for p in paths for s in p], [len(p) for p in paths], correct_rate=0.4
    )
    assert fitted.depth_mean == MATH_LIKE.depth_mean
    assert fitted.step_tokens_mean == pytest.approx(MATH_LIKE.step_tokens_mean, abs=3)
    assert fitted.expected_correct_rate() == pytest.approx(0.4, abs=1e-6)


def test_sim_task_loads_grades_and_finds_answers() -> None:
    task = SimTask()
    problems = task.load(3, offset=2)
    assert [p.id for p in problems] == ["sim-2", "sim-3", "sim-4"]
    p = problems[0]
    assert parse_problem_id(p.question) == "sim-2"
    assert task.is_correct(p, p.gold) and not task.is_correct(p, "nope")
    step = "[sim d=3 ok=1 n=5 D=3 h=000001] Step 3. The answer is \\boxed{517}."
    assert task.is_terminal(step) and task.extract_answer("a\n\n" + step) == "517"
    assert not task.is_terminal("[sim d=1 ok=1 n=5 D=3 h=000001] Step 1.")


def test_profiles_match_their_public_anchors() -> None:
    # SGLang Llama-3.1-8B bs=1 on H100: 158 tok/s = 6.3 ms/token
    assert H100_8B.decode_step_time(1, 1000) == pytest.approx(0.0063, abs=1e-4)
    assert H100_7B.kv_capacity_tokens == pytest.approx(1.0e6, rel=0.05)
    assert H200_7B.kv_capacity_tokens == pytest.approx(2.0e6, rel=0.05)
    assert H100_8B.kv_capacity_tokens == pytest.approx(450e3, rel=0.05)
    assert H200_7B.decode_step_time(1) < H100_7B.decode_step_time(1)
    assert 30e3 < H100_7B.prefill_throughput() < 40e3
    # more sequences cost more (KV reads), but far less than linearly
    assert H100_7B.decode_step_time(64) < 2 * H100_7B.decode_step_time(1)


def test_calibrate_recovers_the_roofline_constants() -> None:
    trace = [(b, H100_8B.decode_step_time(b, 512)) for b in (1, 4, 16, 64, 128)]
    fitted = calibrate(trace, H100_8B, context_per_request=512)
    assert fitted.mem_efficiency == pytest.approx(0.80, rel=1e-6)
    assert fitted.step_overhead_s == pytest.approx(0.0003, rel=1e-6)
    with pytest.raises(ValueError):
        calibrate([(1, 0.006)])
