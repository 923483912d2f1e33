"""Benchmark: how much of fine-tuning's gain is on documents the model trained on, and how much generalises.

Runs one ladder through ``bench run`` on a goldset: the baseline embedder, BM25, their RRF fusion, and
the default ``finetune`` rung (round 0 and one mining round) with query leaks dropped
(``on_leakage = "drop"``) and document overlap kept (``on_overlap = "keep"``, the default). Each round's
record splits the test queries into those about documents it trained on ("seen") and the others
("unseen"). Then ``bench report`` decides under both corpus scenarios (``--corpus fixed`` and
``--corpus growing``), and the script prints a Markdown table of all / seen / unseen nDCG@10 with 95%
intervals and paired deltas against the baseline and the best cheaper rung on the same queries.

A goldset folder without a ``goldset.toml`` (SciFact in ../shared/datasets) is linked file by file into
``--out`` with a manifest naming ``--ood`` (nothing is copied). Nothing but the data is set in the
training table (SciFact has no dev split: ``eval_split = ""``; the last epoch is kept), so the recipe is
the default one.

Usage: python benchmarks/seen_unseen.py GOLDSET [--ood OOD_GOLDSET] [--out DIR] [--also MODEL_DIR ...]
``--also`` evaluates more model folders (e.g. rounds trained with ``on_leakage = "allow"``) as extra rungs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

LADDER = """
name = "seen-unseen"
goldsets = ["{goldset}"]
splits = ["test"]
latency_queries = 20

[[rungs]]
name = "baseline"
kind = "dense"
encoder = {{ model = "sentence-transformers/all-MiniLM-L6-v2" }}

[[rungs]]
name = "bm25"
kind = "bm25"

[[rungs]]
name = "hybrid"
kind = "hybrid"
inputs = ["bm25", "baseline"]
method = "rrf"

[[rungs]]
name = "finetune"
kind = "finetune"
train = {{ on_leakage = "drop", eval_split = "{eval_split}" }}
{also}"""

ALSO = """
[[rungs]]
name = "{name}"
kind = "dense"
encoder = {{ model = "{model}" }}
"""


def linked_goldset(source: Path, ood: Path | None, out: Path) -> Path:
    """``source`` as is when it has a manifest; else a folder of links to its files with one."""
    if (source / "goldset.toml").is_file():
        return source
    folder = out / source.name
    folder.mkdir(parents=True, exist_ok=True)
    for item in source.iterdir():
        link = folder / item.name
        if not link.exists():
            link.symlink_to(item.resolve())
    manifest = f'name = "{source.name}"\nquery_origin = "human"\ncorpus = "fixed"\n' + (f'ood = ["{ood.resolve()}"]\n' if ood else "")
    (folder / "goldset.toml").write_text(manifest)
    return folder


def bench(*args: str, out: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "TUNEBENCH_CACHE": str(out / "cache"), "HF_HUB_OFFLINE": "1"}
    return subprocess.run(["bench", *args], cwd=out, env=env, capture_output=True, text=True)


def table(records: list[dict], rungs: list[str]) -> str:
    from harness.decide.significance import bootstrap_ci, compare
    from harness.records import read_record

    by_rung = {r.rung.name: r for r in map(read_record, records)}
    lines = ["| rung | all (n) | seen (n) | unseen (n) | unseen - baseline (95% CI) | unseen - best cheaper |", "|---|---:|---:|---:|---|---|"]
    cheaper = max((by_rung[n] for n in ("baseline", "bm25", "hybrid") if n in by_rung), key=lambda r: r.metrics["ndcg@10"])
    for name in rungs:
        r = by_rung[name]
        cells = [f"{r.metrics['ndcg@10']:.3f} ({len(r.per_query)})"]
        for subset in ("seen", "unseen"):
            sub = r.subsets.get(subset)
            if sub and sub.queries:
                low, high = bootstrap_ci([r.per_query[q]["ndcg@10"] for q in sub.queries])
                cells.append(f"{sub.metrics['ndcg@10']:.3f} ({len(sub.queries)}; {low:.3f}-{high:.3f})")
            else:
                cells.append("-")
        unseen = r.subsets.get("unseen")
        for reference in (by_rung["baseline"], cheaper):
            if unseen and unseen.queries:
                c = compare(r, reference, "ndcg@10", queries=unseen.queries)
                cells.append(f"{c.delta:+.3f} ({c.ci_low:+.3f} to {c.ci_high:+.3f}, p {c.p_value:.3g})")
            else:
                cells.append("-")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + f"\n\nbest cheaper rung: {cheaper.rung.name}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("goldset", type=Path)
    parser.add_argument("--ood", type=Path)
    parser.add_argument("--eval-split", default="", help="split picking the best epoch ('' keeps the last; demo: dev)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "_work" / "seen_unseen")
    parser.add_argument("--also", type=Path, nargs="*", default=[], help="more model folders to score (rung names: also-1, also-2, ...)")
    args = parser.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    goldset = linked_goldset(args.goldset.resolve(), args.ood, out)
    also = "".join(ALSO.format(name=f"also-{i + 1}", model=m.resolve()) for i, m in enumerate(args.also))
    (out / "ladder.toml").write_text(LADDER.format(goldset=goldset, eval_split=args.eval_split, also=also))
    ran = bench("run", "-l", "ladder.toml", "--leaderboard", "leaderboard", "--json", out=out)
    (out / "run.log").write_text(ran.stderr)
    if ran.returncode:
        sys.exit(f"bench run failed ({ran.returncode}); see {out / 'run.log'}")
    records = [r for r in json.loads(ran.stdout) if r["status"] == "ok" and r["ood_of"] is None]
    paths = [p for p in (out / "leaderboard" / "records").rglob("*.json") if any(p.name.startswith(f"{r['rung']}.{r['key']}") for r in records)]
    rungs = [r["rung"] for r in records]
    print(table([str(p) for p in paths], rungs))
    for corpus in ("fixed", "growing"):
        report = bench("report", "-l", "ladder.toml", "--leaderboard", "leaderboard", "--corpus", corpus, out=out)
        (out / f"report-{corpus}.md").write_text(report.stdout)
        print(f"\n## --corpus {corpus}\n" + "\n".join(report.stdout.splitlines()[2:8]))


if __name__ == "__main__":
    main()
