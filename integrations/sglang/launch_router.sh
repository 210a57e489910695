#!/usr/bin/env bash
# Several SGLang replicas behind sglang-router (cache-aware routing keeps siblings on the
# replica that holds their parent's prefix).
# Note: the router does not forward /abort_request (SGLANG.md section 6), so cancelled
# speculation finishes on the replica; point spex at the replicas directly to abort.
# Usage: integrations/sglang/launch_router.sh http://gpu0:30000 http://gpu1:30001 ...
set -euo pipefail
exec python -m sglang_router.launch_router --worker-urls "$@" --policy cache_aware --port 30100
