"""Local sentence-transformers models served on ONNX Runtime and OpenVINO (backends/runtimes.py): fp32
exports that give torch's vectors and share its fingerprint, int8 exports that are models of their own,
the export's refusal when it is not faithful, one-line errors for bad options and missing packages,
faults (a kill mid-export, a full disk, a damaged export), and the ladder's ``[execution] runtime``,
``bench run --runtime`` and the compress rung's model forms.

Everything runs on conftest's tiny BERT (2 layers, 32 wide): an export takes one to eight seconds, so
each form is exported once for the module (``exports``) and copied into a test's cache where it only
needs one to exist.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from conftest import TINY_DOCS, TINY_QUERIES, write_ladder
from harness.errors import ConfigError, MissingDependency, ModelUnavailable
from test_cli import assert_one_line_error, bench

ROOT = Path(__file__).resolve().parents[1]
PROMPT = "query: "
QUERIES = list(TINY_QUERIES.values())
DOCS = [text for _, text in TINY_DOCS.values()]
FORMS = [("onnx", None), ("onnx", "int8"), ("openvino", None), ("openvino", "int8")]


def encoder(model: Path, runtime: str | None = None, quantize: str | None = None, **options):
    from backends.sentence_transformers import SentenceTransformerEncoder

    return SentenceTransformerEncoder(str(model), query_prompt=PROMPT, runtime=runtime, quantize=quantize, **options)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def export_folders(cache: Path) -> list[str]:
    """Every entry of the cache's exports folder, temporary ones (dot names) included."""
    folder = cache / "exports"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


@dataclass
class Encoded:
    fingerprint: str
    queries: np.ndarray
    documents: np.ndarray
    folder: Path | None
    details: dict


class Exports:
    """The tiny model encoded by torch and exported in each form, once for the module, into one cache."""

    def __init__(self, model: Path, cache: Path):
        self.model, self.cache, self._made = model, cache, {}

    def __call__(self, runtime: str = "torch", quantize: str | None = None) -> Encoded:
        if (runtime, quantize) not in self._made:
            with pytest.MonkeyPatch.context() as mp:
                mp.setenv("TUNEBENCH_CACHE", str(self.cache))
                enc = encoder(self.model, None if runtime == "torch" else runtime, quantize)
                documents = enc.encode(DOCS, input_type="document")  # first: the export is checked on these
                queries = enc.encode(QUERIES, input_type="query")
                folder = None if runtime == "torch" else enc._export_folder()
                self._made[runtime, quantize] = Encoded(enc.fingerprint, queries, documents, folder, enc.runtime_details())
        return self._made[runtime, quantize]

    def copy_into(self, cache: Path, *forms: tuple[str, str | None]) -> None:
        """These forms' export folders, copied into another cache (its own exports, already made)."""
        for form in forms:
            folder = self(*form).folder
            shutil.copytree(folder, cache / "exports" / folder.name)


@pytest.fixture(scope="module")
def exports(tiny_model, tmp_path_factory) -> Exports:
    return Exports(tiny_model, tmp_path_factory.mktemp("exports-cache"))


@pytest.fixture
def cache() -> Path:
    """The test's own cache folder ($TUNEBENCH_CACHE, set by conftest's isolated_dirs)."""
    return Path(os.environ["TUNEBENCH_CACHE"])


# -- fp32: the same model ------------------------------------------------------------------------------


