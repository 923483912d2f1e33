"""Faults in a ladder run and its validation (issue 15): each test holds one way a run used to abort,
hide what finished, or accept input that failed later."""

from __future__ import annotations

import errno
import gzip
import json
import logging
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from bow_encoder import BagOfWordsEncoder
from conftest import write_goldset, write_ladder
from harness import registry
from harness.cache import Cache
from harness.cli import main
from harness.data.goldset import load_goldset
from harness.errors import ConfigError, GoldsetError, ModelUnavailable
from harness.ladder.plan import plan_targets
from harness.ladder.rungs import BM25Rung, DenseRung, HybridRung
from harness.ladder.runner import LadderRefused, Target, run_rungs
from harness.ladder.schema import load_ladder
from harness.records import Leaderboard
from harness.registry import EncoderConfig
from test_cli import assert_one_line_error


def bench(*args):
    return CliRunner().invoke(main, list(args))


def one_line_error(result, *fragments, code=2):
    lines = result.output.strip().splitlines()
    assert result.exit_code == code, result.output
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.output, result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


class BrokenEncoder(BagOfWordsEncoder):
    """Builds fine, fails to load its model at first use (as a folder with broken weights does)."""

    broken = True
    loads = 0

    @property
    def fingerprint(self) -> str:
        return "broken-512"

    def encode(self, texts, *, input_type):
        if BrokenEncoder.broken:
            BrokenEncoder.loads += 1
            raise ModelUnavailable("model 'broken' (folder '/models/broken') cannot be loaded (OSError: bad weights)")
        return super().encode(texts, input_type=input_type)


@pytest.fixture
def broken_backend(monkeypatch, bow_backend):
    monkeypatch.setitem(registry.BUILTIN["encoder"], "broken", "test_faults_ladder:BrokenEncoder")
    monkeypatch.setattr(BrokenEncoder, "broken", True)
    monkeypatch.setattr(BrokenEncoder, "loads", 0)


def dense(name: str, backend: str = "bow", model: str = "bow") -> DenseRung:
    return DenseRung(name=name, encoder=EncoderConfig(backend=backend, model=model))


def ladder_run(folders, rungs, tmp_path, cache="c"):
    targets = [Target(load_goldset(f), ("test",)) for f in folders]
    return run_rungs(targets, rungs, leaderboard=Leaderboard(tmp_path / "lb"), cache=Cache(tmp_path / cache))


def actions(outcomes):
    return [(o.record.goldset.name, o.record.rung.name, o.action) for o in outcomes]


# -- 1. one bad model id ---------------------------------------------------------------------------------


def test_validate_rejects_a_model_id_the_hub_would_refuse(tmp_path, tiny_goldset):
    path = tmp_path / "ladder.toml"
    path.write_text(f'goldsets = ["{tiny_goldset}"]\n[[rungs]]\nname = "bm25"\nkind = "bm25"\n'
                    '[[rungs]]\nname = "bad"\nkind = "dense"\nencoder = { model = "foo bar/baz" }\n')
    one_line_error(bench("validate", str(path)), "rungs[1] ('bad').encoder.model", "'foo bar/baz'", "not a valid Hugging Face model id")


def test_a_model_that_cannot_be_resolved_skips_its_rungs_and_the_others_run(tmp_path, tiny_goldset, bow_backend):
    rungs = [BM25Rung(name="bm25"), dense("bad", "sentence-transformers", "foo bar/baz"), HybridRung(name="h", inputs=["bm25", "bad"])]
    with pytest.raises(LadderRefused, match="rung 'bad' cannot run: model 'foo bar/baz' is not a folder.*Fix the ladder; the other rungs' records are written") as refused:
        ladder_run([tiny_goldset], rungs, tmp_path)  # bad input: an error once the others ran (exit 2)
    outcomes = refused.value.outcomes
    assert [(o.record.rung.name, o.action) for o in outcomes] == [("bm25", "ran"), ("bad", "skipped"), ("h", "skipped")]
    assert "not a valid Hugging Face model id" in outcomes[1].record.reason
    assert "needs rung 'bad'" in outcomes[2].record.reason
    assert outcomes[0].record.metrics["ndcg@10"] > 0  # BM25's record is written


