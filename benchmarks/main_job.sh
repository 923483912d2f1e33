#!/usr/bin/env bash
# The README's main job, measured as a new user runs it: `bench run` (the default ladder on demo and
# demo-ood, offline), cold caches, a fresh leaderboard, stderr piped to a log (as CI or `tee` would).
# Prints the wall time, the peak resident memory (/usr/bin/time -v) and the fine-tuning rows.
# Usage: bash benchmarks/main_job.sh [WORK_DIR]   (run from the repository root with the venv active)
set -euo pipefail
work="${1:-$(mktemp -d)}"
mkdir -p "$work"
sed "s|goldsets = \[\"demo\"\]|goldsets = [\"$PWD/goldsets/demo\"]|" ladder.toml > "$work/ladder.toml"
cd "$work"
TUNEBENCH_CACHE="$work/cache" HF_HUB_OFFLINE=1 /usr/bin/time -v bench run --leaderboard "$work/leaderboard" --json > "$work/run.json" 2> "$work/log.txt"
grep -E "Elapsed \(wall clock\)|Maximum resident set size" "$work/log.txt"
python - "$work/run.json" <<'PY'
import json, sys
for r in json.load(open(sys.argv[1])):
    if r["status"] == "ok" and r["rung"].startswith("finetune"):
        d = r["details"]
        print(f'{r["goldset"]:9} {r["rung"]:12} nDCG@10 {r["metrics"]["ndcg@10"]:.3f}  train {d.get("train_seconds")} s  peak RSS {d.get("peak_rss_mb")} MB  '
              f'loss {d.get("loss")} (mini-batch {d.get("mini_batch_size")})  max_length {d.get("max_length")}  negatives {d.get("negatives")}  {d.get("device")}')
PY
echo "log lines: $(wc -l < "$work/log.txt"); carriage returns: $(tr -cd '\r' < "$work/log.txt" | wc -c)"
