"""Start-up of scan mode ``job``: settings, the namespaced API, and the fail-closed check
that the admission policy guarding ScanResults is in place."""

from __future__ import annotations

from typing import Any

from kubernetes.client import ApiClient

from modelsec.k8s.config import KubeConfigError
from modelsec.k8s.resultpolicy import POLICY_NAME, validations
from modelsec_operator.config import OperatorConfig
from modelsec_operator.jobs.api import JobsApi
from modelsec_operator.jobs.runner import JobScanner
from modelsec_operator.jobs.settings import load_settings
from modelsec_operator.jobs.tracker import JobTracker


async def check_result_policy(api: JobsApi, service_account: str) -> None:
    """Refuse to run scan Jobs unless the API server enforces who may write a verdict.

    Without the ValidatingAdmissionPolicy, any Pod of the scan-worker ServiceAccount could
    write a ScanResult for another scan's Pod; so its absence, a binding that does not
    deny, or checks weaker than ours stop the operator (failing closed)."""
    policy, binding = await api.admission_policy(POLICY_NAME)
    how = "install it with the Helm chart (scanMode: job) or `kubectl apply` the manifests from modelsec.k8s.resultpolicy"
    if policy is None or binding is None:
        raise KubeConfigError(
            f"scan mode job needs the ValidatingAdmissionPolicy and binding {POLICY_NAME!r} "
            f"that keep scan verdicts unforgeable; {how} (failing closed)"
        )
    wanted = [(v["expression"]) for v in validations(service_account)]
    present = [v.get("expression") for v in (policy.get("spec") or {}).get("validations") or []]
    if (
        any(expression not in present for expression in wanted)
        or (policy.get("spec") or {}).get("failurePolicy", "Fail") != "Fail"
    ):
        raise KubeConfigError(
            f"ValidatingAdmissionPolicy {POLICY_NAME!r} does not carry the checks for ServiceAccount "
            f"{service_account!r} with failurePolicy Fail; {how} (failing closed)"
        )
    if "Deny" not in ((binding.get("spec") or {}).get("validationActions") or []):
        raise KubeConfigError(
            f"ValidatingAdmissionPolicyBinding {POLICY_NAME!r} must deny (validationActions: "
            f"[Deny]); {how} (failing closed)"
        )


async def job_scanner(config: OperatorConfig, api_client: ApiClient) -> JobScanner:
    settings = load_settings(config.scan_job_settings)
    api = JobsApi(api_client, config.scan_job_namespace)
    await check_result_policy(api, settings.service_account_name)
    tracker = JobTracker(api, config.scan_job_poll_seconds, settings.schedule_timeout_seconds)
    return JobScanner(
        api,
        settings,
        config.max_concurrent_scan_jobs,
        tracker,
        config.local_root,
        config.queue_refresh_seconds,
        config.scan_job_running_status_after,
    )


def describe(scanner: JobScanner) -> dict[str, Any]:
    return {"namespace": scanner.namespace, "limit": scanner.slots.limit, "image": scanner.settings.image}
