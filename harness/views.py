"""Tables and JSON for records: pure functions of records (and of run outcomes)."""

from __future__ import annotations

from harness.records import RunRecord

COLUMNS = (("ndcg@10", "nDCG@10"), ("recall@10", "R@10"), ("recall@100", "R@100"), ("mrr@10", "MRR@10"))


def _goldset_label(record: RunRecord) -> str:
    return f"{record.goldset.name} (ood)" if record.goldset.ood_of else record.goldset.name


def records_json(records: list[RunRecord]) -> list[dict]:
    return [
        {
            "goldset": r.goldset.name,
            "ood_of": r.goldset.ood_of,
            "split": r.goldset.split,
            "rung": r.rung.name,
            "status": r.status,
            "n_queries": r.goldset.n_queries,
            "metrics": r.metrics,
            "total_s": r.timings.total_s,
            "created_at": r.created_at,
            "key": r.key,
        }
        for r in records
    ]


def outcomes_json(outcomes) -> list[dict]:
    return [{**records_json([o.record])[0], "action": o.action} for o in outcomes]


def _table(records: list[RunRecord], title: str, actions: list[str] | None = None):
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for header in ("goldset", "split", "rung", *(label for _, label in COLUMNS), "queries", "time s"):
        table.add_column(header, justify="left" if header in ("goldset", "split", "rung") else "right")
    if actions:
        table.add_column("")
    for i, r in enumerate(records):
        cells = [_goldset_label(r), r.goldset.split, r.rung.name]
        cells += [f"{r.metrics[m]:.3f}" if m in r.metrics else "-" for m, _ in COLUMNS]
        cells += [str(r.goldset.n_queries), f"{r.timings.total_s:.1f}"]
        table.add_row(*cells, *([actions[i]] if actions else []))
    return table


def _print(renderable) -> None:
    from rich.console import Console

    console = Console()
    if not console.is_terminal:  # piped or captured: never truncate columns to a guessed 80
        console = Console(width=200)
    console.print(renderable)


def records_table(records: list[RunRecord], title: str) -> None:
    _print(_table(records, title))


def outcomes_table(outcomes, title: str) -> None:
    _print(_table([o.record for o in outcomes], title, ["unchanged" if o.action == "unchanged" else "new" for o in outcomes]))
