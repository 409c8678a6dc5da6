#!/usr/bin/env bash
# A local modelsec cluster to play with: the control plane from hack/envtest.sh, the CRDs,
# and the operator and the admission webhook running as local processes against it.
# Idempotent: a second run reuses what is up. Stop everything with hack/dev-down.sh.
#
#   hack/dev-up.sh
#   eval "$(ENVTEST_NAME=dev hack/envtest.sh env)"; kubectl get modelsec
#
# State under .cache/dev/<name>/: operator.log, operator.pid, ports.env, models/ (the
# operator's --local-root: put models there and point a Local ModelSource at it).
#
# Environment:
#   ENVTEST_NAME            control-plane instance (default "dev")
#   MODELSEC_METRICS_PORT   operator metrics port (default: a free port)
#   MODELSEC_HEALTH_PORT    operator health port (default: a free port)
#   MODELSEC_OPERATOR_ARGS  extra `modelsec operator` flags, space separated
set -euo pipefail
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO_ROOT"
export ENVTEST_NAME=${ENVTEST_NAME:-dev}
CACHE=${MODELSEC_CACHE_DIR:-$REPO_ROOT/.cache}
DEV=$CACHE/dev/$ENVTEST_NAME
PY=$REPO_ROOT/.venv/bin/python
log() { printf 'dev-up[%s]: %s\n' "$ENVTEST_NAME" "$*" >&2; }
die() { printf 'dev-up[%s]: error: %s\n' "$ENVTEST_NAME" "$*" >&2; exit 1; }

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# operator_alive: the recorded pid runs and is our operator for this instance.
operator_alive() {
  local pid
  pid=$(cat "$DEV/operator.pid" 2>/dev/null) || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q -- "operator.*--local-root $DEV/models"
}

bash hack/bootstrap.sh
mkdir -p "$DEV/models"
log "control plane"
bash hack/envtest.sh up
eval "$(bash hack/envtest.sh env)"

log "CRDs"
kubectl apply -f crds/ >&2
kubectl wait --for=condition=Established --timeout=60s \
  crd/modelsources.modelsec.io crd/securitygroups.modelsec.io crd/modelscans.modelsec.io >&2

if operator_alive; then
  log "operator already running (pid $(cat "$DEV/operator.pid"))"
else
  metrics_port=${MODELSEC_METRICS_PORT:-$(free_port)}
  health_port=${MODELSEC_HEALTH_PORT:-$(free_port)}
  printf 'METRICS_PORT=%s\nHEALTH_PORT=%s\n' "$metrics_port" "$health_port" > "$DEV/ports.env"
  log "operator (log: $DEV/operator.log)"
  # shellcheck disable=SC2086  # MODELSEC_OPERATOR_ARGS is a flag list on purpose
  NO_PROXY=127.0.0.1,localhost,::1 no_proxy=127.0.0.1,localhost,::1 \
  PYTHONPATH="$REPO_ROOT/operator:$REPO_ROOT/src" \
    setsid "$REPO_ROOT/.venv/bin/modelsec" operator \
      --kubeconfig "$KUBECONFIG" --standalone \
      --local-root "$DEV/models" \
      --metrics-port "$metrics_port" --health-port "$health_port" --bind-address 127.0.0.1 \
      ${MODELSEC_OPERATOR_ARGS:-} \
      >> "$DEV/operator.log" 2>&1 < /dev/null &
  echo $! > "$DEV/operator.pid"
  for _ in $(seq 1 100); do
    if curl -fsS "http://127.0.0.1:$health_port/healthz" >/dev/null 2>&1; then break; fi
    operator_alive || die "operator exited; see $DEV/operator.log:
$(tail -n 20 "$DEV/operator.log")"
    sleep 0.3
  done
  curl -fsS "http://127.0.0.1:$health_port/healthz" >/dev/null || die "operator not healthy; see $DEV/operator.log"
fi

# The admission webhook (its own script: hack/dev-webhook.sh up|down|status).
if [ -x hack/dev-webhook.sh ]; then
  log "webhook"
  hack/dev-webhook.sh up
fi

# shellcheck disable=SC1091
. "$DEV/ports.env"
webhook_line="(not started)"
if [ -f "$DEV/webhook.env" ]; then
  # shellcheck disable=SC1091
  . "$DEV/webhook.env"
  webhook_line="https://127.0.0.1:$WEBHOOK_PORT/validate  log: $DEV/webhook.log  metrics: http://127.0.0.1:$WEBHOOK_METRICS_PORT/metrics"
fi
cat >&2 <<INFO
dev-up[$ENVTEST_NAME]: ready.
  eval "\$(ENVTEST_NAME=$ENVTEST_NAME hack/envtest.sh env)"
  kubectl get modelsec                      # sources, groups and scans
  models directory (Local source path):     $DEV/models
  operator log:                             $DEV/operator.log
  metrics / health:                         http://127.0.0.1:$METRICS_PORT/metrics  http://127.0.0.1:$HEALTH_PORT/healthz
  admission webhook:                        $webhook_line
  stop:                                     hack/dev-down.sh
INFO
