"""A sentence-transformers model served by another inference runtime: ONNX Runtime or OpenVINO, fp32 or int8.

The whole model (transformer, pooling, normalisation) is exported once into one graph, kept in the cache
folder under ``exports/`` and found afterwards by the weights' digest, the runtime, the quantization, the
length and the prompts; a warm run loads only the tokenizer and the graph, never torch's copy.

sentence-transformers' own ``backend="onnx" | "openvino"`` goes through optimum, whose ONNX exporter needs
transformers below 4.58 while sentence-transformers 6 needs 5 or later (and optimum-intel pulls a second
torch build), so the export is done here with the runtimes' own tools: ``torch.onnx.export`` (the
TorchScript exporter) then ONNX Runtime's transformer optimizer (fused attention, skip-layer-norm, GELU)
and ``quantize_dynamic``; OpenVINO's ``convert_model`` then NNCF's ``quantize``.

Every export is checked against torch on sample texts before it is kept (:func:`agreement`). An fp32
export must agree to cosine :data:`FAITHFUL` on each text: it is the same model, so it shares the torch
model's fingerprint and cached vectors. An int8 export is a different model: the agreement is recorded,
and its own fingerprint keeps its vectors apart.
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import socket
import time
import warnings
from collections.abc import Callable, Sequence
from contextlib import contextmanager, redirect_stdout
from pathlib import Path

import numpy as np

from harness.choices import Runtime, values
from harness.errors import ModelUnavailable, RungUnavailable, require

log = logging.getLogger(__name__)

RUNTIMES = values(Runtime)
QUANTIZATIONS = ("int8",)
FAITHFUL = 0.9999
"""Each sample text's cosine between an fp32 export's vector and torch's, at least: below it the export is refused."""
EXPORT_VERSION = 1  # bumped when what an export holds changes: older folders are exported again
PROBE_TEXTS = 64  # sample texts compared with torch (and, int8 on OpenVINO, the calibration set)
PROBE_CHARS = 16_384  # of each: more than any model keeps (512 tokens), less than a huge document costs to tokenise
PAD_TO = 16  # OpenVINO batches: token lengths rounded up to a multiple of this
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_HOST = "".join(c if c.isalnum() else "_" for c in socket.gethostname())[:40] or "host"
_EXTRA = {"onnx": "onnx", "openvino": "openvino"}


def runtime_problem(runtime: str | None, quantize: str | None) -> str | None:
    """Why ``runtime`` / ``quantize`` is not a serving form (None when it is)."""
    if runtime is not None and runtime not in RUNTIMES:
        from harness.errors import did_you_mean

        return f"runtime '{runtime}' is not one of {', '.join(RUNTIMES)}.{did_you_mean(runtime, RUNTIMES)}"
    if quantize is not None and quantize not in QUANTIZATIONS:
        return f"quantize '{quantize}' is not one of {', '.join(QUANTIZATIONS)} (leave it out for fp32)"
    if quantize and runtime in (None, "torch"):
        return f"quantize = '{quantize}' needs runtime = 'onnx' or 'openvino' (torch serves fp32 only)"
    return None