def test_a_model_that_fails_to_load_at_first_use_is_skipped_once_for_every_goldset(tmp_path, tiny_goldset, broken_backend):
    other = write_goldset(tmp_path / "other")
    (other / "goldset.toml").write_text('name = "other"\n')
    (other / "qrels" / "test.tsv").write_text("q1\td1\t1\nq2\td2\t1\n")  # other content, other name
    rungs = [BM25Rung(name="bm25"), dense("broken", "broken", "broken"), HybridRung(name="h", inputs=["bm25", "broken"])]
    outcomes = ladder_run([tiny_goldset, other], rungs, tmp_path)
    assert actions(outcomes) == [
        ("tiny", "bm25", "ran"), ("tiny", "broken", "skipped"), ("tiny", "h", "skipped"),
        ("other", "bm25", "ran"), ("other", "broken", "skipped"), ("other", "h", "skipped"),
    ]
    assert BrokenEncoder.loads == 1  # not retried on the second goldset
    assert "cannot be loaded" in outcomes[1].record.reason and "cannot be loaded" in outcomes[2].record.reason


def foreign_model(folder: Path) -> Path:
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "modules.json").write_text(json.dumps([{"idx": 0, "name": "0", "path": "", "type": "subprocess.Popen"}]))
    return folder


def test_a_model_folder_naming_foreign_code_is_one_error_naming_the_folder(tmp_path, tiny_goldset):
    from backends.sentence_transformers import resolve_model

    folder = foreign_model(tmp_path / "evil")
    with pytest.raises(ConfigError, match="evil': modules.json names 'subprocess.Popen'"):
        resolve_model(str(folder))
    path = tmp_path / "ladder.toml"
    path.write_text(f'goldsets = ["{tiny_goldset}"]\n[[rungs]]\nname = "evil"\nkind = "dense"\nencoder = {{ model = "{folder}" }}\n')
    one_line_error(bench("validate", str(path)), "rungs[0] ('evil').encoder.model", str(folder))


def test_a_model_folder_that_fails_to_load_is_unavailable_naming_the_folder(tmp_path):
    from backends.sentence_transformers import SentenceTransformerEncoder

    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "modules.json").write_text(json.dumps([{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}]))
    (folder / "config.json").write_text("{not json")
    with pytest.raises(ModelUnavailable, match=f"folder '{folder}'.*cannot be loaded"):
        SentenceTransformerEncoder(str(folder)).encode(["x"], input_type="query")


# -- 2. a corrupt stored run -------------------------------------------------------------------------------


def run_file(tmp_path: Path, rung: str) -> Path:
    return next((tmp_path / "lb/records/tiny/test").glob(f"{rung}.*.run.json.gz"))


def test_a_corrupt_stored_run_read_by_a_fusion_is_recomputed(tmp_path, tiny_goldset, bow_backend):
    first = ladder_run([tiny_goldset], [dense("bow"), BM25Rung(name="bm25")], tmp_path)
    run_file(tmp_path, "bm25").write_bytes(b"not gzip at all")
    record = next((tmp_path / "lb/records/tiny/test").glob("bow.*[0-9a-f].json"))
    record.write_text("{ truncated")
    outcomes = ladder_run([tiny_goldset], [dense("bow"), BM25Rung(name="bm25"), HybridRung(name="h", inputs=["bow", "bm25"])], tmp_path)
    assert [(o.record.rung.name, o.action) for o in outcomes] == [("bow", "ran"), ("bm25", "ran"), ("h", "ran")]
    assert outcomes[1].record.metrics == first[1].record.metrics
    assert gzip.decompress(run_file(tmp_path, "bm25").read_bytes())  # rewritten


def test_a_corrupt_run_whose_rung_cannot_rerun_skips_the_fusion_naming_the_file(tmp_path, tiny_goldset, broken_backend):
    BrokenEncoder.broken = False
    ladder_run([tiny_goldset], [dense("enc", "broken", "broken"), BM25Rung(name="bm25")], tmp_path)
    bad = run_file(tmp_path, "enc")
    bad.write_bytes(gzip.compress(b"")[:5])
    BrokenEncoder.broken = True
    rungs = [dense("enc", "broken", "broken"), BM25Rung(name="bm25"), HybridRung(name="h", inputs=["enc", "bm25"])]
    outcomes = ladder_run([tiny_goldset], rungs, tmp_path, cache="fresh")  # a fresh cache: the encoder is needed
    assert [(o.record.rung.name, o.action) for o in outcomes] == [("enc", "skipped"), ("bm25", "unchanged"), ("h", "skipped")]
    reason = outcomes[2].record.reason
    assert bad.name in reason and "cannot be read" in reason and "delete that file" in reason


