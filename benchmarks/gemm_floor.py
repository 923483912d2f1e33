"""Benchmark: the fp32 floor of encoding a corpus with all-MiniLM-L6-v2 on this CPU.

Times only the linear layers (Q, K, V, output, and the two feed-forward matrices of each of the six
layers) of every batch that ``SentenceTransformer.encode`` would run over the corpus (sorted by
length, 32 a batch, truncated at 256 tokens), as torch's own GEMMs run them: nothing else (no
attention, no layer norm, no tokenization). Any fp32 engine that keeps the model's outputs (cosine
0.9999, issue 17's "faithful") does at least these multiply-adds, so at the same GEMM speed it can
be no faster than this; the script prints the floor beside the FLOPs and the GEMM rate.

Usage: python benchmarks/gemm_floor.py [--data ../shared/datasets/scifact] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
LAYERS, HIDDEN, FFN, BATCH, MAX_TOKENS = 6, 384, 1536, 32, 256  # all-MiniLM-L6-v2


def corpus_lengths(data: Path) -> list[int]:
    """Token lengths of the corpus's title + " " + text under the model's tokenizer, capped at 256, sorted."""
    from transformers import AutoTokenizer

    from backends.sentence_transformers import packaged_minilm

    tokenizer = AutoTokenizer.from_pretrained(str(packaged_minilm()))
    with open(data / "corpus.jsonl", encoding="utf-8") as f:
        texts = [f"{d.get('title', '')} {d['text']}".strip() for d in map(json.loads, f)]
    return sorted(min(MAX_TOKENS, len(ids)) for ids in tokenizer(texts, truncation=False, verbose=False)["input_ids"])


def linear_pass(lengths: list[int]) -> tuple[float, float]:
    """Seconds and FLOPs of the linear layers over every batch (padded to its longest text)."""
    import torch

    weights = [torch.randn(HIDDEN, 3 * HIDDEN), torch.randn(HIDDEN, HIDDEN), torch.randn(HIDDEN, FFN), torch.randn(FFN, HIDDEN)]
    flops, start = 0.0, time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(lengths), BATCH):
            batch = lengths[i : i + BATCH]
            tokens = len(batch) * batch[-1]
            x = torch.randn(tokens, HIDDEN)
            for _ in range(LAYERS):
                x @ weights[0]  # Q, K and V in one product, as fused exports do
                x = ((x @ weights[1]) @ weights[2]) @ weights[3]
            flops += LAYERS * 2 * tokens * sum(w.numel() for w in weights)
    return time.perf_counter() - start, flops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "datasets" / "scifact")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    lengths = corpus_lengths(args.data)
    linear_pass(lengths[:BATCH])  # warm-up: the GEMM library's first calls
    runs = [linear_pass(lengths) for _ in range(args.repeat)]
    seconds, flops = statistics.median(s for s, _ in runs), runs[0][1]
    print(f"{len(lengths)} documents, {sum(lengths)} tokens (padded: {sum(len(lengths[i:i + BATCH]) * lengths[i:i + BATCH][-1] for i in range(0, len(lengths), BATCH))})")
    print(f"linear layers alone: {seconds:.1f} s (median of {args.repeat}: {', '.join(f'{s:.1f}' for s, _ in runs)}), {flops / 1e12:.1f} TFLOP, {flops / seconds / 1e9:.0f} GFLOP/s")


if __name__ == "__main__":
    main()
