"""Views of records: Markdown, CSV and a self-contained HTML page with plots, byte-identical on regeneration."""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path

import pandas as pd
from click.testing import CliRunner

from harness.cli import main
from harness.decide.plots import pareto_front
from harness.decide.views import VIEW_FILES, leaderboard_html, leaderboard_markdown, panels, records_frame, write_views
from harness.records import Leaderboard, read_record

DATA = Path(__file__).parent / "data"


def test_views_show_every_rung_the_ood_companion_and_skips(views_leaderboard):
    records = Leaderboard(views_leaderboard).latest()
    [panel] = panels(records)
    assert (panel.goldset, panel.split) == ("tiny", "test")
    assert [r.rung.name for r in panel.records] == ["baseline", "bm25", "hybrid", "voyage"]
    assert list(panel.companions) == ["ood (test)"]
    markdown = leaderboard_markdown(records)
    assert "## tiny / test" in markdown
    voyage = next(line for line in markdown.splitlines() if line.startswith("| tiny | test | voyage"))
    assert voyage.endswith("| skipped |") and "| - |" in voyage
    assert "- skipped voyage: Voyage needs an API key" in markdown
    baseline = next(line for line in markdown.splitlines() if line.startswith("| tiny | test | baseline"))
    assert "| 1.000 |" in baseline and "| 1.000-1.000 | ok |" in baseline  # every query at rank 1: a zero-width interval


def test_csv_is_one_row_per_record_with_every_metric(views_leaderboard):
    records = Leaderboard(views_leaderboard).latest()
    write_views(records, views_leaderboard)
    frame = pd.read_csv(views_leaderboard / "leaderboard.csv")
    assert len(frame) == len(records) == 8  # 4 rungs x (tiny, ood)
    bm25 = frame[(frame.goldset == "tiny") & (frame.rung == "bm25")].iloc[0]
    record = next(r for r in records if r.goldset.name == "tiny" and r.rung.name == "bm25")
    assert bm25["ndcg@10"] == record.metrics["ndcg@10"] and bm25["latency_p50_ms"] == record.latency.p50_ms
    assert set(frame[frame.rung == "voyage"].status) == {"skipped"}
    assert frame.equals(records_frame(records).pipe(lambda f: pd.read_csv(io.StringIO(f.to_csv(index=False)))))


def test_html_is_self_contained_with_its_plots(views_leaderboard):
    page = leaderboard_html(Leaderboard(views_leaderboard).latest())
    plots = re.findall(r'<figure class="plot" data-plot="(\w+)"><svg', page)
    assert plots == ["ladder", "latency", "index", "ood"]  # every rung free: the cost plot is a sentence; the dense baseline has an index size
    assert 'data-note="cost">All free' in page
    assert "<script" not in page and "<link" not in page and "<img" not in page
    assert not re.search(r'(src|href)="https?:', page)  # nothing fetched (SVG namespaces are names, not fetches)
    assert page.count("Pareto front") >= 2


def test_views_regenerate_byte_identically(views_leaderboard, tmp_path):
    records = Leaderboard(views_leaderboard).latest()
    first = [p.read_bytes() for p in write_views(records, tmp_path / "a")]
    second = [p.read_bytes() for p in write_views(Leaderboard(views_leaderboard).latest(), tmp_path / "b")]
    assert first == second
    assert all(first)


def test_old_schema_records_load_and_render(tmp_path):
    folder = tmp_path / "lb/records/tiny/test"
    folder.mkdir(parents=True)
    shutil.copy(DATA / "record_v1.json", folder / "bow.cdcb938d7892902b.json")
    records = Leaderboard(tmp_path / "lb").latest()
    assert records[0].schema_version == 3 and records[0].latency is None
    write_views(records, tmp_path / "lb")
    assert "| tiny | test | bow |" in (tmp_path / "lb/README.md").read_text()
    page = (tmp_path / "lb/index.html").read_text()
    assert 'data-plot="ladder"' in page and 'data-plot="latency"' not in page  # v1 records have no latency


def test_a_finetuned_rung_shows_its_seen_and_unseen_scores(tmp_path):
    from harness.decide.views import leaderboard_csv, leaderboard_markdown

    records = [read_record(DATA / "record_v2.json"), read_record(DATA / "record_v3.json")]
    records[1] = records[1].model_copy(update={"rung": records[1].rung.model_copy(update={"name": "ft-r0"})})
    markdown = leaderboard_markdown(records)
    assert "| nDCG@10 seen docs (n) | nDCG@10 unseen docs (n) | status |" in markdown
    assert "| 1.000 (2) | 1.000 (2) | ok |" in markdown and markdown.count("|  |  | ok |") == 1  # the rung without subsets: blank
    header = leaderboard_csv(records).splitlines()[0]
    assert "subsets.seen.n" in header and "subsets.unseen.metrics.ndcg@10" in header


def test_pareto_front_keeps_only_undominated_points():
    #        cheap+bad  cheap+good  dear+better  dear+worse  tie-on-cost+worse
    xs = [0.0, 0.0, 10.0, 20.0, 10.0]
    ys = [0.5, 0.6, 0.7, 0.65, 0.55]
    assert pareto_front(xs, ys) == [1, 2]


def test_leaderboard_write_flag_writes_the_three_views(views_leaderboard):
    result = CliRunner().invoke(main, ["leaderboard", "--write", "--leaderboard", str(views_leaderboard), "--json"])
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)) == 8
    assert all((views_leaderboard / name).stat().st_size > 0 for name in VIEW_FILES)
