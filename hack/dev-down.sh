#!/usr/bin/env bash
# Stop what hack/dev-up.sh started: the operator (SIGTERM, then SIGKILL after 30s), the
# webhook if it has a dev script, and the control plane.
#
#   hack/dev-down.sh                  stop all, remove the cluster state (logs kept)
#   hack/dev-down.sh --keep-cluster   stop the operator only (the cluster keeps its objects)
#   hack/dev-down.sh --purge          also remove .cache/dev/<name>/ (logs, models)
set -euo pipefail
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO_ROOT"
export ENVTEST_NAME=${ENVTEST_NAME:-dev}
CACHE=${MODELSEC_CACHE_DIR:-$REPO_ROOT/.cache}
DEV=$CACHE/dev/$ENVTEST_NAME
keep_cluster=0 purge=0
for arg in "$@"; do
  case "$arg" in
    --keep-cluster) keep_cluster=1 ;;
    --purge) purge=1 ;;
    *) echo "dev-down: unknown argument $arg (see the header of $0)" >&2; exit 2 ;;
  esac
done
log() { printf 'dev-down[%s]: %s\n' "$ENVTEST_NAME" "$*" >&2; }

pid=$(cat "$DEV/operator.pid" 2>/dev/null || true)
if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null \
   && tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q -- "operator.*--local-root $DEV/models"; then
  log "stopping operator (pid $pid)"
  kill -TERM "$pid"
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  if kill -0 "$pid" 2>/dev/null; then log "operator did not stop in 30s; killing it"; kill -KILL "$pid"; fi
fi
rm -f "$DEV/operator.pid"

if [ -x hack/dev-webhook.sh ]; then hack/dev-webhook.sh down; fi

if [ "$keep_cluster" = 0 ]; then
  bash hack/envtest.sh down
fi
if [ "$purge" = 1 ]; then
  rm -rf "$DEV"
fi
log "done"
