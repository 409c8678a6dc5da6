#!/usr/bin/env bash
# The admission webhook as a local process against the dev control plane (called by
# hack/dev-up.sh and hack/dev-down.sh; usable alone once the control plane is up).
#
#   hack/dev-webhook.sh up       start it (no-op when running) and register it
#   hack/dev-webhook.sh down     unregister it, then stop it
#   hack/dev-webhook.sh status   exit 0 when running and ready
#
# It serves https://127.0.0.1:<port>/validate with a bootstrapped CA (kept in
# .cache/dev/<name>/webhook-tls/), and the ValidatingWebhookConfiguration
# "modelsec-webhook" points the API server at that URL with that CA. `down` deletes the
# configuration before stopping the process: a configuration left behind with
# failurePolicy Fail would make the API server refuse every workload.
#
# Environment: ENVTEST_NAME (default "dev"), MODELSEC_WEBHOOK_PORT and
# MODELSEC_WEBHOOK_METRICS_PORT (default: free ports), MODELSEC_WEBHOOK_ARGS (extra flags).
set -euo pipefail
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO_ROOT"
export ENVTEST_NAME=${ENVTEST_NAME:-dev}
CACHE=${MODELSEC_CACHE_DIR:-$REPO_ROOT/.cache}
DEV=$CACHE/dev/$ENVTEST_NAME
PY=$REPO_ROOT/.venv/bin/python
CONFIG_NAME=modelsec-webhook
log() { printf 'dev-webhook[%s]: %s\n' "$ENVTEST_NAME" "$*" >&2; }
die() { printf 'dev-webhook[%s]: error: %s\n' "$ENVTEST_NAME" "$*" >&2; exit 1; }

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
webhook() {
  NO_PROXY=127.0.0.1,localhost,::1 no_proxy=127.0.0.1,localhost,::1 \
  PYTHONPATH="$REPO_ROOT/webhook:$REPO_ROOT/src" "$PY" -m modelsec_webhook "$@"
}

# alive: the recorded pid runs and is our webhook for this instance.
alive() {
  local pid
  pid=$(cat "$DEV/webhook.pid" 2>/dev/null) || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q -- "modelsec_webhook.*$DEV/webhook-tls"
}

ready() {
  # shellcheck disable=SC1091
  [ -f "$DEV/webhook.env" ] && . "$DEV/webhook.env" && \
    curl -fsS --noproxy '*' "http://127.0.0.1:$WEBHOOK_METRICS_PORT/readyz" >/dev/null 2>&1
}

cluster_env() {
  local exports
  exports=$(bash hack/envtest.sh env 2>/dev/null) || return 1
  eval "$exports"
}

cmd_up() {
  cluster_env || die "the control plane is not up: run hack/dev-up.sh (or ENVTEST_NAME=$ENVTEST_NAME hack/envtest.sh up)"
  mkdir -p "$DEV"
  if alive && ready; then
    log "already running (pid $(cat "$DEV/webhook.pid"))"
  else
    local port metrics_port
    port=${MODELSEC_WEBHOOK_PORT:-$(free_port)}
    metrics_port=${MODELSEC_WEBHOOK_METRICS_PORT:-$(free_port)}
    printf 'WEBHOOK_PORT=%s\nWEBHOOK_METRICS_PORT=%s\n' "$port" "$metrics_port" > "$DEV/webhook.env"
    log "starting the webhook on https://127.0.0.1:$port (log: $DEV/webhook.log)"
    # shellcheck disable=SC2086  # MODELSEC_WEBHOOK_ARGS is a flag list on purpose
    NO_PROXY=127.0.0.1,localhost,::1 no_proxy=127.0.0.1,localhost,::1 \
    PYTHONPATH="$REPO_ROOT/webhook:$REPO_ROOT/src" \
      setsid "$PY" -m modelsec_webhook --kubeconfig "$KUBECONFIG" \
        --bootstrap-tls --tls-dir "$DEV/webhook-tls" --tls-san 127.0.0.1 --tls-san localhost \
        --webhook-config-name "$CONFIG_NAME" \
        --port "$port" --metrics-port "$metrics_port" --bind-address 127.0.0.1 \
        ${MODELSEC_WEBHOOK_ARGS:-} \
        >> "$DEV/webhook.log" 2>&1 < /dev/null &
    echo $! > "$DEV/webhook.pid"
    for _ in $(seq 1 150); do
      ready && break
      alive || die "the webhook exited; see $DEV/webhook.log:
$(tail -n 20 "$DEV/webhook.log")"
      sleep 0.2
    done
    ready || die "the webhook is not ready after 30s; see $DEV/webhook.log"
  fi
  # shellcheck disable=SC1091
  . "$DEV/webhook.env"
  # (Re-)register: the URL changes with the port, and the CA is the bootstrapped one.
  webhook --print-config --url "https://127.0.0.1:$WEBHOOK_PORT/validate" \
    --ca-file "$DEV/webhook-tls/ca.crt" --webhook-config-name "$CONFIG_NAME" | kubectl apply -f - >&2
  log "registered as ValidatingWebhookConfiguration $CONFIG_NAME (exempt: kube-system, modelsec-system)"
}

cmd_down() {
  if cluster_env; then
    kubectl delete validatingwebhookconfiguration "$CONFIG_NAME" --ignore-not-found >&2 || true
  fi
  if alive; then
    local pid
    pid=$(cat "$DEV/webhook.pid")
    log "stopping the webhook (pid $pid)"
    kill -TERM "$pid"
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$pid" 2>/dev/null; then log "did not stop in 30s; killing it"; kill -KILL "$pid"; fi
  fi
  rm -f "$DEV/webhook.pid"
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) alive && ready ;;
  *) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
