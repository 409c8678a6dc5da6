"""The chart without a cluster: lint, generated files, the values schema, what the templates
render for the default values and every documented example, and checkov over all of it."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_helpers import CHART, NAMESPACE, RELEASE, REPO, Helm, kinds

import gen_chart  # hack/
from modelsec.k8s import crds

EXAMPLES = sorted((CHART / "examples").glob("*.yaml"))
MATRIX = [pytest.param([], id="defaults")] + [pytest.param(["-f", str(p)], id=p.stem) for p in EXAMPLES]


def test_every_documented_example_is_in_the_matrix() -> None:
    documented = set(re.findall(r"examples/([a-z0-9-]+)\.yaml", (REPO / "docs" / "install.md").read_text()))
    assert documented and documented <= {p.stem for p in EXAMPLES}, documented - {p.stem for p in EXAMPLES}


@pytest.mark.parametrize("values", MATRIX)
def test_lint_strict(helm: Helm, values: list[str]) -> None:
    result = helm.run("lint", "--strict", str(CHART), *values, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


# --- generated files -----------------------------------------------------------------------


def test_chart_crds_are_the_generated_crds() -> None:
    """The same generator (hack/gen-crds.sh) writes crds/ and the chart's crds/."""
    rendered = crds.render_files()
    for directory in (REPO / "crds", CHART / "crds"):
        committed = {p.name: p.read_text() for p in directory.glob("*.yaml")}
        assert committed == rendered, f"{directory.relative_to(REPO)} is stale: run hack/gen-crds.sh"


def test_generated_chart_files_are_fresh() -> None:
    stale = [
        str(path.relative_to(REPO))
        for path, text in gen_chart.outputs().items()
        if not path.exists() or path.read_text() != text
    ]
    assert not stale, f"stale {stale}: run .venv/bin/python hack/gen_chart.py"


def test_webhook_rules_come_from_the_manifest_module(helm: Helm) -> None:
    from modelsec_webhook import manifest

    source = manifest.render(manifest.client_config(service=(NAMESPACE, "x")))["webhooks"][0]
    (config,) = kinds(helm.render(), "ValidatingWebhookConfiguration")
    hook = config["webhooks"][0]
    for key in ("name", "rules", "matchPolicy", "sideEffects", "admissionReviewVersions"):
        assert hook[key] == source[key], key
    assert any(r["resources"] == ["pods/ephemeralcontainers"] for r in hook["rules"])


def test_every_value_is_documented() -> None:
    readme = (CHART / "README.md").read_text()
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    def leaves(node: Any, prefix: str = "") -> list[str]:
        if (
            isinstance(node, dict)
            and node
            and prefix.count(".") < 4
            and not prefix.endswith(
                ("resources.", "affinity.", "volume.", "nodeSelector.", "labels.", "podLabels.")
            )
        ):
            return [k for key, value in node.items() for k in leaves(value, f"{prefix}{key}.")]
        return [prefix.rstrip(".")]

    missing = [key for key in leaves(values) if f"| `{key}` |" not in readme]
    assert not missing, missing


# --- the values schema ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "webhook.replica=3"], "replica"),  # a typo
        (["--set", "operatorr.replicas=1"], "operatorr"),  # a typo at the top
        (["--set", "webhook.replicas=three"], "replicas"),  # a wrong type
        (["--set", "webhook.failurePolicy=Sometimes"], "failurePolicy"),  # not in the enum
        (["--set", "webhook.tls.mode=selfsigned"], "mode"),
        (["--set", "webhook.timeoutSeconds=60"], "timeoutSeconds"),  # above 30
        (["--set", "image.digest=latest"], "digest"),  # not sha256:<64 hex>
        (["--set", "operator.secretAccess[0].names[0]=x"], "namespace"),  # required field
        (["--set", "modelSources[0].name=Bad_Name"], "name"),
    ],
)
def test_schema_rejects_typos_and_wrong_types_with_a_clear_message(
    helm: Helm, args: list[str], message: str
) -> None:
    result = helm.template(*args, check=False)
    assert result.returncode != 0, result.stdout[:500]
    assert "schema" in result.stderr and message in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "webhook.tls.mode=bootstrap"], "needs webhook.replicas=1"),
        (["--set", "webhook.tls.mode=secret"], "webhook.tls.secretName is required"),
        (["--set", "webhook.tls.mode=secret", "--set", "webhook.tls.secretName=s"], "webhook.tls.caBundle"),
    ],
)
def test_inconsistent_values_fail_with_what_to_do(helm: Helm, args: list[str], message: str) -> None:
    result = helm.template(*args, check=False)
    assert result.returncode != 0 and message in result.stderr, result.stderr


