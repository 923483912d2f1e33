"""LLM generators for synthetic queries: prompt files, building a backend by name, and cached calls.

Every answer is committed to the cache (table ``generations``, keyed by the generator's fingerprint
and the prompt's SHA-256) as it arrives, so a re-run makes no calls and a run killed by Ctrl-C or
SIGKILL resumes with only the missing prompts. Calls are bounded by the backend's ``concurrency``.
"""

from __future__ import annotations

import inspect
import string
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from harness import registry
from harness.cache import Cache, concurrency, run_calls, text_hash
from harness.errors import ConfigError
from harness.protocols import Generation, Generator

PROMPT_DIR = Path(__file__).resolve().parent / "prompts"
STYLES = ("keyword", "question", "detailed", "multihop", "paraphrase")
PASSAGE_FIELDS = {"passage", "count"}  # one chunk per prompt: the packaged keyword, question, detailed and any user style
PLACEHOLDERS = {
    "keyword": PASSAGE_FIELDS,
    "question": PASSAGE_FIELDS,
    "detailed": PASSAGE_FIELDS,
    "multihop": {"passage_a", "passage_b", "count"},
    "paraphrase": {"query", "passage", "count"},
}


class GeneratorConfig(BaseModel):
    """Which generator backend and model, with the backend's own options (``base_url``, ``temperature``...)."""

    model_config = ConfigDict(extra="allow")

    backend: str = "openai"
    model: str | None = None


def build_generator(config: GeneratorConfig) -> Generator:
    """The registered backend, with options checked against its constructor."""
    cls = registry.load("generator", config.backend)
    options = {k: v for k, v in (config.model_extra or {}).items() if v is not None}
    accepted = [name for name in inspect.signature(cls).parameters if name != "model"]
    for key in options:
        if key not in accepted:
            raise ConfigError(f"the {config.backend} generator has no option '{key}' (its options: {', '.join(accepted)})")
    return cls(config.model, **options)


def load_prompts(styles: Sequence[str], prompt_dir: Path | str | None = None) -> dict[str, str]:
    """The prompt template of each style: ``<prompt_dir>/<style>.txt`` where it exists, else the packaged one.

    Templates use ``str.format`` fields (``{passage}``, ``{count}``; multihop ``{passage_a}``,
    ``{passage_b}``; paraphrase ``{query}``); literal braces are doubled. A style that is not packaged
    is a template of its own in ``prompt_dir`` (``claim.txt`` makes the style ``claim``), written per
    chunk like ``question`` (``{passage}``, ``{count}``): queries shaped like a team's real ones. A
    template missing a field it needs, or naming one that does not exist, is an error naming the file.
    """
    out = {}
    for style in styles:
        path = Path(prompt_dir) / f"{style}.txt" if prompt_dir else None
        if style not in STYLES and not (path and path.is_file()):
            where = f" and {path} does not exist" if path else "; put your own as <style>.txt in a --prompt-dir"
            raise ConfigError(f"unknown style '{style}' (packaged: {', '.join(STYLES)}{where})")
        path = path if path and path.is_file() else PROMPT_DIR / f"{style}.txt"
        out[style] = _checked_template(path, PLACEHOLDERS.get(style, PASSAGE_FIELDS))
    return out


def _checked_template(path: Path, needed: set[str]) -> str:
    text = path.read_text(encoding="utf-8")
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
    except ValueError as exc:
        raise ConfigError(f"{path}: not a valid template ({exc}); write literal braces as {{{{ and }}}}") from exc
    if fields - needed or needed - {"count"} - fields:
        hint = "; write literal braces as {{ and }}" if fields - needed else ""
        raise ConfigError(f"{path}: the template must use {', '.join(sorted(needed))} (found: {', '.join(sorted(fields)) or 'none'}){hint}")
    return text


@dataclass
class GenerationStats:
    made: int = 0  # calls made by this process
    cached: int = 0  # prompts answered from the cache
    input_tokens: int = 0  # over every answer used, cached or not (the cost of the whole generation)
    output_tokens: int = 0
    seconds: float = 0.0  # summed seconds of the calls that bought the answers


class CachedGenerator:
    """A :class:`Generator` whose answers are kept per prompt; :meth:`generate_all` runs prompts in parallel."""

    def __init__(self, generator: Generator, cache: Cache):
        self.inner = generator
        self.cache = cache
        self.stats = GenerationStats()

    def generate_all(self, prompts: Sequence[str], on_progress: Callable[[int, int], None] | None = None) -> list[Generation]:
        """One answer per prompt, in order: cached ones read, the rest generated and committed one by one."""
        fingerprint = self.inner.fingerprint
        hashes = [text_hash(p) for p in prompts]
        unique = dict(zip(hashes, prompts))
        found = self.cache.generations(fingerprint, list(unique))
        self.stats.cached += len(found)
        missing = [h for h in unique if h not in found]
        if on_progress and missing:
            on_progress(0, len(missing))

        def call(h: bytes) -> tuple[Generation, float]:
            start = time.perf_counter()
            answer = self.inner.generate(unique[h])
            return answer, time.perf_counter() - start

        def commit(h: bytes, result: tuple[Generation, float]) -> None:
            answer, seconds = result
            self.cache.put_generation(fingerprint, h, answer.text, answer.input_tokens, answer.output_tokens, seconds)
            found[h] = (answer.text, answer.input_tokens, answer.output_tokens, seconds)
            self.stats.made += 1
            if on_progress:
                on_progress(self.stats.made, len(missing))

        run_calls(missing, call, commit, concurrency(self.inner))
        for text, input_tokens, output_tokens, seconds in (found[h] for h in unique):
            self.stats.input_tokens += input_tokens or 0
            self.stats.output_tokens += output_tokens or 0
            self.stats.seconds += seconds
        return [Generation(*found[h][:3]) for h in hashes]