@pytest.mark.parametrize("runtime", ["onnx", "openvino"])
def test_an_fp32_export_gives_torchs_vectors_and_fingerprint(exports, runtime):
    torch, served = exports(), exports(runtime)
    assert served.queries.shape == torch.queries.shape == (len(QUERIES), 32)
    assert served.documents.shape == (len(DOCS), 32)
    assert cosines(served.queries, torch.queries).min() >= 0.9999
    assert cosines(served.documents, torch.documents).min() >= 0.9999
    assert np.allclose(np.linalg.norm(served.queries, axis=1), 1, atol=1e-5)  # normalize = True
    assert served.fingerprint == torch.fingerprint
    # the query prompt reached the graph: torch's vectors of the bare queries are not these
    from sentence_transformers import SentenceTransformer

    bare = SentenceTransformer(str(exports.model), device="cpu").encode(QUERIES, normalize_embeddings=True)
    assert cosines(served.queries, bare).min() < 0.9999

    folder = served.folder
    assert folder.is_dir() and folder.parent == exports.cache / "exports" and folder.name.split("-")[1:3] == [runtime, "fp32"]
    meta = json.loads((folder / "export.json").read_text())
    assert meta["runtime"] == runtime and meta["quantize"] is None and meta["dim"] == 32 and meta["max_length"] == 64
    assert meta["input_names"] == ["input_ids", "attention_mask", "token_type_ids"]
    assert meta["agreement"]["texts"] == len(DOCS) + 2 and meta["agreement"]["prompts"] == 2  # "query: " and ""
    assert meta["agreement"]["min_cosine"] >= 0.9999 and meta["model_bytes"] > 0 and meta["torch_bytes"] > 0
    assert not [name for name in export_folders(exports.cache) if ".tmp-" in name]
    details = served.details
    assert details["runtime"] == runtime and details["quantize"] is None and details["runtime_min_cosine"] >= 0.9999
    assert details["model_mb"] == round(meta["model_bytes"] / 1e6, 1) and details["torch_model_mb"] == round(meta["torch_bytes"] / 1e6, 1)


@pytest.mark.parametrize("runtime", ["onnx", "openvino"])
def test_a_second_encoder_reuses_the_export_without_loading_torch(exports, runtime, monkeypatch):
    import sentence_transformers

    import backends.runtimes
    from backends.sentence_transformers import SentenceTransformerEncoder

    first = exports(runtime)
    monkeypatch.setenv("TUNEBENCH_CACHE", str(exports.cache))

    def no_torch(*args, **kwargs):
        raise AssertionError("torch's model was loaded")

    monkeypatch.setattr(SentenceTransformerEncoder, "model", property(no_torch))
    monkeypatch.setattr(sentence_transformers, "SentenceTransformer", no_torch)
    monkeypatch.setattr(backends.runtimes, "_export", no_torch)
    again = encoder(exports.model, runtime)
    assert again.runtime_details() == first.details  # read from export.json before any encode
    assert np.allclose(again.encode(QUERIES, input_type="query"), first.queries, atol=1e-6)
    assert np.allclose(again.encode(DOCS, input_type="document"), first.documents, atol=1e-6)
    assert again.token_spans(["varroa mites"]) == [[(0, 3), (3, 5), (5, 6), (7, 10), (10, 12)]]  # the export's tokenizer: var ##ro ##a mit ##es


# -- int8: another model -------------------------------------------------------------------------------


@pytest.mark.parametrize("runtime", ["onnx", "openvino"])
def test_an_int8_export_is_another_model_close_to_torch_and_smaller(exports, runtime):
    torch, fp32, int8 = exports(), exports(runtime), exports(runtime, "int8")
    assert int8.fingerprint != fp32.fingerprint == torch.fingerprint
    other = "openvino" if runtime == "onnx" else "onnx"
    assert int8.fingerprint != exports(other, "int8").fingerprint  # each runtime's quantization is its own model
    assert int8.queries.shape == (len(QUERIES), 32) and int8.documents.shape == (len(DOCS), 32)
    assert np.isfinite(int8.queries).all() and np.isfinite(int8.documents).all()
    assert cosines(int8.queries, torch.queries).mean() > 0.99 and cosines(int8.documents, torch.documents).mean() > 0.99
    assert not np.array_equal(int8.documents, fp32.documents)  # quantized: not the fp32 vectors
    details = int8.details
    assert details["runtime"] == runtime and details["quantize"] == "int8" and details["runtime_quantization"]
    assert 0 < details["model_mb"] < details["torch_model_mb"]
    assert int8.folder != fp32.folder and int8.folder.name.split("-")[1:3] == [runtime, "int8"]


