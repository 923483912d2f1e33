"""The go/no-go report: each decision branch on records with chosen per-query scores, pitfalls, the CLI."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from harness.cli import main
from harness.decide.report import build_report, is_finetuned
from harness.errors import ConfigError
from harness.ladder.schema import Ladder, load_ladder
from harness.records import RunRecord, subset
from record_factory import scored_record

QIDS = [f"q{i:03d}" for i in range(60)]
BASE = [0.5 + 0.05 * (i % 5) for i in range(len(QIDS))]  # per-query nDCG@10 of the baseline, 0.5 to 0.7
WIGGLE = [(-1) ** i for i in range(len(QIDS))]


def record(rung: str, ndcg: list[float], *, recall: float = 0.7, kind: str = "dense", goldset: str = "tiny", ood_of: str | None = None, details: dict | None = None) -> RunRecord:
    """A record of ``rung`` scoring ``ndcg[i]`` on query i (and ``recall`` on every query)."""
    base = scored_record(dict(zip(QIDS, ndcg)), rung=rung, split_fingerprint=f"fp-{goldset}")
    per_query = {q: {"ndcg@10": s, "recall@10": recall} for q, s in zip(QIDS, ndcg)}
    metrics = {"ndcg@10": sum(ndcg) / len(ndcg), "recall@10": recall}
    return base.model_copy(update={
        "goldset": base.goldset.model_copy(update={"name": goldset, "ood_of": ood_of, "source": "/nonexistent"}),
        "rung": base.rung.model_copy(update={"kind": kind}), "per_query": per_query, "metrics": metrics, "details": details or {},
    })


def ladder(**decision) -> Ladder:
    return Ladder.model_validate({"metrics": ["ndcg@10", "recall@10"], "rungs": [{"name": "baseline", "kind": "bm25"}, {"name": "bm25", "kind": "bm25"}], "decision": decision})


def cheaper() -> list[RunRecord]:
    """The baseline (below the 0.80 recall bar) and BM25 (five points better, meets the bar)."""
    return [record("baseline", BASE), record("bm25", [b + 0.05 for b in BASE], recall=0.85)]


def ood(finetuned_delta: float) -> list[RunRecord]:
    """Baseline and the fine-tuned round on an out-of-domain companion."""
    flat = [0.6 + 0.01 * w for w in WIGGLE]
    return [record("baseline", flat, goldset="far", ood_of="tiny"), record("ft-r1", [s + finetuned_delta for s in flat], goldset="far", ood_of="tiny")]


def finetuned(delta: float, spread: float, name: str = "ft-r1", **kw) -> RunRecord:
    """A fine-tuned round: BM25's scores + ``delta``, +-``spread`` alternating per query."""
    return record(name, [b + 0.05 + delta + spread * w for b, w in zip(BASE, WIGGLE)], recall=0.9, **kw)


def test_go_when_finetuning_beats_the_best_cheaper_rung_by_the_margin():
    report = build_report([*cheaper(), finetuned(0.05, 0.01), *ood(0.0)], ladder())
    assert report.verdict == "GO"
    assert "recall@10 0.700" in report.reasons[0] and "is below the bar of 0.80" in report.reasons[0]
    assert "ft-r1 +0.050 ndcg@10 over bm25" in report.reasons[1]
    steps = report.sections[0].table[1]
    assert [row[0] for row in steps] == ["baseline", "bm25"] and steps[1][3] == "+0.050" and steps[1][6] == "yes"
    assert report.sections[0].table[0][4] == "95% CI of delta (unadjusted)"  # beside a Holm-adjusted p: a reader must not mix them
    assert "bm25 (dense): recall@10 0.850" in report.sections[2].lines[0]  # cheapest over the bar: not the fine-tuned round
    assert not any("out-of-domain" in p for p in report.pitfalls)


def test_no_go_when_finetuning_loses_out_of_domain():
    report = build_report([*cheaper(), finetuned(0.05, 0.01), *ood(-0.05)], ladder())
    assert report.verdict == "NO-GO"
    assert "loses 0.050 ndcg@10 out of domain on far" in report.reasons[1]


