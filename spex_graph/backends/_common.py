"""Private helpers shared by the server backends and the engine-backed rewards.

- `HttpService`: one shared `httpx.AsyncClient` per server, with every failure
  (refused connection, timeout, HTTP error status, non-JSON answer) mapped to a
  one-line `BackendUnavailableError` / `BackendRequestError` naming the cause
  and the fix.
- `cut_at_stop`: client-side stop-string trimming, for servers that include
  (or ignore) stop strings.
- A transitional shim for the proposed `top_logprobs` fields of
  `GenerationRequest` / `Completion` (see `make_request` / `make_completion`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import socket
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import unquote

import httpx

from spex_graph.backends.base import Completion, GenerationRequest
from spex_graph.backends.retry import parse_retry_after
from spex_graph.errors import (
    BackendRequestError,
    BackendUnavailableError,
    ConfigError,
    SpexError,
    TransientBackendError,
)
from spex_graph.redact import redact_url, scrub, split_credentials

T = TypeVar("T")

TopLogprobs = tuple[tuple[tuple[str, float], ...], ...]
"""Per generated position, the most likely (token text, logprob) pairs, best first."""


def one_line(text: object, limit: int = 200) -> str:
    """Collapse whitespace (newlines included) and truncate to `limit` characters."""
    s = " ".join(str(text).split())
    return s if len(s) <= limit else s[: limit - 1] + "…"


def cut_at_stop(text: str, stops: Iterable[str]) -> tuple[str, str | None]:
    """Cut `text` before the earliest stop string; return (text, matched stop or None)."""
    best: tuple[int, str] | None = None
    for stop in stops:
        if not stop:
            continue
        i = text.find(stop)
        if i != -1 and (best is None or i < best[0] or (i == best[0] and len(stop) > len(best[1]))):
            best = (i, stop)
    if best is None:
        return text, None
    return text[: best[0]], best[1]


def normalized_pair(p_good: float, p_bad: float) -> float:
    """p_good / (p_good + p_bad), or 0.5 when both are zero."""
    total = p_good + p_bad
    if not math.isfinite(total) or total <= 0.0:
        return 0.5
    return min(1.0, max(0.0, p_good / total))


def logprob_pair(lp_good: float | None, lp_bad: float | None) -> float:
    """P(good) / (P(good) + P(bad)) from two logprobs, computed stably (-inf allowed)."""
    good = -math.inf if lp_good is None else float(lp_good)
    bad = -math.inf if lp_bad is None else float(lp_bad)
    if good == -math.inf and bad == -math.inf:
        return 0.5
    if bad == -math.inf:
        return 1.0
    if good == -math.inf:
        return 0.0
    diff = bad - good
    if diff > 700:
        return 0.0
    return 1.0 / (1.0 + math.exp(diff))


# --------------------------------------------------------------------------- top_logprobs shim
# The judge needs the top logprobs of the first generated token. base.py does not
# (yet) declare them; until it does, these helpers carry them in private subclasses,
# so the code below works unchanged before and after the fields are added:
#   GenerationRequest.top_logprobs: int = 0
#   Completion.top_logprobs: tuple[tuple[tuple[str, float], ...], ...] = ()

_REQUEST_HAS_TOP = "top_logprobs" in {f.name for f in dataclasses.fields(GenerationRequest)}
_COMPLETION_HAS_TOP = "top_logprobs" in {f.name for f in dataclasses.fields(Completion)}


@dataclass(frozen=True)
class _RequestWithTop(GenerationRequest):
    """GenerationRequest plus `top_logprobs` (only used while base.py lacks the field)."""

    top_logprobs: int = 0


@dataclass(frozen=True)
class _CompletionWithTop(Completion):
    """Completion plus `top_logprobs` (only used while base.py lacks the field)."""

    top_logprobs: TopLogprobs = ()


def make_request(**kwargs: Any) -> GenerationRequest:
    """Build a GenerationRequest; `top_logprobs=k` works whether or not base.py has it."""
    if kwargs.get("top_logprobs") and not _REQUEST_HAS_TOP:
        return _RequestWithTop(**kwargs)
    if not _REQUEST_HAS_TOP:
        kwargs.pop("top_logprobs", None)
    return GenerationRequest(**kwargs)


def requested_top_logprobs(request: GenerationRequest) -> int:
    """How many top logprobs per position the request asks for (0 = none)."""
    return int(getattr(request, "top_logprobs", 0) or 0)


def make_completion(**kwargs: Any) -> Completion:
    """Build a Completion; `top_logprobs=...` works whether or not base.py has it."""
    if kwargs.get("top_logprobs") and not _COMPLETION_HAS_TOP:
        return _CompletionWithTop(**kwargs)
    if not _COMPLETION_HAS_TOP:
        kwargs.pop("top_logprobs", None)
    return Completion(**kwargs)


def completion_top_logprobs(completion: Completion) -> TopLogprobs:
    """The completion's top logprobs per position, or () when it has none."""
    return tuple(getattr(completion, "top_logprobs", ()) or ())


