"""Keep credentials out of messages, logs and reports.

A server URL may carry a user and password (`http://user:pass@host`) or a key
in its query (`?api_key=...`); API keys travel in headers. Every message,
log line and benchmark report shows URLs through `redact_url`, and text that
may echo a secret back (a server's error body) through `scrub`.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

HIDDEN = "***"
_SECRET_QUERY_KEYS = ("key", "token", "secret", "password", "passwd", "auth", "sig")


def split_credentials(url: str) -> tuple[str, tuple[str, str] | None]:
    """`url` without its user:password part, and that part (None when absent)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port is not None else host
    clean = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return clean, (parts.username or "", parts.password or "")


def redact_url(url: str | None) -> str | None:
    """`url` with credentials hidden: `http://u:p@host/?api_key=k` -> `http://***@host/?api_key=***`."""
    if not url:
        return url
    try:
        parts = urlsplit(url)
        clean, creds = split_credentials(url)
    except ValueError:  # not parseable: show nothing of it that could be secret
        return HIDDEN
    if creds is not None:
        parts = urlsplit(clean)
        parts = parts._replace(netloc=f"{HIDDEN}@{parts.netloc}")
    if parts.query:
        pairs = [
            (k, HIDDEN if any(s in k.lower() for s in _SECRET_QUERY_KEYS) else v)
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
        ]
        parts = parts._replace(query=urlencode(pairs, safe="*"))
    return urlunsplit(parts)


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    """`text` with every non-trivial secret replaced by ***."""
    for secret in secrets:
        if secret and len(secret) >= 3:
            text = text.replace(secret, HIDDEN)
    return text