def test_no_go_when_a_cheaper_rung_is_as_good():
    report = build_report([*cheaper(), finetuned(0.0, 0.002), *ood(0.0)], ladder())
    assert report.sections[1].table[1][0][8] == "no"  # not significant: the interval decides
    assert report.verdict == "NO-GO"
    assert "the interval excludes a gain of the margin 0.01; bm25 is as good" in report.reasons[1]


def test_no_go_when_the_gain_is_real_but_below_the_margin():
    report = build_report([*cheaper(), finetuned(0.004, 0.001), *ood(0.0)], ladder())
    assert report.verdict == "NO-GO"
    assert "below the margin 0.01" in report.reasons[1]


def test_margin_comes_from_the_ladder_file():
    evidence = [*cheaper(), finetuned(0.05, 0.01), *ood(0.0)]
    assert build_report(evidence, ladder(finetune_margin=0.1)).verdict == "NO-GO"


def test_not_yet_without_finetuning():
    report = build_report(cheaper(), ladder())
    assert report.verdict == "NOT YET" and "fine-tuning has not been run" in report.reasons[1]
    assert any("no out-of-domain set" in p for p in report.pitfalls)


def test_not_yet_when_too_few_queries_to_tell():
    report = build_report([*cheaper(), finetuned(0.02, 0.25), *ood(0.0)], ladder())
    assert report.verdict == "NOT YET"
    assert "too few queries to decide: with 60 of them" in report.reasons[1]
    assert any(p.startswith("too few queries to tell: the minimum detectable difference is") for p in report.pitfalls)


def test_pitfalls_leakage_easy_negatives_and_small_goldsets():
    leaky = finetuned(0.05, 0.01, name="ft-r0", kind="finetune", details={"round": 0, "leakage": 3, "overlap": 5, "pairs": 40})
    report = build_report([*cheaper(), leaky], ladder(min_queries=100))
    pitfalls = "\n".join(report.pitfalls)
    assert "ft-r0: 3 evaluation queries are repeated in its training data" in pitfalls
    assert "only in-batch (easy) negatives" in pitfalls
    assert "only 60 evaluation queries (fewer than 100)" in pitfalls
    assert "where the evaluation queries came from is not recorded" in pitfalls
    rounds = report.sections[1].table
    assert rounds[1][0][:4] == ["ft-r0", "all queries", "60", "bm25"] and rounds[1][0][-3:] == ["40", "3", "5"]
    mined = build_report([*cheaper(), leaky, finetuned(0.05, 0.01, name="ft-r1")], ladder())
    assert not any("easy" in p for p in mined.pitfalls)


@pytest.mark.parametrize(("origin", "fragment"), [("synthetic", "the evaluation queries are written by an LLM"), ("structure", "headings and titles"), ("human", None)])
def test_pitfall_names_who_wrote_the_evaluation_queries(tmp_path, origin, fragment):
    (tmp_path / "goldset.toml").write_text(f'query_origin = "{origin}"\n')
    records = [r.model_copy(update={"goldset": r.goldset.model_copy(update={"source": str(tmp_path)})}) for r in [*cheaper(), finetuned(0.05, 0.01)]]
    pitfalls = "\n".join(build_report(records, ladder()).pitfalls)
    assert "where the evaluation queries came from is not recorded" not in pitfalls
    assert (fragment in pitfalls) if fragment else "the evaluation queries are" not in pitfalls


def test_holm_corrects_over_the_rounds_compared():
    one = build_report([*cheaper(), finetuned(0.01, 0.03)], ladder())
    two = build_report([*cheaper(), finetuned(0.01, 0.03), finetuned(0.0, 0.03, name="ft-r2")], ladder())
    p_one, p_two = (float(r.sections[1].table[1][0][7]) for r in (one, two))
    assert p_two > p_one


def test_finetuned_rounds_are_recognised_by_kind_or_name():
    assert is_finetuned(record("finetune-r0", BASE)) and is_finetuned(record("anything", BASE, kind="finetune"))
    assert not is_finetuned(record("hybrid-tuned", BASE)) and not is_finetuned(record("bm25-rerank", BASE))