class Exported:
    """An exported model, ready to encode tokenized batches: its tokenizer, its compiled graph and what
    the export recorded (``meta``: runtime, quantization, agreement with torch, sizes, versions)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.meta = json.loads((folder / "export.json").read_text(encoding="utf-8"))
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(str(folder))
        self.max_length = int(self.meta["max_length"])
        self.input_names = list(self.meta["input_names"])
        self._run = _session(folder, self.meta["runtime"])

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """One batch of texts (prompts already in them): the model's sentence embeddings, float32.

        OpenVINO prepares its kernels for each input shape it meets, so its batches are padded to a
        multiple of :data:`PAD_TO` tokens (masked: the vectors do not change), meeting fewer shapes."""
        pad = PAD_TO if self.meta["runtime"] == "openvino" else None
        features = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length, pad_to_multiple_of=pad, return_tensors="np")
        return np.asarray(self._run({name: features[name].astype(np.int64) for name in self.input_names}), dtype=np.float32)


def _session(folder: Path, runtime: str) -> Callable[[dict], np.ndarray]:
    if runtime == "onnx":
        ort = require("onnxruntime", "onnx")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        session = ort.InferenceSession(str(folder / "model.onnx"), options, providers=["CPUExecutionProvider"])
        return lambda feed: session.run(None, feed)[0]
    ov = require("openvino", "openvino")
    compiled = ov.Core().compile_model(str(folder / "model.xml"), "CPU", {"PERFORMANCE_HINT": "LATENCY"})
    return lambda feed: compiled(feed)[0]


def export_dir(cache_dir: Path, digest: str, runtime: str, quantize: str | None, max_length: int, prompts: dict) -> Path:
    """Where the export of these weights in this form lives: named by hashes and fixed words only."""
    import hashlib

    settings = hashlib.sha256(json.dumps([EXPORT_VERSION, max_length, prompts], sort_keys=True).encode()).hexdigest()[:12]
    return cache_dir / "exports" / f"{digest[:24]}-{runtime}-{quantize or 'fp32'}-{settings}"


def load_or_export(folder: Path, load_torch: Callable[[], object], runtime: str, quantize: str | None, prompts: dict, normalize: bool,
                   sample: Sequence[str]) -> Exported:
    """The export in ``folder``, made first when it is missing: written to a temporary folder beside it,
    checked against torch on ``sample`` (with each prompt), and renamed into place whole. A run killed
    mid-export leaves only the temporary folder, which the next export on this machine removes."""
    require("onnxruntime" if runtime == "onnx" else "openvino", _EXTRA[runtime])
    if (folder / "export.json").is_file():
        try:
            return Exported(folder)
        except Exception as exc:  # noqa: BLE001 - a damaged export (edited, truncated by a full disk) is made again
            log.warning("the %s export in '%s' cannot be loaded (%s: %s); exporting it again", runtime, folder, type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
            shutil.rmtree(folder, ignore_errors=True)
    if folder.is_dir():  # a folder without its export.json: never renamed into place whole (or emptied by hand)
        shutil.rmtree(folder, ignore_errors=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(folder)
    tmp = folder.with_name(f".{folder.name}.tmp-{_HOST}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        model = load_torch()
        texts = _probe(sample)
        start = time.perf_counter()
        log.info("exporting the model to %s (%s), once", runtime, quantize or "fp32")
        meta = _export(model, tmp, runtime, quantize, [prompts["document"] + t for t in calibration_texts()] if quantize == "int8" and runtime == "openvino" else [])
        meta["export_s"] = round(time.perf_counter() - start, 1)
        (tmp / "export.json").write_text(json.dumps(meta), encoding="utf-8")
        meta["agreement"] = agreement(model, Exported(tmp), texts, prompts, normalize)  # the tokenizer as saved, the graph as written
        if not quantize and meta["agreement"]["min_cosine"] < FAITHFUL:
            raise ModelUnavailable(
                f"the {runtime} export of this model does not reproduce torch's vectors (cosine {meta['agreement']['min_cosine']:.6f} on one of "
                f"{meta['agreement']['texts']} sample texts, below {FAITHFUL}); serve it with runtime = 'torch'")
        (tmp / "export.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
        try:
            os.replace(tmp, folder)
        except OSError:  # another process put its export there first: the same model, keep theirs
            if not (folder / "export.json").is_file():
                raise
    except RungUnavailable:
        raise
    except OSError as exc:
        raise ModelUnavailable(f"cannot write the {runtime} export to '{folder.parent}' ({type(exc).__name__}: {exc}); free space there or set TUNEBENCH_CACHE") from exc
    except Exception as exc:  # noqa: BLE001 - the exporters' own failures (tokenizers' and OpenVINO's writes raise neither OSError nor one class)
        first = (str(exc).strip().splitlines() or [""])[0]
        raise ModelUnavailable(f"the {runtime} export of this model failed ({type(exc).__name__}: {first}); if the disk under '{folder.parent}' is full, "
                               "free space there or set TUNEBENCH_CACHE; otherwise serve it with runtime = 'torch'") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return Exported(folder)


def _remove_stale(folder: Path) -> None:
    """Temporary folders of this machine's exports whose process is gone (killed mid-export); another
    machine's (a cache on a shared disk) are its own to clean."""
    for stale in folder.parent.glob(f".{folder.name}.tmp-{_HOST}-*"):
        pid = stale.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _probe(sample: Sequence[str]) -> list[str]:
    """Up to :data:`PROBE_TEXTS` of the texts first encoded, spread over them, with a short and an empty-ish
    text so both ends of the length range are checked."""
    step = max(len(sample) // PROBE_TEXTS, 1)
    return [*(t[:PROBE_CHARS] for t in list(sample)[::step][:PROBE_TEXTS]), "a", "What is the capital of France?"]


def calibration_texts() -> list[str]:
    """What OpenVINO's static int8 is calibrated on: the shipped demo goldset's first :data:`PROBE_TEXTS`
    documents, the same whatever a run encodes first, so one fingerprint is always one model (as
    sentence-transformers calibrates on a fixed data set, GLUE's SST-2, by default)."""
    from harness.environment import shipped

    texts = []
    with (shipped("goldsets") / "demo" / "corpus.jsonl").open(encoding="utf-8") as f:
        for line in f:
            doc = json.loads(line)
            texts.append(f"{doc.get('title', '')} {doc.get('text', '')}".strip()[:PROBE_CHARS])
            if len(texts) == PROBE_TEXTS:
                break
    return texts


def agreement(model, exported: Exported, texts: list[str], prompts: dict, normalize: bool) -> dict:
    """Per-text cosine between torch's vectors and the export's, for each prompt in use."""
    cosines = []
    for prompt in dict.fromkeys(prompts.values()):
        reference = model.encode(texts, prompt=prompt or None, normalize_embeddings=normalize, convert_to_numpy=True, show_progress_bar=False)
        served = np.vstack([exported.encode([prompt + t for t in texts[i : i + 16]]) for i in range(0, len(texts), 16)])
        num = (reference * served).sum(axis=1)
        den = np.linalg.norm(reference, axis=1) * np.linalg.norm(served, axis=1)
        cosines.append(num / np.maximum(den, 1e-12))
    every = np.concatenate(cosines)
    return {"texts": len(texts), "prompts": len(cosines), "min_cosine": round(float(every.min()), 7), "mean_cosine": round(float(every.mean()), 7)}


def _export(model, tmp: Path, runtime: str, quantize: str | None, calibration: list[str]) -> dict:
    """Write the graph and the tokenizer into ``tmp``; return what the export records."""
    import torch

    if any(getattr(m, "include_prompt", True) is False for m in model):
        raise ModelUnavailable("this model's pooling leaves the prompt's tokens out, which an exported graph cannot; serve it with runtime = 'torch'")
    tokenizer = model.tokenizer
    names = [n for n in _INPUTS if n in tokenizer.model_input_names]
    if names[:2] != ["input_ids", "attention_mask"]:
        raise ModelUnavailable(f"this model's tokenizer gives {', '.join(tokenizer.model_input_names)}, not input ids and an attention mask; serve it with runtime = 'torch'")
    example = tokenizer(["an example text to trace", "another"], padding=True, return_tensors="pt")
    wrapper = _wrapper(model, names).eval()
    tokenizer.save_pretrained(str(tmp))
    meta = {"version": EXPORT_VERSION, "runtime": runtime, "quantize": quantize, "input_names": names, "max_length": model.max_seq_length,
            "dim": (getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension)(), "torch_bytes": sum(p.numel() * p.element_size() for p in model.parameters())}
    with torch.no_grad(), _quiet():
        if runtime == "onnx":
            with _eager_attention(model):
                meta |= _export_onnx(wrapper, tuple(example[n] for n in names), names, tmp, quantize)
        else:
            meta |= _export_openvino(wrapper, tuple(example[n] for n in names), names, tmp, quantize, [tokenizer(calibration[i : i + 16], padding=True, truncation=True,
                                     max_length=model.max_seq_length, return_tensors="np") for i in range(0, len(calibration), 16)])
    return meta


@contextmanager
def _quiet():
    """The export as one log line: tracing warns of every data-dependent branch of the model's code, and
    the exporters, optimizer and quantizers of each step they skip."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(logging.NOTSET)
        hf_logging.set_verbosity(verbosity)


@contextmanager
def _eager_attention(model):
    """Attention traced as matrix products and a softmax (transformers' eager implementation), the pattern
    ONNX Runtime fuses into its Attention kernel; the traced SDPA graph is left unfused and runs 1.3x slower."""
    transformer = getattr(model[0], "auto_model", None)
    before = getattr(getattr(transformer, "config", None), "_attn_implementation", None)
    if transformer is None or before in (None, "eager"):
        yield
        return
    transformer.set_attn_implementation("eager")
    try:
        yield
    finally:
        transformer.set_attn_implementation(before)


def _wrapper(model, names: list[str]):
    """The sentence-transformers modules as one torch module taking the tokenizer's tensors (``names``, in
    :data:`_INPUTS` order) by position, as the exporters trace them."""
    import torch

    class Wrapper(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids=None):  # named: OpenVINO names the graph's inputs after them
            given = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
            return self.model({name: given[name] for name in names})["sentence_embedding"]

    return Wrapper()


def _export_onnx(wrapper, example: tuple, names: list[str], tmp: Path, quantize: str | None) -> dict:
    import torch

    require("onnx", "onnx")
    raw = tmp / "raw.onnx"
    axes = {n: {0: "batch", 1: "sequence"} for n in names} | {"embedding": {0: "batch"}}
    torch.onnx.export(wrapper, example, str(raw), input_names=names, output_names=["embedding"], dynamic_axes=axes, opset_version=17, dynamo=False)
    fused = tmp / "fused.onnx"
    optimizer = "onnxruntime.transformers (fused attention)"
    try:
        from onnxruntime.transformers import optimizer as ort_optimizer

        config = wrapper.model[0].auto_model.config
        ort_optimizer.optimize_model(str(raw), model_type="bert", num_heads=config.num_attention_heads, hidden_size=config.hidden_size,
                                     opt_level=0).save_model_to_file(str(fused))
    except Exception as exc:  # noqa: BLE001 - an architecture its fusions do not know: the plain graph, optimised by the session
        log.info("onnxruntime's transformer optimizer did not apply (%s: %s); using the plain graph", type(exc).__name__, exc)
        shutil.copyfile(raw, fused)
        optimizer = "none (the session's own graph optimisations)"
    out = tmp / "model.onnx"
    if quantize:
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic

        # per channel, and 7-bit weights (reduce_range): on CPUs without VNNI the 8-bit product saturates
        quantize_dynamic(str(fused), str(out), weight_type=QuantType.QInt8, per_channel=True, reduce_range=True,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    else:
        fused.rename(out)
    for leftover in (raw, fused):
        leftover.unlink(missing_ok=True)
    import onnxruntime

    return {"optimizer": optimizer, "model_bytes": out.stat().st_size, "quantization": "dynamic int8 (weights per channel, 7-bit; activations per batch)" if quantize else None,
            "versions": {"onnxruntime": onnxruntime.__version__, "torch": torch.__version__}}


def _export_openvino(wrapper, example: tuple, names: list[str], tmp: Path, quantize: str | None, calibration: list) -> dict:
    import openvino as ov

    inputs = [(n, [-1, -1], ov.Type.i64) for n in names]
    graph = ov.convert_model(wrapper, example_input=example, input=inputs)
    quantization = None
    if quantize:
        nncf = require("nncf", "openvino")
        items = [{n: batch[n].astype(np.int64) for n in names} for batch in calibration]
        with redirect_stdout(io.StringIO()):  # NNCF's rich progress bars: the export is one log line
            graph = nncf.quantize(graph, nncf.Dataset(items), model_type=nncf.ModelType.TRANSFORMER, subset_size=len(items))
        quantization = f"static int8 (NNCF, calibrated on {sum(len(b['input_ids']) for b in calibration)} documents of the shipped demo goldset)"
    ov.save_model(graph, str(tmp / "model.xml"), compress_to_fp16=False)  # fp16 weights would not be the same model
    import torch

    return {"optimizer": "openvino", "model_bytes": (tmp / "model.bin").stat().st_size, "quantization": quantization,
            "versions": {"openvino": ov.__version__, "torch": torch.__version__}}