def test_a_failed_record_write_is_one_line_and_leaves_no_temporary_file(tmp_path, tiny_goldset, bow_backend, monkeypatch):
    write = Path.write_bytes

    def disk_full(self, data):
        if ".tmp" not in self.name:
            return write(self, data)
        write(self, b"")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.chdir(tmp_path)
    write_ladder(tmp_path, tiny_goldset)
    monkeypatch.setattr(Path, "write_bytes", disk_full)
    result = bench("run", "--leaderboard", str(tmp_path / "lb"))
    monkeypatch.undo()
    one_line_error(result, "cannot write records", "No space left on device")
    assert not [p.name for p in (tmp_path / "lb").rglob("*.tmp*")]


# -- 3. validation gaps ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("extra", "key"), [
    ('metrics = ["ndcg@10", "recall@0"]\n', "key 'metrics[1]'"),
    ('metrics = ["ndcg@10", "mrr@0"]\n', "key 'metrics[1]'"),
    ('metrics = ["ndcg@10", "recall@\u00b2"]\n', "key 'metrics[1]'"),
    ('primary_metric = "mrr@10"\nmetrics = ["ndcg@10"]\n', "key 'primary_metric'"),
])
def test_metric_cutoffs_below_one_are_rejected_naming_the_key(tmp_path, tiny_goldset, extra, key):
    path = tmp_path / "ladder.toml"
    path.write_text(f'goldsets = ["{tiny_goldset}"]\n{extra}[[rungs]]\nname = "bm25"\nkind = "bm25"\n')
    one_line_error(bench("validate", str(path)), key)


def test_tune_metric_is_checked_too(tmp_path, tiny_goldset):
    path = tmp_path / "ladder.toml"
    path.write_text(f'goldsets = ["{tiny_goldset}"]\n[[rungs]]\nname = "a"\nkind = "bm25"\n[[rungs]]\nname = "b"\nkind = "bm25"\nk1 = 1.2\n'
                    '[[rungs]]\nname = "h"\nkind = "hybrid"\ninputs = ["a", "b"]\nmethod = "wsum"\ntune_on = "train"\ntune_metric = "mrr@0"\n')
    with pytest.raises(ConfigError, match=r"rungs\[2\]\.tune_metric.*at least 1"):
        load_ladder(path)


def test_a_grade_too_large_for_ranx_is_an_error_with_file_and_line(tmp_path):
    folder = write_goldset(tmp_path / "g")
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t99999999999999999999\n")
    result = bench("goldset", "validate", str(folder))
    assert result.exit_code == 2
    assert f"{folder / 'qrels' / 'test.tsv'}:3: relevance grade 99999999999999999999 is out of range" in result.output
    with pytest.raises(GoldsetError, match="out of range"):
        load_goldset(folder)


@pytest.mark.parametrize(("option", "message"), [
    ("concurrency = 0", "encoder.concurrency: must be a whole number >= 1, got 0"),
    ("max_retries = -1", "encoder.max_retries: must be a whole number >= 0, got -1"),
    ("timeout = 0", "encoder.timeout: must be a number of seconds > 0"),
    ('concurrency = "4"', "encoder.concurrency: must be a whole number >= 1, got '4'"),
])
def test_api_transport_options_are_range_checked_naming_rung_and_key(tmp_path, tiny_goldset, option, message):
    path = tmp_path / "ladder.toml"
    path.write_text(f'goldsets = ["{tiny_goldset}"]\n[[rungs]]\nname = "v"\nkind = "dense"\nencoder = {{ backend = "voyage", model = "voyage-3-large", {option} }}\n')
    one_line_error(bench("validate", str(path)), f"{path}: rungs[0] ('v').{message}")


# -- 4. hostile data, and failures that hid what happened ---------------------------------------------------


