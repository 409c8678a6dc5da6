"""The Job for one scan attempt: a pure function of the scan, its source and the settings.

What the Pod gets, and why:
- ``modelsec scan-worker <ModelScan>`` in the configured image, as a non-root user, with a
  read-only root filesystem, no capabilities, no privilege escalation, RuntimeDefault
  seccomp (as strict as the chart's own Pods), and an ``emptyDir`` at /tmp for spooled
  archive members, sized like the ephemeral-storage request.
- No automounted token: one projected ServiceAccount token (the scan-worker account, which
  may only read modelsec resources and create ScanResults), the cluster CA and the
  namespace, at the standard path, so the client's in-cluster configuration works.
- The source's credentials as ``secretKeyRef`` environment variables: the kubelet reads
  the Secret; its values never appear in the Job spec. A Pod can only reference Secrets
  of its own namespace, so a remote source's Secret must live in the operator's namespace
  (otherwise the scan is refused with ``SecretNotMountable``, never copied).
- Labels and annotations that let the operator find, adopt and verify the Job after a
  restart, and an owner reference to the ModelScan: deleting the scan deletes the Job.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelsec.k8s import API_VERSION, GROUP
from modelsec.k8s.common import SecretKeyRef, SecretRef
from modelsec.k8s.group import ScanJobPlacement
from modelsec.k8s.source import ModelSourceSpec
from modelsec.metadata import SourceType
from modelsec_operator.jobs.settings import JobSettings
from modelsec_operator.scanning import ScanRefused

LABEL_MANAGED = "app.kubernetes.io/managed-by"
MANAGED_BY = "modelsec-operator"
LABEL_COMPONENT = "app.kubernetes.io/component"
COMPONENT = "scan-worker"
LABEL_JOB_KEY = f"{GROUP}/job-key"
LABEL_JOB_NAME = f"{GROUP}/job"  # on the Job itself, so a LIST can select the ones waited for
JOB_NAME_LABEL = (
    "batch.kubernetes.io/job-name"  # the Job controller's, on its Pods; the worker's, on its result
)
ANNOTATION_SCAN = f"{GROUP}/scan"
ANNOTATION_GROUP_DIGEST = f"{GROUP}/group-digest"
ANNOTATION_ATTEMPT = f"{GROUP}/attempt"
TOKEN_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
GROUP_DIGEST_ENV = "MODELSEC_GROUP_DIGEST"
JOB_NAME_ENV = "MODELSEC_JOB_NAME"
HF_TOKEN_ENV = "MODELSEC_HF_TOKEN"
S3_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


@dataclass(frozen=True)
class JobRequest:
    """One attempt of one scan, as the runner decided it."""

    scan_name: str
    scan_uid: str
    key: str  # what identical requests share: hex digest of (model, revision, source, group)
    attempt: int
    group_digest: str
    source: ModelSourceSpec
    model_bytes: int | None
    local_root: Path | None
    placement: ScanJobPlacement | None = None  # the group's spec.scanJob, over the settings

    @property
    def job_name(self) -> str:
        return job_name(self.key, self.attempt)


def job_name(key: str, attempt: int) -> str:
    return f"modelsec-scan-{key[:16]}-{attempt}"


def _field(path: str) -> dict[str, Any]:
    return {"valueFrom": {"fieldRef": {"fieldPath": path}}}


def _secret(name: str, key: str, optional: bool = False) -> dict[str, Any]:
    ref: dict[str, Any] = {"name": name, "key": key}
    if optional:
        ref["optional"] = True
    return {"valueFrom": {"secretKeyRef": ref}}


def credentials_env(source: ModelSourceSpec, namespace: str) -> list[dict[str, Any]]:
    """``secretKeyRef`` variables for the source's Secret; refuses a Secret elsewhere."""
    ref: SecretKeyRef | SecretRef | None = None
    env: list[dict[str, Any]] = []
    if (
        source.type == SourceType.HUGGING_FACE
        and source.hugging_face
        and source.hugging_face.token_secret_ref
    ):
        ref = source.hugging_face.token_secret_ref
        env.append({"name": HF_TOKEN_ENV, **_secret(ref.name, ref.key)})
    elif source.type == SourceType.S3 and source.s3 and source.s3.credentials_secret_ref:
        ref = source.s3.credentials_secret_ref
        for key in S3_KEYS:
            env.append({"name": key, **_secret(ref.name, key, optional=key == "AWS_SESSION_TOKEN")})
    if ref is not None and ref.namespace != namespace:
        raise ScanRefused(
            "SecretNotMountable",
            f"scan Jobs run in namespace {namespace!r} and a Pod can only use Secrets of its own "
            f"namespace, but the source's Secret is {ref.namespace}/{ref.name}; create it in "
            f"{namespace!r} and point the ModelSource at it (the operator never copies Secrets)",
        )
    return env


