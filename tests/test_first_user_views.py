"""The views a first user with their own documents reads: rows and charts in ladder order, one
section per evaluation split (tuning splits after, without plots), each out-of-domain companion
once, skipped rungs listed but not charted, no cost plot when everything is free, labels that do not
collide, and a report that names the baseline once."""

from __future__ import annotations

import random
import re

import pytest

from harness.decide.views import leaderboard_html, leaderboard_markdown, panel_figures, panels
from harness.records import Latency
from record_factory import GOLDEN, read_record

# (rung, kind, nDCG@10, p50 ms, config extras) in ladder order, as a first user's ladder lists them
LADDER = [
    ("baseline", "dense", 0.52, 7.0, {}),
    ("finetune-r0", "finetune", 0.61, 7.2, {}),
    ("bm25", "bm25", 0.55, 0.4, {}),
    ("bm25>minilm", "rerank", 0.60, 7.6, {"first_stage": "bm25"}),
    ("hybrid", "hybrid", 0.605, 7.7, {"inputs": ["bm25", "baseline"], "method": "rrf"}),
    ("hybrid-tuned", "hybrid", 0.63, 7.9, {"inputs": ["bm25", "baseline"], "method": "wsum", "tune_on": "dev"}),
    ("voyage-3-large", "dense", None, None, {}),
]


def record(rung: str, kind: str, score: float | None, p50: float | None, extras: dict, *, goldset="docs", split="test", ood_of=None, at=0):
    """A record of ``rung`` scoring ``score`` on 40 queries (None: skipped, no key)."""
    golden = read_record(GOLDEN)
    rng = random.Random(f"{rung}{goldset}{split}")
    per_query = {f"q{i}": {"ndcg@10": min(1.0, max(0.0, rng.gauss(score or 0, 0.2))), "recall@10": 0.9} for i in range(40)}
    ok = score is not None
    return golden.model_copy(update={
        "status": "ok" if ok else "skipped", "reason": None if ok else "Voyage needs an API key: set VOYAGE_API_KEY (the rung is skipped without it)",
        "created_at": f"2026-12-01T10:{at // 60:02d}:{at % 60:02d}+00:00",
        "goldset": golden.goldset.model_copy(update={"name": goldset, "split": split, "ood_of": ood_of, "n_queries": 40}),
        "rung": golden.rung.model_copy(update={"name": rung, "kind": kind, "config": {"kind": kind, "name": rung, **extras}}),
        "metrics": {"ndcg@10": score, "recall@10": 0.9, "recall@100": 0.97, "mrr@10": score} if ok else {},
        "per_query": per_query if ok else {}, "subsets": {}, "details": {},
        "latency": Latency(n=40, p50_ms=p50, p95_ms=p50 * 1.3, per_query_ms={}) if ok else None,
        "cost": golden.cost.model_copy(update={"usd": 0.0 if ok else None}),
    })


def first_user_records(order: list[int] | None = None) -> list:
    """docs/test with a companion docs-ood/test, and the dev records written while tuning hybrid-tuned;
    ``order`` gives the order the rungs were last written in (``--overwrite -r``), as ``latest()`` sorts them."""
    order = order or list(range(len(LADDER)))
    out = []
    for goldset, split, ood_of in [("docs", "test", None), ("docs", "dev", None), ("docs-ood", "test", "docs")]:
        rungs = LADDER if split == "test" else LADDER[:3]
        out += [record(*rungs[i], goldset=goldset, split=split, ood_of=ood_of, at=t) for t, i in enumerate(order) if i < len(rungs)]
    return out


NAMES = [name for name, *_ in LADDER]
RERUN_LAST = [2, 3, 4, 5, 6, 0, 1]  # `bench run --overwrite -r baseline -r finetune-r0`: those two written last


def test_rows_follow_the_ladder_not_the_order_records_were_written():
    records = first_user_records(RERUN_LAST)
    [test, dev] = panels(records, NAMES)
    assert [r.rung.name for r in test.records] == NAMES
    assert [r.rung.name for r in test.companions["docs-ood (test)"]] == NAMES
    ladder_svg = panel_figures(test)[0][2]
    drawn = [name for name in NAMES[:-1] if name in ladder_svg]
    assert sorted(drawn, key=ladder_svg.index) == drawn  # tick labels in ladder order, top down
    # without the ladder: first appearance, each rung after what it builds on, the same in every section
    [test, dev] = panels(records)
    order = [r.rung.name for r in test.records]
    assert order.index("hybrid") > order.index("baseline") and order.index("bm25>minilm") > order.index("bm25")
    assert [r.rung.name for r in dev.records] == [n for n in order if n in {"baseline", "finetune-r0", "bm25"}]