def test_markdown_and_html_render_the_same_decision():
    report = build_report([*cheaper(), finetuned(0.05, 0.01), *ood(0.0)], ladder())
    markdown, page = report.markdown(), report.html()
    assert "**Decision: GO**" in markdown and "## Pitfalls" in markdown and "| bm25 | dense |" in markdown
    assert '<p class="verdict GO">' in page and 'data-plot="ladder"' in page and 'data-plot="ood"' in page
    assert page == build_report([*cheaper(), finetuned(0.05, 0.01), *ood(0.0)], ladder()).html()  # deterministic


def test_decision_table_rejects_unknown_keys(tmp_path):
    path = tmp_path / "ladder.toml"
    path.write_text('[[rungs]]\nname = "bm25"\nkind = "bm25"\n\n[decision]\nrecal_bar = 0.9\n')
    with pytest.raises(ConfigError, match="recal_bar"):
        load_ladder(path)


def test_bench_report_on_real_records(views_leaderboard, tmp_path):
    ladder_file = str(tmp_path / "ladder.toml")
    result = CliRunner().invoke(main, ["report", "-l", ladder_file, "--leaderboard", str(views_leaderboard)])
    assert result.exit_code == 0, result.output
    assert "**Decision: NOT YET**" in result.output and "| hybrid | hybrid |" in result.output
    assert "only 4 evaluation queries (fewer than 50)" in result.output
    out = tmp_path / "report.html"
    result = CliRunner().invoke(main, ["report", "-l", ladder_file, "--leaderboard", str(views_leaderboard), "--format", "html", "-o", str(out)])
    assert result.exit_code == 0 and result.output.startswith("NOT YET: report written to")
    assert 'data-plot="ood"' in out.read_text()


@pytest.mark.parametrize("args, fragment", [(["-g", "nope"], "no records of goldset 'nope'"), (["-s", "dev"], "no records of split 'dev'")])
def test_bench_report_misuse_is_one_line(views_leaderboard, tmp_path, args, fragment):
    result = CliRunner().invoke(main, ["report", "-l", str(tmp_path / "ladder.toml"), "--leaderboard", str(views_leaderboard), *args])
    assert result.exit_code == 2 and result.output.startswith("error: ") and fragment in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1


def test_a_model_folder_with_a_tunebench_card_is_a_finetuned_round(tmp_path):
    model = tmp_path / "models/job/r0/model"
    model.mkdir(parents=True)
    (model / "tunebench.json").write_text('{"round": 0, "leakage": {"query_leaks": 5, "overlap": 2}, "pairs": 12, "config": {"on_leakage": "allow"}}')
    ran = finetuned(0.05, 0.01, name="dense:model")
    ran = ran.model_copy(update={"rung": ran.rung.model_copy(update={"config": {"kind": "dense", "encoder": {"model": str(model)}}})})
    assert is_finetuned(ran)
    report = build_report([*cheaper(), ran], ladder())
    assert report.verdict == "GO" and report.sections[1].table[1][0][0] == "dense:model"
    assert any("dense:model: 5 evaluation queries are repeated in its training data (on_leakage = allow)" in p for p in report.pitfalls)


def test_an_adapter_rung_counts_as_fine_tuning_with_its_leakage():
    adapter = finetuned(0.05, 0.01, name="voyage+adapter", kind="adapter", details={"leakage": 3, "overlap": 0, "on_leakage": "allow", "pairs": 40})
    assert is_finetuned(adapter)
    report = build_report([*cheaper(), adapter, *ood(0.0)], ladder())
    assert report.verdict == "GO" and "voyage+adapter +0.050 ndcg@10 over bm25" in report.reasons[1]
    assert any("voyage+adapter: 3 evaluation queries are repeated in its training data (on_leakage = allow)" in p for p in report.pitfalls)
    assert not any("in-batch (easy) negatives" in p for p in report.pitfalls)  # an adapter mines its own hard negatives


