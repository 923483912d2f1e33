"""Synthetic queries: documents -> chunks -> prompts -> LLM answers -> filtered queries -> pairs and a report.

For each chunk and style, one prompt asks the LLM for ``per_chunk`` queries (one call, so the queries
of a chunk differ from each other); multi-hop prompts pair a chunk with its nearest chunk of another
document, paraphrase prompts rewrite a goldset's existing queries. Filters, in order, each counted in
the report (:mod:`harness.pairs.filters`): too short or long, copying a long span of the passage,
exact and near duplicates, and round-trip consistency (Alberti et al. 2019; Promptagator, Dai et al.
2022): a query is kept only if one of its source chunks is in the base encoder's top k over every
chunk of the corpus. Documents judged for evaluation queries can be left out as sources
(``exclude_judged_by``), so the pairs never teach the test.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from harness import progress
from harness.cache import Cache
from harness.data.goldset import Document, Goldset
from harness.errors import ConfigError
from harness.pairs.filters import REASONS, Candidate, apply_filters
from harness.pairs.generators import STYLES, CachedGenerator, GeneratorConfig, build_generator, load_prompts
from harness.pairs.pairset import PairSet, read_corpus, text_id
from harness.protocols import PaidGenerator, Pair
from harness.registry import EncoderConfig
from harness.training.leakage import NEAR_DUPLICATE

PAIRED_STYLES = ("multihop", "paraphrase")  # every other style is written from one chunk
_BULLET = re.compile(r"^\s*(?:[-*\u2022]+|\d+\s*[.):]|(?:q|query|question|request|rewrite|rewritten query|paraphrase)\s*\d*\s*[:.)])\s*", re.IGNORECASE)
_ANSWER = re.compile(r"^\s*(?:a|answer)\s*\d*\s*:", re.IGNORECASE)  # small models answer their own questions
_NEXT_QUESTION = re.compile(r"(?<=\?)\s+(?=\w)")  # small models run questions together on one line


class SyntheticConfig(BaseModel):
    """Everything that decides which queries come out (the generator's answers are cached by prompt)."""

    model_config = ConfigDict(extra="forbid")

    generator: GeneratorConfig = GeneratorConfig()
    styles: list[str] = Field(["question"], min_length=1, description=f"any of {', '.join(STYLES)}, or <style>.txt in prompt_dir")
    per_chunk: int = Field(3, ge=1, le=20, description="queries asked for per prompt")
    prompt_dir: str | None = Field(None, description="folder of <style>.txt templates: overriding the packaged ones, or styles of their own")
    chunk_words: int = Field(256, ge=16, description="documents are cut into windows of this many words")
    chunk_overlap: int = Field(32, ge=0)
    max_chunks: int | None = Field(None, ge=1, description="a seeded sample of the chunks (and of paraphrased queries)")
    seed: int = 0
    exclude_judged_by: list[str] = Field([], description="GOLDSET:SPLIT; documents judged for those queries are never sources")
    paraphrase_split: str = "train"
    min_words: int = Field(2, ge=1)
    max_words: int = Field(48, ge=1)
    max_copy_words: int = Field(8, ge=2, description="drop a query sharing a run of this many words with its passage")
    passage_references: bool = Field(False, description="keep queries that point at their passage ('of the passage', 'according to the text', 'the next question'), which no searcher would type")
    near_duplicate: float = Field(NEAR_DUPLICATE, gt=0, le=1, description="character 3-5-gram cosine (the leakage guard's) at or above which a later query is dropped; 1: exact only")
    round_trip_k: int = Field(10, ge=0, description="keep a query only if a source chunk is in the encoder's top k (0: off)")
    encoder: EncoderConfig = EncoderConfig()


@dataclass(frozen=True)
class Chunks:
    """Every chunk of the corpus: text and document id, in corpus order."""

    texts: list[str]
    doc_ids: list[str]


@dataclass
class Task:
    style: str
    prompt: str
    sources: tuple[int, ...]  # chunk indices the queries should find
    passage: str  # what the queries were written from (checked for copying, shown for review)
    original: str | None = None  # a paraphrased query


@dataclass
class SyntheticResult:
    candidates: list[Candidate]
    corpus: dict[str, Document]
    chunks: Chunks
    report: dict = field(default_factory=dict)

    @property
    def kept(self) -> list[Candidate]:
        return [c for c in self.candidates if c.reason is None]

    def pairs(self) -> list[Pair]:
        """One pair per kept query and source chunk: the chunk is the positive, its document the positive
        id; ``generated_from`` lists every document the query was written from (for the leakage guard)."""
        out = []
        for c in self.kept:
            origin = list(dict.fromkeys(self.chunks.doc_ids[s] for s in c.sources))
            qid = text_id("syn-", c.query)
            for s in c.sources:
                out.append(Pair(c.query, self.chunks.texts[s], source=f"synthetic:{c.style}", query_id=qid, positive_id=self.chunks.doc_ids[s], generated_from=origin))
        return out

    def pair_set(self) -> PairSet:
        """The kept queries as pairs and as a goldset over the whole corpus (each query judged 1 for its
        source documents), with the report's counts and the documents no kept query judges."""
        queries = {text_id("syn-", c.query): c.query for c in self.kept}
        qrels = {text_id("syn-", c.query): {self.chunks.doc_ids[s]: 1 for s in c.sources} for c in self.kept}
        built = PairSet(self.pairs(), self.corpus, queries, qrels, counts(self.report))
        built.counts["unjudged_documents"] = built.unjudged
        return built


def counts(report: dict) -> dict:
    """The report's numbers as one flat table (what ``bench pairs`` prints)."""
    head = {k: report[k] for k in ("documents", "excluded_documents", "chunks", "prompts")}
    calls = {"calls_made": report["calls"]["made"], "calls_cached": report["calls"]["cached"], "input_tokens": report["tokens"]["input"], "output_tokens": report["tokens"]["output"]}
    return head | calls | {"cost_usd": report["cost_usd"], "generated": report["generated"]} | report["dropped"] | {"kept": report["kept"]}


def load_source(source: str) -> tuple[dict[str, Document], Goldset | None]:
    """A corpus.jsonl file, a folder holding only corpus.jsonl, or a goldset (folder, name, mteb:Task)."""
    path = Path(source)
    corpus_file = path if path.is_file() else path / "corpus.jsonl"
    if corpus_file.is_file() and not (path.is_dir() and (path / "qrels").is_dir()):
        return read_corpus(corpus_file), None
    from harness.data.resolve import resolve_goldset

    goldset = resolve_goldset(source)
    return goldset.corpus, goldset


def judged_documents(specs: list[str]) -> set[str]:
    """Every document judged (any grade) for the queries of each ``GOLDSET:SPLIT``."""
    from harness.data.resolve import resolve_goldset

    judged: set[str] = set()
    for spec in specs:
        name, sep, split = spec.rpartition(":")
        if not sep or not name or not split:
            raise ConfigError(f"'{spec}' is not GOLDSET:SPLIT (e.g. ../shared/datasets/scifact:test)")
        judged.update(d for docs in resolve_goldset(name).split_qrels(split).values() for d in docs)
    return judged


def chunk_documents(corpus: dict[str, Document], config: SyntheticConfig) -> Chunks:
    from harness.retrieval.chunking import chunk_corpus

    if config.chunk_overlap >= config.chunk_words:
        raise ConfigError(f"chunk_overlap ({config.chunk_overlap}) must be smaller than chunk_words ({config.chunk_words})")
    docs = list(corpus.values())
    cut = chunk_corpus(docs, size=config.chunk_words, overlap=config.chunk_overlap, prefix_title=True, prefix_metadata=[], title_separator=" ", token_spans=None)
    counts = np.diff(np.append(cut.starts, len(cut.texts)))
    return Chunks(cut.texts, [d for d, n in zip(corpus, counts) for _ in range(n)])


def parse_queries(text: str, count: int) -> list[str]:
    """Queries from an answer written one per line: bullets, numbers, "Q:" and quotes stripped; lines
    that introduce a list ("Here are three questions:") or answer a question ("A: ...") skipped;
    several questions run together on one line split at each "? "; at most ``count``."""
    out = []
    for line in text.splitlines():
        if _ANSWER.match(line):
            continue
        for part in _NEXT_QUESTION.split(line):
            query = _BULLET.sub("", part).strip().strip("\"'\u201c\u201d").strip()
            if query and not query.endswith(":"):
                out.append(query)
    return out[:count]


class _Planner:
    """Turns chunks (and a goldset's queries) into one prompt per chunk and style."""

    def __init__(self, config: SyntheticConfig, chunks: Chunks, excluded: set[str], vectors):
        self.config = config
        self.chunks = chunks
        self.vectors = vectors  # a callable giving chunk vectors, computed only if needed
        self.templates = load_prompts(config.styles, config.prompt_dir)
        self.allowed = [i for i, d in enumerate(chunks.doc_ids) if d not in excluded]
        self.excluded = excluded
        self.rng = random.Random(config.seed)

    def sample(self, items: list) -> list:
        """A seeded sample of ``max_chunks`` items (chunk indices or paraphrase tasks), in their order."""
        limit = self.config.max_chunks
        if limit is None or len(items) <= limit:
            return items
        return [items[i] for i in sorted(self.rng.sample(range(len(items)), limit))]

    def tasks(self, goldset: Goldset | None) -> list[Task]:
        chosen = self.sample(self.allowed)
        out = [self._passage_task(style, i) for style in self.config.styles if style not in PAIRED_STYLES for i in chosen]
        if "multihop" in self.config.styles:
            out += self._multihop(chosen)
        if "paraphrase" in self.config.styles:
            out += self._paraphrase(goldset)
        return out

    def _passage_task(self, style: str, i: int) -> Task:
        text = self.chunks.texts[i]
        return Task(style, self.templates[style].format(passage=text, count=self.config.per_chunk), (i,), text)

    def _multihop(self, chosen: list[int]) -> list[Task]:
        """Each chosen chunk with its nearest chunk (by the encoder) from another allowed document."""
        from harness.retrieval.topk import top_k_dense

        vectors = self.vectors()
        allowed = np.array(self.allowed)
        indices, _ = top_k_dense(vectors[chosen], vectors[allowed], min(len(allowed), 20))
        out = []
        for i, row in zip(chosen, indices):
            partner = next((int(allowed[j]) for j in row if self.chunks.doc_ids[allowed[j]] != self.chunks.doc_ids[i]), None)
            if partner is None:
                continue
            a, b = self.chunks.texts[i], self.chunks.texts[partner]
            prompt = self.templates["multihop"].format(passage_a=a, passage_b=b, count=self.config.per_chunk)
            out.append(Task("multihop", prompt, (i, partner), f"{a}\n\n{b}"))
        return out

    def _paraphrase(self, goldset: Goldset | None) -> list[Task]:
        """Each query of the paraphrase split, with the first chunk of its best-graded allowed document."""
        if goldset is None:
            raise ConfigError("the paraphrase style rewrites a goldset's queries: give a goldset, not a bare corpus")
        first_chunk = {}
        for i, d in enumerate(self.chunks.doc_ids):
            first_chunk.setdefault(d, i)
        out = []
        for qid, docs in goldset.split_qrels(self.config.paraphrase_split).items():
            best = max(((g, d) for d, g in docs.items() if g > 0 and d not in self.excluded), default=None)
            if best is None:
                continue
            i, query = first_chunk[best[1]], goldset.queries[qid]
            prompt = self.templates["paraphrase"].format(query=query, passage=self.chunks.texts[i], count=self.config.per_chunk)
            out.append(Task("paraphrase", prompt, (i,), self.chunks.texts[i], original=query))
        return self.sample(out) if self.config.max_chunks else out


def generate_synthetic(source: str, config: SyntheticConfig, cache: Cache) -> SyntheticResult:
    """Generate, filter and count synthetic queries for the documents of ``source``."""
    generator = CachedGenerator(build_generator(config.generator), cache)  # first: a missing key stops the run before any work
    corpus, goldset = load_source(source)
    excluded = judged_documents(config.exclude_judged_by)
    chunks = chunk_documents(corpus, config)
    encoder = _ChunkEncoder(config, cache, chunks)
    tasks = _Planner(config, chunks, excluded, encoder.chunk_vectors).tasks(goldset)
    with progress.bar("generating queries") as update:
        answers = generator.generate_all([t.prompt for t in tasks], update)
    candidates = [
        Candidate(q, t.style, t.sources, t.passage, t.original) for t, a in zip(tasks, answers) for q in parse_queries(a.text, config.per_chunk)
    ]
    apply_filters(candidates, config, encoder if config.round_trip_k else None)
    result = SyntheticResult(candidates, corpus, chunks)
    result.report = _report(source, config, result, tasks, generator, excluded & set(corpus))
    return result


class _ChunkEncoder:
    """The base encoder over the corpus's chunks (vectors computed once, through the cache)."""

    def __init__(self, config: SyntheticConfig, cache: Cache, chunks: Chunks):
        self.config, self.cache, self.chunks = config, cache, chunks
        self._encoder = None
        self._vectors = None

    @property
    def encoder(self):
        if self._encoder is None:
            from harness.cache import CachedEncoder
            from harness.registry import build_encoder

            self._encoder = CachedEncoder(build_encoder(self.config.encoder, self.cache), self.cache)
        return self._encoder

    def chunk_vectors(self) -> np.ndarray:
        if self._vectors is None:
            with progress.bar("encoding chunks") as update:
                self.encoder.on_progress = update
                self._vectors = self.encoder.encode(self.chunks.texts, input_type="document")
        return self._vectors

    def top_k(self, queries: list[str], k: int) -> np.ndarray:
        """Indices of each query's top ``k`` chunks."""
        from harness.retrieval.topk import top_k_dense

        if not queries:
            return np.zeros((0, 0), dtype=np.int64)
        return top_k_dense(self.encoder.encode(queries, input_type="query"), self.chunk_vectors(), k)[0]


def _report(source: str, config: SyntheticConfig, result: SyntheticResult, tasks: list[Task], generator: CachedGenerator, excluded: set[str]) -> dict:
    from harness.prices import DEFAULT_PRICES

    stats = generator.stats
    price_key = generator.inner.price_key if isinstance(generator.inner, PaidGenerator) else None
    price = DEFAULT_PRICES.get(price_key) if price_key else None
    cost = 0.0 if price_key is None else (price.chat_dollars(stats.input_tokens, stats.output_tokens) if price else None)
    reasons = Counter(c.reason for c in result.candidates)
    by_style = {s: {"prompts": sum(t.style == s for t in tasks), "generated": 0, "kept": 0} for s in config.styles}
    for c in result.candidates:
        by_style[c.style]["generated"] += 1
        by_style[c.style]["kept"] += c.reason is None
    return {
        "source": source,
        "generator": {"backend": config.generator.backend, "model": getattr(generator.inner, "model", config.generator.model), "fingerprint": generator.inner.fingerprint, "price_key": price_key},
        "documents": len(result.corpus),
        "excluded_documents": len(excluded),
        "chunks": len(result.chunks.texts),
        "prompts": len(tasks),
        "calls": {"made": stats.made, "cached": stats.cached},
        "tokens": {"input": stats.input_tokens, "output": stats.output_tokens},
        "cost_usd": None if cost is None else round(cost, 6),
        "generation_seconds": round(stats.seconds, 3),
        "queries_per_second": round(len(result.candidates) / stats.seconds, 3) if stats.seconds else None,
        "generated": len(result.candidates),
        "dropped": {r: reasons.get(r, 0) for r in REASONS},
        "kept": reasons.get(None, 0),
        "by_style": by_style,
        "pairs": sum(len(c.sources) for c in result.kept),
        "settings": config.model_dump(mode="json"),
    }


def write_review(result: SyntheticResult, path: Path | str, n: int, seed: int = 0) -> int:
    """A seeded random sample of ``n`` generated queries, kept and dropped, as CSV for a person to check:
    query, style, status (kept/dropped), reason, and the passage it was written from. Returns the rows written."""
    import pandas as pd

    rows = [{"query": c.query, "style": c.style, "status": "dropped" if c.reason else "kept", "reason": c.reason or "", "passage": c.passage} for c in result.candidates]
    frame = pd.DataFrame(rows, columns=["query", "style", "status", "reason", "passage"])
    sample = frame.sample(n=min(n, len(frame)), random_state=seed)
    sample.to_csv(path, index=False)
    return len(sample)


def write_sidecars(result: SyntheticResult, output: Path | str, review: int = 0) -> list[str]:
    """The report beside the pair file (``<output>.report.json``) and, if asked, a review sample
    (``.review.csv``); returns the paths written."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    written = [output.with_suffix(".report.json")]
    written[0].write_text(json.dumps(result.report, indent=1) + "\n", encoding="utf-8")
    if review:
        written.append(output.with_suffix(".review.csv"))
        write_review(result, written[-1], review, result.report["settings"]["seed"])
    return [str(p) for p in written]
