"""Chat templates: turn chat messages into the raw text prefix a completion engine continues."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from spex_graph.errors import ConfigError

ChatTemplateName = Literal["chatml", "llama3", "plain"]
CHAT_TEMPLATES: tuple[str, ...] = ("chatml", "llama3", "plain")


def render_chat(messages: Sequence[tuple[str, str]], template: str = "chatml") -> str:
    """Render (role, content) messages and open the assistant turn.

    `chatml` is Qwen's format (the embedded models and most SGLang math models),
    `llama3` Meta's, `plain` a template-free "Role: content" transcript.
    """
    if template == "chatml":
        body = "".join(f"<|im_start|>{role}\n{content}<|im_end|>\n" for role, content in messages)
        return body + "<|im_start|>assistant\n"
    if template == "llama3":
        body = "".join(
            f"<|start_header_id|>{role}<|end_header_id|>\n\n{content}<|eot_id|>"
            for role, content in messages
        )
        return "<|begin_of_text|>" + body + "<|start_header_id|>assistant<|end_header_id|>\n\n"
    if template == "plain":
        body = "".join(f"{role.capitalize()}: {content}\n\n" for role, content in messages)
        return body + "Assistant: "
    raise ConfigError(
        f"unknown chat template {template!r}; choose one of {', '.join(CHAT_TEMPLATES)}"
    )


def join_steps(steps: Sequence[str], delimiter: str) -> str:
    """The assistant's partial answer: steps joined by the delimiter, ending with one.

    Empty for the root, so the first step starts right after the assistant tag.
    """
    return "".join(step + delimiter for step in steps)