@pytest.mark.parametrize(("r1_dev", "said"), [(0.70, True), (0.74, False)])
def test_the_report_says_when_mining_did_not_beat_round_0_on_dev(tmp_path, r1_dev, said):
    rounds = []
    for i, dev in enumerate([0.72, r1_dev]):
        model = tmp_path / f"models/ft/r{i}/model"
        model.mkdir(parents=True)
        (model / "tunebench.json").write_text(f'{{"round": {i}, "best_dev_metric": {dev}}}')
        rounds.append(finetuned(0.05, 0.01, name=f"ft-r{i}", kind="finetune", details={"round": i, "model": str(model), "leakage": 0, "pairs": 40}))
    report = build_report([*cheaper(), *rounds], ladder())
    found = [p for p in report.pitfalls if "mining did not beat" in p]
    assert found == (["ft-r1: mining did not beat ft-r0 on dev (0.700 against 0.720): the mined negatives have not earned their cost here"] if said else [])


def test_the_report_says_when_a_mining_round_kept_its_start(tmp_path):
    """A round that stopped early and kept round 0's weights carries round 0's dev score; the report
    quotes the best its own training reached and says whose weights it keeps."""
    cards = ['{"round": 0, "best_dev_metric": 0.72}', '{"round": 1, "best_dev_metric": 0.72, "trained_dev_metric": 0.69, "kept_start": true}']
    rounds = []
    for i, card in enumerate(cards):
        model = tmp_path / f"models/ft/r{i}/model"
        model.mkdir(parents=True)
        (model / "tunebench.json").write_text(card)
        rounds.append(finetuned(0.05, 0.01, name=f"ft-r{i}", kind="finetune", details={"round": i, "model": str(model), "leakage": 0, "pairs": 40}))
    found = [p for p in build_report([*cheaper(), *rounds], ladder()).pitfalls if "mining did not beat" in p]
    assert found == ["ft-r1: mining did not beat ft-r0 on dev (0.690 against 0.720); it stopped early and keeps ft-r0's weights: "
                     "the mined negatives have not earned their cost here"]


# ---- seen and unseen documents, and the corpus scenario ---------------------------------------------

SEEN, UNSEEN = QIDS[:40], QIDS[40:]


def split_gain(seen_gain: float, unseen_gain: float, *, seen: list[str] = SEEN, name: str = "ft-r0") -> RunRecord:
    """A fine-tuned round gaining ``seen_gain`` over BM25 on the queries about documents it trained on
    and ``unseen_gain`` on the others (+-0.01 per query), with both subsets recorded."""
    gains = [(seen_gain if q in seen else unseen_gain) + 0.01 * w for q, w in zip(QIDS, WIGGLE)]
    ran = record(name, [b + 0.05 + g for b, g in zip(BASE, gains)], recall=0.9, kind="finetune", details={"round": 0, "pairs": 40, "leakage": 0, "overlap": len(seen)})
    unseen = [q for q in QIDS if q not in seen]
    return ran.model_copy(update={"subsets": {"seen": subset(ran.per_query, seen), "unseen": subset(ran.per_query, unseen)}})


def scenario(tmp_path, corpus: str, records: list[RunRecord]) -> list[RunRecord]:
    (tmp_path / "goldset.toml").write_text(f'corpus = "{corpus}"\nquery_origin = "human"\n')
    return [r.model_copy(update={"goldset": r.goldset.model_copy(update={"source": str(tmp_path)})}) if r.goldset.ood_of is None else r for r in records]


def test_a_fixed_corpus_decides_on_all_queries_and_shows_seen_and_unseen(tmp_path):
    report = build_report(scenario(tmp_path, "fixed", [*cheaper(), split_gain(0.10, 0.0), *ood(0.0)]), ladder())
    assert report.verdict == "GO" and "ft-r0 +0.067 ndcg@10 over bm25 (95% CI" in report.reasons[1]
    assert "corpus = fixed: the verdict rests on all 60 queries" in report.reasons[2] and "ft-r0 40 seen / 20 unseen" in report.reasons[2]
    table = report.sections[1].table[1]
    assert [row[:3] for row in table] == [["ft-r0", "all queries", "60"], ["ft-r0", "seen documents", "40"], ["ft-r0", "unseen documents", "20"]]
    assert [row[3:6] for row in table] == [["bm25", "0.717", "+0.067"], ["bm25", "0.750", "+0.100"], ["bm25", "0.650", "+0.000"]]  # paired on the same queries
    assert table[2][8] == "no" and table[1][8] == "yes"


