"""Views of records: the terminal table, JSON, and the files ``bench leaderboard --write`` makes
(``README.md``, ``leaderboard.csv``, ``index.html`` with plots). Every view is a pure function of the
records: the same records give byte-identical files (no clock, no random ids, sorted keys).
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.records import RunRecord, safe_name

COLUMNS = (("ndcg@10", "nDCG@10"), ("recall@10", "R@10"), ("recall@100", "R@100"), ("mrr@10", "MRR@10"))


_BIDI = set("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def shown(text: str) -> str:
    """``text`` on one line, every character visible: control characters (newline, tab, NUL), line and
    paragraph separators and bidirectional overrides as their escapes (``\\n``, ``\\u202e``), so a name
    cannot break a table row in two or show itself reversed as another name."""
    return "".join(ch.encode("unicode_escape").decode() if ch in _BIDI or unicodedata.category(ch) in ("Cc", "Zl", "Zp") else ch for ch in text)


def _goldset_label(record: RunRecord) -> str:
    return shown(f"{record.goldset.name} (ood)" if record.goldset.ood_of else record.goldset.name)


def records_json(records: list[RunRecord]) -> list[dict]:
    return [
        {
            "goldset": r.goldset.name,
            "ood_of": r.goldset.ood_of,
            "split": r.goldset.split,
            "rung": r.rung.name,
            "kind": r.rung.kind,
            "status": r.status,
            "reason": r.reason,
            "n_queries": r.goldset.n_queries,
            "metrics": r.metrics,
            "latency_p50_ms": r.latency.p50_ms if r.latency else None,
            "latency_p95_ms": r.latency.p95_ms if r.latency else None,
            "cost_usd": r.cost.usd,
            "api_calls": r.cost.api_calls,
            "encode_s": round(r.timings.index_s + r.timings.encode_queries_s, 4),
            "search_s": r.timings.search_s,
            "total_s": r.timings.total_s,
            "created_at": r.created_at,
            "key": r.key,
            "details": r.details,
            "subsets": {name: {"n": len(sub.queries), "metrics": sub.metrics} for name, sub in r.subsets.items()},
        }
        for r in records
    ]


def outcomes_json(outcomes) -> list[dict]:
    return [{**records_json([o.record])[0], "action": o.action} for o in outcomes]


def _cost(record: RunRecord) -> str:
    if record.status != "ok":
        return ""
    if record.cost.usd is None:
        return "?"
    return "0" if record.cost.usd == 0 else f"{record.cost.usd:.4f}"


def _ms(value: float | None) -> str:
    return "-" if value is None else (f"{value:.1f}" if value < 100 else f"{value:.0f}")


HEADERS = ("goldset", "split", "rung", *(label for _, label in COLUMNS), "queries", "p50 ms", "p95 ms", "cost $")


def cells(record: RunRecord) -> list[str]:
    """One record as the text cells under :data:`HEADERS` (the terminal, Markdown and HTML tables)."""
    r, latency = record, record.latency
    row = [_goldset_label(r), shown(r.goldset.split), shown(r.rung.name)]
    row += [f"{r.metrics[m]:.3f}" if m in r.metrics else "-" for m, _ in COLUMNS]
    return row + [str(r.goldset.n_queries), _ms(latency.p50_ms if latency else None), _ms(latency.p95_ms if latency else None), _cost(r)]


SUBSET_HEADERS = ("seen docs", "unseen docs")


def subset_cells(record: RunRecord, metric: str) -> list[str]:
    """A fine-tuned record's ``metric`` on the queries about documents it trained on and on the others,
    with how many there are ("0.812 (120)"); blank for records without subsets."""
    out = []
    for name in ("seen", "unseen"):
        sub = record.subsets.get(name)
        out.append("" if sub is None else f"{sub.metrics[metric]:.3f} ({len(sub.queries)})" if sub.queries else "- (0)")
    return out


def _table(records: list[RunRecord], title: str, actions: list[str] | None = None):
    from rich.table import Table
    from rich.text import Text

    table = Table(title=Text(shown(title)), title_justify="left")  # Text: a name like "[/x]" is not rich markup
    with_subsets = any(r.subsets for r in records)
    for header in (*HEADERS, *(SUBSET_HEADERS if with_subsets else ()), "encode s", "search s"):
        table.add_column(header, justify="left" if header in ("goldset", "split", "rung") else "right")
    if actions:
        table.add_column("status")
    for i, r in enumerate(records):
        t = r.timings
        timings = [f"{t.index_s + t.encode_queries_s:.1f}", f"{t.search_s:.1f}"] if r.status == "ok" else ["", ""]
        subsets = subset_cells(r, r.primary_metric) if with_subsets else []
        table.add_row(*map(Text, [*cells(r), *subsets, *timings, *([actions[i]] if actions else [])]))
    return table


def _skips(records: list[RunRecord]) -> list[str]:
    """One line per skipped rung (the reason is usually the same on every goldset)."""
    reasons: dict[str, str] = {}
    for r in records:
        if r.status == "skipped":
            reasons.setdefault(r.rung.name, r.reason or "")
    return [f"skipped {shown(name)}: {reason}" for name, reason in reasons.items()]


def print_rich(renderable, soft_wrap: bool = False) -> None:
    """Print a rich table or text to stdout (200 columns when piped, so nothing is cut to a guessed 80)."""
    from rich.console import Console

    console = Console()
    if not console.is_terminal:  # piped or captured: never truncate columns to a guessed 80
        console = Console(width=200)
    console.print(renderable, soft_wrap=soft_wrap)


def _print_skips(records: list[RunRecord]) -> None:
    from rich.text import Text

    for line in _skips(records):
        print_rich(Text(line), soft_wrap=True)  # plain text (a reason may contain [brackets]), one line each


def records_table(records: list[RunRecord], title: str, ladder: Sequence[str] = ()) -> None:
    """The records in the views' order: per goldset and split (evaluation splits first), rows in ladder
    order, each goldset's out-of-domain companions after it."""
    shown = [r for p in panels(records, ladder) for r in [*p.records, *(c for rows in p.companions.values() for c in rows)]]
    print_rich(_table(shown, title))
    _print_skips(shown)