def test_tuning_split_comes_after_the_evaluation_split_without_plots():
    records = first_user_records()
    [test, dev] = panels(records, NAMES)
    assert (test.split, test.evaluation, dev.split, dev.evaluation) == ("test", True, "dev", False)
    page = leaderboard_html(records, NAMES)
    assert page.index("<h2>docs / test</h2>") < page.index("<h2>docs / dev (tuning split)</h2>")
    assert 'data-plot="ladder"' not in page[page.index("docs / dev (tuning split)"):]
    assert "## docs / dev (tuning split)" in leaderboard_markdown(records, NAMES)


def test_each_ood_companion_is_shown_once():
    markdown = leaderboard_markdown(first_user_records(), NAMES)
    assert markdown.count("| docs-ood (ood) | test | bm25 |") == 1
    assert markdown.index("| docs-ood (ood) | test | bm25 |") < markdown.index("## docs / dev")


def test_skipped_rungs_are_listed_but_not_charted():
    records = first_user_records()
    [test, _] = panels(records, NAMES)
    figures = {name: svg for name, _, svg in panel_figures(test)}
    assert "voyage-3-large" not in figures["ladder"] and "skipped" not in figures["ladder"]
    markdown = leaderboard_markdown(records, NAMES)
    assert "| docs | test | voyage-3-large |" in markdown and "- skipped voyage-3-large: Voyage needs an API key" in markdown


def test_no_cost_plot_when_everything_is_free():
    [test, _] = panels(first_user_records(), NAMES)
    cost = [(caption, svg) for name, caption, svg in panel_figures(test) if name == "cost"]
    assert cost == [(cost[0][0], "")] and cost[0][0].startswith("All free")
    assert '<p class="note" data-note="cost">All free' in leaderboard_html(first_user_records(), NAMES)


def test_a_paid_rung_keeps_the_cost_plot():
    records = first_user_records()
    records[0] = records[0].model_copy(update={"cost": records[0].cost.model_copy(update={"usd": 0.12})})
    [test, _] = panels(records, NAMES)
    assert any(name == "cost" and svg.startswith("<svg") for name, _, svg in panel_figures(test))


def test_point_labels_do_not_overlap_and_stay_inside():
    from harness.decide.plots import LABEL_PT, label_offsets

    names = ["baseline", "finetune-r0", "hybrid", "bm25>minilm", "bm25"]
    points = [(300.0, 100.0), (301.0, 101.0), (302.0, 102.0), (303.0, 100.5), (20.0, 50.0)]  # four nearly on top of each other
    offsets = label_offsets(points, names, right_edge=320.0)
    boxes = []
    for (x, y), name, (dx, dy, ha) in zip(points, names, offsets):
        width = 0.6 * LABEL_PT * len(name)
        left = x + dx if ha == "left" else x + dx - width
        boxes.append((left, left + width, y + dy))
        assert left + width <= 320.0  # not clipped at the right edge
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert not (a[0] < b[1] and b[0] < a[1] and abs(a[2] - b[2]) < LABEL_PT), (a, b)


def test_the_tradeoff_legend_sits_above_the_points():
    [test, _] = panels(first_user_records(), NAMES)
    svg = dict((n, s) for n, _, s in panel_figures(test))["latency"]
    legend_y = float(re.search(r'<g id="legend_1">.*?<use [^>]*y="([\d.]+)"', svg, re.S).group(1))
    points = re.search(r'<g id="PathCollection_1">(.*?)</g>\s*</g>', svg, re.S).group(1)
    point_ys = [float(y) for y in re.findall(r'y="([\d.]+)"', points)]
    assert legend_y < min(point_ys)  # SVG y grows downwards


def test_the_run_table_names_its_status_column():
    from harness.decide.views import _table

    table = _table(first_user_records()[:2], "run", ["new", "unchanged"])
    assert [c.header for c in table.columns][-1] == "status"


@pytest.mark.parametrize(("name", "expected"), [("baseline", "the baseline: recall@10"), ("minilm", "the baseline, minilm: recall@10")])
def test_the_report_names_the_baseline_once(name, expected):
    from harness.decide.report import _bar_line
    from harness.ladder.schema import Decision

    base = record(name, "dense", 0.5, 7.0, {})
    assert _bar_line(base, Decision()).startswith(expected)