def test_a_growing_corpus_decides_on_unseen_documents(tmp_path):
    report = build_report(scenario(tmp_path, "growing", [*cheaper(), split_gain(0.10, 0.0), *ood(0.0)]), ladder())
    assert report.verdict == "NO-GO"
    assert "ft-r0 +0.000 ndcg@10 over bm25 on the 20 queries about unseen documents" in report.reasons[1]
    assert "corpus = growing: the verdict rests on the queries about documents the fine-tuned model never trained on; queries about seen and unseen documents: ft-r0 40 seen / 20 unseen" in report.reasons[2]
    assert "| ft-r0 | unseen documents | 20 |" in report.markdown()


def test_a_growing_corpus_with_generalising_gains_is_a_go(tmp_path):
    assert build_report(scenario(tmp_path, "growing", [*cheaper(), split_gain(0.10, 0.06), *ood(0.0)]), ladder()).verdict == "GO"
    assert build_report(scenario(tmp_path, "growing", [*cheaper(), split_gain(0.10, 0.0)]), ladder(), corpus="fixed").verdict == "GO"  # bench report --corpus


def test_too_few_unseen_queries_to_decide_says_so(tmp_path):
    noisy = split_gain(0.10, 0.03, seen=QIDS[:56])  # 4 unseen queries
    noisy = noisy.model_copy(update={"per_query": {q: {**s, "ndcg@10": s["ndcg@10"] + (0.2 * (-1) ** i if q in QIDS[56:] else 0)} for i, (q, s) in enumerate(noisy.per_query.items())}})
    report = build_report(scenario(tmp_path, "growing", [*cheaper(), noisy, *ood(0.0)]), ladder())
    assert report.verdict == "NOT YET" and "too few queries about unseen documents to decide: with 4 of them only differences of" in report.reasons[1]


def test_a_growing_corpus_without_unseen_queries_is_not_yet(tmp_path):
    everything = split_gain(0.10, 0.0, seen=QIDS)
    report = build_report(scenario(tmp_path, "growing", [*cheaper(), everything, *ood(0.0)]), ladder())
    assert report.verdict == "NOT YET" and "trained on a relevant document of every evaluation query (hold out documents" in report.reasons[1]
    old = finetuned(0.05, 0.01, name="ft-r0", kind="finetune")  # a record from before subsets
    report = build_report(scenario(tmp_path, "growing", [*cheaper(), old]), ladder())
    assert report.verdict == "NOT YET" and "do not say which queries those are" in report.reasons[1]
    assert any("ft-r0: its record does not say which queries are about documents it trained on" in p for p in report.pitfalls)


def test_dropping_overlapping_documents_is_a_pitfall_for_a_fixed_corpus_only(tmp_path):
    dropped = finetuned(0.05, 0.01, name="ft-r0", kind="finetune", details={"round": 0, "leakage": 0, "overlap": 12, "on_overlap": "drop"})
    said = "ft-r0: trained without 12 documents that evaluation queries are judged on (on_overlap = drop)"
    assert any(said in p for p in build_report([*cheaper(), dropped], ladder()).pitfalls)
    assert not any(said in p for p in build_report([*cheaper(), dropped], ladder(), corpus="growing").pitfalls)  # new documents: dropping is right


def test_records_from_before_the_split_show_one_combined_count_not_repeated_queries():
    old = finetuned(0.05, 0.01, name="ft-r0", kind="finetune", details={"round": 0, "leakage": 183, "on_leakage": "allow", "pairs": 919})
    report = build_report([*cheaper(), old], ladder())
    pitfalls = "\n".join(report.pitfalls)
    assert "ft-r0: 183 repeated evaluation queries and evaluation-judged documents together" in pitfalls and "183 evaluation queries are repeated" not in pitfalls
    assert "which queries are about documents it trained on is not recorded" in report.reasons[2]
    assert report.sections[1].table[1][0][-2:] == ["?", "?"]


