"""``bench compare-queries``: how far apart two sets of queries are (synthetic against real, say)."""

from __future__ import annotations

import json

import click

from harness.commands.options import json_option


@click.command("compare-queries")
@click.argument("a")
@click.argument("b")
@click.option("--encoder-backend", default="sentence-transformers", show_default=True, help="Encoder backend for the classifier's embeddings.")
@click.option("--model", "-m", default=None, help="Encoder model (default: the packaged all-MiniLM-L6-v2).")
@click.option("--max-queries", type=click.IntRange(min=2), default=2000, show_default=True, help="Sample each set down to this many queries for the classifier.")
@click.option("--warn-auc", type=click.FloatRange(0.5, 1), default=0.8, show_default=True, help="Warn when the classifier's AUC is above this.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None, help="Embedding cache folder (default: $TUNEBENCH_CACHE or ~/.cache/tunebench).")
@json_option
def compare_queries(a, b, encoder_backend, model, max_queries, warn_auc, seed, cache_dir, as_json):
    """Compare query set B with A (each a queries.jsonl, a pair file, a text file with one query per
    line, or GOLDSET:SPLIT): lengths, vocabulary, question words, and how well a classifier on
    embeddings tells them apart (cross-validated AUC; 0.5 = indistinguishable)."""
    from harness.cache import Cache, CachedEncoder
    from harness.pairs.drift import compare_queries, read_queries
    from harness.registry import DEFAULT_MODEL, EncoderConfig, build_encoder

    encoder = CachedEncoder(build_encoder(EncoderConfig(backend=encoder_backend, model=model or DEFAULT_MODEL)), Cache(cache_dir))
    report = compare_queries(read_queries(a), read_queries(b), encoder, max_queries=max_queries, seed=seed, warn_auc=warn_auc)
    if as_json:
        click.echo(json.dumps({"a": a, "b": b} | report, indent=1))
    else:
        _print(a, b, report)


def _print(a: str, b: str, report: dict) -> None:
    lengths, vocab, mix = report["length_words"], report["vocabulary"], report["question_words"]
    click.echo(f"A: {a} ({report['sizes']['a']} queries)\nB: {b} ({report['sizes']['b']} queries)")
    for side in ("a", "b"):
        s = lengths[side]
        click.echo(f"  length ({side.upper()}): mean {s['mean']:g} words, median {s['median']:g}, p90 {s['p90']:g}")
    click.echo(f"  length difference: KS {lengths['ks_statistic']:.2f} (p = {lengths['ks_pvalue']:.2g})")
    click.echo(f"  vocabulary: Jaccard {vocab['jaccard']:.2f}; {vocab['b_tokens_seen_in_a']:.0%} of B's words occur in A")
    for side in ("a", "b"):
        shares = ", ".join(f"{k} {v:.0%}" for k, v in mix[side].items() if v)
        click.echo(f"  question words ({side.upper()}): {shares}")
    click.echo(f"  classifier AUC (A vs B, {report['classifier_queries']['a']} + {report['classifier_queries']['b']} queries): {report['classifier_auc']:.2f}")
    for warning in report["warnings"]:
        click.echo(f"warning: {warning}")
    if not report["warnings"]:
        click.echo("the two sets look alike on every measure")
