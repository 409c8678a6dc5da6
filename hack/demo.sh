#!/usr/bin/env bash
# The main job, end to end on this machine: a real Kubernetes control plane with modelsec
# enforcing model security on workloads.
#
#   hack/demo.sh          set up everything (first run: builds the control plane), then show
#                         a rejected and an admitted Deployment; leaves it all running
#   hack/dev-down.sh      tear it down afterwards
#
# What it does:
#   1. Python environment (hack/bootstrap.sh) and control-plane tools (hack/install-tools.sh:
#      kube-apiserver, etcd and kubectl built from source on the first run, then cached).
#   2. hack/dev-up.sh: etcd + kube-apiserver, the CRDs, the operator and the admission
#      webhook as local processes (instance ENVTEST_NAME, default "dev").
#   3. A ModelSource for the repository's examples/ directory, a SecurityGroup enforced in
#      the namespace "demo", then two Deployments:
#      - vLLM serving examples/malicious (a pickle and a PyTorch archive that call
#        os.system when loaded): rejected, naming the rule and the file;
#      - llama.cpp serving examples/llm/tiny-chat.gguf plus the annotated examples/clean
#        model: admitted, with a warning for a format the group does not approve.
#      The first apply of each meets an unscanned model: the webhook denies it ("scan
#      pending, retry shortly") and creates the ModelScan; the operator scans; the demo
#      applies again, as a CI job would.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
export ENVTEST_NAME=${ENVTEST_NAME:-dev}
DEV=${MODELSEC_CACHE_DIR:-$REPO/.cache}/dev/$ENVTEST_NAME
NS=demo
started=$(date +%s)

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
say() { printf '   %s\n' "$*"; }
indent() { sed 's/^/   | /'; }

step "1/5 Python environment (hack/bootstrap.sh)"
bash hack/bootstrap.sh
say "ok: .venv"

step "2/5 Control-plane tools (hack/install-tools.sh)"
say "kube-apiserver, etcd and kubectl are built from source with Go on the first run"
say "(several minutes; progress below), then reused from .cache/bin in seconds."
bash hack/install-tools.sh etcd kube-apiserver kubectl | indent

step "3/5 Control plane, CRDs, operator and admission webhook (hack/dev-up.sh)"
# The operator reads models only under its --local-root: make that the examples/ folder.
# An operator started earlier with another root is restarted (the cluster is kept).
pid=$(cat "$DEV/operator.pid" 2>/dev/null || true)
if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null \
   && ! tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q -- "--local-root $REPO/examples"; then
  say "restarting the operator with --local-root $REPO/examples"
  bash hack/dev-down.sh --keep-cluster
fi
MODELSEC_OPERATOR_ARGS="--local-root $REPO/examples" bash hack/dev-up.sh 2>&1 | indent
eval "$(bash hack/envtest.sh env)"

step "4/5 A ModelSource, a SecurityGroup, and the namespace it governs"
kubectl apply -f - <<EOF | indent
apiVersion: modelsec.io/v1alpha1
kind: ModelSource
metadata: {name: examples}
spec:
  type: Local
  local: {path: $REPO/examples}
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
    - {name: RuntimeCodeExecution, mode: Blocking}
    - {name: SuspiciousComponents, mode: Blocking}
    - {name: ApprovedFormats, mode: NonBlocking, params: {approvedFormats: [safetensors, gguf]}}
---
apiVersion: v1
kind: Namespace
metadata:
  name: $NS
  labels: {modelsec.io/demo: enforce}
EOF
kubectl wait --for=condition=Ready securitygroup/demo-strict --timeout=60s 2>&1 | indent
# A fresh start for the two Deployments (this control plane runs no controllers, so
# Deployments are stored and judged but no Pods start).
kubectl delete deployment -n "$NS" llm-malicious llm-clean --ignore-not-found 2>&1 | indent