def test_the_best_cheaper_rung_is_chosen_on_the_same_queries(tmp_path):
    """On the unseen-document queries a cheaper rung that is weaker overall may be the stronger one:
    the fine-tuned round is compared with that one there."""
    strong_on_unseen = record("hybrid", [b + (0.02 if q in SEEN else 0.09) for q, b in zip(QIDS, BASE)], recall=0.85)
    report = build_report(scenario(tmp_path, "growing", [*cheaper(), strong_on_unseen, split_gain(0.10, 0.06)]), ladder())
    table = {row[1]: row for row in report.sections[1].table[1]}
    assert table["all queries"][3] == "bm25" and table["unseen documents"][3] == "hybrid"
    assert report.verdict == "GO" and "over hybrid on the 20 queries about unseen documents" in report.reasons[1]


def test_bench_report_corpus_flag(views_leaderboard, tmp_path):
    result = CliRunner().invoke(main, ["report", "-l", str(tmp_path / "ladder.toml"), "--leaderboard", str(views_leaderboard), "--corpus", "growing"])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(main, ["report", "-l", str(tmp_path / "ladder.toml"), "--leaderboard", str(views_leaderboard), "--corpus", "shrinking"])
    assert result.exit_code == 2 and "'shrinking' is not one of 'fixed', 'growing'" in result.output


def test_without_the_ladders_baseline_the_reference_is_the_first_untrained_rung():
    """``bench train`` alone records ``<job>-base`` and its rounds: the base model is the reference, not a round."""
    records = [finetuned(0.05, 0.01, name="ft-r0"), record("ft-base", BASE)]
    report = build_report(records, ladder())
    assert report.sections[0].table[1][0][0] == "ft-base"
    assert "ft-r0 +0.100 ndcg@10 over ft-base" in report.reasons[1]


def _timed(r: RunRecord, load: float, created_at: str, **config) -> RunRecord:
    latency = {"n": 3, "p50_ms": 10.0, "p95_ms": 12.0, "per_query_ms": {}, "load": load}
    rung = r.rung.model_copy(update={"config": config})  # only what the test sets: a pipeline's inputs
    return r.model_copy(update={"latency": r.latency.model_validate(latency) if r.latency else None, "rung": rung, "created_at": created_at})


def test_latencies_timed_on_a_busy_machine_or_from_a_stale_input_are_pitfalls():
    from harness.decide.report import latency_pitfalls
    from harness.records import Latency

    base, bm25 = cheaper()
    base = base.model_copy(update={"latency": Latency(n=1, p50_ms=1, p95_ms=1, per_query_ms={})})
    bm25 = bm25.model_copy(update={"latency": Latency(n=1, p50_ms=1, p95_ms=1, per_query_ms={})})
    quiet = [_timed(base, 0.4, "2026-12-06T10:00:00"), _timed(bm25, 0.6, "2026-12-06T10:00:01")]
    assert latency_pitfalls(quiet) == []
    busy = [_timed(base, 2.1, "2026-12-06T10:00:00"), _timed(bm25, 0.6, "2026-12-06T10:00:01")]
    assert latency_pitfalls(busy) == [
        "the latencies of baseline were timed while other work shared the cores (load up to 2.1 per core): compare latencies after re-running on a quiet machine (bench run --overwrite)"
    ]
    hybrid = _timed(bm25.model_copy(update={"rung": bm25.rung.model_copy(update={"name": "hybrid", "kind": "hybrid"})}), 0.5, "2026-12-06T10:00:02", inputs=["bm25", "baseline"])
    rerun = _timed(base, 0.5, "2026-12-06T11:00:00")  # baseline re-run (--overwrite) after the hybrid was timed
    assert latency_pitfalls([rerun, quiet[1], hybrid]) == ["hybrid's latency adds the query time of an earlier run of baseline, re-run since: re-run it too (bench run -r hybrid --overwrite)"]