# -- refusal and bad options ---------------------------------------------------------------------------


def test_an_unfaithful_fp32_export_is_refused_and_nothing_is_kept(tiny_model, cache, monkeypatch):
    import backends.runtimes

    monkeypatch.setattr(backends.runtimes, "FAITHFUL", 1.01)  # no export can reach it
    with pytest.raises(ModelUnavailable, match="does not reproduce torch's vectors") as caught:
        encoder(tiny_model, "onnx").encode(DOCS, input_type="document")
    message = str(caught.value)
    assert "serve it with runtime = 'torch'" in message and "below 1.01" in message and "\n" not in message
    assert export_folders(cache) == []  # neither the refused folder nor its temporary one
    int8 = encoder(tiny_model, "onnx", "int8")  # an int8 export is another model: kept, its agreement recorded
    assert int8.encode(DOCS, input_type="document").shape == (len(DOCS), 32)
    assert int8.runtime_details()["runtime_min_cosine"] < 1.01 and [f.split("-")[2] for f in export_folders(cache)] == ["int8"]


@pytest.mark.parametrize(
    ("runtime", "quantize", "message"),
    [
        ("onx", None, "runtime 'onx' is not one of torch, onnx, openvino. Did you mean 'onnx'?"),
        ("openvno", "int8", "Did you mean 'openvino'?"),
        (None, "int8", "quantize = 'int8' needs runtime = 'onnx' or 'openvino'"),
        ("torch", "int8", "quantize = 'int8' needs runtime = 'onnx' or 'openvino'"),
        ("onnx", "int4", "quantize 'int4' is not one of int8"),
    ],
)
def test_bad_runtime_options_are_config_errors(tiny_model, runtime, quantize, message):
    from backends.sentence_transformers import SentenceTransformerEncoder

    with pytest.raises(ConfigError, match=re.escape(message)):
        encoder(tiny_model, runtime, quantize)
    problems = SentenceTransformerEncoder.config_problems(str(tiny_model), {"runtime": runtime, "quantize": quantize})
    assert list(problems) == ["runtime"] and message in problems["runtime"]
    assert SentenceTransformerEncoder.config_problems(str(tiny_model), {"runtime": "openvino", "quantize": "int8"}) == {}


DENSE_LADDER = """
name = "runtimes"
goldsets = ["{goldset}"]
latency_queries = 2
{execution}
[[rungs]]
name = "tiny"
kind = "dense"
encoder = {{ model = "{model}", query_prompt = "query: "{options} }}
"""


def dense_ladder(folder: Path, goldset: Path, model: Path, *, execution: str = "", options: str = "", extra: str = "") -> Path:
    template = DENSE_LADDER.replace("{model}", str(model)).replace("{execution}", execution).replace("{options}", options)
    return write_ladder(folder, goldset, extra, template=template)


@pytest.mark.parametrize(
    ("execution", "options", "fragments"),
    [
        ("", ', runtime = "onx"', ["rungs[0] ('tiny').encoder.runtime", "runtime 'onx' is not one of", "Did you mean 'onnx'?"]),
        ("", ', quantize = "int8"', ["rungs[0] ('tiny').encoder.runtime", "needs runtime = 'onnx' or 'openvino'"]),
        ('[execution]\nruntime = "onx"\n', "", ["execution.runtime", "unknown runtime 'onx'", "Did you mean 'onnx'"]),
    ],
)
@pytest.mark.parametrize("command", ["validate", "run"])
def test_a_bad_runtime_in_a_ladder_is_a_one_line_error(tmp_path, tiny_goldset, tiny_model, execution, options, fragments, command):
    path = dense_ladder(tmp_path, tiny_goldset, tiny_model, execution=execution, options=options)
    args = ["validate", str(path), "--offline"] if command == "validate" else ["run", "-l", str(path)]
    assert_one_line_error(bench(*args), *fragments)
    assert not (tmp_path / "leaderboard").exists()


