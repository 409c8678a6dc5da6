#!/usr/bin/env bash
# The test command (README, .ci/run): sets up everything on a fresh machine, then runs
# the whole suite. Extra arguments go to pytest (e.g. hack/test.sh tests/pickle -x).
#
# Without arguments it then builds the container image and runs its tests
# (`pytest -m image tests/image`: hack/build-image.sh, cached per commit under .cache/image;
# needs root; hack/install-image-tools.sh installs mmdebstrap and umoci from Debian where
# they are missing). MODELSEC_SKIP_IMAGE=1 skips that step.
#
# Without arguments it first checks the code statically: `ruff check` and `ruff format
# --check` over the tree, `mypy` (strict, over src/modelsec, operator/ and webhook/); all
# configured in pyproject.toml. The suite runs even when they find something, so one run
# reports everything, and the script then exits non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."
bash hack/bootstrap.sh
if [ -x hack/install-tools.sh ]; then
  # The control plane for the cluster tests, with the controllers and helm the chart
  # tests use (cached after the first run).
  bash hack/install-tools.sh etcd kube-apiserver kubectl kube-controller-manager kube-scheduler helm
fi
if [ -x hack/install-checkov.sh ]; then
  bash hack/install-checkov.sh >/dev/null  # the chart tests lint the rendered chart with it
fi
if [ "$#" -eq 0 ] && [ "${MODELSEC_SKIP_IMAGE:-0}" != 1 ]; then
  bash hack/install-image-tools.sh  # mmdebstrap and umoci for the image build and its tests
fi
export MODELSEC_CORPORA="${MODELSEC_CORPORA:-$(cd .. && pwd)/shared/corpora}"
set +e
static_rc=0
if [ "$#" -eq 0 ]; then
  .venv/bin/python -m ruff check || static_rc=$?
  .venv/bin/python -m ruff format --check || static_rc=$?
  .venv/bin/python -m mypy || static_rc=$?
fi
.venv/bin/python -m pytest "$@"
rc=$?
image_rc=0
if [ "$#" -eq 0 ] && [ "${MODELSEC_SKIP_IMAGE:-0}" != 1 ]; then
  .venv/bin/python -m pytest -m image tests/image
  image_rc=$?
fi
set -e
if [ "$rc" -eq 5 ]; then
  echo "hack/test.sh: pytest collected no tests" >&2
fi
if [ "$static_rc" -ne 0 ]; then
  echo "hack/test.sh: ruff or mypy found problems (exit $static_rc; their reports are above the suite's)" >&2
fi
if [ "$rc" -eq 0 ] && [ "$image_rc" -ne 0 ]; then
  echo "hack/test.sh: the suite passed; the image tests failed (exit $image_rc)" >&2
  exit "$image_rc"
fi
if [ "$rc" -eq 0 ] && [ "$static_rc" -ne 0 ]; then
  exit "$static_rc"
fi
exit "$rc"
