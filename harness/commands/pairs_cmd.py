"""``bench pairs``: build training pairs (and a goldset) from labels, click logs or documents' structure.

Every builder takes the same output options (:func:`output_options`) and ends in :func:`emit`, so a
builder registered elsewhere (``bench pairs synthetic``) writes and reports the same way.
"""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path

import click

from harness.commands.options import json_option


@click.group()
def pairs():
    """Build training pairs from labels, click logs or documents' structure.

    Each builder writes a pair file (-o) that `bench train` reads; with --goldset-out it also writes a
    goldset, split into train/dev/test at the query level, and the pair file then holds only the
    train split's pairs, so training on it never sees a dev or test query.
    """


_OUTPUT_OPTIONS = [
    click.option("--output", "-o", required=True, type=click.Path(dir_okay=False), help="Pair file to write (JSONL)."),
    click.option("--goldset-out", type=click.Path(file_okay=False), default=None, help="Also write a goldset folder (corpus, queries, qrels per split, goldset.toml); it must be new or empty."),
    click.option("--force", is_flag=True, help="Let --goldset-out replace the goldset in a folder that is not empty."),
    click.option("--seed", type=int, default=42, show_default=True, help="Seed of the query-level split."),
    click.option(
        "--splits", type=(float,) * 3, default=(0.7, 0.15, 0.15), show_default=True, metavar="TRAIN DEV TEST", help="Shares of queries per split, summing to 1 (0 leaves a split out); needs --goldset-out."
    ),
    json_option,
]


def output_options(command):
    """-o, --goldset-out, --force, --seed, --splits and --json, shared by every ``bench pairs`` builder.
    They are checked (:func:`check_outputs`) before the command builds anything, since a build can
    cost LLM calls; the command receives them, --force aside, as keyword arguments for :func:`emit`."""

    @functools.wraps(command)
    def checked(**kwargs):
        given = click.get_current_context().get_parameter_source("splits") != click.core.ParameterSource.DEFAULT
        check_outputs(kwargs["goldset_out"], kwargs.pop("force"), kwargs["splits"] if given else None)
        return command(**kwargs)

    for option in reversed(_OUTPUT_OPTIONS):
        checked = option(checked)
    return checked


def check_outputs(goldset_out: str | None, force: bool, splits: tuple[float, ...] | None) -> None:
    """Refuse a --goldset-out folder that is not empty (without --force: a re-run would silently
    replace a goldset that had records), and --splits (``None``: not given) that are negative, do not
    sum to 1, or come without --goldset-out. Shares that do not sum to 1 are refused rather than
    normalised: 0.5 0.2 0.2 is more often a typo than a wish for 56/22/22."""
    from harness.errors import ConfigError

    folder = Path(goldset_out) if goldset_out else None
    if folder is not None and folder.is_dir() and any(folder.iterdir()) and not force:
        what = "a goldset" if (folder / "corpus.jsonl").is_file() else "files"
        raise ConfigError(f"--goldset-out '{folder}' already holds {what}; pass --force to replace its goldset files, or name a new folder")
    if splits is None:
        return
    shown = " ".join(f"{s:g}" for s in splits)
    if folder is None:
        raise ConfigError(f"--splits {shown} only applies to a goldset: add --goldset-out DIR, or drop --splits (the pair file holds every pair)")
    if min(splits) < 0:
        raise ConfigError(f"--splits {shown}: a share cannot be negative; give the train, dev and test shares, e.g. --splits 0.7 0.15 0.15")
    if not math.isclose(sum(splits), 1, abs_tol=1e-6):
        raise ConfigError(f"--splits {shown} sum to {sum(splits):g}, not 1; give the train, dev and test shares as fractions of 1, e.g. --splits 0.7 0.15 0.15")


def emit(built, *, output, goldset_out, seed, splits, as_json, description: str, query_origin: str) -> None:
    """Write a :class:`~harness.pairs.pairset.PairSet` as a pair file (and a goldset over its whole
    corpus) and report its counts; how many of the goldset's documents no query judges, and the
    builder's warnings, go to stderr after the report."""
    from harness.errors import ConfigError
    from harness.pairs.pairset import write_goldset, write_pairs

    if not built.pairs:
        raise ConfigError(f"no pairs: nothing was kept ({_counts_line(built.counts)})")
    shares = dict(zip(("train", "dev", "test"), splits))
    pairs, held_out, sizes = built.pairs, 0, {}
    if goldset_out:
        assignment = write_goldset(goldset_out, built.corpus, built.queries, built.qrels, splits=shares, seed=seed, description=description, query_origin=query_origin)
        sizes = {s: sum(1 for v in assignment.values() if v == s) for s in shares if s in assignment.values()}
        pairs = [p for p in built.pairs if assignment.get(p.query_id) == "train"]
        held_out = len(assignment) - sizes.get("train", 0)
    written = write_pairs(output, pairs)
    if as_json:
        goldset = {"path": goldset_out, "splits": sizes, "documents": len(built.corpus), "unjudged_documents": built.unjudged} if goldset_out else None
        click.echo(json.dumps({"output": output, "pairs": written, "counts": built.counts, "goldset": goldset, "warnings": built.warnings}, indent=1))
    else:
        _print_summary(built, output, goldset_out, written, held_out, sizes)
    if goldset_out and built.unjudged:
        click.echo(f"note: {_unjudged_note(built, goldset_out)}", err=True)
    for warning in built.warnings:
        click.echo(f"warning: {warning}", err=True)


