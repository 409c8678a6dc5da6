"""The chart in scan mode job: the settings the operator reads, the admission policy that
keeps verdicts unforgeable (rendered exactly as modelsec.k8s.resultpolicy says), and least
privilege in both modes: nothing of job mode exists unless it is on."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from chart_helpers import NAMESPACE, RELEASE, Helm, kinds

from modelsec.k8s.resultpolicy import POLICY_NAME, manifests

# The release is named "modelsec", so the chart's full name is the release name.
WORKER, OPERATOR = f"{RELEASE}-scan-worker", f"{RELEASE}-operator"
MODELS = ["--set", "operator.models.volume.persistentVolumeClaim.claimName=models"]


@pytest.fixture(scope="module")
def job_mode(helm: Helm) -> list[dict[str, Any]]:
    return helm.render(
        "--set",
        "operator.scanMode=job",
        "--set",
        "operator.scanJobs.maxConcurrent=25",
        "--set",
        "operator.scanJobs.runningStatusAfterSeconds=12",
        "--set",
        "operator.scanJobs.nodeSelector.pool=scanners",
        *MODELS,
    )


def _operator_args(documents: list[dict[str, Any]]) -> list[str]:
    deployment = next(
        d for d in kinds(documents, "Deployment") if d["metadata"]["name"].endswith("-operator")
    )
    return list(deployment["spec"]["template"]["spec"]["containers"][0]["args"])


def _settings(documents: list[dict[str, Any]]) -> dict[str, Any]:
    config = next(
        d for d in kinds(documents, "ConfigMap") if d["metadata"]["name"].endswith("-operator-scan-jobs")
    )
    return yaml.safe_load(config["data"]["settings.yaml"])  # type: ignore[no-any-return]


def test_job_mode_settings_are_what_the_operator_accepts(job_mode: list[dict[str, Any]]) -> None:
    from modelsec_operator.jobs.settings import JobSettings

    args = _operator_args(job_mode)
    assert "--scan-mode=job" in args and "--max-concurrent-scan-jobs=25" in args
    assert f"--scan-job-namespace={NAMESPACE}" in args
    assert "--scan-job-running-status-after=12" in args
    settings = JobSettings.model_validate(_settings(job_mode))  # extra keys would fail here
    assert settings.service_account_name == WORKER and settings.node_selector == {"pool": "scanners"}
    assert settings.command == ["/opt/modelsec/bin/modelsec"]
    # Local sources: the scan Pods mount the models volume where the operator does.
    assert settings.volumes == [{"name": "models", "persistentVolumeClaim": {"claimName": "models"}}]
    assert settings.volume_mounts == [{"name": "models", "mountPath": "/models", "readOnly": True}]


def test_the_result_policy_is_rendered_from_its_python_source(job_mode: list[dict[str, Any]]) -> None:
    wanted = {d["kind"]: d for d in manifests(WORKER)}
    for kind in ("ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"):
        rendered = kinds(job_mode, kind, POLICY_NAME)
        assert len(rendered) == 1, kind
        assert rendered[0]["spec"] == wanted[kind]["spec"], kind


def _rules(documents: list[dict[str, Any]], subject: str) -> list[tuple[str, str | None, dict[str, Any]]]:
    """(role kind, namespace, rule) for every rule bound to ServiceAccount ``subject``."""
    bound = set()
    for binding in kinds(documents, "RoleBinding") + kinds(documents, "ClusterRoleBinding"):
        if any(s.get("name") == subject for s in binding.get("subjects", [])):
            bound.add(
                (binding["roleRef"]["kind"], binding["roleRef"]["name"], binding["metadata"].get("namespace"))
            )
    out = []
    for role in kinds(documents, "Role") + kinds(documents, "ClusterRole"):
        key = (role["kind"], role["metadata"]["name"], role["metadata"].get("namespace"))
        if key in bound:
            out += [(role["kind"], role["metadata"].get("namespace"), rule) for rule in role["rules"]]
    return out


def test_least_privilege_in_both_modes(helm: Helm, job_mode: list[dict[str, Any]]) -> None:
    defaults = helm.render(*MODELS)
    operator = OPERATOR
    # In-process: nothing of job mode exists.
    assert not [
        d for d in defaults if "scan-worker" in d["metadata"]["name"] or "scan-jobs" in d["metadata"]["name"]
    ]
    assert not kinds(defaults, "ValidatingAdmissionPolicy")
    assert not [
        r
        for _, _, r in _rules(defaults, operator)
        if "jobs" in r["resources"] or "scanresults" in r["resources"]
    ]

    # Job mode: the operator may manage Jobs and read their Pods and results in its own
    # namespace only, and read the one admission policy; it never writes Pods.
    extra = [
        (kind, ns, rule)
        for kind, ns, rule in _rules(job_mode, operator)
        if (kind, ns, rule) not in _rules(defaults, operator)
    ]
    assert sorted(
        (kind, ns, tuple(rule["resources"]), tuple(sorted(rule["verbs"]))) for kind, ns, rule in extra
    ) == [
        ("ClusterRole", None, ("validatingadmissionpolicies", "validatingadmissionpolicybindings"), ("get",)),
        ("Role", NAMESPACE, ("jobs",), ("create", "delete", "get", "list")),
        ("Role", NAMESPACE, ("pods",), ("list",)),
        ("Role", NAMESPACE, ("scanresults",), ("list",)),
    ]
    policy_rule = next(rule for kind, _, rule in extra if kind == "ClusterRole")
    assert policy_rule["resourceNames"] == [POLICY_NAME]
    # The worker: read the three kinds, create results in its namespace; nothing else.
    worker = sorted(
        (kind, ns, tuple(rule["resources"]), tuple(rule["verbs"]))
        for kind, ns, rule in _rules(job_mode, WORKER)
    )
    assert worker == [
        ("ClusterRole", None, ("modelscans", "securitygroups", "modelsources"), ("get",)),
        ("Role", NAMESPACE, ("scanresults",), ("create",)),
    ]
    account = kinds(job_mode, "ServiceAccount", WORKER)[0]
    assert account["automountServiceAccountToken"] is False
    for _, _, rule in _rules(job_mode, operator) + _rules(job_mode, WORKER):
        assert "*" not in rule["verbs"] and "*" not in rule["resources"]
