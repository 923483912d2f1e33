"""Benchmark: how much of fine-tuning's gain is on documents the model trained on, and how much generalises.

Runs one ladder through ``bench run`` on a goldset: the baseline embedder, BM25, their RRF fusion, and
the default ``finetune`` rung (round 0 and one mining round) with query leaks dropped
(``on_leakage = "drop"``) and document overlap kept (``on_overlap = "keep"``, the default). Each round's
record splits the test queries into those about documents it trained on ("seen") and the others
("unseen"). Then ``bench report`` decides under both corpus scenarios (``--corpus fixed`` and
``--corpus growing``), and the script prints a Markdown table of all / seen / unseen nDCG@10 with 95%
intervals and paired deltas against the baseline and the hybrid on the same queries
(``--table-only`` prints them again from the records).

A goldset folder without a ``goldset.toml`` (SciFact in ../shared/datasets) is linked file by file into
``--out`` with a manifest naming ``--ood`` (nothing is copied). Nothing but the data is set in the
training table (SciFact has no dev split: ``eval_split = ""``; the last epoch is kept), so the recipe is
the default one.

Usage: python benchmarks/seen_unseen.py GOLDSET [--ood OOD_GOLDSET] [--out DIR] [--also MODEL_DIR ...]
``--also`` evaluates more model folders (e.g. rounds trained with ``on_leakage = "allow"``) as extra rungs.
"""

from __future__ import annotations

import argparse
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


def table(folder: Path, goldset: str, finetuned: list[str]) -> str:
    """Markdown: nDCG@10 (95% bootstrap interval) of every rung on all / seen / unseen queries (the
    subsets of ``finetuned[0]``), then each fine-tuned rung's paired delta against the baseline and
    the hybrid on the same queries."""
    from harness.decide.significance import bootstrap_ci, compare
    from harness.records import read_record

    records = {r.rung.name: r for r in map(read_record, (folder / "leaderboard" / "records" / goldset / "test").glob("*.json"))}
    groups = {"all": None, **{name: records[finetuned[0]].subsets[name].queries for name in ("seen", "unseen")}}
    lines = ["| rung | " + " | ".join(f"{g} ({len(q) if q else len(records['baseline'].per_query)})" for g, q in groups.items()) + " |", "|---|---:|---:|---:|"]
    for name in [n for n in ("baseline", "bm25", "hybrid", "hybrid-tuned") if n in records] + finetuned:
        cells = []
        for queries in groups.values():
            values = [records[name].per_query[q]["ndcg@10"] for q in (queries or records[name].per_query)]
            low, high = bootstrap_ci(values)
            cells.append(f"{sum(values) / len(values):.3f} ({low:.3f}-{high:.3f})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "| delta (paired, Fisher) | " + " | ".join(groups) + " |", "|---|---|---|---|"]
    for name in finetuned:
        for reference in [n for n in ("baseline", "hybrid", "hybrid-tuned") if n in records]:
            cells = []
            for queries in groups.values():
                c = compare(records[name], records[reference], "ndcg@10", queries=queries)
                cells.append(f"{c.delta:+.3f} ({c.ci_low:+.3f} to {c.ci_high:+.3f}, p {c.p_value:.2g})")
            lines.append(f"| {name} - {reference} | " + " | ".join(cells) + " |")
    return "\n".join(lines + _against_leak_free(records, finetuned))


def _against_leak_free(records: dict, finetuned: list[str]) -> list[str]:
    """Each extra model (``also-i``, e.g. trained with query leaks allowed) against the ladder's round
    i-1, paired on: all queries, those only the extra model saw documents of, those both saw, neither."""
    from harness.decide.significance import compare

    lines = []
    for i, name in enumerate(n for n in finetuned if n.startswith("also-")):
        ours = records[f"finetune-r{i}"]
        theirs, mine = set(records[name].subsets["seen"].queries), set(ours.subsets["seen"].queries)
        groups = {"all": None, "seen only by it": sorted(theirs - mine), "seen by both": sorted(theirs & mine), "seen by neither": sorted(set(ours.per_query) - theirs - mine)}
        for label, queries in groups.items():
            c = compare(records[name], ours, "ndcg@10", queries=queries)
            lines.append(f"- {name} - {ours.rung.name}, {label} ({c.n}): {c.delta:+.3f} ({c.ci_low:+.3f} to {c.ci_high:+.3f}, p {c.p_value:.2g})")
    return ["", *lines] if lines else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("goldset", type=Path)
    parser.add_argument("--ood", type=Path)
    parser.add_argument("--eval-split", default="", help="split picking the best epoch ('' keeps the last; demo: dev)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "_work" / "seen_unseen")
    parser.add_argument("--also", type=Path, nargs="*", default=[], help="more model folders to score (rung names: also-1, also-2, ...)")
    parser.add_argument("--table-only", action="store_true", help="print the tables from the records already in --out, running nothing")
    args = parser.parse_args()
    out = args.out.resolve()
    rungs = ["finetune-r0", "finetune-r1", *(f"also-{i + 1}" for i in range(len(args.also)))]
    if args.table_only:
        return print(table(out, args.goldset.resolve().name, rungs))
    out.mkdir(parents=True, exist_ok=True)
    goldset = linked_goldset(args.goldset.resolve(), args.ood, out)
    also = "".join(ALSO.format(name=f"also-{i + 1}", model=m.resolve()) for i, m in enumerate(args.also))
    (out / "ladder.toml").write_text(LADDER.format(goldset=goldset, eval_split=args.eval_split, also=also))
    ran = bench("run", "-l", "ladder.toml", "--leaderboard", "leaderboard", "--json", out=out)
    (out / "run.log").write_text(ran.stderr)
    if ran.returncode:
        sys.exit(f"bench run failed ({ran.returncode}); see {out / 'run.log'}")
    print(table(out, goldset.name, rungs))
    for corpus in ("fixed", "growing"):
        report = bench("report", "-l", "ladder.toml", "--leaderboard", "leaderboard", "--corpus", corpus, out=out)
        (out / f"report-{corpus}.md").write_text(report.stdout)
        print(f"\n## --corpus {corpus}\n" + "\n".join(report.stdout.splitlines()[2:8]))


if __name__ == "__main__":
    main()
