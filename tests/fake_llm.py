"""A fake LLM on 127.0.0.1: OpenAI-compatible ``POST /v1/chat/completions`` and Cohere's ``POST /v2/chat``.

It is :class:`fake_api.FakeApi` (threaded server, scripted faults, request log, most requests in
flight) with chat routes. The answer to a prompt is ``respond(prompt)``: by default, numbered
questions built from the words of the prompt's last passage, so a test can predict them. Token counts are words + 1, as in ``fake_api``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

from fake_api import KEY, FakeApi, fake_tokens, words

COUNT = re.compile(r"\bWrite (\d+)\b|\bin (\d+) different ways")


def default_respond(prompt: str) -> str:
    """``count`` numbered questions (the number after "Write", else 3) over the words of the prompt's
    last passage (what follows its last "Passage" header, up to the instruction)."""
    found = COUNT.search(prompt)
    count = int(found.group(1) or found.group(2)) if found else 3
    passage = words(prompt.rsplit("Passage", 1)[-1].split(":", 1)[-1].split("\n\n")[0])
    return "Here are the questions:\n" + "\n".join(f"{i + 1}. what about {' '.join(passage[2 * i : 2 * i + 3])}?" for i in range(count))


class FakeLlm(FakeApi):
    """Use as a context manager; ``url + "/v1"`` is the OpenAI base URL, ``url`` Cohere's."""

    def __init__(self, key: str | None = KEY, delay: float = 0.0, respond: Callable[[str], str] = default_respond):
        super().__init__(key, delay)
        self.respond = respond

    def route(self, path: str):
        return {"/v1/chat/completions": self._openai, "/v2/chat": self._cohere}.get(path)

    def prompts(self) -> list[str]:
        """The prompts received, in arrival order."""
        return [_prompt(r.body) for r in self.requests]

    def _openai(self, body: dict) -> tuple[int, dict]:
        prompt = _prompt(body)
        text = self.respond(prompt)
        usage = {"prompt_tokens": fake_tokens(prompt), "completion_tokens": fake_tokens(text)}
        choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        return 200, {"id": "chatcmpl-" + uuid.uuid4().hex, "object": "chat.completion", "model": body.get("model"), "choices": [choice], "usage": usage | {"total_tokens": sum(usage.values())}}

    def _cohere(self, body: dict) -> tuple[int, dict]:
        prompt = _prompt(body)
        text = self.respond(prompt)
        tokens = {"input_tokens": fake_tokens(prompt), "output_tokens": fake_tokens(text)}
        message = {"role": "assistant", "content": [{"type": "text", "text": text}]}
        return 200, {"id": str(uuid.uuid4()), "finish_reason": "COMPLETE", "message": message, "usage": {"billed_units": tokens, "tokens": tokens}}


def _prompt(body: dict) -> str:
    messages = body.get("messages") or [{}]
    return str(messages[-1].get("content", ""))

