#!/usr/bin/env bash
# Launch an SGLang server for spex-graph's policy model.
#   --enable-deterministic-inference  makes sampling_seed honoured: SPEX's exact mode needs it
#   --enable-priority-scheduling      primary requests (priority 1) run before speculative ones (0)
# Token-level speculative decoding composes with SPEX: set SPEC_DRAFT to an EAGLE draft model
# (SPEC_ALGORITHM=EAGLE3 by default, or EAGLE) to add SGLang's flags with its documented
# defaults (docs/advanced_features/speculative_decoding.md; the simulator's --spec-decoding
# models the same setting). Extra arguments after MODEL and PORT go to the server as they are.
# Usage: [SPEC_DRAFT=path] integrations/sglang/launch_policy.sh [MODEL] [PORT] [server args...]
set -euo pipefail
MODEL=${1:-Qwen/Qwen2.5-Math-7B-Instruct}
PORT=${2:-30000}
SPEC_ARGS=()
if [[ -n "${SPEC_DRAFT:-}" ]]; then
  SPEC_ARGS=(--speculative-algorithm "${SPEC_ALGORITHM:-EAGLE3}"
    --speculative-draft-model-path "$SPEC_DRAFT" --speculative-num-steps 5
    --speculative-eagle-topk 4 --speculative-num-draft-tokens 8)
fi
exec python -m sglang.launch_server --model-path "$MODEL" --port "$PORT" \
  --enable-deterministic-inference --enable-priority-scheduling --enable-metrics \
  "${SPEC_ARGS[@]}" "${@:3}"
