#!/usr/bin/env bash
# Build the local control-plane tools into .cache/bin (idempotent; a cached run takes
# seconds): etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl and helm,
# each from its pinned wrapper module under hack/tools/. Prints the path of each binary.
#
#   hack/install-tools.sh                  # all tools
#   hack/install-tools.sh etcd kubectl     # just these
#   hack/install-tools.sh --versions       # print name and pinned version, build nothing
#
# Environment: MODELSEC_CACHE_DIR (default <repo>/.cache), TOOLS_BUILD_JOBS (go build -p,
# default 2). Needs Go >= 1.26 on PATH when something has to be built.
set -euo pipefail
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=hack/lib/tools.sh
source "$REPO_ROOT/hack/lib/tools.sh"

if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
  sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
fi
if [ "${1:-}" = "--versions" ]; then
  for t in "${TOOLS_ALL[@]}"; do printf '%s %s\n' "$t" "$(tools::version "$t")"; done
  exit 0
fi

tools=("$@")
[ "${#tools[@]}" -gt 0 ] || tools=("${TOOLS_ALL[@]}")
start=$(date +%s)
tools::ensure "${tools[@]}"
for t in "${tools[@]}"; do
  printf '%-15s %s\n' "$t" "$(tools::path "$t")"
done
tools::log "done in $(( $(date +%s) - start ))s; add $TOOLS_BIN_DIR to PATH (or: eval \"\$(hack/envtest.sh env)\")"
