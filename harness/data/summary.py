"""Descriptive statistics of a goldset, for ``bench goldset stats``."""

from __future__ import annotations

import statistics

from harness.data.goldset import Goldset


def _lengths(texts) -> dict:
    words = [len(t.split()) for t in texts] or [0]
    return {"mean_words": round(statistics.fmean(words), 1), "median_words": statistics.median(words), "max_words": max(words)}


def goldset_stats(goldset: Goldset) -> dict:
    """Sizes, text lengths and judgement counts per split, as plain data."""
    splits = {}
    for split in goldset.splits:
        judged = goldset.split_qrels(split)
        positives = [sum(g > 0 for g in docs.values()) for docs in judged.values()]
        grades = sorted({g for docs in judged.values() for g in docs.values()})
        splits[split] = {
            "queries": len(goldset.split_queries(split)),
            "judgements": sum(len(d) for d in judged.values()),
            "relevant_per_query": round(statistics.fmean(positives), 2) if positives else 0.0,
            "grades": grades,
            "query_length": _lengths(goldset.queries[q] for q in judged),
        }
    judged_any = {q for s in goldset.qrels.values() for q in s}
    return {
        "name": goldset.name,
        "source": goldset.source,
        "domain": goldset.manifest.domain,
        "fingerprint": goldset.fingerprint[:16],
        "documents": len(goldset.corpus),
        "document_length": _lengths(goldset.document_text(d) for d in goldset.corpus.values()),
        "queries": len(goldset.queries),
        "unjudged_queries": len(set(goldset.queries) - judged_any),
        "splits": splits,
        "ood": goldset.manifest.ood,
        "ignore_identical_ids": goldset.manifest.ignore_identical_ids,
        "warnings": len(goldset.warnings),
    }


def header(info: dict) -> str:
    """The first line of ``bench goldset stats``: name (domain), sizes and fingerprint."""
    name = f"{info['name']} ({info['domain']})" if info["domain"] else info["name"]
    sizes = f"{info['documents']} documents (mean {info['document_length']['mean_words']} words), {info['queries']} queries ({info['unjudged_queries']} unjudged)"
    return f"{name}: {sizes}, fingerprint {info['fingerprint']}"


def print_stats(info: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(header(info), markup=False, highlight=False, soft_wrap=True)  # one line: a hard wrap at 80 columns left "unjudged), " dangling
    table = Table("split", "queries", "judgements", "relevant/query", "grades", "query words (mean)")
    for split, s in info["splits"].items():
        table.add_row(split, str(s["queries"]), str(s["judgements"]), f"{s['relevant_per_query']:.2f}", ",".join(map(str, s["grades"])), f"{s['query_length']['mean_words']}")
    console.print(table)
    if info["ood"]:
        console.print(f"out-of-domain companions: {', '.join(info['ood'])}")
