# shellcheck shell=bash
# Build and cache the Go binaries the local control plane needs (etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, kubectl) and helm, from the pinned wrapper modules under hack/tools/<module>/.
#
# Binaries land in $MODELSEC_CACHE_DIR/bin (default <repo>/.cache/bin) as
# <name>-<version>, with a symlink <name> -> <name>-<version>. The version is read from
# the wrapper's go.mod, so bumping it there rebuilds; a stamp file holding a hash of
# go.mod + go.sum + the build recipe catches other edits to the wrapper too.
# GOMODCACHE and GOCACHE stay at Go's defaults (~/go/pkg/mod, ~/.cache/go-build) so that
# fresh clones on the same machine reuse them.
#
# Source this file; it defines tools::* functions and needs REPO_ROOT set.

: "${REPO_ROOT:?REPO_ROOT must be set before sourcing hack/lib/tools.sh}"

TOOLS_CACHE_DIR=${MODELSEC_CACHE_DIR:-$REPO_ROOT/.cache}
TOOLS_BIN_DIR=$TOOLS_CACHE_DIR/bin
# Oldest Go that builds the pinned modules (the `go` line of the wrapper modules).
TOOLS_MIN_GO=1.26.0
TOOLS_ALL=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl helm)

tools::log() { printf 'install-tools: %s\n' "$*" >&2; }
tools::die() { printf 'install-tools: error: %s\n' "$*" >&2; exit 1; }

# tools::module_dir NAME: the wrapper module that builds NAME.
tools::module_dir() {
  case "$1" in
    kube-apiserver|kube-controller-manager|kube-scheduler|kubectl) echo "$REPO_ROOT/hack/tools/k8s" ;;
    etcd) echo "$REPO_ROOT/hack/tools/etcd" ;;
    helm) echo "$REPO_ROOT/hack/tools/helm" ;;
    *) tools::die "unknown tool '$1' (known: ${TOOLS_ALL[*]})" ;;
  esac
}

# tools::main_module NAME: the upstream module whose version names the binary.
tools::main_module() {
  case "$1" in
    kube-apiserver|kube-controller-manager|kube-scheduler|kubectl) echo "k8s.io/kubernetes" ;;
    etcd) echo "go.etcd.io/etcd/server/v3" ;;
    helm) echo "helm.sh/helm/v4" ;;
    *) tools::die "unknown tool '$1'" ;;
  esac
}

# tools::package NAME: the main package to build.
tools::package() {
  case "$1" in
    kube-apiserver) echo "k8s.io/kubernetes/cmd/kube-apiserver" ;;
    kube-controller-manager) echo "k8s.io/kubernetes/cmd/kube-controller-manager" ;;
    kube-scheduler) echo "k8s.io/kubernetes/cmd/kube-scheduler" ;;
    kubectl) echo "k8s.io/kubernetes/cmd/kubectl" ;;
    etcd) echo "go.etcd.io/etcd/server/v3" ;;
    helm) echo "helm.sh/helm/v4/cmd/helm" ;;
    *) tools::die "unknown tool '$1'" ;;
  esac
}

# tools::version NAME: the pinned version, read from the wrapper's go.mod (no Go needed).
tools::version() {
  local mod dir v
  mod=$(tools::main_module "$1")
  dir=$(tools::module_dir "$1")
  v=$(awk -v m="$mod" '
      $1 == "require" && $2 == m { print $3; exit }
      $1 == m && $2 ~ /^v[0-9]/ { print $2; exit }' "$dir/go.mod")
  [ -n "$v" ] || tools::die "cannot find the version of $mod in $dir/go.mod"
  echo "$v"
}

# tools::path NAME: the versioned binary path (whether or not it is built yet).
tools::path() { echo "$TOOLS_BIN_DIR/$1-$(tools::version "$1")"; }

# Bump a tool's number when its build command or ldflags below change in a way that must
# invalidate its cached binary (the others stay cached).
tools::_recipe() {
  case "$1" in
    kube-apiserver|kube-controller-manager|kube-scheduler|kubectl|etcd|helm) echo 1 ;;
  esac
}

tools::_stamp_value() {
  local dir
  dir=$(tools::module_dir "$1")
  {
    echo "recipe=$(tools::_recipe "$1") tool=$1 version=$(tools::version "$1")"
    cat "$dir/go.mod" "$dir/go.sum"
  } | sha256sum | awk '{print $1}'
}