def _print_summary(built, output, goldset_out, written: int, held_out: int, sizes: dict) -> None:
    click.echo(f"wrote {written} pairs to {output}" + (f" (train split only: {held_out} dev/test queries are held out)" if goldset_out else ""))
    if goldset_out:
        click.echo(
            f"goldset {goldset_out}: " + ", ".join(f"{s} {n} queries" for s, n in sizes.items())
            + f"; {len(built.corpus)} documents, {built.unjudged} judged by no query (check it: bench goldset validate {goldset_out})"
        )  # fmt: skip
    width = max(map(len, built.counts))
    for name, value in built.counts.items():
        click.echo(f"  {name.replace('_', ' '):<{width}}  {value}")


def _unjudged_note(built, goldset_out) -> str:
    """Documents no query judges stay in the goldset, and the user is told: leaving them out would
    make every score optimistic (a first user's baseline: nDCG@10 0.872 over 97 judged documents,
    0.773 over all 326)."""
    return (
        f"{built.unjudged} of the {len(built.corpus)} documents in {goldset_out} are judged by no query; they stay as "
        "distractors, as in a real search (without them every score would be too high)"
    )


def _counts_line(counts: dict) -> str:
    return ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in counts.items())


corpus_option = click.option("--corpus", type=click.Path(dir_okay=False), default=None, help="BEIR corpus.jsonl for documents given by id.")


@pairs.command("from-labels")
@click.argument("labels", type=click.Path(dir_okay=False))
@corpus_option
@click.option("--query-column", default="query", show_default=True)
@click.option("--query-id-column", default="query_id", show_default=True, help="Optional; queries without one get an id from their text.")
@click.option("--document-column", default="document", show_default=True, help="The document's text (when it is not given by id).")
@click.option("--doc-id-column", default="doc_id", show_default=True, help="The document's id in --corpus.")
@click.option("--label-column", default="label", show_default=True, help="Optional graded label; without it every row is a positive.")
@click.option("--min-label", type=float, default=None, help="Labels below this are negatives (default: labels above 0 are positives).")
@output_options
def from_labels(labels, corpus, query_column, query_id_column, document_column, doc_id_column, label_column, min_label, **out):
    """Pairs from a CSV, TSV or JSONL file of labelled (query, document) rows.

    A row with a label of 0 or below (or under --min-label) is a negative for its query; whole-number
    labels become graded judgements in the goldset.
    """
    from harness.pairs.pairset import LabelColumns, from_labels, read_corpus

    columns = LabelColumns(query=query_column, query_id=query_id_column, document=document_column, doc_id=doc_id_column, label=label_column)
    built = from_labels(labels, corpus=read_corpus(corpus) if corpus else None, columns=columns, min_label=min_label)
    emit(built, description=f"labelled pairs from {Path(labels).name}", query_origin="human", **out)


@pairs.command("from-clicks", short_help="Pairs from a search log: satisfied clicks, skipped results above them.")
@click.argument("log", type=click.Path(dir_okay=False))
@corpus_option
@click.option("--min-dwell", type=click.FloatRange(min=0), default=30.0, show_default=True, help="Seconds on a clicked result for it to count as a positive.")
@click.option("--skip-above/--no-skip-above", default=True, show_default=True, help="Results shown above a positive and not clicked become negatives.")
@output_options
def from_clicks(log, corpus, min_dwell, skip_above, **out):
    """Pairs from a search log: JSONL, one session per line:

    \b
    {"query": "...", "results": ["d7", {"doc_id": "d3", "text": "..."}],
     "clicks": [{"doc_id": "d3", "dwell": 42.5}]}

    Documents come from --corpus or from the results' own "title"/"text". Sessions of the same query are pooled.
    """
    from harness.pairs.clicks import from_clicks
    from harness.pairs.pairset import read_corpus

    built = from_clicks(log, corpus=read_corpus(corpus) if corpus else None, min_dwell=min_dwell, skip_above=skip_above)
    emit(built, description=f"click pairs from {Path(log).name} (dwell >= {min_dwell:g} s)", query_origin="human", **out)


@pairs.command("from-structure")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--chunk-words", type=click.IntRange(min=10), default=200, show_default=True, help="Long sections are cut into windows of this many words.")
@click.option("--overlap", type=click.IntRange(min=0), default=40, show_default=True, help="Words shared by consecutive windows.")
@click.option("--min-words", type=click.IntRange(min=1), default=5, show_default=True, help="Sections with a shorter body are skipped.")
@click.option(
    "--include-root", type=click.Path(exists=True, file_okay=False), default=None, help="reStructuredText '.. include::' may read files under this folder (default: the folder given, or a file's own folder)."
)
@output_options
def from_structure(paths, chunk_words, overlap, min_words, include_root, **out):
    """Pairs from Markdown, reStructuredText and HTML files (folders are searched):
    heading <-> section body, title <-> first paragraph, section <-> subsection.

    In reStructuredText, directives docutils does not know (Sphinx's, extensions') are kept as text
    and '.. include::' is followed; the counts say how many, and a warning names what was skipped.
    """
    from harness.pairs.structure import from_structure

    built = from_structure(paths, chunk_words=chunk_words, overlap=overlap, min_words=min_words, include_root=include_root)
    emit(built, description=f"pairs from the structure of {', '.join(Path(p).name for p in paths)}", query_origin="structure", **out)
