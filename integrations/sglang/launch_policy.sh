#!/usr/bin/env bash
# Launch an SGLang server for spex-graph's policy model.
#   --enable-deterministic-inference  makes sampling_seed honoured: SPEX's exact mode needs it
#   --enable-priority-scheduling      primary requests (priority 1) run before speculative ones (0)
# Usage: integrations/sglang/launch_policy.sh [MODEL] [PORT]
set -euo pipefail
MODEL=${1:-Qwen/Qwen2.5-Math-7B-Instruct}
PORT=${2:-30000}
exec python -m sglang.launch_server --model-path "$MODEL" --port "$PORT" \
  --enable-deterministic-inference --enable-priority-scheduling --enable-metrics