# apply_and_retry NAME: apply the manifest on stdin; when the webhook answers "scan pending",
# wait for the ModelScan(s) it names to get a verdict and apply again.
apply_and_retry() {
  local manifest out scans
  manifest=$(cat)
  say "\$ kubectl apply -f $1.yaml"
  out=$(kubectl apply -f - <<<"$manifest" 2>&1) || true
  printf '%s\n' "$out" | indent
  if grep -q "scan pending, retry shortly" <<<"$out"; then
    scans=$(grep -o 'ModelScan [a-z0-9-]*' <<<"$out" | awk '{print $2}' | sort -u)
    for scan in $scans; do
      say "the webhook created ModelScan $scan; waiting for the operator's verdict..."
      kubectl wait "modelscan/$scan" --for=jsonpath='{.status.phase}'=Completed --timeout=180s >/dev/null
      say "  $(kubectl get modelscan "$scan" -o jsonpath='{.status.outcome}: {.status.reason}')"
    done
    sleep 1  # the webhook's watch delivers the verdict
    say "\$ kubectl apply -f $1.yaml   # again, as a CI job retries"
    kubectl apply -f - <<<"$manifest" 2>&1 | indent || true
  fi
}

step "5/5 Workloads meet the webhook"
say "A vLLM Deployment serving examples/malicious (pickles that run os.system when loaded):"
apply_and_retry llm-malicious <<EOF
apiVersion: apps/v1
kind: Deployment
metadata: {name: llm-malicious, namespace: $NS}
spec:
  selector: {matchLabels: {app: llm-malicious}}
  template:
    metadata: {labels: {app: llm-malicious}}
    spec:
      containers:
        - name: vllm
          image: vllm/vllm-openai:v0.8.5
          args: ["$REPO/examples/malicious", "--served-model-name", "chat"]
EOF
echo
say "A llama.cpp Deployment serving examples/llm/tiny-chat.gguf, and examples/clean named"
say "in the modelsec.io/models annotation:"
apply_and_retry llm-clean <<EOF
apiVersion: apps/v1
kind: Deployment
metadata:
  name: llm-clean
  namespace: $NS
  annotations: {modelsec.io/models: "file://$REPO/examples/clean"}
spec:
  selector: {matchLabels: {app: llm-clean}}
  template:
    metadata: {labels: {app: llm-clean}}
    spec:
      containers:
        - name: llama
          image: ghcr.io/ggml-org/llama.cpp:server
          args: ["-m", "$REPO/examples/llm/tiny-chat.gguf", "--port", "8080"]
EOF
echo
say "\$ kubectl get deployments -n $NS"
kubectl get deployments -n "$NS" 2>&1 | indent
say "\$ kubectl get modelsec"
kubectl get modelsec 2>&1 | indent

# shellcheck disable=SC1091
. "$DEV/webhook.env"
prefix=""
[ "$ENVTEST_NAME" = dev ] || prefix="ENVTEST_NAME=$ENVTEST_NAME "
cat <<INFO

Done in $(( $(date +%s) - started ))s. Everything keeps running; explore:

  eval "\$(ENVTEST_NAME=$ENVTEST_NAME hack/envtest.sh env)"   # kubectl against this cluster
  kubectl get modelscans -o wide                          # verdicts, reasons, fingerprints
  kubectl get modelscan <name> -o yaml                    # rules, findings (file + threat), history
  kubectl get events -A --field-selector reason=ScanBlocked
  kubectl patch securitygroup demo-strict --type merge -p '{"spec":{"enforcement":{"mode":"Warn"}}}'
                                                          # then apply the malicious Deployment again
  curl -s http://127.0.0.1:$WEBHOOK_METRICS_PORT/metrics | grep modelsec_webhook
  logs: $DEV/operator.log  $DEV/webhook.log
  docs: docs/webhook.md, docs/operator.md

Tear down: ${prefix}hack/dev-down.sh          (add --purge to remove the logs too)
INFO