# tools::is_current NAME: the cached binary exists and was built from the current pins.
tools::is_current() {
  local bin stamp
  bin=$(tools::path "$1")
  stamp="$TOOLS_BIN_DIR/.$1-$(tools::version "$1").stamp"
  [ -x "$bin" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$(tools::_stamp_value "$1")" ]
}

tools::_check_go() {
  command -v go >/dev/null 2>&1 || tools::die "Go >= $TOOLS_MIN_GO is needed to build $1 (not found on PATH). Install Go, then re-run hack/install-tools.sh."
  local have
  have=$(go env GOVERSION 2>/dev/null | sed 's/^go//')
  if [ "$(printf '%s\n%s\n' "$TOOLS_MIN_GO" "$have" | sort -V | head -n1)" != "$TOOLS_MIN_GO" ]; then
    tools::die "Go >= $TOOLS_MIN_GO is needed to build $1; found go$have ($(command -v go))."
  fi
}

# tools::ldflags NAME VERSION
tools::ldflags() {
  local name=$1 version=$2 flags="-s -w"
  case "$name" in
    kube-apiserver|kube-controller-manager|kube-scheduler|kubectl)
      # What kubernetes' hack/lib/version.sh sets, so `kubectl version` and the server's
      # /version report the real release. The build date is the release's module time.
      local major minor date pkg
      major=$(echo "$version" | sed -E 's/^v([0-9]+)\..*/\1/')
      minor=$(echo "$version" | sed -E 's/^v[0-9]+\.([0-9]+)\..*/\1/')
      date=$(tools::_module_time "$name" k8s.io/kubernetes)
      for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
        flags+=" -X '$pkg.gitVersion=$version' -X '$pkg.gitMajor=$major' -X '$pkg.gitMinor=$minor'"
        flags+=" -X '$pkg.gitTreeState=clean' -X '$pkg.buildDate=$date'"
      done
      ;;
    helm)
      flags+=" -X 'helm.sh/helm/v4/internal/version.version=$version' -X 'helm.sh/helm/v4/internal/version.metadata='"
      flags+=" -X 'helm.sh/helm/v4/internal/version.gitTreeState=clean'"
      ;;
  esac
  echo "$flags"
}

# The release time the module proxy records for a module (stable, so builds are reproducible).
tools::_module_time() {
  local dir t
  dir=$(tools::module_dir "$1")
  # shellcheck disable=SC2015  # any failure falls back to the epoch below
  t=$(cd "$dir" && go list -m -f '{{if .Time}}{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}{{end}}' "$2" 2>/dev/null || true)
  echo "${t:-1970-01-01T00:00:00Z}"
}

# tools::build NAME: build NAME into the cache (unconditionally).
tools::build() {
  local name=$1 version dir pkg out tmp ldflags start rc ticker
  version=$(tools::version "$name")
  dir=$(tools::module_dir "$name")
  pkg=$(tools::package "$name")
  out=$(tools::path "$name")
  tools::_check_go "$name"
  mkdir -p "$TOOLS_BIN_DIR"
  tmp="$out.tmp.$$"
  ldflags=$(tools::ldflags "$name" "$version")
  tools::log "building $name $version from $pkg ($(go env GOVERSION), wrapper module ${dir#"$REPO_ROOT"/})"
  tools::log "  with a cold Go build cache this downloads modules and compiles for minutes (kube-apiserver 10-25 min, helm up to 20 min on 2 cores); with a warm one (~/.cache/go-build), seconds"
  start=$(date +%s)
  # A heartbeat so a long build does not look hung in CI logs. It closes the install lock
  # first: its `sleep` would otherwise hold the lock for up to a minute after the build.
  (
    if [ -n "${TOOLS_LOCK_FD:-}" ]; then exec {TOOLS_LOCK_FD}>&-; fi
    while sleep 60; do tools::log "  ... still building $name ($(( $(date +%s) - start ))s)"; done
  ) &
  ticker=$!
  rc=0
  (
    cd "$dir"
    # -mod=readonly: the committed go.mod/go.sum are the truth; never rewrite them here.
    CGO_ENABLED=0 go build -mod=readonly -trimpath -buildvcs=false -p "${TOOLS_BUILD_JOBS:-2}" \
      -ldflags "$ldflags" -o "$tmp" "$pkg"
  ) || rc=$?
  kill "$ticker" 2>/dev/null || true
  wait "$ticker" 2>/dev/null || true
  if [ "$rc" -ne 0 ]; then
    rm -f "$tmp"
    tools::die "building $name $version failed (exit $rc); see the Go output above"
  fi
  mv -f "$tmp" "$out"
  tools::_stamp_value "$name" > "$TOOLS_BIN_DIR/.$name-$version.stamp"
  ln -sfn "$(basename "$out")" "$TOOLS_BIN_DIR/$name"
  tools::log "built $name $version in $(( $(date +%s) - start ))s -> $out"
}

# tools::ensure NAME...: build what is missing or stale; print nothing on stdout.
# Serialised by a lock so concurrent callers (tests, demo, another helper) wait for one build.
tools::ensure() {
  local name missing=()
  for name in "$@"; do
    tools::is_current "$name" || missing+=("$name")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    mkdir -p "$TOOLS_BIN_DIR"
    if command -v flock >/dev/null 2>&1; then
      exec {TOOLS_LOCK_FD}>"$TOOLS_BIN_DIR/.install.lock"
      if ! flock -n "$TOOLS_LOCK_FD"; then
        tools::log "another install is running; waiting for it (up to 60 min)"
        flock -w 3600 "$TOOLS_LOCK_FD" || tools::die "timed out waiting for $TOOLS_BIN_DIR/.install.lock"
      fi
    fi
    for name in "${missing[@]}"; do
      # Re-check: whoever held the lock may have built it meanwhile.
      tools::is_current "$name" || tools::build "$name"
    done
    if [ -n "${TOOLS_LOCK_FD:-}" ]; then
      exec {TOOLS_LOCK_FD}>&-
      unset TOOLS_LOCK_FD
    fi
  fi
  for name in "$@"; do
    # Keep the unversioned symlink pointing at the pinned version.
    ln -sfn "$(basename "$(tools::path "$name")")" "$TOOLS_BIN_DIR/$name"
  done
}