def outcomes_table(outcomes, title: str) -> None:
    labels = {"unchanged": "unchanged", "ran": "new", "skipped": "skipped"}
    records = [o.record for o in outcomes]
    print_rich(_table(records, title, [labels[o.action] for o in outcomes]))
    _print_skips(records)


# ---- files: Markdown, CSV, HTML ---------------------------------------------------------------

VIEW_FILES = ("README.md", "leaderboard.csv", "index.html")


@dataclass
class Panel:
    """One in-domain goldset and split, its rungs in order, and its out-of-domain companions' records.

    ``evaluation`` is False for a split that a rung of the goldset was tuned or trained on (``tune_on``,
    an adapter's or fine-tuning job's train and eval splits) while another split evaluates: its records
    were written for the tuning, so views show them after the evaluation splits, without plots."""

    goldset: str
    split: str
    records: list[RunRecord]
    companions: dict[str, list[RunRecord]] = field(default_factory=dict)
    evaluation: bool = True

    @property
    def metric(self) -> str:
        return self.records[0].primary_metric


def builds_on(record: RunRecord) -> list[str]:
    """The rungs a record's configuration reads: a hybrid's inputs, a rerank's first stage, the rung a
    merge or compress rung takes its model from."""
    config = record.rung.config
    return [*config.get("inputs", []), *([config[key] for key in ("first_stage", "of") if config.get(key)])]


def rung_order(records: list[RunRecord], ladder: Sequence[str] = ()) -> list[str]:
    """Every rung name once: the ladder's order where the ladder is known (``ladder``, its rung names),
    then the others by first appearance in ``records``, each after the rungs its configuration builds on
    (a hybrid's inputs, a rerank's first stage). One order for every section, so a rung keeps its row."""
    seen = list(dict.fromkeys(r.rung.name for r in records))
    deps = {r.rung.name: builds_on(r) for r in records}
    out: list[str] = [name for name in ladder if name in deps]

    def place(name: str, path: tuple[str, ...] = ()) -> None:
        if name in out or name in path or name not in deps:
            return
        for dep in deps[name]:
            place(dep, (*path, name))
        out.append(name)

    for name in seen:
        place(name)
    return out


def tuning_splits(records: list[RunRecord]) -> set[str]:
    """Splits these in-domain records' rungs were tuned, fitted or selected on."""
    out = set()
    for r in records:
        config = r.rung.config
        out |= {config.get("tune_on")} | ({config.get("train_split"), config.get("eval_split")} if r.rung.kind == "adapter" else set())
        if r.rung.kind == "finetune":
            train = config.get("train") or {}
            out |= {train.get("train_split", "train"), train.get("eval_split", "dev")}
        if r.rung.kind == "merge":  # the split alpha was chosen on (train, when the goldset had no select_on split)
            out |= {(r.details.get("selected_on") or "").rsplit("/", 1)[-1] or config.get("select_on")}
    return out - {None, ""}


