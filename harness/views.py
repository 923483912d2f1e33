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


def _table(records: list[RunRecord], title: str, actions: list[str] | None = None):
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    headers = ("goldset", "split", "rung", *(label for _, label in COLUMNS), "queries", "p50 ms", "p95 ms", "cost $", "encode s", "search s")
    for header in headers:
        table.add_column(header, justify="left" if header in ("goldset", "split", "rung") else "right")
    if actions:
        table.add_column("")
    for i, r in enumerate(records):
        cells = [_goldset_label(r), r.goldset.split, r.rung.name]
        cells += [f"{r.metrics[m]:.3f}" if m in r.metrics else "-" for m, _ in COLUMNS]
        latency = r.latency
        cells += [str(r.goldset.n_queries), _ms(latency.p50_ms if latency else None), _ms(latency.p95_ms if latency else None), _cost(r)]
        t = r.timings
        cells += [f"{t.index_s + t.encode_queries_s:.1f}", f"{t.search_s:.1f}"] if r.status == "ok" else ["", ""]
        table.add_row(*cells, *([actions[i]] if actions else []))
    return table


def _skips(records: list[RunRecord]) -> list[str]:
    """One line per skipped rung (the reason is usually the same on every goldset)."""
    reasons: dict[str, str] = {}
    for r in records:
        if r.status == "skipped":
            reasons.setdefault(r.rung.name, r.reason or "")
    return [f"skipped {name}: {reason}" for name, reason in reasons.items()]


def _print(renderable, soft_wrap: bool = False) -> None:
    from rich.console import Console

    console = Console()
    if not console.is_terminal:  # piped or captured: never truncate columns to a guessed 80
        console = Console(width=200)
    console.print(renderable, soft_wrap=soft_wrap)


def _print_skips(records: list[RunRecord]) -> None:
    from rich.text import Text

    for line in _skips(records):
        _print(Text(line), soft_wrap=True)  # plain text (a reason may contain [brackets]), one line each


def records_table(records: list[RunRecord], title: str) -> None:
    _print(_table(records, title))
    _print_skips(records)


def outcomes_table(outcomes, title: str) -> None:
    labels = {"unchanged": "unchanged", "ran": "new", "skipped": "skipped"}
    records = [o.record for o in outcomes]
    _print(_table(records, title, [labels[o.action] for o in outcomes]))
    _print_skips(records)
