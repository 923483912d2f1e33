"""``bench check-leakage``: list training data that overlaps evaluation goldsets: query leaks (exit 1) and
document overlap (reported; exit 1 only with ``--fail-on-overlap``)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from harness.commands.options import json_option

SHOWN = 20  # ids printed per kind in the text report (--json lists all)
PAIR_FILE_SUFFIXES = (".jsonl", ".json", ".csv", ".tsv")  # a TRAIN that ends so is a pair file, not a goldset


@click.command("check-leakage")
@click.argument("train")
@click.argument("goldsets", nargs=-1, required=True, metavar="GOLDSET[:SPLIT]...")
@click.option("--train-split", default="train", show_default=True, help="Split of TRAIN when it is a goldset (or write GOLDSET:SPLIT).")
@click.option("--eval-split", "eval_splits", multiple=True, help="Evaluation splits to check against (repeatable; default: every split but the train split).")
@click.option("--threshold", type=click.FloatRange(0, 1), default=None, help="Cosine at which two queries are near-duplicates (character 3-5-gram vectors; default 0.85).")
@click.option("--no-near", is_flag=True, help="Check exact repeats only, not near-duplicates.")
@click.option("--fail-on-overlap", is_flag=True, help="Exit 1 on document overlap too (for a goldset whose test documents must stay unseen).")
@json_option
def check_leakage(train, goldsets, train_split, eval_splits, threshold, no_near, fail_on_overlap, as_json):
    """Check TRAIN (a pair file, or a goldset's train split) against each GOLDSET's evaluation splits.

    Query leaks: repeated and nearly repeated evaluation queries (the model would see the exam).
    Document overlap: evaluation-judged documents used as positives, or as the sources of synthetic
    queries (what fine-tuning on one's own corpus does; fine-tuned records then score seen and unseen
    documents apart). Exit 1 when a query leaks (or, with --fail-on-overlap, a document overlaps), else 0."""
    from harness.data.resolve import resolve_with_split
    from harness.training.leakage import NEAR_DUPLICATE, leakage

    pairs, train_name = _train_pairs(train, train_split)
    near = None if no_near else (NEAR_DUPLICATE if threshold is None else threshold)
    reports = []
    for source in goldsets:
        goldset, split = resolve_with_split(source)
        splits = _eval_splits(goldset, split, eval_splits, train_split)
        found = leakage(pairs, goldset, splits, near=near)
        reports.append({"goldset": goldset.name, "splits": splits, **found.as_dict()})
    if as_json:
        click.echo(json.dumps({"train": train_name, "pairs": len(pairs), "near_threshold": near, "goldsets": reports}, indent=1))
    else:
        _print(train_name, len(pairs), reports)
    if any(r["query_leaks"] or (fail_on_overlap and r["overlap"]) for r in reports):
        raise SystemExit(1)


def _train_pairs(train: str, split: str):
    """Pairs of a pair file, or of a goldset's train split (GOLDSET or GOLDSET:SPLIT)."""
    from harness.data.pair_files import goldset_pairs, read_pair_file
    from harness.data.resolve import resolve_with_split
    from harness.errors import ConfigError

    if Path(train).is_file():
        return read_pair_file(Path(train)), train
    if Path(train).suffix.lower() in PAIR_FILE_SUFFIXES:
        raise ConfigError(_missing_pair_file(Path(train)))
    goldset, named = resolve_with_split(train)
    return goldset_pairs(goldset, named or split), f"{goldset.name}:{named or split}"


def _missing_pair_file(path: Path) -> str:
    """TRAIN names a pair file that is not there: say so (not that it is no goldset), and what is there."""
    if not path.parent.is_dir():
        return f"pair file '{path}' not found: there is no folder '{path.parent}'"
    there = sorted(p.name for p in path.parent.iterdir() if p.suffix.lower() in PAIR_FILE_SUFFIXES)
    listed = f"files there: {', '.join(there[:SHOWN])}{' ...' if len(there) > SHOWN else ''}" if there else "no .jsonl, .json, .csv or .tsv file there"
    return f"pair file '{path}' not found ({listed})"


def _eval_splits(goldset, named: str | None, asked: tuple[str, ...], train_split: str) -> list[str]:
    from harness.errors import GoldsetError

    splits = [named] if named else list(asked) or [s for s in goldset.splits if s != train_split]
    if not splits:
        raise GoldsetError(f"goldset '{goldset.name}' has no split besides '{train_split}' to check against")
    for split in splits:
        goldset.split_qrels(split)  # a GoldsetError naming the splits there are
    return splits


def _print(train_name: str, count: int, reports: list[dict]) -> None:
    from harness.training.leakage import DOCUMENT_KINDS, QUERY_KINDS

    click.echo(f"training data: {train_name} ({count} pairs)")
    for report in reports:
        click.echo(f"{report['goldset']} ({', '.join(report['splits'])}):")
        sections = (("query leaks", "query_leaks", QUERY_KINDS), ("document overlap (not a leak for a fixed corpus; records score seen and unseen documents apart)", "overlap", DOCUMENT_KINDS))
        for title, total, kinds in sections:
            click.echo(f"  {title}: {report[total] or 'none'}")
            for kind, what in kinds.items():
                ids = report[kind]
                if ids:
                    more = f" ... and {len(ids) - SHOWN} more (--json lists all)" if len(ids) > SHOWN else ""
                    click.echo(f"    {len(ids)} {what}: {', '.join(ids[:SHOWN])}{more}")
            for e in [e for e in report["evidence"] if e["kind"] in kinds and e["kind"] in QUERY_KINDS][:SHOWN]:
                click.echo(f"      {e['eval_id']} ~ {e['train']!r} (similarity {e['similarity']:.2f})")
