"""Every rendering of the chart (defaults and each documented example), applied with
`kubectl apply --dry-run=server` to the real API server: the built-in kinds, our CRDs and
cert-manager's and the Prometheus Operator's (their real CRDs, pinned in
hack/tools/thirdparty-crds) validate what the templates produce, admission included."""

from __future__ import annotations

import subprocess

import pytest
import yaml
from chart_helpers import NAMESPACE, REPO, Helm, Release
from cluster_helpers import Cluster
from test_chart_render import MATRIX

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(900)]

DRY_RELEASE = "dryrun"  # not the release test_chart_install.py installs


@pytest.fixture(scope="module")
def crds_applied(cluster: Cluster, release: Release) -> None:
    """Ours from the installed release (Helm installs crds/; applying them with kubectl first
    would make `helm install` fail on field-manager conflicts, as it would for a user), the
    third-party ones with kubectl."""
    proc = subprocess.run(
        ["bash", str(REPO / "hack" / "thirdparty-crds.sh")], capture_output=True, text=True, timeout=900
    )
    if proc.returncode != 0:
        pytest.fail(f"hack/thirdparty-crds.sh failed:\n{proc.stderr}")
    cluster.kubectl("apply", "--server-side", "-f", proc.stdout.strip())
    cluster.kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/certificates.cert-manager.io",
        "crd/issuers.cert-manager.io",
        "crd/servicemonitors.monitoring.coreos.com",
        "crd/prometheusrules.monitoring.coreos.com",
        "crd/securitygroups.modelsec.io",
    )
    cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})


@pytest.mark.parametrize("values", MATRIX)
def test_rendering_is_accepted_by_the_api_server(
    cluster_helm: Helm, cluster: Cluster, crds_applied: None, values: list[str]
) -> None:
    manifest = cluster_helm.template(*values, release=DRY_RELEASE).stdout
    # Namespaces the values name (Secrets' and ConfigMaps' homes) exist in a real cluster.
    namespaces = {
        d["metadata"]["namespace"] for d in yaml.safe_load_all(manifest) if d and "namespace" in d["metadata"]
    }
    cluster.apply(
        *({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}} for n in sorted(namespaces))
    )
    result = cluster.kubectl(
        "apply", "--dry-run=server", "--validate=strict", "-f", "-", input=manifest, check=False
    )
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert lines and all(line.endswith("(server dry run)") for line in lines), result.stdout
    assert len(lines) == manifest.count("\nkind: ") + manifest.startswith("kind: ")


def test_an_invalid_object_is_refused_so_the_check_can_fail(
    cluster_helm: Helm, cluster: Cluster, crds_applied: None
) -> None:
    """The same path with a value the schema lets through but the CRD does not: a
    SecurityGroup rule the operator does not have."""
    manifest = cluster_helm.template(
        "--set",
        "securityGroups[0].name=g",
        "--set",
        "securityGroups[0].spec.sourceRef=s",
        "--set",
        "securityGroups[0].spec.rules[0].name=NoSuchRule",
        release=DRY_RELEASE,
    ).stdout
    result = cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=manifest, check=False)
    assert result.returncode != 0 and "NoSuchRule" in result.stderr, result.stderr
