"""The cluster fixtures of the operator tests (a real kube-apiserver + etcd from
hack/envtest.sh, the operator as a real subprocess), reused rather than copied, on a
control-plane instance of our own: "pytest-integrity". Sharing "pytest-operator" would
let another test session's operator judge our ModelScans, and our session's end stop
the control plane under theirs."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

_OPERATOR_CONFTEST = Path(__file__).resolve().parents[1] / "operator" / "conftest.py"
_spec = importlib.util.spec_from_file_location("integrity_cluster_fixtures", _OPERATOR_CONFTEST)
assert _spec is not None and _spec.loader is not None
_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_fixtures)
# Read by its _envtest() at call time; the suffix separates concurrent sessions, as there.
_fixtures.INSTANCE = "pytest-integrity" + os.environ.get("MODELSEC_TEST_INSTANCE_SUFFIX", "")

from remote_fixtures import hub, moto_endpoint, no_credentials  # noqa: E402,F401  (fixtures)

cluster = _fixtures.cluster
models_root = _fixtures.models_root
operator_factory = _fixtures.operator_factory
operator = _fixtures.operator