def test_a_bad_runtime_flag_is_a_usage_error(tmp_path, tiny_goldset, tiny_model):
    result = bench("run", "-l", str(dense_ladder(tmp_path, tiny_goldset, tiny_model)), "--runtime", "bogus")
    assert result.exit_code == 2 and "Invalid value for '--runtime'" in result.output and "'onnx'" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "leaderboard").exists()


# -- missing packages ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("runtime", "module"), [("onnx", "onnxruntime"), ("onnx", "onnx"), ("openvino", "openvino")])
def test_a_missing_runtime_package_names_the_pip_line(tiny_model, cache, monkeypatch, runtime, module):
    monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    with pytest.raises(MissingDependency) as caught:
        encoder(tiny_model, runtime).encode(DOCS, input_type="document")
    assert f"pip install 'tunebench[{runtime}]'" in str(caught.value) and f"'{module}' package" in str(caught.value)
    assert export_folders(cache) == []  # nothing exported, nor half of it left


def test_without_onnxruntime_a_ladder_skips_the_rung_with_the_pip_line(tmp_path, tiny_goldset, tiny_model, monkeypatch):
    from harness.cache import Cache
    from harness.ladder.plan import run_ladder
    from harness.ladder.schema import load_ladder
    from harness.records import Leaderboard

    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    ladder = load_ladder(dense_ladder(tmp_path, tiny_goldset, tiny_model, execution='[execution]\nruntime = "onnx"\n'))
    [outcome] = run_ladder(ladder, leaderboard=Leaderboard(tmp_path / "lb"), cache=Cache(tmp_path / "cache"))
    assert outcome.record.status == "skipped" and "pip install 'tunebench[onnx]'" in outcome.record.reason


# -- faults ---------------------------------------------------------------------------------------------


KILLED_EXPORT = """
import os, signal, sys
from pathlib import Path
import backends.runtimes
from backends.sentence_transformers import SentenceTransformerEncoder

def killed(model, tmp, *args):
    (Path(tmp) / "model.onnx").write_bytes(b"half a graph")
    os.kill(os.getpid(), signal.SIGKILL)

backends.runtimes._export = killed
SentenceTransformerEncoder.model = object()  # torch's model is not needed to be killed: the subprocess starts in a second
SentenceTransformerEncoder(sys.argv[1], query_prompt="query: ", runtime="onnx").encode(["a document"], input_type="document")
"""