# --- what the defaults render ----------------------------------------------------------------


@pytest.fixture(scope="module")
def defaults(helm: Helm) -> list[dict[str, Any]]:
    return helm.render()


def test_pods_are_locked_down(defaults: list[dict[str, Any]]) -> None:
    deployments = kinds(defaults, "Deployment")
    assert {d["metadata"]["name"] for d in deployments} == {f"{RELEASE}-operator", f"{RELEASE}-webhook"}
    for deployment in deployments:
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is True  # both talk to the API server
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True and context["allowPrivilegeEscalation"] is False
            assert context["capabilities"] == {"drop": ["ALL"]} and context["privileged"] is False
            assert "livenessProbe" in container and "readinessProbe" in container and "resources" in container
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert volumes["tmp"]["emptyDir"]["sizeLimit"]
    for account in kinds(defaults, "ServiceAccount"):
        assert account["automountServiceAccountToken"] is False


def test_replicas_spread_disruption_budget_and_readiness(defaults: list[dict[str, Any]]) -> None:
    webhook = kinds(defaults, "Deployment", f"{RELEASE}-webhook")[0]
    operator = kinds(defaults, "Deployment", f"{RELEASE}-operator")[0]
    assert webhook["spec"]["replicas"] == 3 and operator["spec"]["replicas"] == 2
    assert f"--peering={RELEASE}" in operator["spec"]["template"]["spec"]["containers"][0]["args"]
    spread = webhook["spec"]["template"]["spec"]["topologySpreadConstraints"]
    selector = webhook["spec"]["selector"]["matchLabels"]
    assert {c["topologyKey"] for c in spread} == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}
    assert all(c["labelSelector"]["matchLabels"] == selector for c in spread)
    budget = kinds(defaults, "PodDisruptionBudget", f"{RELEASE}-webhook")[0]
    assert budget["spec"]["selector"]["matchLabels"] == selector and budget["spec"]["maxUnavailable"] == 1
    probe = webhook["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
    assert probe["httpGet"]["path"] == "/readyz"  # ready once the informers listed everything


def test_webhook_configuration_fails_closed_and_exempts_by_the_immutable_label(
    defaults: list[dict[str, Any]],
) -> None:
    (config,) = kinds(defaults, "ValidatingWebhookConfiguration")
    hook = config["webhooks"][0]
    assert hook["failurePolicy"] == "Fail" and 1 <= hook["timeoutSeconds"] <= 30
    assert hook["namespaceSelector"] == {
        "matchExpressions": [
            {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system", NAMESPACE]}
        ]
    }
    assert hook["clientConfig"]["service"] == {
        "namespace": NAMESPACE,
        "name": f"{RELEASE}-webhook",
        "path": "/validate",
        "port": 443,
    }
    assert [c["name"] for c in hook["matchConditions"]] == ["skip-updates-that-change-no-spec-or-annotation"]


def test_the_helm_generated_certificate_matches_the_ca_bundle(defaults: list[dict[str, Any]]) -> None:
    from cryptography import x509

    (secret,) = kinds(defaults, "Secret", f"{RELEASE}-webhook-tls")
    (config,) = kinds(defaults, "ValidatingWebhookConfiguration")
    ca_pem = base64.b64decode(secret["data"]["ca.crt"])
    assert base64.b64decode(config["webhooks"][0]["clientConfig"]["caBundle"]) == ca_pem
    leaf = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))
    ca = x509.load_pem_x509_certificate(ca_pem)
    leaf.verify_directly_issued_by(ca)
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName
    )
    assert f"{RELEASE}-webhook.{NAMESPACE}.svc" in names


