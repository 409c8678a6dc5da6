"""The chart, installed with `helm install` into the local control plane (with controllers),
its operator and webhook running as local processes authenticated as the chart's
ServiceAccounts. Proves the RBAC is sufficient (the whole end-to-end scenario passes) and
minimal (`kubectl auth can-i --list` equals an expected list), that tenants cannot write
verdicts or policy, that Pods made by the ReplicaSet controller are judged, and that
upgrade and uninstall are safe. The tests run in file order: upgrade and uninstall last.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import test_cluster as operator_scenarios  # tests/operator
import test_webhook_cluster as scenarios  # tests/webhook
import yaml
from chart_helpers import CHART, CREDENTIALS_NAMESPACE, NAMESPACE, RELEASE, Release, Webhook
from cluster_helpers import EVIL_PICKLE, Cluster, Process, Space, metric
from hf_server import HubServer

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(1200)]

REPO = Path(__file__).resolve().parents[2]
API = "modelsec.io/v1alpha1"


# --- 1. tests/webhook's end-to-end scenarios, as the chart's ServiceAccounts ---------------

REUSED_SCENARIOS = (
    "test_unscanned_model_is_rejected_its_scan_appears_then_blocked_with_the_rule",
    "test_deployments_with_blocked_models_are_rejected",
    "test_model_that_cannot_be_judged_is_denied_and_error_action_allow_admits",
    "test_clean_model_is_admitted_with_warnings",
    "test_warn_mode_admits_blocked_models_with_a_warning",
    "test_audit_mode_admits_silently_and_records_an_event_and_audit_annotation",
    "test_exempt_namespace_is_never_sent_to_the_webhook",
    "test_dry_run_is_judged_without_creating_a_modelscan",
)
# Not reused: the TLS tests (they replace the webhook's certificate files and register
# configurations of their own) and test_update_that_does_not_touch_models_is_allowed_cheaply
# (under the chart a metadata-only UPDATE never reaches the webhook: see
# test_metadata_only_updates_never_reach_the_webhook below).


def _missing_scenario(name: str) -> Callable[[], None]:
    def test() -> None:
        pytest.fail(
            f"tests/webhook/test_webhook_cluster.py has no {name} any more: update "
            "REUSED_SCENARIOS in tests/chart/test_chart_install.py"
        )

    return test


for _name in REUSED_SCENARIOS:
    globals()[f"test_as_chart_service_accounts__{_name.removeprefix('test_')}"] = getattr(
        scenarios, _name, None
    ) or _missing_scenario(_name)


# --- 2. RBAC: exactly what each component needs ---------------------------------------------


def can_i(cluster: Cluster, subject: str, namespace: str) -> set[tuple[str, str, str]]:
    """`kubectl auth can-i --list` as (resource, resource names, verb) triples."""
    out = cluster.kubectl("auth", "can-i", "--list", f"--as={subject}", "-n", namespace).stdout.splitlines()
    header = out[0]
    starts = [0, header.index("Non-Resource URLs"), header.index("Resource Names"), header.index("Verbs")]
    rules: set[tuple[str, str, str]] = set()
    for line in out[1:]:
        cells = [line[a:b].strip() for a, b in zip(starts, starts[1:] + [len(line) + 1])]
        resource, non_resource, names, verbs = cells
        for verb in verbs.strip("[]").split():
            rules.add((resource or non_resource, names, verb))
    return rules


def sa(name: str) -> str:
    return f"system:serviceaccount:{NAMESPACE}:{RELEASE}-{name}"


def rules(spec: dict[str, str]) -> set[tuple[str, str, str]]:
    """{"resource[names]": "verb verb"} -> triples."""
    out = set()
    for key, verbs in spec.items():
        resource, _, names = key.partition("@")
        for verb in verbs.split():
            out.add((resource, names or "[]", verb))
    return out


OPERATOR_CLUSTER = {
    "modelsources.modelsec.io": "get list watch patch",
    "securitygroups.modelsec.io": "get list watch patch",
    "modelscans.modelsec.io": "get list watch patch",
    "modelsources.modelsec.io/status": "get patch",
    "securitygroups.modelsec.io/status": "get patch",
    "modelscans.modelsec.io/status": "get patch",
    "clusterkopfpeerings.kopf.dev": "get list watch patch create",
    "customresourcedefinitions.apiextensions.k8s.io": "list watch",  # kopf's resource observation
}
WEBHOOK_CLUSTER = {
    "modelsources.modelsec.io": "get list watch",
    "securitygroups.modelsec.io": "get list watch",
    "modelscans.modelsec.io": "get list watch create",
    "namespaces": "get list watch",
    "events": "create",
    "configmaps": "get",  # INSTALL_VALUES: webhook.configMapReads.clusterWide
}


def test_service_accounts_can_do_exactly_the_expected_and_nothing_else(
    release: Release, cluster: Cluster
) -> None:
    cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "tenant-rbac"}})
    # What every authenticated account may do (discovery, self reviews): not the chart's doing.
    baseline = can_i(cluster, f"system:serviceaccount:{NAMESPACE}:default", "tenant-rbac")
    # verifyAtStart (webhook.mutating.bindAllServiceAccounts): every ServiceAccount may get
    # ModelScans, and ConfigMaps in the BOM namespace (the release's here).
    assert ("modelscans.modelsec.io", "[]", "get") in baseline
    verifier_boms = {"configmaps": "get"}
    expected: dict[tuple[str, str], set[tuple[str, str, str]]] = {
        ("operator", "tenant-rbac"): rules(OPERATOR_CLUSTER),
        ("operator", "default"): rules({**OPERATOR_CLUSTER, "events": "create"}),
        ("operator", CREDENTIALS_NAMESPACE): rules(
            {**OPERATOR_CLUSTER, "secrets@[hub-token]": "get", "secrets@[s3-keys]": "get"}
        ),
        # The verdicts' ML-BOMs (operator.boms): written there, read by the verifiers.
        ("operator", NAMESPACE): rules({**OPERATOR_CLUSTER, "configmaps": "get create update"}),
        ("webhook", "tenant-rbac"): rules(WEBHOOK_CLUSTER),
        ("webhook", CREDENTIALS_NAMESPACE): rules(WEBHOOK_CLUSTER),
        ("webhook", NAMESPACE): rules(WEBHOOK_CLUSTER),
    }
    assert rules(verifier_boms) <= can_i(cluster, f"system:serviceaccount:{NAMESPACE}:default", NAMESPACE)
    for (component, namespace), wanted in expected.items():
        wanted = wanted - baseline
        granted = can_i(cluster, sa(component), namespace) - baseline
        assert granted == wanted, (
            f"{component} in {namespace}: unexpected {sorted(granted - wanted)}, missing {sorted(wanted - granted)}"
        )
        assert not any(
            verb == "*" or resource == "*" or resource.startswith("*.") for resource, _, verb in granted
        )
        assert not any(resource == "secrets" and names == "[]" for resource, names, _ in granted), (
            "Secret access must be by name"
        )
        assert not any(
            resource.startswith("pods") and verb not in ("get", "list", "watch")
            for resource, _, verb in granted
        )


def test_tenants_and_the_webhook_cannot_write_verdicts_or_policy(release: Release, cluster: Cluster) -> None:
    namespace = "tenant-admin"
    cluster.apply(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
        # alice administers one namespace with the built-in admin role, as tenants do
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "alice-admin", "namespace": namespace},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"}],
        },
        # victor may view the whole cluster (the built-in view role, cluster-wide)
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "victor-view"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "victor"}],
        },
        {
            "apiVersion": API,
            "kind": "ModelScan",
            "metadata": {"name": "tenancy-probe"},
            "spec": {"model": "file:///models/x.pkl", "securityGroup": "nobody"},
        },
    )
    forbidden = [
        ("patch", "modelscans.modelsec.io", "--subresource=status"),
        ("update", "modelscans.modelsec.io", "--subresource=status"),
        ("patch", "securitygroups.modelsec.io", ""),
        ("create", "securitygroups.modelsec.io", ""),
        ("delete", "securitygroups.modelsec.io", ""),
        ("patch", "modelsources.modelsec.io", ""),
    ]
    for subject in ("alice", "victor", sa("webhook")):
        for verb, resource, sub in forbidden:
            args = [
                "auth",
                "can-i",
                verb,
                resource,
                f"--as={subject}",
                "-n",
                namespace,
                *([sub] if sub else []),
            ]
            answer = cluster.kubectl(*args, check=False).stdout.strip()
            assert answer == "no", f"{subject} may {verb} {resource} {sub}"
        # ...and really trying is refused by the API server.
        tried = cluster.kubectl(
            "patch",
            "modelscan",
            "tenancy-probe",
            "--subresource=status",
            "--type=merge",
            "-p",
            '{"status":{"outcome":"ALLOWED"}}',
            f"--as={subject}",
            check=False,
        )
        assert tried.returncode != 0 and "forbidden" in tried.stderr.lower(), tried.stderr
    # view (through the chart's aggregated role) reads verdicts, and only verdicts.
    assert (
        cluster.kubectl("auth", "can-i", "list", "modelscans.modelsec.io", "--as=victor").stdout.strip()
        == "yes"
    )
    assert (
        cluster.kubectl(
            "auth", "can-i", "list", "securitygroups.modelsec.io", "--as=victor", check=False
        ).stdout.strip()
        == "no"
    )
    # The operator is the one that can.
    assert (
        cluster.kubectl(
            "auth",
            "can-i",
            "patch",
            "modelscans.modelsec.io",
            "--subresource=status",
            f"--as={sa('operator')}",
        ).stdout.strip()
        == "yes"
    )
    cluster.kubectl("delete", "modelscan", "tenancy-probe", "--ignore-not-found")


# --- 3. remote sources with the Secrets the chart lets the operator read --------------------


def _pod(namespace: str, name: str, model: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "annotations": {"modelsec.io/models": model}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }


def _apply_until_judged(cluster: Cluster, pod: dict[str, Any], timeout: float = 180) -> Any:
    """Apply as a CI job does: while the scan is pending, wait and apply again."""
    deadline = time.monotonic() + timeout
    while True:
        result = cluster.apply(pod, check=False)
        if "scan pending" not in result.stderr or time.monotonic() > deadline:
            return result
        time.sleep(2)


def _governed_namespace(cluster: Cluster, name: str) -> None:
    cluster.apply(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": {"team": name}}}
    )


def test_hugging_face_source_reads_its_token_from_the_secret_the_chart_grants(
    cluster: Cluster, operator: Process, webhook: Webhook
) -> None:
    hub = HubServer().start()
    try:
        hub.tokens["hf_chart_test"] = {"*"}
        evil = hub.add_repo(
            "acme/evil", {"pytorch_model.bin": EVIL_PICKLE, "config.json": b"{}"}, private=True
        )
        clean = hub.add_repo(
            "acme/clean",
            {
                "model.safetensors": (REPO / "examples" / "clean" / "tiny-mlp.safetensors").read_bytes(),
                "config.json": b"{}",
            },
            private=True,
        )
        cluster.apply(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "hub-token", "namespace": CREDENTIALS_NAMESPACE},
                "stringData": {"token": "hf_chart_test"},
            },
            {
                "apiVersion": API,
                "kind": "ModelSource",
                "metadata": {"name": "chart-hub"},
                "spec": {
                    "type": "HuggingFace",
                    "huggingFace": {
                        "endpoint": hub.url,
                        "models": ["acme/*"],
                        "tokenSecretRef": {
                            "name": "hub-token",
                            "namespace": CREDENTIALS_NAMESPACE,
                            "key": "token",
                        },
                    },
                },
            },
            {
                "apiVersion": API,
                "kind": "SecurityGroup",
                "metadata": {"name": "chart-hub"},
                "spec": {
                    "sourceRef": "chart-hub",
                    "namespaceSelector": {"matchLabels": {"team": "hub-users"}},
                    "rules": [{"name": "LoadTimeCodeExecution", "mode": "Blocking"}],
                },
            },
        )
        _governed_namespace(cluster, "hub-users")
        cluster.wait_for("modelsources", "chart-hub", _ready, what="source Ready")
        cluster.wait_for("securitygroups", "chart-hub", _ready, what="group Ready")
        time.sleep(1)  # the webhook's watch delivers the group
        sha_evil, sha_clean = evil.refs["main"], clean.refs["main"]
        blocked = _apply_until_judged(cluster, _pod("hub-users", "evil", f"hf://acme/evil@{sha_evil}"))
        assert blocked.returncode != 0, blocked.stdout
        assert f"hf://acme/evil@{sha_evil}" in blocked.stderr and "is BLOCKED" in blocked.stderr, (
            blocked.stderr
        )
        assert "LoadTimeCodeExecution" in blocked.stderr
        admitted = _apply_until_judged(cluster, _pod("hub-users", "clean", f"hf://acme/clean@{sha_clean}"))
        assert admitted.returncode == 0, admitted.stderr
        # The repositories are private: the token the operator read is what opened them.
        assert any(r.path.startswith("/api/models/acme/evil") and r.status == 200 for r in hub.requests)
    finally:
        cluster.kubectl("delete", "namespace", "hub-users", "--wait=false", "--ignore-not-found")
        cluster.kubectl("delete", "securitygroup", "chart-hub", "--ignore-not-found")
        cluster.kubectl("delete", "modelsource", "chart-hub", "--ignore-not-found")
        hub.stop()


s3_server = operator_scenarios.s3_server  # tests/operator's moto server, enforcing IAM


def test_s3_source_reads_its_keys_from_the_secret_the_chart_grants_and_nothing_else(
    cluster: Cluster, operator: Process, webhook: Webhook, s3_server: Any
) -> None:
    endpoint, key_id, secret_key = s3_server
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "s3-keys", "namespace": CREDENTIALS_NAMESPACE},
            "stringData": {"AWS_ACCESS_KEY_ID": key_id, "AWS_SECRET_ACCESS_KEY": secret_key},
        },
        # The same keys where the chart grants nothing: the operator must not read them.
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "s3-keys", "namespace": "default"},
            "stringData": {"AWS_ACCESS_KEY_ID": key_id, "AWS_SECRET_ACCESS_KEY": secret_key},
        },
        {
            "apiVersion": API,
            "kind": "ModelSource",
            "metadata": {"name": "chart-s3"},
            "spec": {
                "type": "S3",
                "s3": {
                    "endpoint": endpoint,
                    "bucket": "models",
                    "prefix": "team/",
                    "credentialsSecretRef": {"name": "s3-keys", "namespace": CREDENTIALS_NAMESPACE},
                },
            },
        },
        {
            "apiVersion": API,
            "kind": "ModelSource",
            "metadata": {"name": "chart-s3-ungranted"},
            "spec": {
                "type": "S3",
                "s3": {
                    "endpoint": endpoint,
                    "bucket": "models",
                    "prefix": "team/",
                    "credentialsSecretRef": {"name": "s3-keys", "namespace": "default"},
                },
            },
        },
        {
            "apiVersion": API,
            "kind": "SecurityGroup",
            "metadata": {"name": "chart-s3"},
            "spec": {
                "sourceRef": "chart-s3",
                "namespaceSelector": {"matchLabels": {"team": "s3-users"}},
                "rules": [{"name": "LoadTimeCodeExecution", "mode": "Blocking"}],
            },
        },
    )
    _governed_namespace(cluster, "s3-users")
    try:
        cluster.wait_for("modelsources", "chart-s3", _ready, what="source Ready")
        cluster.wait_for("securitygroups", "chart-s3", _ready, what="group Ready")
        time.sleep(1)
        blocked = _apply_until_judged(cluster, _pod("s3-users", "evil", "s3://models/team/evil.pkl"))
        assert blocked.returncode != 0 and "s3://models/team/evil.pkl" in blocked.stderr, blocked.stderr
        assert "is BLOCKED" in blocked.stderr and "LoadTimeCodeExecution" in blocked.stderr, blocked.stderr
        # A Secret outside what the chart grants: the API server refuses the operator, and
        # the source is not Ready (it never becomes usable by accident).
        ungranted = cluster.wait_for(
            "modelsources",
            "chart-s3-ungranted",
            lambda o: _ready(o) is False or "forbidden" in operator.log().lower(),
            timeout=60,
            what="a refusal",
        )
        assert _ready(ungranted) is not True, ungranted.get("status")
        reads = [
            e
            for e in _audit(cluster)
            if e.get("objectRef", {}).get("resource") == "secrets"
            and e.get("objectRef", {}).get("namespace") == "default"
            and e.get("user", {}).get("username") == f"system:serviceaccount:{NAMESPACE}:{RELEASE}-operator"
        ]
        assert reads, "the operator never tried the ungranted Secret"
        assert all(e.get("responseStatus", {}).get("code") == 403 for e in reads), reads
    finally:
        cluster.kubectl("delete", "namespace", "s3-users", "--wait=false", "--ignore-not-found")
        cluster.kubectl("delete", "securitygroup", "chart-s3", "--ignore-not-found")
        cluster.kubectl("delete", "modelsource", "chart-s3", "chart-s3-ungranted", "--ignore-not-found")
        cluster.kubectl("delete", "secret", "s3-keys", "-n", "default", "--ignore-not-found")


def _ready(obj: dict[str, Any]) -> bool | None:
    for condition in obj.get("status", {}).get("conditions", []):
        if condition["type"] == "Ready":
            return condition["status"] == "True"
    return None


def _audit(cluster: Cluster) -> list[dict[str, Any]]:
    return [json.loads(line) for line in cluster.audit_log.read_text().splitlines() if line.strip()]


# --- 4. what the controllers create is judged too -----------------------------------------

CONTROLLER = "system:serviceaccount:kube-system:replicaset-controller"


def _pods_of(cluster: Cluster, namespace: str, app: str) -> list[dict[str, Any]]:
    out = cluster.kubectl("get", "pods", "-n", namespace, "-l", f"app={app}", "-o", "json")
    return json.loads(out.stdout)["items"]


def _wait(predicate: Callable[[], Any], what: str, timeout: float = 90) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not reached in {timeout}s")
        time.sleep(0.5)


def _judged_pod_creates(cluster: Cluster, namespace: str) -> list[dict[str, Any]]:
    """Audit events of Pods the ReplicaSet controller created that the webhook judged."""
    return [
        e
        for e in _audit(cluster)
        if e.get("verb") == "create"
        and e.get("objectRef", {}).get("resource") == "pods"
        and e.get("objectRef", {}).get("namespace") == namespace
        and e.get("user", {}).get("username") == CONTROLLER
        and "models.modelsec.io/judgements" in e.get("annotations", {})
    ]


def test_pods_the_replicaset_controller_creates_are_judged(space: Space, cluster: Cluster) -> None:
    space.create(enforcement={"mode": "Warn"})
    vllm = {"name": "vllm", "image": "vllm/vllm-openai:v0.8.5", "args": [str(space.dir / "evil-llm")]}

    def deployment(container: dict[str, Any]) -> dict[str, Any]:
        # Recreate: with no nodes no Pod ever becomes available, so a rolling update would
        # wait forever for the old ones; Recreate lets the controller replace them.
        body = space.deployment("llm", container)
        body["spec"].update(replicas=2, strategy={"type": "Recreate"})
        return body

    admitted = space.apply(deployment(vllm))
    assert admitted.returncode == 0 and ", Warn)" in admitted.stderr, admitted.stderr
    space.wait_verdict("evil-llm")
    # The Deployment controller made a ReplicaSet, the ReplicaSet controller made Pods, and
    # each Pod create went through the webhook (its audit annotation says what it judged).
    _wait(lambda: len(_pods_of(cluster, space.namespace, "llm")) == 2, "2 Pods of the Deployment")
    judged = _wait(
        lambda: _judged_pod_creates(cluster, space.namespace), "audit events of judged Pod creates", 30
    )
    verdicts = json.loads(judged[0]["annotations"]["models.modelsec.io/judgements"])
    assert any(v["status"] in ("BLOCKED", "PENDING") and v["effect"] == "warn" for v in verdicts), verdicts

    # Now the group enforces: the controller can no longer add a Pod of that template.
    cluster.kubectl(
        "patch",
        "securitygroup",
        space.group,
        "--type",
        "merge",
        "-p",
        json.dumps({"spec": {"enforcement": {"mode": "Enforce"}}}),
    )
    time.sleep(1)  # the webhook's watch delivers the change
    cluster.kubectl("scale", "deployment", "llm", "-n", space.namespace, "--replicas=3")

    def refused() -> str | None:
        sets = json.loads(cluster.kubectl("get", "replicasets", "-n", space.namespace, "-o", "json").stdout)[
            "items"
        ]
        for rs in sets:
            for condition in rs.get("status", {}).get("conditions", []):
                if condition["type"] == "ReplicaFailure" and "denied the request" in condition["message"]:
                    return str(condition["message"])
        return None

    message = _wait(refused, "the ReplicaSet reporting the webhook's refusal")
    assert 'admission webhook "models.modelsec.io" denied the request' in message and "BLOCKED" in message, (
        message
    )
    assert len(_pods_of(cluster, space.namespace, "llm")) == 2

    # A template change to a clean model is rolled out: a new ReplicaSet whose Pods pass.
    rolled = space.apply_after_scan(deployment({**vllm, "args": [str(space.dir / "clean")]}), "clean")
    assert rolled.returncode == 0, rolled.stderr

    def new_pods_running_clean() -> bool:
        pods = _pods_of(cluster, space.namespace, "llm")
        args = [
            p["spec"]["containers"][0]["args"][0] for p in pods if not p["metadata"].get("deletionTimestamp")
        ]
        return args.count(str(space.dir / "clean")) == 2

    _wait(new_pods_running_clean, "the rollout's Pods (clean model) created by the controller", 120)


def test_metadata_only_updates_never_reach_the_webhook(
    space: Space, webhook: Webhook, cluster: Cluster
) -> None:
    """matchConditions (webhook.skipUnchangedUpdates) filter them in the API server."""
    space.create()
    deployment = space.deployment(
        "meta", {"name": "app", "image": "busybox"}, {"modelsec.io/models": space.uri("clean")}
    )
    assert space.apply_after_scan(deployment, "clean").returncode == 0
    time.sleep(2)  # the controllers' Pod creates settle

    def reviews() -> float:
        return scenarios._reviews(webhook)  # every AdmissionReview answered, any decision

    before = reviews()
    cluster.kubectl("label", "deployment", "meta", "-n", space.namespace, "tier=web")
    time.sleep(1)
    assert reviews() == before, "a label change reached the webhook"
    cluster.kubectl("set", "image", "deployment/meta", "-n", space.namespace, "app=busybox:1.37")
    _wait(lambda: reviews() > before, "the spec change reaching the webhook", 20)


def test_the_chart_accounts_were_refused_nothing_but_the_ungranted_secret(
    cluster: Cluster, operator: Process, webhook: Webhook
) -> None:
    """The RBAC is sufficient: over every scenario above, the API server refused the two
    accounts nothing (the audit log holds all their requests), except the Secret the S3 test
    names on purpose where the chart grants nothing."""
    accounts = {sa("operator"), sa("webhook")}
    requests = [e for e in _audit(cluster) if e.get("user", {}).get("username") in accounts]
    assert len({e["user"]["username"] for e in requests}) == 2, "no requests of the chart's accounts audited"
    refused = [
        f"{e['user']['username'].rsplit(':', 1)[1]} {e['verb']} {e.get('objectRef', {}).get('resource')} "
        f"{e.get('objectRef', {}).get('namespace', '')}/{e.get('objectRef', {}).get('name', '')}"
        for e in requests
        if e.get("responseStatus", {}).get("code") == 403
        and not (
            e.get("objectRef", {}).get("resource") == "secrets"
            and e.get("objectRef", {}).get("namespace") == "default"
        )
    ]
    assert not refused, "\n".join(sorted(set(refused)))


# --- 5. upgrade and uninstall (last) ------------------------------------------------------


def test_upgrade_applies_changed_values_and_keeps_the_certificate(
    release: Release, cluster: Cluster, webhook: Webhook, operator: Process
) -> None:
    config_before = cluster.get("validatingwebhookconfigurations", f"{RELEASE}-webhook")
    secret_before = cluster.get("secrets", f"{RELEASE}-webhook-tls", NAMESPACE)
    assert config_before and secret_before
    # docs/install.md, Upgrading: the CRDs first (Helm leaves them alone on upgrade), then helm.
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CHART / "crds"))
    changed = release.values_file.with_name("upgrade.yaml")
    changed.write_text(
        yaml.safe_dump(
            {
                "webhook": {"timeoutSeconds": 9, "exemptNamespaces": ["batch-jobs"]},
                "operator": {"maxConcurrentScans": 3},
            }
        )
    )
    release.helm.run(
        "upgrade",
        RELEASE,
        str(CHART),
        "-n",
        NAMESPACE,
        "-f",
        str(release.values_file),
        "-f",
        str(changed),
        "--timeout",
        "300s",
    )
    config = cluster.get("validatingwebhookconfigurations", f"{RELEASE}-webhook")
    assert config is not None
    hook = config["webhooks"][0]
    assert hook["timeoutSeconds"] == 9
    assert hook["namespaceSelector"]["matchExpressions"][0]["values"] == [
        "kube-system",
        NAMESPACE,
        "batch-jobs",
    ]
    # The generated certificate is kept: the webhook keeps serving what the caBundle trusts.
    secret = cluster.get("secrets", f"{RELEASE}-webhook-tls", NAMESPACE)
    assert secret and secret["data"] == secret_before["data"]
    assert hook["clientConfig"]["caBundle"] == config_before["webhooks"][0]["clientConfig"]["caBundle"]
    webhook_args = cluster.get("deployments", f"{RELEASE}-webhook", NAMESPACE)["spec"]["template"]["spec"][
        "containers"
    ][0]["args"]
    operator_args = cluster.get("deployments", f"{RELEASE}-operator", NAMESPACE)["spec"]["template"]["spec"][
        "containers"
    ][0]["args"]
    assert "--exempt-namespace=batch-jobs" in webhook_args and "--max-concurrent-scans=3" in operator_args
    # ...and the API server still reaches the webhook through the (updated) configuration.
    before = metric(
        webhook.metrics_port, "modelsec_webhook_reviews_total", decision="allowed", reason="no-models"
    )
    probe = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "after-upgrade", "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }
    _wait(
        lambda: (
            cluster.apply(probe, check=False, extra=("--dry-run=server",)).returncode == 0
            and metric(
                webhook.metrics_port, "modelsec_webhook_reviews_total", decision="allowed", reason="no-models"
            )
            > before
        ),
        "a review after the upgrade",
        30,
    )


def _pems(bundle_b64: str) -> list[str]:
    text = base64.b64decode(bundle_b64).decode()
    return re.findall(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", text, re.S)


def _reviews_answered(cluster: Cluster, webhook: Webhook, name: str) -> None:
    """A dry-run Pod in a judged namespace: the API server must reach (and trust) the webhook."""
    before = metric(
        webhook.metrics_port, "modelsec_webhook_reviews_total", decision="allowed", reason="no-models"
    )
    probe = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }
    _wait(
        lambda: (
            cluster.apply(probe, check=False, extra=("--dry-run=server",)).returncode == 0
            and metric(
                webhook.metrics_port, "modelsec_webhook_reviews_total", decision="allowed", reason="no-models"
            )
            > before
        ),
        f"a review ({name})",
        30,
    )


def test_certificate_rotation_keeps_the_old_ca_trusted_until_the_pods_reload(
    release: Release, cluster: Cluster, webhook: Webhook
) -> None:
    """helm mode: an upgrade close to expiry (forced here: renewBeforeDays above the validity)
    makes a new CA and certificate; the caBundle holds both, so the webhook still serving the
    old certificate stays trusted, and so does it after reloading the new one."""
    old_secret = cluster.get("secrets", f"{RELEASE}-webhook-tls", NAMESPACE)
    assert old_secret is not None
    values = ["-f", str(release.values_file), "-f", str(release.values_file.with_name("upgrade.yaml"))]
    release.helm.run(
        "upgrade",
        RELEASE,
        str(CHART),
        "-n",
        NAMESPACE,
        *values,
        "--set",
        "webhook.tls.helm.renewBeforeDays=400",
        "--timeout",
        "300s",
    )
    secret = cluster.get("secrets", f"{RELEASE}-webhook-tls", NAMESPACE)
    config = cluster.get("validatingwebhookconfigurations", f"{RELEASE}-webhook")
    assert secret and config
    assert secret["data"]["tls.crt"] != old_secret["data"]["tls.crt"]
    old_ca, new_ca = (_pems(s["data"]["ca.crt"])[0] for s in (old_secret, secret))
    assert old_ca != new_ca
    assert _pems(config["webhooks"][0]["clientConfig"]["caBundle"]) == [new_ca, old_ca]
    _reviews_answered(cluster, webhook, "old-certificate")  # still serving the old pair

    loads = metric(webhook.metrics_port, "modelsec_webhook_tls_reloads_total", result="loaded")
    for key in ("tls.key", "tls.crt"):  # what the kubelet does to the mounted Secret
        webhook.tls[key].write_bytes(base64.b64decode(secret["data"][key]))
    _wait(
        lambda: metric(webhook.metrics_port, "modelsec_webhook_tls_reloads_total", result="loaded") > loads,
        "the webhook reloading the new certificate",
        30,
    )
    _reviews_answered(cluster, webhook, "new-certificate")

    # The next ordinary upgrade keeps the new pair and drops the old CA.
    release.helm.run("upgrade", RELEASE, str(CHART), "-n", NAMESPACE, *values, "--timeout", "300s")
    config = cluster.get("validatingwebhookconfigurations", f"{RELEASE}-webhook")
    assert config and _pems(config["webhooks"][0]["clientConfig"]["caBundle"]) == [new_ca]
    assert cluster.get("secrets", f"{RELEASE}-webhook-tls", NAMESPACE)["data"] == secret["data"]  # type: ignore[index]
    _reviews_answered(cluster, webhook, "after-rotation")


def _deleted_at(events: list[dict[str, Any]], resource: str, name: str) -> datetime:
    for event in events:
        ref = event.get("objectRef", {})
        if (
            event.get("verb") == "delete"
            and ref.get("resource") == resource
            and ref.get("name") == name
            and event.get("stage") == "ResponseComplete"
        ):
            return datetime.fromisoformat(event["stageTimestamp"].replace("Z", "+00:00"))
    raise AssertionError(f"no audit event for the deletion of {resource}/{name}")


def test_uninstall_removes_the_webhook_configuration_first_and_keeps_crds_and_scans(
    release: Release, cluster: Cluster
) -> None:
    scans_before = {
        s["metadata"]["name"]
        for s in json.loads(cluster.kubectl("get", "modelscans", "-o", "json").stdout)["items"]
    }
    assert scans_before, "the scenarios above recorded no ModelScan"
    user_group = {
        "apiVersion": API,
        "kind": "SecurityGroup",
        "metadata": {"name": "kept-after-uninstall"},
        "spec": {"sourceRef": "nowhere", "rules": [{"name": "LoadTimeCodeExecution", "mode": "Blocking"}]},
    }
    cluster.apply(user_group)

    uninstalled = release.helm.run("uninstall", RELEASE, "-n", NAMESPACE, "--timeout", "300s")
    assert "uninstalled" in uninstalled.stdout

    events = _audit(cluster)
    webhook_gone = _deleted_at(events, "deployments", f"{RELEASE}-webhook")
    for configuration in ("validatingwebhookconfigurations", "mutatingwebhookconfigurations"):
        assert _deleted_at(events, configuration, f"{RELEASE}-webhook") <= webhook_gone, (
            f"the webhook Deployment went before its {configuration}"
        )
        assert cluster.get(configuration, f"{RELEASE}-webhook") is None

    # The audit trail and the API stay; what the chart made goes (the Pods by GC).
    for crd in (
        "modelscans.modelsec.io",
        "securitygroups.modelsec.io",
        "modelsources.modelsec.io",
        "clusterkopfpeerings.kopf.dev",
    ):
        assert cluster.get("customresourcedefinitions", crd) is not None, crd
    scans_after = {
        s["metadata"]["name"]
        for s in json.loads(cluster.kubectl("get", "modelscans", "-o", "json").stdout)["items"]
    }
    assert scans_before <= scans_after
    assert cluster.get("securitygroups", "kept-after-uninstall") is not None
    left = json.loads(
        cluster.kubectl(
            "get",
            "deployments,services,secrets,serviceaccounts,roles,rolebindings,poddisruptionbudgets",
            "-A",
            "-l",
            f"app.kubernetes.io/instance={RELEASE}",
            "-o",
            "json",
        ).stdout
    )["items"]
    assert left == [], [f"{o['kind']}/{o['metadata']['name']}" for o in left]
    cluster_left = json.loads(
        cluster.kubectl(
            "get",
            "clusterroles,clusterrolebindings,clusterkopfpeerings",
            "-l",
            f"app.kubernetes.io/instance={RELEASE}",
            "-o",
            "json",
        ).stdout
    )["items"]
    assert cluster_left == [], [o["metadata"]["name"] for o in cluster_left]
    _wait(
        lambda: not json.loads(cluster.kubectl("get", "pods", "-n", NAMESPACE, "-o", "json").stdout)["items"],
        "the chart's Pods garbage-collected",
        60,
    )
    cluster.kubectl("delete", "securitygroup", "kept-after-uninstall")