# --------------------------------------------------------------------------- HTTP


def check_base_url(base_url: str, what: str) -> str:
    """Validate and normalise a server URL (no trailing slash)."""
    url = (base_url or "").strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ConfigError(
            f"{what} URL {redact_url(base_url)!r} is not an http(s) URL; "
            "pass e.g. http://127.0.0.1:30000"
        )
    return url


def server_message(response: httpx.Response) -> str:
    """The error message a server put in its answer, on one line."""
    text = response.text
    try:
        data = json.loads(text)
    except ValueError:
        return one_line(text) or response.reason_phrase or "no details"
    msg: Any = None
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict):
            msg = err.get("message") or err.get("detail")
        elif isinstance(err, str):
            msg = err
        msg = msg or data.get("message") or data.get("detail")
    return one_line(msg if msg is not None else text) or "no details"


def _connect_reason(exc: BaseException) -> str:
    """'connection refused', 'name not resolved', ... from an exception chain."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            break
        if isinstance(seen, ConnectionRefusedError) or "refused" in str(seen).lower():
            return "connection refused"
        if isinstance(seen, socket.gaierror):
            return f"cannot resolve the host name: {one_line(seen, 60)}"
        seen = seen.__cause__ or seen.__context__
    return one_line(exc, 80) or "connect error"


class HttpService:
    """A shared `httpx.AsyncClient` for one server, with one-line error mapping.

    Attributes:
        kind: the server kind in messages ("SGLang", "OpenAI-compatible server").
        base_url: the server URL as shown in messages: no trailing slash, credentials
            hidden (a user:password in the URL is sent as HTTP basic auth instead).
        start_hint: how to fix an unreachable server (start command, option to pass).
        timeout: read/write timeout of one request, seconds.
    """

    def __init__(
        self,
        kind: str,
        base_url: str,
        *,
        start_hint: str,
        timeout: float,
        connect_timeout: float,
        max_connections: int,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if timeout <= 0 or connect_timeout <= 0:
            raise ConfigError(
                f"{kind} timeouts must be positive (got {timeout}, {connect_timeout})"
            )
        self.kind = kind
        checked = check_base_url(base_url, kind)
        url, credentials = split_credentials(checked)
        self.base_url = redact_url(checked) or url
        self._request_url = url
        self._auth = httpx.BasicAuth(*map(unquote, credentials)) if credentials else None
        self._secrets = [
            *(map(unquote, credentials) if credentials else ()),
            *(v.split(" ", 1)[-1] for v in (headers or {}).values()),
        ]
        self.start_hint = start_hint
        self.timeout = float(timeout)
        self.connect_timeout = float(min(connect_timeout, timeout))
        self._limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        self._headers = dict(headers or {})
        self._client: httpx.AsyncClient | None = None
        self.closed = False

    def client(self) -> httpx.AsyncClient:
        """The shared client (created on first use, inside the running event loop)."""
        if self.closed:
            raise BackendUnavailableError(
                f"the {self.kind} client for {self.base_url} was closed; create a new backend"
            )
        if self._client is None:
            self._client = httpx.AsyncClient(
                base_url=self._request_url,
                auth=self._auth,
                timeout=httpx.Timeout(self.timeout, connect=self.connect_timeout, pool=None),
                limits=self._limits,
                headers=self._headers,
                # plain-http URLs need no CA bundle (loading it costs ~50 ms per client)
                verify=self._request_url.startswith("https://"),
            )
        return self._client

    async def aclose(self) -> None:
        """Close the client; idempotent."""
        self.closed = True
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    def transport_error(self, exc: Exception, path: str, timeout: float | None = None) -> SpexError:
        """Map an httpx transport failure to a one-line error naming the fix (no secrets)."""
        error = self._transport_error(exc, path, timeout)
        error.args = (scrub(str(error), self._secrets),)
        return error

    def _transport_error(self, exc: Exception, path: str, timeout: float | None) -> SpexError:
        where = f"{self.kind} at {self.base_url}"
        t = self.timeout if timeout is None else timeout
        if isinstance(exc, httpx.ConnectTimeout):
            return BackendUnavailableError(
                f"{where} did not accept a connection within {self.connect_timeout:g} s; "
                f"check the host and port, or {self.start_hint}"
            )
        if isinstance(exc, httpx.ConnectError):
            reason = _connect_reason(exc)
            return TransientBackendError(  # retried: an engine may be restarting
                f"cannot connect to {where} ({reason}); {self.start_hint}"
            )
        if isinstance(exc, httpx.TimeoutException):
            return BackendUnavailableError(
                f"{where} did not answer {path} within {t:g} s; it may be overloaded or stuck: "
                f"check its log, or raise the timeout (now {t:g} s)"
            )
        if isinstance(exc, httpx.TransportError):
            detail = one_line(exc, 80) or type(exc).__name__
            return TransientBackendError(
                f"{where} dropped the connection during {path} ({detail}); "
                "check its log: it may have crashed or restarted"
            )
        return BackendRequestError(
            f"request {path} to {where} failed ({type(exc).__name__}: {one_line(exc, 80)}); "
            "check the server URL and options"
        )

    def status_error(self, response: httpx.Response, path: str) -> SpexError:
        """Map an HTTP error status to a one-line error naming the fix (no secrets).

        429, 503 and 408/502/504 are `TransientBackendError`s (retried, honouring
        Retry-After); other 4xx are marked not retryable.
        """
        error = self._status_error(response, path)
        if isinstance(error, BackendRequestError) and 400 <= response.status_code < 500:
            error.retryable = False  # the same request would be refused again
        return error

    def _status_error(self, response: httpx.Response, path: str) -> SpexError:
        where = f"{self.kind} at {self.base_url}"
        code = response.status_code
        detail = scrub(server_message(response), self._secrets)
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if code == 429:
            return TransientBackendError(
                f"{where} is rate-limiting (HTTP 429 on {path}: {detail}); lower --concurrency "
                "or raise the server's rate limit",
                retry_after,
            )
        if code == 503:
            return TransientBackendError(
                f"{where} is not ready (HTTP 503 on {path}: {detail}); wait until it has loaded "
                "the model, or send fewer requests at once",
                retry_after,
            )
        if code in (408, 502, 504):
            return TransientBackendError(
                f"{where} or a proxy in front of it failed on {path} (HTTP {code}: {detail}); "
                "check the server and proxy logs",
                retry_after,
            )
        if code == 404:
            return BackendRequestError(
                f"{where} has no endpoint {path} (HTTP 404: {detail}); check that the URL points "
                f"at a {self.kind} server of a version that has it"
            )
        if code in (401, 403):
            return BackendRequestError(
                f"{where} refused {path} (HTTP {code}: {detail}); pass the server's API key"
            )
        if 400 <= code < 500:
            return BackendRequestError(
                f"{where} rejected {path} (HTTP {code}: {detail}); check the request options "
                "against the server's version"
            )
        return BackendRequestError(
            f"{where} failed on {path} (HTTP {code}: {detail}); check the server log"
        )

    async def send(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        timeout: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send one request; transport failures become one-line errors (any status returns)."""
        client = self.client()
        kwargs: dict[str, Any] = {}
        if json_body is not None:
            kwargs["json"] = json_body
        if timeout is not None:
            kwargs["timeout"] = httpx.Timeout(
                timeout, connect=min(self.connect_timeout, timeout), pool=None
            )
        if headers:
            kwargs["headers"] = dict(headers)
        try:
            return await client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise self.transport_error(exc, path, timeout) from exc

    def parse_json(self, response: httpx.Response, path: str) -> Any:
        """Raise for an error status, else decode the JSON body (one-line error if not JSON)."""
        if response.status_code >= 400:
            raise self.status_error(response, path)
        try:
            return response.json()
        except ValueError as exc:
            raise BackendRequestError(
                f"{self.kind} at {self.base_url} answered {path} with non-JSON "
                f"({one_line(response.text, 60)!r}); check that the URL points at a "
                f"{self.kind} server"
            ) from exc

    async def request_json(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        timeout: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """Send one request and return its decoded JSON answer."""
        response = await self.send(
            method, path, json_body=json_body, timeout=timeout, headers=headers
        )
        return self.parse_json(response, path)

    def malformed(self, path: str, what: str) -> BackendRequestError:
        """A one-line error for a JSON answer that lacks what the client needs."""
        return BackendRequestError(
            f"{self.kind} at {self.base_url} answered {path} without {what}; "
            "check that the server version matches this client"
        )


# --------------------------------------------------------------------------- in-flight requests


@dataclass
class Inflight:
    """The child tasks of one `generate` call (one per seed), for cancellation.

    Attributes:
        request_id: the GenerationRequest's id.
        rids: per-child ids on the engine (`f"{request_id}-{i:04d}"`).
        tasks: per-child asyncio tasks, aligned with `rids`.
        sent: child ids whose request was sent to the engine.
        answered: child ids whose answer came back (the engine is done with them).
        cancelled: `cancel(request_id)` was called.
        watchdog: task that re-sends aborts, then cancels locally (engine backends).
    """

    request_id: str
    rids: list[str] = dataclasses.field(default_factory=list)
    tasks: list[asyncio.Task[Any]] = dataclasses.field(default_factory=list)
    sent: set[str] = dataclasses.field(default_factory=set)
    answered: set[str] = dataclasses.field(default_factory=set)
    cancelled: bool = False
    watchdog: asyncio.Task[None] | None = None

    def unanswered(self) -> list[str]:
        """Child ids the engine may still be working on."""
        return sorted(self.sent - self.answered)


def child_rids(request_id: str, n: int) -> list[str]:
    """Engine ids of the n continuations: fixed width, so none is a prefix of another."""
    return [f"{request_id}-{i:04d}" for i in range(n)]


def begin_request(
    inflight: dict[str, Inflight], request: GenerationRequest, where: str
) -> Inflight:
    """Register a request (and its per-continuation rids) so `cancel` can find it.

    A request id already in flight is a one-line error naming `where`.
    """
    if request.request_id in inflight:
        raise BackendRequestError(
            f"request id {request.request_id!r} is already in flight on {where}; "
            "give every request a unique id"
        )
    state = Inflight(request.request_id, rids=child_rids(request.request_id, request.n))
    inflight[request.request_id] = state
    return state


def mark_retrieved(task: asyncio.Future[Any]) -> None:
    """Done-callback: mark a task's exception as seen (its caller may have gone, and a
    cancelled request's error is expected), so asyncio does not log it."""
    if not task.cancelled():
        task.exception()


async def run_children(
    state: Inflight,
    coros: list[Coroutine[Any, Any, T]],
    *,
    on_abandon: Callable[[Inflight], None],
    cancelled_error: Callable[[], Exception],
) -> list[T]:
    """Run one task per continuation; results in order, errors surfaced as one exception.

    `on_abandon(state)` is called when the results are no longer wanted (the caller
    was cancelled, or a child failed): it must cancel the tasks and stop the engine
    work. A `state.cancelled` request raises `cancelled_error()`, whatever the
    children did.
    """
    state.tasks = [asyncio.create_task(c) for c in coros]
    for task in state.tasks:  # an abandoned child's error is expected, not "never retrieved"
        task.add_done_callback(mark_retrieved)
    try:
        _, pending = await asyncio.wait(state.tasks, return_when=asyncio.FIRST_EXCEPTION)
    except asyncio.CancelledError:
        on_abandon(state)
        raise
    if pending:
        on_abandon(state)
        await asyncio.wait(pending)
    if state.cancelled:
        raise cancelled_error()
    results: list[T] = []
    first_error: BaseException | None = None
    for task in state.tasks:
        if task.cancelled():
            first_error = first_error or cancelled_error()
            continue
        exc = task.exception()
        if exc is not None:
            first_error = first_error or exc
            continue
        results.append(task.result())
    if first_error is not None:
        raise first_error
    return results
