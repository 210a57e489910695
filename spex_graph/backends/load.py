"""Engine load snapshots, for schedulers that adapt to how busy an engine is."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from spex_graph.backends._common import HttpService


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


@dataclass(frozen=True)
class EngineLoad:
    """How busy an engine is right now (summed over its data-parallel ranks).

    Attributes:
        running: requests being decoded.
        waiting: requests queued, not yet scheduled.
        token_usage: fraction of the KV cache in use (0..1), None if unknown.
        raw: the engine's answer as received.
        load_tokens: the engine's single load figure in tokens where that is all it
            reports (old SGLang `/get_load`: non-evictable KV tokens + waiting prompt
            tokens); then `running` and `waiting` are 0 (unknown).
    """

    running: int
    waiting: int
    token_usage: float | None
    raw: dict[str, Any] = field(repr=False)
    load_tokens: int | None = None

    @classmethod
    def from_sglang_loads(cls, payload: Any) -> EngineLoad | None:
        """Parse SGLang's `GET /v1/loads` answer (`{"loads": [{num_running_reqs, ...}]}`)."""
        if not isinstance(payload, dict):
            return None
        ranks = payload.get("loads")
        if not isinstance(ranks, list) or not all(isinstance(r, dict) for r in ranks):
            return None
        running = sum(int(_num(r.get("num_running_reqs")) or 0) for r in ranks)
        waiting = sum(int(_num(r.get("num_waiting_reqs")) or 0) for r in ranks)
        used = [_num(r.get("num_used_tokens")) for r in ranks]
        total = [_num(r.get("max_total_num_tokens")) for r in ranks]
        usage: float | None = None
        if ranks and all(u is not None for u in used) and all(t for t in total):
            usage = sum(u or 0.0 for u in used) / sum(t or 0.0 for t in total)
        else:
            fractions = [_num(r.get("token_usage")) for r in ranks]
            known = [f for f in fractions if f is not None]
            if known:
                usage = sum(known) / len(known)
        return cls(running=running, waiting=waiting, token_usage=usage, raw=payload)

    @classmethod
    def from_sglang_get_load(cls, payload: Any) -> EngineLoad | None:
        """Parse old SGLang's `GET /get_load`: `{"load": N}` or a per-rank list.

        The per-rank list (`[{dp_rank, num_reqs, num_waiting_reqs, num_tokens}]`)
        counts waiting requests inside `num_reqs`.
        """
        if isinstance(payload, dict) and _num(payload.get("load")) is not None:
            tokens = int(_num(payload.get("load")) or 0)
            return cls(running=0, waiting=0, token_usage=None, raw=payload, load_tokens=tokens)
        if isinstance(payload, list) and payload and all(isinstance(r, dict) for r in payload):
            reqs = sum(int(_num(r.get("num_reqs")) or 0) for r in payload)
            waiting = sum(int(_num(r.get("num_waiting_reqs")) or 0) for r in payload)
            tokens = sum(int(_num(r.get("num_tokens")) or 0) for r in payload)
            return cls(
                running=max(0, reqs - waiting),
                waiting=waiting,
                token_usage=None,
                raw={"get_load": payload},
                load_tokens=tokens,
            )
        return None


class SGLangLoadReader:
    """Reads an SGLang server's load: `GET /v1/loads` (>= 0.5.3), else `GET /get_load`
    (0.5.2). The first path that answers is remembered; a server with neither
    reports no load (None). Shared by the policy client and the PRM client, so the
    budget sees both engines the same way.
    """

    def __init__(self, http: HttpService, api_version: Literal["auto", "new", "old"]) -> None:
        """Read through `http`; "old" tries `/get_load` first, else `/v1/loads` first."""
        self._http = http
        self._paths = (
            ["/get_load", "/v1/loads"] if api_version == "old" else ["/v1/loads", "/get_load"]
        )
        self._found: str | None = None

    async def read(self) -> EngineLoad | None:
        """The engine's load now; None when the server has no load endpoint."""
        for path in [self._found] if self._found is not None else self._paths:
            response = await self._http.send("GET", path, timeout=min(self._http.timeout, 10.0))
            if response.status_code in (404, 405):
                continue
            data = self._http.parse_json(response, path)
            parsed = (
                EngineLoad.from_sglang_loads(data)
                if path == "/v1/loads"
                else EngineLoad.from_sglang_get_load(data)
            )
            if parsed is None:
                raise self._http.malformed(path, "a load report")
            self._found = path
            return parsed
        return None
