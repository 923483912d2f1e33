"""``bench pairs synthetic``: queries written by an LLM for a corpus's chunks, filtered, as pairs and a report."""

from __future__ import annotations

import click

from harness.commands.pairs_cmd import emit, output_options


@click.command()
@click.argument("source")
@click.option("--generator", "backend", default="openai", show_default=True, help="Generator backend: openai (any OpenAI-compatible endpoint), cohere, local (llama-cpp GGUF).")
@click.option("--model", default=None, help="Chat model, or for 'local' a .gguf path or 'smollm2' (default: the backend's).")
@click.option("--base-url", default=None, help="Endpoint, e.g. http://localhost:11434/v1 for Ollama (openai, cohere).")
@click.option("--api-key-env", default=None, help="Variable holding the key (openai; default OPENAI_API_KEY).")
@click.option("--temperature", type=float, default=None)
@click.option("--max-tokens", type=int, default=None, help="Most tokens per answer.")
@click.option("--concurrency", type=int, default=None, help="Requests in flight (API backends; default 4).")
@click.option("--style", "styles", multiple=True, default=["question"], show_default=True, help="keyword, question, detailed, multihop (two chunks), paraphrase (a goldset's queries), or your own <style>.txt in --prompt-dir; repeat for several.")
@click.option("--per-chunk", type=int, default=3, show_default=True, help="Queries asked for per chunk and style.")
@click.option("--prompt-dir", type=click.Path(file_okay=False, exists=True), default=None, help="Folder of <style>.txt prompt templates: overriding the packaged ones, or new styles.")
@click.option("--exclude-judged-by", multiple=True, metavar="GOLDSET:SPLIT", help="Never generate from documents judged for these queries (repeatable).")
@click.option("--max-chunks", type=int, default=None, help="Generate for a seeded sample of this many chunks.")
@click.option("--chunk-words", type=int, default=256, show_default=True)
@click.option("--round-trip-k", type=int, default=10, show_default=True, help="Keep a query only if its chunk is in the encoder's top k (0: off).")
@click.option("--encoder-backend", default="sentence-transformers", show_default=True, help="Encoder for the round trip (and multihop partners).")
@click.option("--encoder-model", default=None, help="Default: the packaged all-MiniLM-L6-v2.")
@click.option("--min-words", type=int, default=2, show_default=True)
@click.option("--max-words", type=int, default=48, show_default=True)
@click.option("--max-copy-words", type=int, default=8, show_default=True, help="Drop a query sharing a run of this many words with its passage.")
@click.option("--passage-references", is_flag=True, help="Keep queries that point at their passage ('of the passage', 'the above text'); dropped by default.")
@click.option("--near-duplicate", type=float, default=None, help="Character 3-5-gram cosine at which a later query is a near duplicate (default: the leakage guard's, 0.85; 1: exact only).")
@click.option("--review", type=click.IntRange(min=0), default=0, help="Write a CSV sample of N queries (kept and dropped, with reasons) beside the pair file (.review.csv).")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None, help="Cache folder (default: $TUNEBENCH_CACHE or ~/.cache/tunebench).")
@output_options
def synthetic(source, backend, model, base_url, api_key_env, temperature, max_tokens, concurrency, styles, per_chunk, prompt_dir, exclude_judged_by, max_chunks,
              chunk_words, round_trip_k, encoder_backend, encoder_model, min_words, max_words, max_copy_words, passage_references, near_duplicate, review, cache_dir, **out):
    """Queries written by an LLM for the chunks of SOURCE (a corpus.jsonl, or a goldset), filtered, as pairs.

    The report (calls, tokens, cost, what each filter dropped) is written beside the pair file
    (.report.json). Every answer is cached: a re-run makes no calls, an interrupted run resumes with
    the missing ones. --seed also draws the --max-chunks sample and the --review sample.
    """
    from harness.cache import Cache
    from harness.config import validate
    from harness.errors import ConfigError
    from harness.pairs.synthetic import SyntheticConfig, generate_synthetic, write_sidecars

    generator = {"backend": backend, "model": model, "base_url": base_url, "api_key_env": api_key_env, "temperature": temperature, "max_tokens": max_tokens, "concurrency": concurrency}
    encoder = {"backend": encoder_backend} | ({"model": encoder_model} if encoder_model else {})
    settings = dict(generator=generator, styles=list(styles), per_chunk=per_chunk, prompt_dir=prompt_dir, exclude_judged_by=list(exclude_judged_by), max_chunks=max_chunks, chunk_words=chunk_words,
                    round_trip_k=round_trip_k, encoder=encoder, min_words=min_words, max_words=max_words, max_copy_words=max_copy_words, passage_references=passage_references, near_duplicate=near_duplicate, seed=out["seed"])
    config = validate(SyntheticConfig, {k: v for k, v in settings.items() if v is not None}, "options", ConfigError)
    result = generate_synthetic(source, config, Cache(cache_dir))
    written = write_sidecars(result, out["output"], review)
    model_name = result.report["generator"]["model"]
    emit(result.pair_set(), description=f"synthetic queries by {model_name} from {source}", query_origin="synthetic", **out)
    click.echo("wrote " + ", ".join(written), err=True)