def build_job(request: JobRequest, settings: JobSettings, namespace: str) -> dict[str, Any]:
    resources = settings.sizing.resources(request.model_bytes)
    labels = {
        **settings.labels,
        LABEL_MANAGED: MANAGED_BY,
        LABEL_COMPONENT: COMPONENT,
        LABEL_JOB_KEY: request.key[:63],
    }
    job_labels = {**labels, LABEL_JOB_NAME: request.job_name}
    annotations = {
        ANNOTATION_SCAN: request.scan_name,
        ANNOTATION_GROUP_DIGEST: request.group_digest,
        ANNOTATION_ATTEMPT: str(request.attempt),
    }
    args = ["scan-worker", request.scan_name]
    if request.local_root is not None:
        args += ["--local-root", str(request.local_root)]
    env = [
        {"name": "POD_NAME", **_field("metadata.name")},
        {"name": "POD_UID", **_field("metadata.uid")},
        {"name": "POD_NAMESPACE", **_field("metadata.namespace")},
        {"name": GROUP_DIGEST_ENV, "value": request.group_digest},
        {"name": JOB_NAME_ENV, "value": request.job_name},
        {"name": "TMPDIR", "value": "/tmp"},
        *credentials_env(request.source, namespace),
        *settings.env,
    ]
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "serviceAccountName": settings.service_account_name,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": settings.run_as_user,
            "runAsGroup": settings.run_as_user,
            "fsGroup": settings.run_as_user,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            {
                "name": "scan",
                "image": settings.image,
                "imagePullPolicy": settings.image_pull_policy,
                "command": list(settings.command),
                "args": args,
                "env": env,
                "resources": resources,
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": True,
                    "privileged": False,
                    "runAsNonRoot": True,
                    "runAsUser": settings.run_as_user,
                    "runAsGroup": settings.run_as_user,
                    "capabilities": {"drop": ["ALL"]},
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "volumeMounts": [
                    {"name": "kube-api-access", "mountPath": TOKEN_DIR, "readOnly": True},
                    {"name": "tmp", "mountPath": "/tmp"},
                    *settings.volume_mounts,
                ],
            }
        ],
        "volumes": [
            {
                "name": "kube-api-access",
                "projected": {
                    "sources": [
                        {
                            "serviceAccountToken": {
                                "path": "token",
                                "expirationSeconds": settings.token_expiration_seconds,
                            }
                        },
                        {
                            "configMap": {
                                "name": "kube-root-ca.crt",
                                "items": [{"key": "ca.crt", "path": "ca.crt"}],
                            }
                        },
                        {
                            "downwardAPI": {
                                "items": [
                                    {"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}
                                ]
                            }
                        },
                    ]
                },
            },
            {"name": "tmp", "emptyDir": {"sizeLimit": resources["limits"]["ephemeral-storage"]}},
            *settings.volumes,
        ],
    }
    group = request.placement or ScanJobPlacement()
    placement = {
        "nodeSelector": group.node_selector if group.node_selector is not None else settings.node_selector,
        "tolerations": group.tolerations if group.tolerations is not None else settings.tolerations,
        "affinity": group.affinity if group.affinity is not None else settings.affinity,
        "priorityClassName": group.priority_class_name or settings.priority_class_name,
    }
    pod_spec.update({key: value for key, value in placement.items() if value})
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": request.job_name,
            "namespace": namespace,
            "labels": job_labels,
            "annotations": annotations,
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": "ModelScan",
                    "name": request.scan_name,
                    "uid": request.scan_uid,
                    "controller": True,
                    "blockOwnerDeletion": False,
                }
            ],
        },
        "spec": {
            "backoffLimit": settings.backoff_limit,
            "activeDeadlineSeconds": settings.active_deadline_seconds,
            "ttlSecondsAfterFinished": settings.ttl_seconds_after_finished,
            "template": {"metadata": {"labels": labels, "annotations": annotations}, "spec": pod_spec},
        },
    }
