#!/usr/bin/env bash
# A real-GPU benchmark: start an SGLang server, run baseline vs SPEX on GSM8K, print the table.
# Usage (on a GPU machine with sglang installed): integrations/sglang/gpu_bench.sh [MODEL]
set -euo pipefail
MODEL=${1:-Qwen/Qwen2.5-Math-1.5B-Instruct}
PORT=30000
"$(dirname "$0")/launch_policy.sh" "$MODEL" "$PORT" > /tmp/sglang.log 2>&1 &
SERVER=$!
trap 'kill $SERVER' EXIT
for _ in $(seq 120); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 5; done
spex bench --backend sglang --backend-url "http://127.0.0.1:$PORT" --dataset gsm8k \
  --algorithm rebase --width 16 --queries 32 --concurrency 4 \
  --modes baseline,spex,oracle --json sglang-bench.json
