#!/usr/bin/env bash
# A real local Kubernetes control plane, envtest style: etcd + kube-apiserver on loopback,
# and with ENVTEST_CONTROLLERS=1 also kube-controller-manager and kube-scheduler (Deployments
# make ReplicaSets and Pods, garbage collection and namespace deletion work, RBAC roles
# aggregate). There is never a kubelet or a node: Pods stay Pending. Binaries come from
# hack/install-tools.sh (built on first use).
#
#   hack/envtest.sh up       start (no-op when this instance is already up)
#   hack/envtest.sh down     stop and remove the instance's state (logs are kept; --purge removes them too)
#   hack/envtest.sh env      print `export KUBECONFIG=... PATH=...` for eval
#   hack/envtest.sh status   print the state; exit 0 when up and ready, 1 otherwise
#
# Environment:
#   ENVTEST_NAME              instance name (default "default"); state in .cache/envtest/<name>/
#   ENVTEST_APISERVER_PORT    fixed secure port for the apiserver (default: a free port)
#   ENVTEST_ETCD_PORT         fixed etcd client port (default: a free port)
#   ENVTEST_ETCD_PEER_PORT    fixed etcd peer port (default: a free port)
#   ENVTEST_START_TIMEOUT     seconds to wait for readiness (default 180)
#   ENVTEST_APISERVER_ARGS    extra kube-apiserver flags, space separated
#   ENVTEST_CONTROLLERS       1: also run kube-controller-manager and kube-scheduler (an
#                             instance already up without them gets them started)
#   MODELSEC_CACHE_DIR        cache root (default <repo>/.cache)
set -euo pipefail
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=hack/lib/tools.sh
source "$REPO_ROOT/hack/lib/tools.sh"
# shellcheck source=hack/lib/pki.sh
source "$REPO_ROOT/hack/lib/pki.sh"

NAME=${ENVTEST_NAME:-default}
case "$NAME" in
  ''|*[!A-Za-z0-9._-]*|.*) echo "envtest: ENVTEST_NAME must be [A-Za-z0-9._-]+ and not start with '.', got '$NAME'" >&2; exit 2 ;;
esac
STATE=$TOOLS_CACHE_DIR/envtest/$NAME
PKI=$STATE/pki
LOGS=$STATE/logs
KUBECONFIG_FILE=$STATE/kubeconfig
PORTS_FILE=$STATE/ports.env
START_TIMEOUT=${ENVTEST_START_TIMEOUT:-180}
NEEDED_TOOLS=(etcd kube-apiserver kubectl)
CONTROLLERS=(kube-controller-manager kube-scheduler)
WANT_CONTROLLERS=${ENVTEST_CONTROLLERS:-0}
CONTROLLERS_MARKER=$STATE/controllers.enabled

log() { printf 'envtest[%s]: %s\n' "$NAME" "$*" >&2; }
die() { printf 'envtest[%s]: error: %s\n' "$NAME" "$*" >&2; exit 1; }