def panels(records: list[RunRecord], ladder: Sequence[str] = ()) -> list[Panel]:
    """Group records by in-domain goldset and split, rows in :func:`rung_order`; evaluation splits first,
    tuning splits after (``evaluation`` False). Each out-of-domain companion's records go to one panel of the
    goldset it serves: the evaluation panel of the same split, else its first evaluation panel."""
    rank = {name: i for i, name in enumerate(rung_order(records, ladder))}
    out: dict[tuple[str, str], Panel] = {}
    for r in sorted(records, key=lambda r: rank[r.rung.name]):
        if r.goldset.ood_of is None:
            out.setdefault((r.goldset.name, r.goldset.split), Panel(r.goldset.name, r.goldset.split, [])).records.append(r)
    for name in {p.goldset for p in out.values()}:
        mine = [p for p in out.values() if p.goldset == name]
        tuning = tuning_splits([r for p in mine for r in p.records])
        if any(p.split not in tuning for p in mine):
            for p in mine:
                p.evaluation = p.split not in tuning
    found = sorted(out.values(), key=lambda p: not p.evaluation)
    for r in sorted(records, key=lambda r: rank[r.rung.name]):
        mine = [p for p in found if p.goldset == r.goldset.ood_of and p.evaluation]
        home = next((p for p in mine if p.split == r.goldset.split), mine[0] if mine else None)
        if home is not None:
            home.companions.setdefault(f"{r.goldset.name} ({r.goldset.split})", []).append(r)
    return found


def records_frame(records: list[RunRecord]):
    """A pandas frame, one row per record, every metric a column (the CSV view)."""
    import pandas as pd

    frame = pd.json_normalize(records_json(records), sep=".")
    frame.columns = [c.removeprefix("metrics.") for c in frame.columns]
    return frame


def interval(record: RunRecord, metric: str) -> tuple[float, float] | None:
    """95% bootstrap confidence interval of ``metric``'s mean over the record's queries (None if skipped)."""
    from harness.decide.significance import bootstrap_ci

    if record.status != "ok" or not record.per_query:
        return None
    return bootstrap_ci([scores[metric] for scores in record.per_query.values()])


def _ci_cell(record: RunRecord, metric: str) -> str:
    ci = interval(record, metric)
    return "-" if ci is None else f"{ci[0]:.3f}-{ci[1]:.3f}"


def _rows(records: list[RunRecord], metric: str) -> tuple[list[str], list[list[str]]]:
    """The file views' table; fine-tuned rungs' seen- and unseen-document scores in two columns when any record has them."""
    label = dict(COLUMNS).get(metric, metric)
    with_subsets = any(r.subsets for r in records)
    headers = [*HEADERS, f"{label} 95% CI", *(f"{label} {h} (n)" for h in SUBSET_HEADERS if with_subsets), "status"]
    return headers, [[*cells(r), _ci_cell(r, metric), *(subset_cells(r, metric) if with_subsets else []), r.status] for r in records]


# Backslash-escaped wherever they are: code spans, emphasis, links, table cells, strikethrough, headings
# (CommonMark 2.4: any ASCII punctuation may be escaped). "_" only at a word's edge (inside a word it
# never emphasises, and VOYAGE_API_KEY stays readable); "$" only when two could open GitHub's math.
_MARKDOWN = re.compile(r"[\\`*\[\]|~#]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")
_BLOCK_START = re.compile(r"^([-+>]|\d+(?=[.)]))")  # would start a nested list or a quote
_ENTITY = re.compile(r"&(?=#?[A-Za-z0-9]+;)")  # "&lt;" would show as "<"; a lone "&" shows as itself


def markdown_text(text: object) -> str:
    """Text a Markdown renderer shows as it is: Markdown's marks escaped, ``<`` and an ``&`` that would
    start an entity as HTML entities (a name like ``<script>`` stays text; without ``<`` no tag can
    open, so ``>=`` stays readable), control characters as their escapes."""
    out = _MARKDOWN.sub(lambda m: "\\" + m.group(), shown(str(text)))
    if out.count("$") > 1:
        out = out.replace("$", "\\$")
    return _ENTITY.sub("&amp;", out).replace("<", "&lt;")


