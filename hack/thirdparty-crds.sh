#!/usr/bin/env bash
# Print a directory holding the third-party CRDs the chart's optional objects need:
# cert-manager (Certificate, Issuer, ...) and the Prometheus Operator (ServiceMonitor,
# PrometheusRule), at the versions pinned in hack/tools/thirdparty-crds/go.mod. The
# modules come from the Go module proxy, verified against go.sum; the files are copied to
# $MODELSEC_CACHE_DIR/thirdparty-crds/<versions>/ (default .cache/), once.
#
#   kubectl apply --server-side -f "$(hack/thirdparty-crds.sh)"
set -euo pipefail
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MODULE_DIR=$REPO_ROOT/hack/tools/thirdparty-crds
CACHE=${MODELSEC_CACHE_DIR:-$REPO_ROOT/.cache}
key=$(cat "$MODULE_DIR/go.mod" "$MODULE_DIR/go.sum" | sha256sum | cut -c1-16)
out=$CACHE/thirdparty-crds/$key
if [ -f "$out/.complete" ]; then echo "$out"; exit 0; fi
command -v go >/dev/null 2>&1 || { echo "thirdparty-crds: Go is needed to download the pinned modules" >&2; exit 1; }

dir_of() {  # the module's directory in the module cache (downloaded and verified if needed)
  (cd "$MODULE_DIR" && GOFLAGS=-mod=readonly go mod download -json "$1") \
    | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p'
}
cert_manager=$(dir_of github.com/cert-manager/cert-manager)
prometheus=$(dir_of github.com/prometheus-operator/prometheus-operator)
[ -d "$cert_manager/deploy/crds" ] && [ -d "$prometheus/example/prometheus-operator-crd" ] \
  || { echo "thirdparty-crds: the CRD folders moved in the pinned modules" >&2; exit 1; }
mkdir -p "$CACHE"
tmp=$(mktemp -d "$CACHE/thirdparty-crds.XXXXXX")
cp "$cert_manager"/deploy/crds/*.yaml "$tmp/"
cp "$prometheus"/example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml \
   "$prometheus"/example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml "$tmp/"
chmod -R u+w "$tmp"
touch "$tmp/.complete"
mkdir -p "$(dirname "$out")"
rm -rf "$out"
mv "$tmp" "$out"
echo "$out"
