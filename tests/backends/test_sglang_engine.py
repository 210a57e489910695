"""The in-process SGLang engine backend: imported lazily behind the sglang extra.

Without a GPU the engine itself is a stand-in module with `sglang.Engine`'s documented
surface (/work/shared/SGLANG.md §7); what is tested is this backend's logic.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import types
from typing import Any, ClassVar

import pytest

from spex_graph.backends.base import Backend, GenerationRequest
from spex_graph.backends.sglang_engine import INSTALL_HINT, SGLangEngineBackend
from spex_graph.errors import ConfigError, RequestCancelledError


class StandInEngine:
    """`sglang.Engine(**server_args)` with `async_generate` and `shutdown`."""

    instances: ClassVar[list[StandInEngine]] = []

    def __init__(self, **server_args: Any) -> None:
        self.server_args = server_args
        self.calls: list[dict[str, Any]] = []
        self.delay = 0.0
        self.shut = False
        StandInEngine.instances.append(self)

    async def async_generate(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        await asyncio.sleep(self.delay)
        seed = kwargs["sampling_params"].get("sampling_seed", 0)
        return {
            "text": f"step {seed}\n\nmore",
            "meta_info": {
                "finish_reason": {"type": "stop", "matched": "\n\n"},
                "prompt_tokens": 7,
                "completion_tokens": 3,
                "cached_tokens": 2,
                "output_token_logprobs": [[-0.1, 11, None], [-0.2, 12, None]],
            },
        }

    def shutdown(self) -> None:
        self.shut = True


@pytest.fixture
def sglang(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    module = types.ModuleType("sglang")
    module.Engine = StandInEngine  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "sglang", module)
    StandInEngine.instances.clear()
    return module


def request(n: int = 2, **kw: Any) -> GenerationRequest:
    return GenerationRequest(
        prompt="Q", seeds=tuple(range(5, 5 + n)), request_id="r1", stop=("\n\n",), **kw
    )


def test_importing_the_backend_does_not_import_sglang() -> None:
    code = (
        "import sys; import spex_graph.backends.sglang_engine, spex_graph; "
        "assert 'sglang' not in sys.modules and 'torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


async def test_without_sglang_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sglang", None)  # import fails
    backend = SGLangEngineBackend("Qwen/Qwen2.5-Math-7B-Instruct")
    with pytest.raises(ConfigError) as info:
        await backend.health()
    assert str(info.value) == INSTALL_HINT and "spex-graph[sglang]" in INSTALL_HINT


async def test_generate_one_request_per_seed(sglang: types.ModuleType) -> None:
    backend = SGLangEngineBackend("m", mem_fraction_static=0.8)
    assert isinstance(backend, Backend)
    assert StandInEngine.instances == []  # lazy
    out = await backend.generate(request(logprobs=True))
    [engine] = StandInEngine.instances
    assert engine.server_args == {
        "model_path": "m",
        "mem_fraction_static": 0.8,
        "enable_deterministic_inference": True,
    }
    assert [c.text for c in out] == ["step 5", "step 6"]
    assert out[0].stop_matched == "\n\n" and out[0].completion_tokens == 3
    assert out[0].token_logprobs == (-0.1, -0.2)
    assert [c["rid"] for c in engine.calls] == ["r1-0000", "r1-0001"]
    assert engine.calls[0]["sampling_params"]["sampling_seed"] == 5
    assert engine.calls[0]["return_logprob"] is True and "priority" not in engine.calls[0]
    await backend.aclose()
    assert engine.shut


async def test_cancel_cancels_the_engine_tasks(sglang: types.ModuleType) -> None:
    backend = SGLangEngineBackend("m")
    await backend.health()
    StandInEngine.instances[0].delay = 30
    job = asyncio.ensure_future(backend.generate(request()))
    await asyncio.sleep(0.05)
    await backend.cancel("r1")
    with pytest.raises(RequestCancelledError):
        await asyncio.wait_for(job, 5)