def markdown_line(text: object) -> str:
    """:func:`markdown_text` for a list item's text: a leading ``-``, ``+``, ``>`` or ``1.`` stays text too."""
    return _BLOCK_START.sub(lambda m: m.group() + "\\" if m.group()[0].isdigit() else "\\" + m.group(), markdown_text(text))


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    def line(values):
        return "| " + " | ".join(markdown_text(v) for v in values) + " |"

    return "\n".join([line(headers), line(["---"] * len(headers)), *map(line, rows)])


def html_table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _heading(panel: Panel) -> str:
    return f"{shown(panel.goldset)} / {shown(panel.split)}" + ("" if panel.evaluation else " (tuning split)")


def _tuning_note(panel: Panel) -> str:
    return (f"Written while tuning or training on {shown(panel.split)}; not an evaluation split, "
            "so it is not plotted (a rung tuned on it is not scored on it).")


def leaderboard_markdown(records: list[RunRecord], ladder: Sequence[str] = ()) -> str:
    """``leaderboard/README.md``: one table per goldset and split (with its OOD companions), skip reasons;
    ``ladder``: rung names in ladder order, when known (see :func:`rung_order`)."""
    parts = ["# Leaderboard", "", f"Generated by `bench leaderboard --write` from {len(records)} records; do not edit by hand. "
             "Intervals are 95% bootstrap confidence intervals over the queries. Plots: [index.html](index.html); data: "
             "[leaderboard.csv](leaderboard.csv)."]
    for panel in panels(records, ladder):
        group = panel.records + [r for rs in panel.companions.values() for r in rs]
        parts += ["", f"## {markdown_text(_heading(panel))}", *([] if panel.evaluation else ["", markdown_text(_tuning_note(panel))])]
        parts += ["", markdown_table(*_rows(group, panel.metric))]
        parts += ["", *(f"- {markdown_line(line)}" for line in _skips(group))] if _skips(group) else []
    return "\n".join(parts) + "\n"


def leaderboard_csv(records: list[RunRecord]) -> str:
    return records_frame(records).to_csv(index=False, lineterminator="\n")


def plot_frame(records: list[RunRecord], metric: str):
    """:func:`records_frame` plus the ``ci_lo`` and ``ci_hi`` of ``metric`` (what the plots draw)."""
    frame = records_frame(records)
    if metric not in frame.columns:
        frame[metric] = float("nan")
    bounds = [interval(r, metric) or (float("nan"), float("nan")) for r in records]
    frame["ci_lo"], frame["ci_hi"] = [b[0] for b in bounds], [b[1] for b in bounds]
    return frame


def panel_figures(panel: Panel) -> list[tuple[str, str, str]]:
    """(name, caption, svg) of the panel's plots: the ladder, quality against cost, latency and index size
    (when a record has one: dense-like rungs), against encode time (when two encoders' rates are known), in- against out-of-domain. Skipped rungs are not drawn (the table lists them); when every rung cost $0 the cost plot
    is a sentence instead (svg ``""``): a column of points at zero says nothing."""
    from harness.decide import plots

    metric, frame = panel.metric, plot_frame(panel.records, panel.metric)
    frame = frame[frame["status"] == "ok"].reset_index(drop=True)
    figures = [("ladder", f"{metric} per rung with 95% bootstrap confidence intervals (skipped rungs: see the table)", plots.ladder_chart(frame, metric))]
    costs = frame["cost_usd"].dropna()
    if len(costs) and (costs == 0).all():
        figures.append(("cost", f"All free: every rung's evaluation cost $0 at list price{' (unknown for some)' if len(costs) < len(frame) else ''}, so there is no cost plot.", ""))
    elif len(costs):
        figures.append(("cost", f"{metric} against the evaluation's cost; red: the Pareto front",
                        plots.tradeoff_chart(frame, metric, "cost_usd", "cost, $ (list price)", log=False)))
    if frame["latency_p50_ms"].notna().any():
        figures.append(("latency", f"{metric} against median query latency; red: the Pareto front",
                        plots.tradeoff_chart(frame, metric, "latency_p50_ms", "p50 latency, ms per query", log=True)))
    size = "details.index_bytes_per_doc"
    if size in frame.columns and frame[size].notna().any():
        figures.append(("index", f"{metric} against the index's bytes per document (dense rungs and compressed forms); red: the Pareto front",
                        plots.tradeoff_chart(frame, metric, size, "index size, bytes per document", log=True)))
    rate, measured = "details.encode_docs_per_s", "details.encode_measured"
    own = frame[~frame.get(measured, frame["rung"]).astype(str).str.startswith("rung '")] if rate in frame.columns else frame  # vector forms reuse their of rung's
    if rate in own.columns and own[rate].notna().sum() > 1:  # one encoder is a point, not a trade-off
        timed = own.assign(encode_ms_per_doc=1000 / own[rate].astype(float))
        figures.append(("encode", f"{metric} against the time to encode a document (this machine; models, runtimes and quantized forms); red: the Pareto front",
                        plots.tradeoff_chart(timed, metric, "encode_ms_per_doc", "encode time, ms per document", log=True)))
    if panel.companions:
        companions = {name: records_frame(rs) for name, rs in panel.companions.items()}
        figures.append(("ood", f"{metric} in-domain against out-of-domain, per rung", plots.ood_chart(frame, companions, metric)))
    for r in panel.records:
        d = r.details
        if r.status == "ok" and r.rung.kind == "merge" and d.get("curve") and any(p["ood"] for p in d["curve"]):
            figures.append((f"merge-{safe_name(r.rung.name)}", f"{r.rung.name}: the base (alpha 0) interpolated with {r.rung.config.get('of') or d['finetuned']} (alpha 1), "
                            f"{d['select_metric']} on {d['selected_on']} against out of domain per alpha; ringed: the alpha kept ({d['why']})",
                            plots.merge_curve_chart(d["curve"], d["alpha"], d["selected_on"], d["select_metric"])))
    return figures