class FakeModel:
    """Stands in for a loaded SentenceTransformer: records the longest text it is handed."""

    max_seq_length = 8
    tokenizer = None
    device = type("Device", (), {"type": "cpu"})()
    longest = 0

    def encode(self, texts, **_):
        FakeModel.longest = max(FakeModel.longest, *(len(t) for t in texts))
        return np.ones((len(texts), 2), dtype=np.float32)


def test_an_overlong_text_is_cut_before_it_is_tokenised():
    from backends.sentence_transformers import CHARS_PER_TOKEN, SentenceTransformerEncoder

    encoder = SentenceTransformerEncoder("sentence-transformers/all-MiniLM-L6-v2")
    encoder.__dict__["model"] = FakeModel()  # the cached model: nothing is loaded
    vectors = encoder.encode(["bee " * 5_000_000, "short"], input_type="document")
    assert vectors.shape == (2, 2)
    assert FakeModel.longest == 8 * CHARS_PER_TOKEN


def test_goldsets_with_the_same_content_and_two_names_are_both_kept_with_a_warning(tmp_path, caplog):
    first = write_goldset(tmp_path / "alpha")
    second = write_goldset(tmp_path / "beta")
    with caplog.at_level(logging.WARNING, logger="harness.ladder.plan"):
        targets = plan_targets([str(first), str(second)])
    assert [t.goldset.name for t in targets] == ["alpha", "beta"]
    assert "'alpha' and 'beta' have identical content" in caplog.text
    assert len(plan_targets([str(first), str(first)])) == 1  # the same goldset twice is one


def test_two_goldsets_with_one_name_and_different_content_are_an_error(tmp_path):
    first = write_goldset(tmp_path / "a" / "support")
    second = write_goldset(tmp_path / "b" / "support", qrels={"test": {"q1": {"d1": 1}}})
    with pytest.raises(GoldsetError, match="two different goldsets are named 'support'"):
        plan_targets([str(first), str(second)])


# -- 5. the next person trying to break it ------------------------------------------------------------------


def test_a_query_bm25_finds_nothing_for_does_not_break_fusion_latency(tmp_path, bow_backend):
    queries = {"q1": "oxalic acid varroa mites", "q2": "the of", "q3": "honey extractor"}
    qrels = {"test": {"q1": {"d1": 1}, "q2": {"d2": 1}, "q3": {"d3": 1}}}
    folder = write_goldset(tmp_path / "tiny", queries=queries, qrels=qrels)
    rungs = [dense("bow"), BM25Rung(name="bm25"), HybridRung(name="h", inputs=["bow", "bm25"])]
    outcomes = ladder_run([folder], rungs, tmp_path)
    assert [o.action for o in outcomes] == ["ran", "ran", "ran"]
    assert outcomes[2].record.latency.n == 3
    assert outcomes[2].record.per_query["q1"]["recall@1"] == 1.0


def test_a_ladder_that_cannot_run_on_this_machine_is_an_error(tmp_path, tiny_goldset, monkeypatch):
    monkeypatch.delenv("COHERE_API_KEY", raising=False)
    path = tmp_path / "ladder.toml"
    path.write_text(f'goldsets = ["{tiny_goldset}"]\n[[rungs]]\nname = "paid"\nkind = "dense"\nencoder = {{ backend = "cohere", model = "embed-v4.0" }}\n')
    assert_one_line_error(bench("run", "-l", str(path), "--leaderboard", str(tmp_path / "lb")), "no rung could run here (paid skipped: Cohere needs an API key", "nothing was measured")


def test_a_ladder_whose_every_rung_is_skipped_is_an_error(tmp_path, tiny_goldset, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "ladder.toml"
    path.write_text(f'goldsets = ["{tiny_goldset}"]\n[[rungs]]\nname = "gone"\nkind = "dense"\nencoder = {{ model = "./no-such-model" }}\n')
    assert bench("validate", str(path)).exit_code == 0  # the folder may appear before the run
    result = bench("run", "-l", str(path), "--leaderboard", str(tmp_path / "lb"))
    assert result.exit_code == 2, result.output
    assert result.output.strip() == (
        "error: rung 'gone' cannot run: model folder './no-such-model' does not exist; give an existing folder or a Hugging Face model id such as "
        "sentence-transformers/all-MiniLM-L6-v2. Fix the ladder; nothing was measured"
    )
