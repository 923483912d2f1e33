"""Ladder files: the shipped ladders parse, mistakes are one line naming the key, `bench validate` loads no model;
and a rung's latency holds only per-query work (no warm-up, no JIT compilation)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from conftest import write_ladder
from harness.cli import main
from harness.environment import SOURCE_ROOT as ROOT
from harness.errors import ConfigError
from harness.ladder.rungs import HybridRung
from harness.ladder.schema import DEFAULT_LADDER, load_ladder
from harness.ladder.stages import HybridStage, RetrieverStage

RUNGS = """
[[rungs]]
name = "hybrid"
kind = "hybrid"
inputs = ["bm25", "baseline"]
"""


def test_shipped_ladders_parse_with_every_rung_kind():
    default = load_ladder(DEFAULT_LADDER)
    assert {r.kind for r in default.rungs} == {"dense", "bm25", "hybrid", "rerank", "chunked", "adapter", "finetune"}
    assert [r.name for r in default.rungs][-2:] == ["finetune-r0", "finetune-r1"]
    names = [r.name for r in default.rungs]
    assert names[:2] == ["baseline", "bm25"] and {"voyage-3-large", "cohere-embed-v4", "hybrid+ce", "hybrid+cohere-rerank", "hybrid+voyage-rerank"} <= set(names)
    assert default.price_table()["cohere:embed-v4.0"].per_million_tokens == 0.12
    demo = load_ladder(ROOT / "ladders" / "demo.toml")
    assert {r.kind for r in demo.rungs} == {"dense", "bm25", "hybrid", "rerank", "chunked", "adapter", "finetune", "merge", "compress"}
    assert demo.rung("wise-ft").of == "finetune-r1"  # a merge rung's `of = "finetune"` is that rung's last round
    assert [r.name for r in demo.rungs if r.kind == "compress"] == [f"compress-{f}" for f in ("int8", "binary", "binary-rescore", "mrl-256", "mrl-128", "onnx-int8", "openvino-int8")]


@pytest.mark.parametrize(
    ("toml", "fragments"),
    [
        ('primary_metrc = "ndcg@10"\n', ["unknown key 'primary_metrc'", "Did you mean 'primary_metric'"]),
        (RUNGS + "wieghts = [0.5, 0.5]\n", ["rungs[2].wieghts", "Did you mean 'weights'"]),
        (RUNGS.replace("bm25", "bm52", 1), ["uses rung 'bm52', which does not exist", "Did you mean 'bm25'"]),
        ('[[rungs]]\nname = "early"\nkind = "rerank"\nfirst_stage = "late"\n[[rungs]]\nname = "late"\nkind = "bm25"\n', ["which is defined later"]),
        ('[[rungs]]\nname = "bm25"\nkind = "bm25"\n', ["two rungs are named 'bm25'"]),
        ('[[rungs]]\nname = "x"\nkind = "dnese"\n', ["rungs[2]", "dense", "bm25"]),
        (RUNGS + 'tune_on = "test"\nmethod = "wsum"\n', ["never be tuned on the test split"]),
        (RUNGS + "weights = [1.0]\n", ["weights has 1 values for 2 inputs"]),
        ('metrics = ["ndcg@10", "recal@10"]\n', ["unknown metric 'recal@10'"]),
        ('[[rungs]]\nname = "c"\nkind = "chunked"\nchunk_size = 64\noverlap = 64\n', ["overlap (64) must be smaller than chunk_size (64)"]),
        ('[[rungs]]\nname = "d"\nkind = "dense"\nencoder = { backend = "bow", batchsize = 4, concurency = 2 }\n', []),
        ('[[rungs]]\nname = "d"\nkind = "dense"\nencoder = { backend = "cohere", concurency = 2 }\n', ["rungs[2] ('d').encoder", "unknown key 'concurency'", "Did you mean 'concurrency'"]),
        ('[[rungs]]\nname = "d"\nkind = "dense"\nencoder = { backend = "cohre" }\n', ["encoder.backend", "unknown encoder backend 'cohre'", "Did you mean 'cohere'"]),
        ('[[rungs]]\nname = "r"\nkind = "rerank"\nfirst_stage = "bm25"\nreranker = { backend = "voyage", modle = "x" }\n', ["unknown key 'modle'", "Did you mean 'model'"]),
        ("[prices.'x:y']\nper_million_tokens = 1\nper_thousand_searches = 2\n", ["exactly one of per_million_tokens or per_thousand_searches"]),
        ("name = [1\n", ["invalid TOML"]),
    ],
)
def test_ladder_mistakes_are_one_clear_line(tmp_path, tiny_goldset, bow_backend, toml, fragments):
    top_level = not toml.lstrip().startswith("[")  # keys of the ladder itself go before its tables
    path = write_ladder(tmp_path, tiny_goldset, extra="" if top_level else toml)
    if top_level:
        path.write_text(toml + path.read_text())
    if not fragments:
        load_ladder(path)  # a backend taking **kwargs accepts any option
        return
    with pytest.raises(ConfigError) as info:
        load_ladder(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    for fragment in fragments:
        assert fragment in message


def test_select_includes_what_a_rung_builds_on(tmp_path, tiny_goldset, bow_backend):
    ladder = load_ladder(write_ladder(tmp_path, tiny_goldset, extra=RUNGS + '[[rungs]]\nname = "rr"\nkind = "rerank"\nfirst_stage = "hybrid"\n'))
    assert [r.name for r in ladder.select(["rr"])] == ["baseline", "bm25", "hybrid", "rr"]
    with pytest.raises(ConfigError, match="unknown rung 'hybird'.*Did you mean 'hybrid'"):
        ladder.select(["hybird"])


def test_validate_command_loads_no_model_and_no_sdk():
    code = (
        "import sys; from click.testing import CliRunner; from harness.cli import main;"
        "r = CliRunner().invoke(main, ['validate']); print(r.exit_code, r.output.strip());"
        "print(sorted(m for m in ('torch', 'sentence_transformers', 'cohere', 'voyageai', 'ranx') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout.splitlines()
    assert out[0].startswith("0 ") and "ok: ladder 'default', 15 rungs" in out[0]
    assert out[-1] == "[]"


def test_validate_reports_a_missing_goldset(tmp_path, bow_backend):
    path = write_ladder(tmp_path, Path("no-such-goldset"))
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 2 and "goldset 'no-such-goldset' is not a folder" in result.output


class ColdStart:
    """A call whose first run costs 100 s on a fake clock (a JIT compilation, a lazy load) and every later run 2 ms."""

    def __init__(self):
        self.now, self.calls = 0.0, 0

    def clock(self) -> float:
        return self.now

    def __call__(self, *args, **kwargs):
        self.calls += 1
        self.now += 100.0 if self.calls == 1 else 0.002
        return {}


def _hybrid_latency(cold: ColdStart, sample: list[str]) -> dict[str, float]:
    stage = HybridStage(HybridRung(name="hybrid", inputs=["bm25", "dense"]))
    stage._fuse = cold
    return stage._fuse_latency([{q: {"d": 1.0} for q in sample}] * 2, {"k": 60}, sample)


def _bm25_latency(cold: ColdStart, sample: list[str]) -> dict[str, float]:
    stage = RetrieverStage.__new__(RetrieverStage)  # any non-dense retriever: one-query searches
    stage.retriever = SimpleNamespace(search=cold)
    return stage._latency({q: f"text of {q}" for q in sample}, 10)


@pytest.mark.parametrize("latency", [_hybrid_latency, _bm25_latency], ids=["hybrid", "bm25"])
def test_one_time_work_is_in_no_timed_query(monkeypatch, latency):
    """A first call's cost (numba compiling ranx, a tokenizer loading) lands in an untimed warm-up, never in a query's time."""
    cold, sample = ColdStart(), ["q1", "q2", "q3"]
    monkeypatch.setattr(time, "perf_counter", cold.clock)
    seconds = latency(cold, sample)
    assert cold.calls == len(sample) + 1
    assert seconds == pytest.approx(dict.fromkeys(sample, 0.002))


def _ranx_compilations() -> int:
    """Specialisations numba holds for ranx's compiled functions in this process (compiled or loaded from its cache)."""
    from numba.core.dispatcher import Dispatcher

    modules = [m for name, m in list(sys.modules.items()) if name.startswith("ranx")]
    return sum(len(obj.signatures) for m in modules for obj in vars(m).values() if isinstance(obj, Dispatcher))


def test_fusing_one_query_at_a_time_compiles_nothing_after_the_warm_up():
    """ranx keeps a run's document ids as numpy '<U{n}' (n: its longest id) and numba compiles per n: with ids of many
    lengths (a first user's file paths) each new length compiled ranx afresh inside a timed query (RRF queries up to 17 s)."""
    stage = HybridStage(HybridRung(name="hybrid", inputs=["bm25", "dense"], method="rrf"))
    runs = [{f"q{n}": {f"docs/{'x' * (n + k)}.md#intro": 1.0 / (k + 1) for k in range(3 + j)} for n in range(4)} for j in range(2)]
    stage._fuse_latency(runs, {"k": 60}, ["q0"])
    compiled = _ranx_compilations()
    stage._fuse_latency(runs, {"k": 60}, ["q1", "q2", "q3"])  # longer ids than q0's
    assert _ranx_compilations() == compiled