def figures_html(figures: list[tuple[str, str, str]]) -> str:
    """The plots as figures; a plot with no SVG is its caption, a sentence (``p.note``)."""
    return "".join(f'<figure class="plot" data-plot="{name}">{svg}<figcaption>{html.escape(caption)}</figcaption></figure>' if svg
                   else f'<p class="note" data-note="{name}">{html.escape(caption)}</p>' for name, caption, svg in figures)


CSS = ("body{font-family:system-ui,sans-serif;margin:2em auto;max-width:72em;color:#222}table{border-collapse:collapse;font-size:90%}"
       "th,td{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right}th:nth-child(-n+3),td:nth-child(-n+3){text-align:left}"
       "figure.plot{display:inline-block;margin:1em 1em 0 0;vertical-align:top}figcaption{font-size:85%;color:#555}"
       "p.note{color:#555;font-style:italic}.GO{color:#1a7f37}.NO-GO{color:#cf222e}.NOT-YET{color:#9a6700}")


def html_page(title: str, body: str) -> str:
    """A self-contained page (inline CSS and SVG, nothing fetched)."""
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{CSS}</style></head><body>\n{body}\n</body></html>\n")


def leaderboard_html(records: list[RunRecord], ladder: Sequence[str] = ()) -> str:
    """``leaderboard/index.html``: per goldset and split, the table and the plots (tuning splits: the table only)."""
    body = [f"<h1>Leaderboard</h1><p>Generated by <code>bench leaderboard --write</code> from {len(records)} records.</p>"]
    for panel in panels(records, ladder):
        group = panel.records + [r for rs in panel.companions.values() for r in rs]
        skips = "".join(f"<li>{html.escape(line)}</li>" for line in _skips(group))
        shown_after = figures_html(panel_figures(panel)) if panel.evaluation else f'<p class="note">{html.escape(_tuning_note(panel))}</p>'
        body.append(f"<section><h2>{html.escape(_heading(panel))}</h2>{html_table(*_rows(group, panel.metric))}"
                    f"{f'<ul>{skips}</ul>' if skips else ''}{shown_after}</section>")
    return html_page("tunebench leaderboard", "\n".join(body))


def write_views(records: list[RunRecord], folder: Path | str, ladder: Sequence[str] = ()) -> list[Path]:
    """Write :data:`VIEW_FILES` into ``folder`` (the leaderboard folder); return their paths. ``ladder``:
    rung names in ladder order, when the caller knows the ladder (else first appearance)."""
    from harness.errors import BenchError

    folder = Path(folder)
    texts = (leaderboard_markdown(records, ladder), leaderboard_csv(records), leaderboard_html(records, ladder))
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in zip(VIEW_FILES, texts):
            (folder / name).write_text(text, encoding="utf-8", newline="\n")
    except OSError as exc:
        raise BenchError(f"cannot write views into '{folder}' ({exc.strerror}); pass a writable folder") from exc
    return [folder / name for name in VIEW_FILES]
