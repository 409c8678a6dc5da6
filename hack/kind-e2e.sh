#!/usr/bin/env bash
# modelsec end to end in a real cluster with nodes, for people with Docker and kind: create a
# kind cluster, load the image archive, `helm install` the chart, run the demo inside (a
# Deployment of a malicious model is rejected, a clean one runs), check it, and report.
#
#   hack/kind-e2e.sh                 everything; keeps the cluster for exploring
#   KEEP=0 hack/kind-e2e.sh          delete the cluster at the end
#
# NOT RUN on the machine this project is developed on: it has no container runtime and no
# node images (the chart is proven there on the local control plane instead: tests/chart).
#
# Needs: docker, kind, kubectl, helm on PATH; the image archive from hack/build-image.sh
# (root, mmdebstrap, umoci) or MODELSEC_IMAGE_ARCHIVE=<file>, or DOCKER_BUILD=1 to build the
# Dockerfile instead. Environment: KIND_CLUSTER (default modelsec-e2e), KEEP (default 1).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
CLUSTER=${KIND_CLUSTER:-modelsec-e2e}
NAMESPACE=modelsec-system
DEMO=demo
KEEP=${KEEP:-1}
IMAGE_NAME=${MODELSEC_IMAGE_NAME:-docker.io/modelsec/modelsec}

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
die() { printf 'kind-e2e: error: %s\n' "$*" >&2; exit 1; }
for tool in docker kind kubectl helm; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is needed on PATH"
done
version=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' src/modelsec/__init__.py)

step "1/6 the image"
if [ "${DOCKER_BUILD:-0}" = 1 ]; then
  docker build -t "$IMAGE_NAME:$version" .
else
  archive=${MODELSEC_IMAGE_ARCHIVE:-}
  if [ -z "$archive" ]; then
    archive=$(hack/build-image.sh | tail -n 1)
  fi
  [ -f "$archive" ] || die "no image archive at $archive"
fi

step "2/6 a kind cluster with the examples mounted into the node at /models"
if ! kind get clusters | grep -qx "$CLUSTER"; then
  kind create cluster --name "$CLUSTER" --wait 120s --config - <<EOF
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
  - role: control-plane
    extraMounts:
      - hostPath: $REPO/examples
        containerPath: /models
        readOnly: true
EOF
fi
kubectl config use-context "kind-$CLUSTER" >/dev/null

step "3/6 load the image into the node"
if [ "${DOCKER_BUILD:-0}" = 1 ]; then
  kind load docker-image "$IMAGE_NAME:$version" --name "$CLUSTER"
else
  kind load image-archive "$archive" --name "$CLUSTER"
fi

step "4/6 helm install"
helm upgrade --install modelsec charts/modelsec --namespace "$NAMESPACE" --create-namespace \
  --set image.repository="$IMAGE_NAME" --set image.tag="$version" --set image.pullPolicy=Never \
  --set webhook.replicas=2 \
  --set operator.models.volume.hostPath.path=/models --set operator.models.volume.hostPath.type=Directory \
  --set operator.models.mountPath=/models \
  --wait --timeout 5m
kubectl -n "$NAMESPACE" rollout status deployment/modelsec-webhook --timeout=180s
kubectl -n "$NAMESPACE" rollout status deployment/modelsec-operator --timeout=180s

step "5/6 the demo: a source, a group, a governed namespace"
kubectl apply -f - <<'EOF'
apiVersion: modelsec.io/v1alpha1
kind: ModelSource
metadata: {name: examples}
spec: {type: Local, local: {path: /models}}
---
apiVersion: modelsec.io/v1alpha1
kind: SecurityGroup
metadata: {name: demo-strict}
spec:
  sourceRef: examples
  namespaceSelector: {matchLabels: {modelsec.io/demo: enforce}}
  enforcement: {mode: Enforce, pendingAction: Deny, errorAction: Deny}
  rules:
    - {name: LoadTimeCodeExecution, mode: Blocking}
    - {name: SuspiciousComponents, mode: Blocking}
---
apiVersion: v1
kind: Namespace
metadata:
  name: demo
  labels: {modelsec.io/demo: enforce}
EOF
kubectl wait --for=condition=Ready securitygroup/demo-strict --timeout=120s

# apply_until_judged NAME MODEL: a Deployment naming MODEL; applied again while the scan is pending.
apply_until_judged() {
  local name=$1 model=$2 out
  for _ in $(seq 1 60); do
    if out=$(kubectl apply -f - 2>&1 <<EOF
apiVersion: apps/v1
kind: Deployment
metadata:
  name: $name
  namespace: $DEMO
  annotations: {modelsec.io/models: "file://$model"}
spec:
  selector: {matchLabels: {app: $name}}
  template:
    metadata: {labels: {app: $name}}
    spec:
      containers:
        - name: app
          image: $IMAGE_NAME:$version   # any image does; this one is in the node already
          imagePullPolicy: Never
          command: ["/usr/bin/sleep", "infinity"]
EOF
    ); then
      echo "$out"; return 0
    fi
    if ! grep -q "scan pending" <<<"$out"; then echo "$out"; return 1; fi
    sleep 3
  done
  echo "$out"; return 1
}

step "6/6 judged"
if out=$(apply_until_judged llm-malicious /models/malicious); then
  die "the malicious model was admitted: $out"
fi
grep -q "is BLOCKED" <<<"$out" || die "denied, but not as BLOCKED: $out"
echo "rejected as expected: $(grep -o 'is BLOCKED[^;]*' <<<"$out" | head -n 1)"
out=$(apply_until_judged llm-clean /models/clean) || die "the clean model was refused: $out"
kubectl -n "$DEMO" rollout status deployment/llm-clean --timeout=180s
kubectl get modelscans -o wide
echo
echo "kind-e2e: passed (cluster kind-$CLUSTER)"
if [ "$KEEP" = 0 ]; then
  kind delete cluster --name "$CLUSTER"
fi
