"""Math-Shepherd-style process reward model served by stock SGLang.

A causal-LM PRM is asked for the token after a step tag: the input is the
question, then every step followed by the tag (default "ки"), and the reward of
the last step is P(good) / (P(good) + P(bad)) read at the last tag, where good
and bad are the PRM's label tokens (Math-Shepherd: "+" and "-").

Two ways to read it on stock SGLang (SGLang has no PRM head support):

- mode="score": `POST /v1/score` with `score_extraction_token` (new SGLang),
  which returns [P(good), P(bad)] at every tag of the item; the last row is used.
  An older server that ignores `score_extraction_token` scores only the last
  position, which is the last tag when the input ends with it (the default format).
- mode="generate": `POST /generate` with `input_ids` (the tokenised input),
  `max_new_tokens=1`, `return_logprob` and `token_ids_logprob=[good, bad]`.
  When the last tag is the last input token its distribution is the first
  output position (`output_token_ids_logprobs[0]`); otherwise
  `logprob_start_len=p` and the tag at position p is read at
  `input_token_ids_logprobs[p + 1 - start]` (SGLang drops the last prompt
  position from the input lists and starts them with None). Token ids come from
  `tokenize` if given, else from the server's `/tokenize` endpoint.
  Requests carry rid `f"{request_id}-prm"`, so `cancel` aborts them on the engine.

Priorities and load, as the SGLang policy client: a client-side `PriorityGate`
lets primary scoring overtake speculative scoring; `/generate` requests carry
`ScoreRequest.priority` (a server with `--enable-priority-scheduling` runs the
highest first and pre-empts speculative work for primaries), while SGLang's
`/v1/score` request has no priority field, so score-mode requests run at the
server's default priority. `load()` reads the reward engine's `/v1/loads` (or
old `/get_load`), so the speculation budget sees the PRM's queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal

from spex_graph.backends._common import (
    HttpService,
    logprob_pair,
    normalized_pair,
    one_line,
)
from spex_graph.backends.gate import PriorityGate
from spex_graph.backends.load import EngineLoad, SGLangLoadReader
from spex_graph.backends.sglang import SGLANG_START_HINT
from spex_graph.errors import (
    BackendRequestError,
    BackendUnavailableError,
    ConfigError,
    RequestCancelledError,
    SpexError,
)
from spex_graph.rewards.base import RewardCapabilities, ScoreRequest

Tokenize = Callable[[str], Sequence[int] | Awaitable[Sequence[int]]]
"""text -> token ids of the PRM's tokenizer (special tokens included), sync or async."""


def _entry_lp(entries: Any, token_id: int) -> float | None:
    """The logprob of `token_id` in a list of SGLang entries `[logprob, id, text]`."""
    if not isinstance(entries, list):
        return None
    for entry in entries:
        if (
            isinstance(entry, list | tuple)
            and len(entry) >= 2
            and entry[1] == token_id
            and isinstance(entry[0], int | float)
        ):
            return float(entry[0])
    return None