def test_rbac_has_no_wildcards_no_cluster_wide_secrets_and_no_pod_writes(
    defaults: list[dict[str, Any]],
) -> None:
    for role in kinds(defaults, "ClusterRole") + kinds(defaults, "Role"):
        for rule in role.get("rules", []):
            assert (
                "*" not in rule["verbs"] and "*" not in rule["resources"] and "*" not in rule["apiGroups"]
            ), role
            assert not any(r.startswith("pods") for r in rule["resources"]), role
            if role["kind"] == "ClusterRole":
                assert "secrets" not in rule["resources"], role
    assert not [
        r for r in kinds(defaults, "Role") if any("secrets" in rule["resources"] for rule in r["rules"])
    ], "no Secret access unless a ModelSource or operator.secretAccess names one"


def test_operator_may_read_exactly_the_secrets_the_sources_name(helm: Helm) -> None:
    documents = helm.render(
        "-f",
        str(CHART / "examples" / "default-groups.yaml"),
        "--set",
        "operator.secretAccess[0].namespace=vault-sync",
        "--set",
        "operator.secretAccess[1].namespace=modelsec-system",
        "--set",
        "operator.secretAccess[1].names[0]=extra",
    )
    roles = {
        (r["metadata"]["namespace"], r["metadata"]["name"]): r["rules"]
        for r in kinds(documents, "Role")
        if any("secrets" in rule["resources"] for rule in r["rules"])
    }
    assert roles == {
        ("vault-sync", f"{RELEASE}-operator-secrets"): [
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}
        ],
        (NAMESPACE, f"{RELEASE}-operator-secrets"): [
            {
                "apiGroups": [""],
                "resources": ["secrets"],
                "verbs": ["get"],
                "resourceNames": ["extra", "hf-token", "company-models-s3"],
            }
        ],
    }
    bindings = {(b["metadata"]["namespace"], b["metadata"]["name"]) for b in kinds(documents, "RoleBinding")}
    assert set(roles) <= bindings


def test_no_secret_is_made_from_values(helm: Helm) -> None:
    for args in ([], ["-f", str(CHART / "examples" / "default-groups.yaml")]):
        secrets = kinds(helm.render(*args), "Secret")
        assert [s["metadata"]["name"] for s in secrets] == [f"{RELEASE}-webhook-tls"]


def test_alerts_use_metrics_the_components_export(helm: Helm) -> None:
    from modelsec_operator import metrics as operator_metrics
    from modelsec_webhook import metrics as webhook_metrics

    exported: set[str] = set()
    for registry in (operator_metrics.REGISTRY, webhook_metrics.REGISTRY):
        for family in registry.collect():  # a labelled counter has no sample before its first use
            exported.add(family.name + ("_total" if family.type == "counter" else ""))
    (rule,) = kinds(helm.render("-f", str(CHART / "examples" / "monitoring.yaml")), "PrometheusRule")
    alerts = rule["spec"]["groups"][0]["rules"]
    assert {a["alert"] for a in alerts} >= {
        "ModelsecWebhookDenyingForInternalErrors",
        "ModelsecScansStuck",
        "ModelsecScanErrorsRising",
    }
    used = {name for a in alerts for name in re.findall(r"\bmodelsec_[a-z_]+", a["expr"])}
    assert used and used <= exported, used - exported
    reasons = set(re.findall(r'reason=~"([^"]+)"', " ".join(a["expr"] for a in alerts))[0].split("|"))
    assert reasons <= {
        "no-models",
        "unchanged",
        "exempt",
        "not-checked",
        "judged",
        "not-ready",
        "invalid-request",
        "internal-error",
    }


# --- checkov ---------------------------------------------------------------------------------

# Each failed check we accept, and why. Any other failure fails the test.
ALWAYS_ACCEPTED = {
    "CKV_K8S_11": "no CPU limits on purpose: a throttled webhook misses the API server's timeout and "
    "fails closed (requests are set; memory is limited)",
    "CKV_K8S_15": "imagePullPolicy IfNotPresent: release tags are never rebuilt, and image.digest pins "
    "the exact image (then the pull policy does not matter)",
    "CKV_K8S_38": "both components call the API server (watches, verdicts, ModelScans): their pods mount "
    "the token; the ServiceAccount objects themselves do not automount it",
    "CKV_K8S_21": "the Role and RoleBinding in `default` only let the operator create Events there: kopf "
    "files Events about cluster-scoped objects in that namespace",
}


