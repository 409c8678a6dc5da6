#!/usr/bin/env bash
# The test command (README, .ci/run): sets up everything on a fresh machine, then runs
# the whole suite. Extra arguments go to pytest (e.g. hack/test.sh tests/pickle -x).
set -euo pipefail
cd "$(dirname "$0")/.."
bash hack/bootstrap.sh
if [ -x hack/install-tools.sh ]; then
  # etcd, kube-apiserver and kubectl for the cluster tests (cached after the first run;
  # helm is built only by the scripts that need it)
  bash hack/install-tools.sh etcd kube-apiserver kubectl
fi
export MODELSEC_CORPORA="${MODELSEC_CORPORA:-$(cd .. && pwd)/shared/corpora}"
set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "hack/test.sh: pytest collected no tests" >&2
fi
exit "$rc"