def test_a_kill_mid_export_leaves_a_temporary_folder_the_next_export_removes(tiny_model, cache):
    proc = subprocess.run([sys.executable, "-c", KILLED_EXPORT, str(tiny_model)], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    [stale] = export_folders(cache)
    from backends.runtimes import _HOST

    assert stale.startswith(".") and f".tmp-{_HOST}-" in stale and stale.rsplit("-", 1)[1].isdigit() and (cache / "exports" / stale / "model.onnx").is_file()
    final = stale[1:].rsplit(".tmp-", 1)[0]
    live = cache / "exports" / f".{final}.tmp-{_HOST}-{os.getppid()}"  # another process still exporting: left alone
    live.mkdir()
    enc = encoder(tiny_model, "onnx")
    assert enc._export_folder().name == final
    assert enc.encode(DOCS, input_type="document").shape == (len(DOCS), 32)
    assert export_folders(cache) == sorted([final, live.name])
    assert (cache / "exports" / final / "export.json").is_file() and (cache / "exports" / final / "model.onnx").stat().st_size > 1000


@pytest.mark.parametrize("step", ["export.json", "rename"])
def test_a_full_disk_while_exporting_is_one_error_naming_the_folder(tiny_model, cache, monkeypatch, step):
    import errno
    import pathlib

    import backends.runtimes

    full = OSError(errno.ENOSPC, "No space left on device")
    if step == "rename":
        def replace(*args):
            raise full

        monkeypatch.setattr(backends.runtimes.os, "replace", replace)
    else:
        write_text = pathlib.Path.write_text

        def write_json(self, *args, **kwargs):
            if self.name == "export.json":
                raise full
            return write_text(self, *args, **kwargs)

        monkeypatch.setattr(pathlib.Path, "write_text", write_json)
    with pytest.raises(ModelUnavailable) as caught:
        encoder(tiny_model, "onnx").encode(DOCS, input_type="document")
    message = str(caught.value)
    assert f"'{cache / 'exports'}'" in message and "No space left on device" in message and "free space there" in message
    assert "\n" not in message
    assert export_folders(cache) == []


LIMITED_WRITES = """
import json, resource, signal, sys
from backends.sentence_transformers import SentenceTransformerEncoder
import onnxruntime, openvino, torch.onnx  # imported before the limit

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead of killing
out = {}
# tokenizer.json is 0.7 MB (written first, by both runtimes), the graph 4 MB
for runtime, step, limit in (("onnx", "tokenizer", 500_000), ("onnx", "graph", 1_500_000), ("openvino", "graph", 1_500_000)):
    encoder = SentenceTransformerEncoder(sys.argv[1], runtime=runtime)
    encoder.model, encoder.fingerprint  # loaded and hashed before the limit
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    try:
        encoder.encode(["a document"], input_type="document")
        out[f"{runtime}/{step}"] = ["none", ""]
    except Exception as exc:
        out[f"{runtime}/{step}"] = [type(exc).__name__, str(exc)]
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def limited_writes(tiny_model, tmp_path_factory) -> tuple[dict, Path]:
    """Each runtime's export with files capped (RLIMIT_FSIZE) below the tokenizer's size, then below the
    graph's: writes really fail, inside the exporters' own code, as on a full disk. One subprocess for all."""
    cache = tmp_path_factory.mktemp("limited-cache")
    proc = subprocess.run([sys.executable, "-c", LIMITED_WRITES, str(tiny_model)], cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "TUNEBENCH_CACHE": str(cache)}, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), cache


@pytest.mark.parametrize("case", ["onnx/graph", "onnx/tokenizer", "openvino/graph"])  # tokenizers and OpenVINO raise neither OSError nor one class
def test_a_write_that_fails_inside_an_exporter_is_one_error_naming_the_folder(limited_writes, case):
    outcome, cache = limited_writes
    runtime = case.split("/")[0]
    assert not [name for name in export_folders(cache) if f"-{runtime}-" in name]  # nothing half-written kept, in any case
    kind, message = outcome[case]
    assert kind == "ModelUnavailable", f"{kind}: {message}"
    assert f"'{cache / 'exports'}'" in message and "free space there" in message and "\n" not in message


@pytest.mark.parametrize("damage", ["truncated export.json", "export.json without its keys", "graph deleted", "export.json deleted"])
def test_a_damaged_export_is_made_again(exports, tiny_model, cache, caplog, damage):
    exports.copy_into(cache, ("onnx", None))
    enc = encoder(tiny_model, "onnx")
    folder = enc._export_folder()
    meta = folder / "export.json"
    if damage == "truncated export.json":
        meta.write_text(meta.read_text()[:40])  # cut short: a disk error, a copy interrupted
    elif damage == "export.json without its keys":
        meta.write_text("{}")
    elif damage == "graph deleted":
        (folder / "model.onnx").unlink()
    else:
        meta.unlink()  # a folder that was never renamed into place whole, or emptied by hand: cannot be renamed onto
    with caplog.at_level("WARNING", logger="backends.runtimes"):
        vectors = enc.encode(DOCS, input_type="document")
    assert cosines(vectors, exports().documents).min() >= 0.9999
    assert json.loads(meta.read_text())["runtime"] == "onnx" and (folder / "model.onnx").stat().st_size > 1000
    if damage != "export.json deleted":  # nothing to load, so nothing to warn of
        assert any(str(folder) in r.getMessage() and "exporting it again" in r.getMessage() for r in caplog.records)
    assert export_folders(cache) == [folder.name]
    assert enc.runtime_details()["runtime_min_cosine"] >= 0.9999


# -- the ladder -----------------------------------------------------------------------------------------


def run_ladder_file(path: Path, leaderboard: Path, cache: Path, **kwargs) -> dict:
    from harness.cache import Cache
    from harness.ladder.plan import run_ladder
    from harness.ladder.schema import load_ladder
    from harness.records import Leaderboard

    outcomes = run_ladder(load_ladder(path), leaderboard=Leaderboard(leaderboard), cache=Cache(cache), **kwargs)
    return {o.record.rung.name: o.record for o in outcomes}


def assert_same_result(record, reference) -> None:
    assert record.status == reference.status == "ok"
    assert record.key == reference.key and record.rung.encoder_fingerprint == reference.rung.encoder_fingerprint
    assert record.metrics.keys() == reference.metrics.keys()
    for name, value in reference.metrics.items():
        assert record.metrics[name] == pytest.approx(value, abs=1e-4), name


def test_the_ladders_runtime_serves_the_rung_with_the_same_results_and_key(tmp_path, tiny_goldset, tiny_model, cache):
    from harness.cache import Cache
    from harness.data.goldset import load_goldset

    torch = run_ladder_file(dense_ladder(tmp_path, tiny_goldset, tiny_model), tmp_path / "lb-torch", tmp_path / "vectors-torch")["tiny"]
    assert torch.counts.documents_encoded == len(DOCS) and "runtime" not in torch.details
    onnx_ladder = dense_ladder(tmp_path, tiny_goldset, tiny_model, execution='[execution]\nruntime = "onnx"\n')
    onnx = run_ladder_file(onnx_ladder, tmp_path / "lb-onnx", tmp_path / "vectors-onnx")["tiny"]  # its own vectors: encoded on onnx
    assert onnx.counts.documents_encoded == len(DOCS)
    assert_same_result(onnx, torch)
    assert onnx.details["runtime"] == "onnx" and onnx.details["quantize"] is None
    assert onnx.details["runtime_min_cosine"] >= 0.9999 and onnx.details["model_mb"] > 0 and onnx.details["torch_model_mb"] > 0
    assert [name.split("-")[1:3] for name in export_folders(cache)] == [["onnx", "fp32"]]
    # the encode rate is the runtime's own, its vectors the model's
    goldset = load_goldset(tiny_goldset).fingerprint
    assert Cache(tmp_path / "vectors-onnx").encode_rate(f"{onnx.rung.encoder_fingerprint}@onnx", goldset)[1] == len(DOCS)
    assert Cache(tmp_path / "vectors-onnx").encode_rate(onnx.rung.encoder_fingerprint, goldset) is None
    # with torch's vectors cached, the onnx run encodes nothing, and its record still names the runtime and its export
    again = run_ladder_file(onnx_ladder, tmp_path / "lb-torch", tmp_path / "vectors-torch", overwrite=True)["tiny"]
    assert again.counts.documents_encoded == 0 and again.key == torch.key
    assert again.details["runtime"] == "onnx" and again.details["model_mb"] == onnx.details["model_mb"]


def test_an_encoders_own_runtime_wins_over_the_ladders(tmp_path, tiny_goldset, tiny_model, cache, exports):
    exports.copy_into(cache, ("openvino", None))
    path = dense_ladder(tmp_path, tiny_goldset, tiny_model, execution='[execution]\nruntime = "onnx"\n', options=', runtime = "openvino"')
    record = run_ladder_file(path, tmp_path / "lb", tmp_path / "vectors")["tiny"]
    assert record.status == "ok" and record.details["runtime"] == "openvino"
    assert [name.split("-")[1] for name in export_folders(cache)] == ["openvino"]  # nothing exported to onnx


def test_bench_run_runtime_flag_serves_on_openvino(tmp_path, tiny_goldset, tiny_model, cache, exports):
    exports.copy_into(cache, ("openvino", None))
    path = dense_ladder(tmp_path, tiny_goldset, tiny_model)
    torch = run_ladder_file(path, tmp_path / "lb-torch", tmp_path / "vectors-torch")["tiny"]
    result = bench("run", "-l", str(path), "--runtime", "openvino", "--leaderboard", str(tmp_path / "lb"), "--cache-dir", str(tmp_path / "vectors"), "--json")
    assert result.exit_code == 0, result.output
    assert [(row["rung"], row["status"]) for row in json.loads(result.stdout)] == [("tiny", "ok")]
    [file] = (tmp_path / "lb" / "records").rglob("tiny.*.json")
    from harness.records import RunRecord

    record = RunRecord.model_validate_json(file.read_text())
    assert record.counts.documents_encoded == len(DOCS)
    assert_same_result(record, torch)
    assert record.details["runtime"] == "openvino" and record.details["runtime_optimizer"] == "openvino"


COMPRESS = """
[[rungs]]
name = "small"
kind = "compress"
of = "{of}"
forms = {forms}
"""


@pytest.mark.parametrize("runtime", ["onnx", "openvino"])
def test_a_compress_model_form_serves_the_model_quantized(tmp_path, tiny_goldset, tiny_model, cache, exports, runtime):
    exports.copy_into(cache, (runtime, "int8"))
    form = f"{runtime}-int8"
    path = dense_ladder(tmp_path, tiny_goldset, tiny_model, extra=COMPRESS.format(of="tiny", forms=json.dumps([form, "int8"])))
    records = run_ladder_file(path, tmp_path / "lb", tmp_path / "vectors")
    assert list(records) == ["tiny", f"small-{form}", "small-int8"]
    base, model_form = records["tiny"], records[f"small-{form}"]
    assert model_form.status == "ok", model_form.reason
    details = model_form.details
    assert details["form"] == form and details["runtime"] == runtime and details["quantize"] == "int8" and details["of"] == "tiny"
    assert 0 < details["model_mb"] < details["torch_model_mb"] and details["runtime_quantization"]
    assert model_form.counts.documents_encoded == len(DOCS) and details["encode_measured"] == "this run"  # another model: encoded again
    assert model_form.rung.encoder_fingerprint != base.rung.encoder_fingerprint == records["small-int8"].rung.encoder_fingerprint
    assert records["small-int8"].counts.documents_encoded == 0  # a vector form still reads the baseline's vectors
    assert "runtime" not in records["small-int8"].details and "model_mb" not in records["small-int8"].details
    assert set(model_form.metrics) == set(base.metrics)


def test_a_model_form_is_measured_again_when_what_an_export_holds_changes(tmp_path, tiny_goldset, tiny_model, cache, exports, monkeypatch):
    """A new EXPORT_VERSION is a new int8 model: its record is not reused, while a vector form's is."""
    import backends.sentence_transformers as st_backend

    exports.copy_into(cache, ("onnx", "int8"))
    path = dense_ladder(tmp_path, tiny_goldset, tiny_model, extra=COMPRESS.format(of="tiny", forms='["onnx-int8", "int8"]'))
    first = run_ladder_file(path, tmp_path / "lb", tmp_path / "vectors")
    assert run_ladder_file(path, tmp_path / "lb", tmp_path / "vectors")["small-onnx-int8"].key == first["small-onnx-int8"].key
    monkeypatch.setattr(st_backend, "EXPORT_VERSION", st_backend.EXPORT_VERSION + 1)
    again = run_ladder_file(path, tmp_path / "lb", tmp_path / "vectors")
    assert again["small-onnx-int8"].status == "ok" and again["small-onnx-int8"].key != first["small-onnx-int8"].key
    assert again["small-onnx-int8"].rung.encoder_fingerprint != first["small-onnx-int8"].rung.encoder_fingerprint
    assert again["small-int8"].key == first["small-int8"].key


def test_a_model_form_of_another_backend_is_skipped_with_the_reason(tmp_path, tiny_goldset, bow_backend):
    from conftest import BOW_LADDER

    path = write_ladder(tmp_path, tiny_goldset, COMPRESS.format(of="baseline", forms='["onnx-int8", "int8"]'), template=BOW_LADDER)
    records = run_ladder_file(path, tmp_path / "lb", tmp_path / "vectors")
    skipped = records["small-onnx-int8"]
    assert skipped.status == "skipped"
    assert "form 'onnx-int8' serves a local sentence-transformers model" in skipped.reason and "the bow backend" in skipped.reason
    assert records["small-int8"].status == "ok" and records["baseline"].status == "ok"


def test_a_misspelt_model_form_names_the_closest(tmp_path, tiny_goldset, tiny_model):
    path = dense_ladder(tmp_path, tiny_goldset, tiny_model, extra=COMPRESS.format(of="tiny", forms='["onnx-int4"]'))
    assert_one_line_error(bench("validate", str(path), "--offline"), "unknown form 'onnx-int4'", "Did you mean 'onnx-int8'?")



def test_openvino_int8_is_calibrated_on_fixed_texts_and_its_export_is_not_encoding_time(tiny_model, cache):
    """One fingerprint, one model: the calibration set does not depend on what a run encodes first; and the
    one-off export is kept out of the encoder's time (setup_s), which the ladder subtracts from indexing."""
    first, second = encoder(tiny_model, "openvino", "int8"), encoder(tiny_model, "openvino", "int8")
    first.encode(QUERIES, input_type="query")
    meta = json.loads((first._export_folder() / "export.json").read_text())
    assert "shipped demo goldset" in meta["quantization"] and first.setup_s > 0
    shutil.rmtree(first._export_folder())
    second.encode(DOCS, input_type="document")  # other texts first: the same calibration, so the same model
    assert json.loads((second._export_folder() / "export.json").read_text())["quantization"] == meta["quantization"]
    np.testing.assert_allclose(second.encode(QUERIES, input_type="query"), first.encode(QUERIES, input_type="query"), atol=1e-5)
    before = second.setup_s
    second.encode(DOCS, input_type="document")
    assert second.setup_s == before  # exported once per process


def test_ray_workers_get_the_runtime_the_ladder_serves_on(tiny_model):
    """An engine's workers rebuild the encoder from its table, which does not name the ladder's runtime: it is added."""
    from harness.ladder.stages import offload
    from harness.registry import EncoderConfig

    config = EncoderConfig(model=str(tiny_model))
    assert offload(object(), config, "onnx").encoder["runtime"] == "onnx"
    assert "runtime" not in offload(object(), config, None).encoder


def test_a_rung_whose_vectors_are_cached_still_describes_the_export_its_queries_made(tmp_path, tiny_goldset, tiny_model, cache):
    """Documents and queries cached by the torch rung: the runtime first serves the timed one-query latency
    probes, so the export is made after indexing; the record still has its size and agreement."""
    torch_ladder = dense_ladder(tmp_path, tiny_goldset, tiny_model)
    run_ladder_file(torch_ladder, tmp_path / "lb", cache)
    assert not export_folders(cache)
    served = dense_ladder(tmp_path, tiny_goldset, tiny_model, execution='[execution]\nruntime = "onnx"\n')
    record = run_ladder_file(served, tmp_path / "lb", cache, overwrite=True)["tiny"]
    assert record.counts.documents_encoded == 0 and export_folders(cache)
    assert record.details["runtime"] == "onnx" and record.details["model_mb"] > 0 and record.details["runtime_min_cosine"] >= 0.9999