class SGLangPRM:
    """Step-tag PRM on an SGLang server (`/v1/score` or `/generate`).

    Args:
        base_url: the SGLang server running the PRM (a causal LM).
        good_token_id: id of the "correct" label token (Math-Shepherd "+").
        bad_token_id: id of the "incorrect" label token (Math-Shepherd "-").
        step_tag: the tag that follows every step.
        mode: "score" (`/v1/score` + `score_extraction_token`) or "generate".
        tokenize: text -> token ids (generate mode); default: the server's `/tokenize`.
        step_tag_id: the tag's token id (generate mode); default: last id of
            tokenize(step_tag).
        step_template: how one step is written; `{step}`, `{tag}`, `{i}` (1-based).
        step_separator: between steps.
        question_separator: between the question and the first step.
        suffix: text after the last step's tag (keep "" so the tag ends the input).
        model: `model` field of `/v1/score` requests.
        send_priority: send `ScoreRequest.priority` on `/generate` requests (servers
            launched with `--abort-on-priority-when-disabled` reject it without
            `--enable-priority-scheduling`).
        api_version: which load endpoint to try first: "new"/"auto" `/v1/loads`,
            "old" `/get_load` (the other is tried when the first is missing).
        timeout, connect_timeout, max_concurrency: HTTP client settings.
        api_key: the server's `--api-key`, if any.
        name: reward name in traces.
    """

    name: str
    capabilities: RewardCapabilities

    def __init__(
        self,
        base_url: str,
        *,
        good_token_id: int,
        bad_token_id: int,
        step_tag: str = "ки",
        mode: Literal["generate", "score"] = "generate",
        tokenize: Tokenize | None = None,
        step_tag_id: int | None = None,
        step_template: str = "{step} {tag}",
        step_separator: str = "\n",
        question_separator: str = " ",
        suffix: str = "",
        model: str = "default",
        send_priority: bool = True,
        api_version: Literal["auto", "new", "old"] = "auto",
        timeout: float = 120.0,
        connect_timeout: float = 5.0,
        max_concurrency: int = 64,
        api_key: str | None = None,
        name: str = "sglang-prm",
    ) -> None:
        if mode not in ("generate", "score"):
            raise ConfigError(f"SGLangPRM mode must be 'generate' or 'score', not {mode!r}")
        if api_version not in ("auto", "new", "old"):
            raise ConfigError(f"api_version must be 'auto', 'new' or 'old', not {api_version!r}")
        if good_token_id == bad_token_id:
            raise ConfigError("good_token_id and bad_token_id must differ")
        if not step_tag:
            raise ConfigError("step_tag must not be empty")
        self.name = name
        self.mode = mode
        self.good_token_id = int(good_token_id)
        self.bad_token_id = int(bad_token_id)
        self.step_tag = step_tag
        self.step_template = step_template
        self.step_separator = step_separator
        self.question_separator = question_separator
        self.suffix = suffix
        self.model = model
        self.send_priority = send_priority
        self._tokenize = tokenize
        self._step_tag_id = step_tag_id
        self._http = HttpService(
            "SGLang PRM server",
            base_url,
            start_hint=SGLANG_START_HINT.replace("--backend-url", "--prm-url"),
            timeout=timeout,
            connect_timeout=connect_timeout,
            max_connections=max_concurrency + 8,
            headers={"Authorization": f"Bearer {api_key}"} if api_key else None,
        )
        self._load = SGLangLoadReader(self._http, api_version)
        self.capabilities = RewardCapabilities(
            can_abort=True, uses_engine=True, can_promote=True, reports_load=True
        )
        self._max_concurrency = max_concurrency
        self._slots: PriorityGate | None = None
        self._tasks: dict[str, asyncio.Task[float]] = {}
        self._cancelled: set[str] = set()
        self._background: set[asyncio.Task[None]] = set()

    @property
    def base_url(self) -> str:
        """The server URL."""
        return self._http.base_url

    # ------------------------------------------------------------------ input format

    def format_steps(self, steps: Sequence[str]) -> str:
        """The solution part: every step followed by the tag, joined, plus `suffix`."""
        parts = [
            self.step_template.format(step=s.strip(), tag=self.step_tag, i=i + 1)
            for i, s in enumerate(steps)
        ]
        return self.step_separator.join(parts) + self.suffix

    def format_input(self, question: str, steps: Sequence[str]) -> str:
        """The whole PRM input: question, separator, tagged steps."""
        return f"{question.strip()}{self.question_separator}{self.format_steps(steps)}"

    # ------------------------------------------------------------------ scoring

    async def score(self, request: ScoreRequest) -> float:
        """P(good) / (P(good) + P(bad)) at the tag after the last step."""
        if not request.steps:
            raise ConfigError("SGLangPRM.score needs at least one step to score")
        if request.request_id in self._tasks:
            raise BackendRequestError(
                f"score request id {request.request_id!r} is already in flight; "
                "give every request a unique id"
            )
        task = asyncio.create_task(self._score(request))
        self._tasks[request.request_id] = task
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if request.request_id in self._cancelled:
                raise self._cancelled_error(request.request_id) from None
            task.cancel()
            self._spawn_abort(request.request_id)
            raise
        finally:
            self._tasks.pop(request.request_id, None)
            self._cancelled.discard(request.request_id)

    async def promote(self, request_id: str, priority: int) -> None:
        """Raise a scoring request still waiting for a client slot to `priority`."""
        if self._slots is not None:
            self._slots.promote(request_id, priority)

    def _cancelled_error(self, request_id: str) -> RequestCancelledError:
        return RequestCancelledError(f"PRM request {request_id} was cancelled on {self.base_url}")

    async def _score(self, request: ScoreRequest) -> float:
        if self._slots is None:
            self._slots = PriorityGate(self._max_concurrency)
        async with self._slots.slot(request.priority, request.request_id):
            try:
                if self.mode == "score":
                    return await self._score_api(request)
                return await self._score_generate(request)
            except SpexError as exc:
                if request.request_id in self._cancelled:
                    raise self._cancelled_error(request.request_id) from exc
                raise

    async def _score_api(self, request: ScoreRequest) -> float:
        path = "/v1/score"
        body = {
            "model": self.model,
            "query": f"{request.question.strip()}{self.question_separator}",
            "items": [self.format_steps(request.steps)],
            "label_token_ids": [self.good_token_id, self.bad_token_id],
            "apply_softmax": True,
            "score_extraction_token": self.step_tag,
        }
        data = await self._http.request_json("POST", path, json_body=body)
        scores = data.get("scores") if isinstance(data, dict) else None
        if not isinstance(scores, list) or not scores:
            raise self._http.malformed(path, "a 'scores' list")
        item = scores[0]
        if isinstance(item, list) and item and all(isinstance(v, int | float) for v in item):
            if self.suffix:
                raise BackendRequestError(
                    f"SGLang PRM server at {self.base_url} scored only the last position "
                    "(no score_extraction_token support) but the input does not end with the "
                    "tag; use suffix='' or mode='generate'"
                )
            row = item
        elif isinstance(item, list) and item and isinstance(item[-1], list):
            row = item[-1]
        else:
            raise self._http.malformed(path, "a score per step tag")
        if len(row) < 2 or not all(isinstance(v, int | float) for v in row[:2]):
            raise self._http.malformed(path, "[P(good), P(bad)] at the tag")
        return normalized_pair(float(row[0]), float(row[1]))

    def _abort_error(self, request_id: str, finish: dict[str, Any]) -> SpexError:
        """A cancel's abort (no status), or the server refusing the request (a status)."""
        status = finish.get("status_code")
        if status is None or request_id in self._cancelled:
            return self._cancelled_error(request_id)
        message = one_line(str(finish.get("message") or "Aborted"), 120)
        if "priority" in message.lower():
            hint = (
                "pass send_priority=False, or start the PRM server with "
                "--enable-priority-scheduling"
            )
        elif status == 503:
            hint = "send fewer requests at once, or raise --max-queued-requests"
        else:
            hint = "check the input length and the PRM server's log"
        return BackendRequestError(
            f"SGLang PRM server at {self.base_url} aborted {request_id}-prm "
            f"({message}, status {status}); {hint}"
        )

    async def _token_ids(self, text: str, *, special: bool) -> list[int]:
        if self._tokenize is not None:
            out = self._tokenize(text)
            if inspect.isawaitable(out):
                out = await out
            return [int(t) for t in out]
        for path in ("/tokenize", "/v1/tokenize"):
            response = await self._http.send(
                "POST",
                path,
                json_body={"model": self.model, "prompt": text, "add_special_tokens": special},
            )
            if response.status_code in (404, 405):
                continue
            data = self._http.parse_json(response, path)
            tokens = data.get("tokens") if isinstance(data, dict) else None
            if not isinstance(tokens, list) or not all(isinstance(t, int) for t in tokens):
                raise self._http.malformed(path, "a 'tokens' list of ints")
            return tokens
        raise BackendRequestError(
            f"SGLang PRM server at {self.base_url} has no /tokenize endpoint (older SGLang); "
            "pass tokenize=AutoTokenizer.from_pretrained(PRM).encode, or use mode='score'"
        )

    async def _tag_id(self) -> int:
        if self._step_tag_id is None:
            ids = await self._token_ids(self.step_tag, special=False)
            if not ids:
                raise ConfigError(
                    f"the PRM tokenizer turned step tag {self.step_tag!r} into no tokens; "
                    "pass step_tag_id"
                )
            self._step_tag_id = ids[-1]
        return self._step_tag_id

    async def _score_generate(self, request: ScoreRequest) -> float:
        path = "/generate"
        tag_id = await self._tag_id()
        ids = await self._token_ids(
            self.format_input(request.question, request.steps), special=True
        )
        positions = [i for i, t in enumerate(ids) if t == tag_id]
        if not positions:
            raise BackendRequestError(
                f"step tag {self.step_tag!r} (token {tag_id}) is not in the tokenised PRM input; "
                "pass step_tag_id matching the PRM tokenizer, or change step_template"
            )
        p = positions[-1]
        last = p == len(ids) - 1
        start = -1 if last else p
        body: dict[str, Any] = {
            "input_ids": ids,
            "sampling_params": {"max_new_tokens": 1, "temperature": 0.0},
            "return_logprob": True,
            "logprob_start_len": start,
            "token_ids_logprob": [self.good_token_id, self.bad_token_id],
            "rid": f"{request.request_id}-prm",
        }
        if self.send_priority:
            body["priority"] = request.priority
        data = await self._http.request_json("POST", path, json_body=body)
        if isinstance(data, list) and len(data) == 1:
            data = data[0]
        meta = data.get("meta_info") if isinstance(data, dict) else None
        if not isinstance(meta, dict):
            raise self._http.malformed(path, "meta_info")
        finish = meta.get("finish_reason")
        if isinstance(finish, dict) and finish.get("type") == "abort":
            raise self._abort_error(request.request_id, finish)
        if last:
            positions_lp = meta.get("output_token_ids_logprobs")
            index = 0
        else:
            positions_lp = meta.get("input_token_ids_logprobs")
            index = p + 1 - start
        if not isinstance(positions_lp, list) or len(positions_lp) <= index:
            raise self._http.malformed(path, "token_ids_logprob values at the step tag")
        entries = positions_lp[index]
        lp_good = _entry_lp(entries, self.good_token_id)
        lp_bad = _entry_lp(entries, self.bad_token_id)
        if lp_good is None and lp_bad is None:
            raise self._http.malformed(path, "logprobs of the label tokens at the step tag")
        return logprob_pair(lp_good, lp_bad)

    # ------------------------------------------------------------------ cancel, health, close

    async def cancel(self, request_id: str) -> None:
        """Abort a scoring request (on the engine in generate mode); unknown ids ignored."""
        task = self._tasks.get(request_id)
        if task is None or request_id in self._cancelled:
            return
        self._cancelled.add(request_id)
        if self.mode == "generate":
            await self._abort(request_id)
        task.cancel()

    def _spawn_abort(self, request_id: str) -> None:
        if self.mode == "generate" and not self._http.closed:
            task = asyncio.create_task(self._abort(request_id))
            self._background.add(task)  # keep a reference until it is done
            task.add_done_callback(self._background.discard)

    async def _abort(self, request_id: str) -> None:
        with contextlib.suppress(SpexError):
            await self._http.send(
                "POST",
                "/abort_request",
                json_body={"rid": f"{request_id}-prm", "abort_all": False},
                timeout=min(self._http.timeout, 10.0),
            )

    async def load(self) -> EngineLoad | None:
        """The reward engine's load from `/v1/loads` (new) or `/get_load` (old); None if
        the server has neither."""
        return await self._load.read()

    async def health(self) -> None:
        """Raise BackendUnavailableError unless the PRM server's `/health` is 200."""
        response = await self._http.send("GET", "/health", timeout=min(self._http.timeout, 30))
        if response.status_code != 200:
            raise BackendUnavailableError(str(self._http.status_error(response, "/health")))

    async def aclose(self) -> None:
        """Cancel what is in flight and close the connections; idempotent."""
        for task in list(self._tasks.values()):
            task.cancel()
        await self._http.aclose()