# A free TCP port on 127.0.0.1 (the kernel picks it; a tiny race remains, as with envtest).
free_port() {
  if command -v python3 >/dev/null 2>&1; then
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
    return
  fi
  local p
  for _ in $(seq 1 100); do
    p=$(( 20000 + RANDOM % 30000 ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
  die "could not find a free port"
}

# pid_alive PIDFILE MARKER: the pid in PIDFILE is running and its command line contains
# MARKER (this instance's state dir), so a recycled pid is never mistaken for ours.
pid_alive() {
  local pidfile=$1 pid
  [ -f "$pidfile" ] || return 1
  pid=$(cat "$pidfile" 2>/dev/null) || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  if [ -r "/proc/$pid/cmdline" ]; then
    tr '\0' ' ' < "/proc/$pid/cmdline" | grep -qF -- "$STATE/" || return 1
  fi
  return 0
}

# start_daemon NAME BINARY ARGS...: detached from this shell (own session, stdin closed),
# so it outlives the caller; its pid is written by the process itself before exec. The
# instance lock's fd is closed for it: a daemon holding the lock would block every later
# `up`/`down` of this instance.
start_daemon() {
  local name=$1; shift
  : > "$LOGS/$name.log"
  # Loopback traffic (webhooks, etcd) must never go through a proxy from the environment.
  # shellcheck disable=SC2016  # $$ and $@ expand in the inner shell
  env -u http_proxy -u https_proxy -u HTTP_PROXY -u HTTPS_PROXY -u ALL_PROXY -u all_proxy \
    NO_PROXY=127.0.0.1,localhost,::1 no_proxy=127.0.0.1,localhost,::1 \
    setsid bash -c 'echo $$ > "$0"; exec "$@"' "$STATE/$name.pid" "$@" \
    >> "$LOGS/$name.log" 2>&1 < /dev/null {lock_fd}>&- &
  # Wait for the pid file (written before exec).
  for _ in $(seq 1 50); do [ -s "$STATE/$name.pid" ] && return 0; sleep 0.1; done
  die "$name did not start; log: $LOGS/$name.log"
}

log_tail() {
  local name=$1
  printf -- '--- last 40 lines of %s ---\n' "$LOGS/$name.log" >&2
  tail -n 40 "$LOGS/$name.log" >&2 || true
  printf -- '--- end of %s ---\n' "$name.log" >&2
}

curl_api() {
  # shellcheck disable=SC1090
  source "$PORTS_FILE"
  curl --silent --show-error --max-time 5 --noproxy '*' \
    --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
    "https://127.0.0.1:$APISERVER_PORT$1"
}

is_ready() {
  [ -f "$PORTS_FILE" ] || return 1
  pid_alive "$STATE/etcd.pid" && pid_alive "$STATE/kube-apiserver.pid" || return 1
  [ "$(curl_api /readyz 2>/dev/null)" = "ok" ] || return 1
  if [ -f "$CONTROLLERS_MARKER" ]; then controllers_alive || return 1; fi
}

controllers_alive() {
  local c
  for c in "${CONTROLLERS[@]}"; do pid_alive "$STATE/$c.pid" || return 1; done
}

stop_daemon() {
  local name=$1 pidfile=$STATE/$1.pid pid
  if pid_alive "$pidfile"; then
    pid=$(cat "$pidfile")
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
      log "$name did not stop in 20s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
      for _ in $(seq 1 25); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    fi
  fi
  rm -f "$pidfile"
}

# write_kubeconfig [FILE CLIENT]: a kubeconfig for the client certificate PKI/CLIENT.crt
# (default: the admin's, at KUBECONFIG_FILE).
write_kubeconfig() {
  local file=${1:-$KUBECONFIG_FILE} client=${2:-admin} ca_data cert_data key_data
  ca_data=$(base64 -w0 < "$PKI/ca.crt")
  cert_data=$(base64 -w0 < "$PKI/$client.crt")
  key_data=$(base64 -w0 < "$PKI/$client.key")
  (
    umask 077
    cat > "$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: envtest-$NAME
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority-data: $ca_data
users:
- name: envtest-$NAME-$client
  user:
    client-certificate-data: $cert_data
    client-key-data: $key_data
contexts:
- name: envtest-$NAME
  context:
    cluster: envtest-$NAME
    user: envtest-$NAME-$client
    namespace: default
current-context: envtest-$NAME
EOF
  )
}

# wait_until DESCRIPTION DEADLINE CHECK...: poll CHECK; fail fast if a daemon died.
wait_until() {
  local what=$1 deadline=$2; shift 2
  until "$@" >/dev/null 2>&1; do
    local d
    for d in etcd kube-apiserver "${CONTROLLERS[@]}"; do
      if [ -f "$STATE/$d.pid" ] && ! pid_alive "$STATE/$d.pid"; then
        log_tail "$d"
        cleanup_failed
        die "$d exited while waiting for $what; full log: $LOGS/$d.log"
      fi
    done
    if [ "$(date +%s)" -ge "$deadline" ]; then
      for d in etcd kube-apiserver "${CONTROLLERS[@]}"; do
        if [ -f "$STATE/$d.pid" ]; then log_tail "$d"; fi
      done
      cleanup_failed
      die "timed out after ${START_TIMEOUT}s waiting for $what; logs: $LOGS/"
    fi
    sleep 0.5
  done
}

cleanup_failed() {
  stop_controllers
  stop_daemon kube-apiserver
  stop_daemon etcd
}

stop_controllers() {
  local c
  for c in "${CONTROLLERS[@]}"; do stop_daemon "$c"; done
  rm -f "$CONTROLLERS_MARKER"
}

root_ca_published() {
  "$TOOLS_BIN_DIR/kubectl" --kubeconfig "$KUBECONFIG_FILE" get configmap kube-root-ca.crt -n default -o name
}

# start_controllers: kube-controller-manager and kube-scheduler against the running
# apiserver, each as its own user (the client certs from hack/lib/pki.sh), the controllers
# with their own ServiceAccounts as in a real cluster (requests from the ReplicaSet
# controller arrive as system:serviceaccount:kube-system:replicaset-controller). No serving
# ports: nothing here scrapes them. Ready when the root-CA publisher wrote kube-root-ca.crt.
start_controllers() {
  # shellcheck disable=SC1090
  source "$PORTS_FILE"
  local c deadline=$(( $(date +%s) + START_TIMEOUT ))
  for c in "${CONTROLLERS[@]}"; do write_kubeconfig "$STATE/$c.kubeconfig" "$c"; done
  log "starting kube-controller-manager and kube-scheduler $(tools::version kube-controller-manager)"
  start_daemon kube-controller-manager "$(tools::path kube-controller-manager)" \
    --kubeconfig="$STATE/kube-controller-manager.kubeconfig" \
    --secure-port=0 \
    --leader-elect=false \
    --use-service-account-credentials=true \
    --service-account-private-key-file="$PKI/sa.key" \
    --root-ca-file="$PKI/ca.crt" \
    --cluster-name="envtest-$NAME" \
    --controllers='*'
  start_daemon kube-scheduler "$(tools::path kube-scheduler)" \
    --kubeconfig="$STATE/kube-scheduler.kubeconfig" \
    --secure-port=0 \
    --leader-elect=false
  touch "$CONTROLLERS_MARKER"
  wait_until "kube-controller-manager to publish kube-root-ca.crt" "$deadline" root_ca_published
  log "controllers running (logs: $LOGS/kube-controller-manager.log, $LOGS/kube-scheduler.log)"
}

etcd_healthy() {
  # shellcheck disable=SC1090
  source "$PORTS_FILE"
  curl --silent --max-time 3 --noproxy '*' "http://127.0.0.1:$ETCD_PORT/health" | grep -q '"health":"true"'
}

apiserver_ready() { [ "$(curl_api /readyz)" = "ok" ]; }

default_namespace_exists() {
  "$TOOLS_BIN_DIR/kubectl" --kubeconfig "$KUBECONFIG_FILE" get namespace default -o name
}

# lock_instance SECONDS: take this instance's lock (serialises up/down of one instance).
# Returns 1 if it could not be had in time.
lock_instance() {
  mkdir -p "$STATE"
  exec {lock_fd}>"$STATE/.lock"
  command -v flock >/dev/null 2>&1 || return 0
  flock -w "$1" "$lock_fd"
}

# up_and_complete: up and ready, with the controllers if they are wanted.
up_and_complete() {
  is_ready || return 1
  [ "$WANT_CONTROLLERS" != 1 ] || controllers_alive
}

cmd_up() {
  if up_and_complete; then
    log "already up ($(awk -F= '/APISERVER_PORT/{print "https://127.0.0.1:"$2}' "$PORTS_FILE"))"
    return 0
  fi
  lock_instance 900 || die "another 'up' or 'down' of this instance still holds $STATE/.lock after 900s"
  if up_and_complete; then
    log "already up ($(awk -F= '/APISERVER_PORT/{print "https://127.0.0.1:"$2}' "$PORTS_FILE"))"
    return 0
  fi
  if [ "$WANT_CONTROLLERS" = 1 ] && [ -f "$PORTS_FILE" ] && pid_alive "$STATE/kube-apiserver.pid" \
      && [ "$(curl_api /readyz 2>/dev/null)" = "ok" ]; then
    # Up without (or with dead) controllers: add them, keep the cluster.
    tools::ensure "${CONTROLLERS[@]}"
    [ -f "$PKI/kube-controller-manager.crt" ] || die "this instance's certificates predate the controllers; run: ENVTEST_NAME=$NAME hack/envtest.sh down, then up"
    stop_controllers
    ( start_controllers ) || exit 1
    return 0
  fi
  # Leftovers from a crash or a reboot: stop whatever still runs and start clean.
  if [ -f "$STATE/etcd.pid" ] || [ -f "$STATE/kube-apiserver.pid" ] || [ -d "$STATE/etcd-data" ]; then
    log "found a stale or half-started instance; cleaning it up first"
    cleanup_failed
    clean_state keep-logs
  fi

  if [ "$WANT_CONTROLLERS" = 1 ]; then NEEDED_TOOLS+=("${CONTROLLERS[@]}"); fi
  tools::ensure "${NEEDED_TOOLS[@]}"
  command -v curl >/dev/null 2>&1 || die "curl is required"

  # A free port picked here can be taken by someone else before the daemon binds it: with
  # auto-picked ports, retry with new ones when that is why the start failed.
  local attempt=1
  until ( start_instance ); do
    if [ "$attempt" -lt 3 ] && [ -z "${ENVTEST_APISERVER_PORT:-}${ENVTEST_ETCD_PORT:-}${ENVTEST_ETCD_PEER_PORT:-}" ] \
        && grep -qs 'address already in use' "$LOGS/etcd.log" "$LOGS/kube-apiserver.log"; then
      attempt=$(( attempt + 1 ))
      log "a port was taken before the daemon bound it; retrying with new ports (attempt $attempt of 3)"
      clean_state keep-logs
      continue
    fi
    exit 1
  done
}

# start_instance: certificates, ports, kubeconfig, etcd, kube-apiserver, wait for ready.
# Runs in a subshell: `die` ends only this attempt (after stopping what it started).
start_instance() {
  local etcd_bin apiserver_bin
  etcd_bin=$(tools::path etcd)
  apiserver_bin=$(tools::path kube-apiserver)

  mkdir -p "$LOGS" "$STATE/etcd-data"
  chmod 700 "$STATE/etcd-data"
  pki::generate "$PKI"

  ETCD_PORT=${ENVTEST_ETCD_PORT:-$(free_port)}
  ETCD_PEER_PORT=${ENVTEST_ETCD_PEER_PORT:-$(free_port)}
  APISERVER_PORT=${ENVTEST_APISERVER_PORT:-$(free_port)}
  while [ -z "${ENVTEST_ETCD_PEER_PORT:-}" ] && [ "$ETCD_PEER_PORT" = "$ETCD_PORT" ]; do ETCD_PEER_PORT=$(free_port); done
  while [ -z "${ENVTEST_APISERVER_PORT:-}" ] && { [ "$APISERVER_PORT" = "$ETCD_PORT" ] || [ "$APISERVER_PORT" = "$ETCD_PEER_PORT" ]; }; do APISERVER_PORT=$(free_port); done
  cat > "$PORTS_FILE" <<EOF
ETCD_PORT=$ETCD_PORT
ETCD_PEER_PORT=$ETCD_PEER_PORT
APISERVER_PORT=$APISERVER_PORT
EOF
  write_kubeconfig

  local deadline=$(( $(date +%s) + START_TIMEOUT ))
  log "starting etcd $(tools::version etcd) on 127.0.0.1:$ETCD_PORT"
  start_daemon etcd "$etcd_bin" \
    --name=envtest \
    --data-dir="$STATE/etcd-data" \
    --listen-client-urls="http://127.0.0.1:$ETCD_PORT" \
    --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster="envtest=http://127.0.0.1:$ETCD_PEER_PORT" \
    --unsafe-no-fsync=true \
    --quota-backend-bytes=$(( 1024 * 1024 * 1024 ))
  wait_until "etcd /health" "$deadline" etcd_healthy

  log "starting kube-apiserver $(tools::version kube-apiserver) on https://127.0.0.1:$APISERVER_PORT"
  # Flags as controller-runtime's envtest sets them, plus real client-cert authn.
  # shellcheck disable=SC2086
  start_daemon kube-apiserver "$apiserver_bin" \
    --advertise-address=127.0.0.1 \
    --bind-address=127.0.0.1 \
    --secure-port="$APISERVER_PORT" \
    --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
    --cert-dir="$PKI" \
    --tls-cert-file="$PKI/apiserver.crt" \
    --tls-private-key-file="$PKI/apiserver.key" \
    --client-ca-file="$PKI/ca.crt" \
    --service-account-issuer="https://127.0.0.1:$APISERVER_PORT/" \
    --service-account-key-file="$PKI/sa.pub" \
    --service-account-signing-key-file="$PKI/sa.key" \
    --authorization-mode=RBAC \
    --disable-admission-plugins=ServiceAccount \
    --service-cluster-ip-range=10.0.0.0/24 \
    --allow-privileged=true \
    --endpoint-reconciler-type=none \
    --profiling=false \
    ${ENVTEST_APISERVER_ARGS:-}
  wait_until "kube-apiserver /readyz" "$deadline" apiserver_ready
  # The apiserver's bootstrap controller creates default, kube-system, kube-public and
  # kube-node-lease shortly after readyz; callers expect "default" to be there.
  wait_until "the default namespace" "$deadline" default_namespace_exists
  if [ "$WANT_CONTROLLERS" = 1 ]; then start_controllers; fi
  log "ready in $(( $(date +%s) - deadline + START_TIMEOUT ))s: https://127.0.0.1:$APISERVER_PORT (kubeconfig $KUBECONFIG_FILE)"
}

clean_state() {
  if [ "${1:-}" = keep-logs ]; then
    rm -rf "$STATE/etcd-data" "$PKI" "$KUBECONFIG_FILE" "$PORTS_FILE" "$STATE"/*.pid \
      "$STATE"/kube-*.kubeconfig "$CONTROLLERS_MARKER"
  else
    rm -rf "$STATE"
  fi
}

cmd_down() {
  local purge=${1:-}
  if [ ! -d "$STATE" ]; then
    log "not running (no $STATE)"
    return 0
  fi
  # Stopping is safe without the lock; wait a little for a concurrent `up`, not forever.
  lock_instance 60 || log "warning: $STATE/.lock is held by another process; stopping anyway"
  stop_controllers
  stop_daemon kube-apiserver
  stop_daemon etcd
  if [ "$purge" = "--purge" ]; then
    clean_state
    log "stopped; removed $STATE"
  else
    clean_state keep-logs
    log "stopped; state removed, logs kept in $LOGS"
  fi
}

cmd_env() {
  if ! is_ready; then
    log "not up; run: ENVTEST_NAME=$NAME hack/envtest.sh up"
    return 1
  fi
  # shellcheck disable=SC1090
  source "$PORTS_FILE"
  printf 'export KUBECONFIG=%q\n' "$KUBECONFIG_FILE"
  # shellcheck disable=SC2016  # $PATH expands where the output is eval'd
  printf 'export PATH=%q:"$PATH"\n' "$TOOLS_BIN_DIR"
  printf 'export ENVTEST_NAME=%q\n' "$NAME"
  printf 'export ENVTEST_APISERVER_URL=%q\n' "https://127.0.0.1:$APISERVER_PORT"
  printf 'export ENVTEST_CA_FILE=%q\n' "$PKI/ca.crt"
}

cmd_status() {
  local d state
  for d in etcd kube-apiserver "${CONTROLLERS[@]}"; do
    if pid_alive "$STATE/$d.pid"; then state="running (pid $(cat "$STATE/$d.pid"))"
    elif [ "$d" = etcd ] || [ "$d" = kube-apiserver ] || [ -f "$CONTROLLERS_MARKER" ]; then state="stopped"
    else state="not enabled (ENVTEST_CONTROLLERS=1)"; fi
    printf '%-24s %s\n' "$d" "$state"
  done
  if is_ready; then
    # shellcheck disable=SC1090
    source "$PORTS_FILE"
    printf '%-15s %s\n' "apiserver" "https://127.0.0.1:$APISERVER_PORT (readyz ok)"
    printf '%-15s %s\n' "etcd" "http://127.0.0.1:$ETCD_PORT"
    printf '%-15s %s\n' "kubeconfig" "$KUBECONFIG_FILE"
    printf '%-15s %s\n' "logs" "$LOGS"
    return 0
  fi
  printf '%-15s %s\n' "instance" "$NAME is not ready"
  return 1
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down "${2:-}" ;;
  env) cmd_env ;;
  status) cmd_status ;;
  -h|--help|help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//' ;;
  *) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