def _value(values: dict[str, Any], dotted: str) -> Any:
    for key in dotted.split("."):
        values = values.get(key) if isinstance(values, dict) else None  # type: ignore[assignment]
    return values


# check -> (when it is accepted, given the values of the rendering; why)
ACCEPTED_WHEN = {
    "CKV_K8S_43": (
        lambda v: not _value(v, "image.digest"),
        "the chart cannot know the digest of your mirror: image.digest (production.yaml) pins it",
    ),
    "CKV2_K8S_6": (
        lambda v: not _value(v, "networkPolicy.enabled"),
        "NetworkPolicies are opt-in: the API server's addresses differ per cluster "
        "(network-policy.yaml enables them)",
    ),
    "CKV_K8S_155": (
        lambda v: _value(v, "webhook.tls.mode") == "bootstrap",
        "--bootstrap-tls writes its CA into its own webhook configuration: get and patch, "
        "limited by resourceNames to this release's one",
    ),
}


@pytest.fixture(scope="module")
def checkov() -> Path:
    proc = subprocess.run(
        ["bash", str(REPO / "hack" / "install-checkov.sh")], capture_output=True, text=True, timeout=1800
    )
    if proc.returncode != 0:
        pytest.fail(f"hack/install-checkov.sh failed:\n{proc.stderr[-3000:]}")
    return Path(proc.stdout.strip())


def test_checkov_passes_over_every_rendering(helm: Helm, checkov: Path, tmp_path: Path) -> None:
    renders: dict[str, dict[str, Any]] = {}
    for param in MATRIX:
        (args,) = param.values
        name = param.id
        (tmp_path / f"{name}.yaml").write_text(helm.template(*args).stdout)
        values = yaml.safe_load(Path(args[1]).read_text()) if args else {}
        renders[f"{name}.yaml"] = values
    proc = subprocess.run(
        [
            str(checkov),
            "-d",
            str(tmp_path),
            "--framework",
            "kubernetes",
            "--quiet",
            "--compact",
            "-o",
            "json",
            "--skip-download",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "BC_SKIP_MAPPING": "TRUE"},
    )
    report = json.loads(proc.stdout)
    report = report if isinstance(report, dict) else report[0]
    assert report["summary"]["passed"] > 100 and report["summary"]["parsing_errors"] == 0, report["summary"]
    results = report["results"]
    unaccepted = []
    for failed in results.get("failed_checks", []):
        file = Path(failed["file_path"]).name
        check = failed["check_id"]
        if check in ALWAYS_ACCEPTED:
            continue
        if check in ACCEPTED_WHEN and ACCEPTED_WHEN[check][0](renders[file]):
            continue
        unaccepted.append(f"{file}: {check} {failed['check_name']} ({failed['resource']})")
    assert not unaccepted, "\n".join(unaccepted)


# --- NOTES.txt -----------------------------------------------------------------------------


def test_notes_tell_the_next_step_with_objects_that_validate(helm: Helm) -> None:
    from modelsec.k8s.group import SecurityGroupResourceSpec
    from modelsec.k8s.source import ModelSourceSpec

    out = helm.run("install", RELEASE, str(CHART), "-n", NAMESPACE, "--dry-run=client").stdout
    notes = out[out.index("NOTES:") :]
    assert f"rollout status deployment/{RELEASE}-webhook" in notes
    assert (
        "kubectl delete validatingwebhookconfiguration,mutatingwebhookconfiguration --ignore-not-found "
        f"{RELEASE}-webhook"
    ) in notes  # break-glass
    example = re.search(r"<<'YAML'\n(.*?)\n\s*YAML\n", notes, re.S)
    assert example, notes
    source, group = yaml.safe_load_all(textwrap.dedent(example.group(1)))
    ModelSourceSpec.model_validate(source["spec"])
    SecurityGroupResourceSpec.model_validate(group["spec"])
    configured = helm.run(
        "install",
        RELEASE,
        str(CHART),
        "-n",
        NAMESPACE,
        "--dry-run=client",
        "-f",
        str(CHART / "examples" / "default-groups.yaml"),
    ).stdout
    assert "Created from values: 2 ModelSource(s), 2 SecurityGroup(s)" in configured
