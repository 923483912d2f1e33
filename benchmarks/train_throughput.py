"""Benchmark: fine-tuning throughput (pairs/s) and peak memory of ``bench train``'s trainer against a
plain sentence-transformers training script, with the same model, data, batch and steps, in one run.

Each contender trains all-MiniLM-L6-v2 for one epoch on the first ``--pairs`` SciFact train pairs
(``--pairs / 32`` steps) in a fresh Python process, timed from before the model loads to the saved
model, so loading, the data set, training and saving all count:

- tunebench: ``backends.st_train.train`` doing the plain script's work (InfoNCE at tau 0.05, batch 32,
  lr 5e-5, 10% warmup, no-duplicates batches, the model's own attention dropout and 256 tokens),
  checkpointing each epoch as ``bench train`` does: the ratio to plain is the wrapper's overhead
- tunebench-default: the same with the default recipe's attention dropout 0 (fused attention on the
  CPU): the ratio to plain is what the recipe gains
- plain: ``SentenceTransformerTrainer`` with ``MultipleNegativesRankingLoss(scale=20)``, the same
  arguments and sampler, no checkpoints, then ``model.save``
- plain-checkpointed: the same with a checkpoint each epoch (weights, AdamW state, model card), as
  ``bench train`` writes so that a killed job resumes: what that safety costs on a short run

Peak memory is the process's maximum resident set (``ru_maxrss``). Contenders alternate for ``--repeat``
rounds and the ratio uses medians (this VM's speed drifts by a few percent minute to minute).

Usage: python benchmarks/train_throughput.py [--data ../shared/datasets/scifact] [--pairs 320] [--repeat 2] [--contenders tunebench,plain]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONTENDERS = ("tunebench", "tunebench-default", "plain", "plain-checkpointed")


def pairs_of(data: Path, n: int):
    from harness.data.goldset import load_goldset
    from harness.data.pair_files import goldset_pairs

    return goldset_pairs(load_goldset(data), "train")[:n]


def run_tunebench(pairs, model: Path, out: Path, *, recipe_dropout: bool = False) -> int:
    from backends.st_train import train
    from harness.training.schema import TrainConfig

    config = TrainConfig(epochs=1, eval_split="", **({} if recipe_dropout else {"attention_dropout": None}))
    return train(config, {"train": pairs}, start_model=model, out_dir=out).steps


def run_plain(pairs, model: Path, out: Path, *, checkpoints: bool = False) -> int:
    """What a team would write from the sentence-transformers training guide."""
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from sentence_transformers.sentence_transformer.training_args import BatchSamplers

    st = SentenceTransformer(str(model), device="cpu")
    dataset = Dataset.from_dict({"anchor": [p.query for p in pairs], "positive": [p.positive for p in pairs]})
    args = SentenceTransformerTrainingArguments(
        output_dir=str(out / "checkpoints"), per_device_train_batch_size=32, num_train_epochs=1, learning_rate=5e-5, warmup_ratio=0.1,
        seed=42, batch_sampler=BatchSamplers.NO_DUPLICATES, save_strategy="epoch" if checkpoints else "no", report_to="none", disable_tqdm=True,
    )
    trainer = SentenceTransformerTrainer(model=st, args=args, train_dataset=dataset, loss=MultipleNegativesRankingLoss(st, scale=20.0))
    trainer.train()
    st.save(str(out / "model"))
    return trainer.state.global_step


def worker(contender: str, data: Path, n_pairs: int) -> None:
    """One contender in this process; prints one JSON line."""
    from backends.sentence_transformers import packaged_minilm

    pairs, model = pairs_of(data, n_pairs), packaged_minilm()
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        if contender.startswith("plain"):
            steps = run_plain(pairs, model, Path(tmp), checkpoints=contender == "plain-checkpointed")
        else:
            steps = run_tunebench(pairs, model, Path(tmp), recipe_dropout=contender == "tunebench-default")
        seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    print(json.dumps({"contender": contender, "pairs": len(pairs), "steps": steps, "seconds": seconds, "pairs_per_s": len(pairs) / seconds, "peak_mb": peak_mb}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "datasets" / "scifact")
    parser.add_argument("--pairs", type=int, default=320)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--contenders", default=",".join(CONTENDERS), help="comma-separated, from: " + ", ".join(CONTENDERS) + " (plain is always run)")
    parser.add_argument("--worker", choices=CONTENDERS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker, args.data, args.pairs)
    chosen = [c for c in CONTENDERS if c in {*args.contenders.split(","), "plain"}]
    results: dict[str, list[dict]] = {c: [] for c in chosen}
    for _ in range(args.repeat):
        for contender in chosen:
            cmd = [sys.executable, __file__, "--worker", contender, "--data", str(args.data), "--pairs", str(args.pairs)]
            line = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
            results[contender].append(json.loads(line))
            print(line, file=sys.stderr)
    median = {c: {k: statistics.median(r[k] for r in rows) for k in ("pairs_per_s", "peak_mb", "seconds")} for c, rows in results.items()}
    print("| contender | steps | median s | pairs/s | peak MB | vs plain |\n|---|---:|---:|---:|---:|---|")
    for c in chosen:
        m = median[c]
        ratio = f"{m['pairs_per_s'] / median['plain']['pairs_per_s']:.3f}x throughput, {m['peak_mb'] / median['plain']['peak_mb']:.3f}x memory"
        print(f"| {c} | {results[c][0]['steps']} | {m['seconds']:.1f} | {m['pairs_per_s']:.2f} | {m['peak_mb']:.0f} | {ratio} |")


if __name__ == "__main__":
    main()
