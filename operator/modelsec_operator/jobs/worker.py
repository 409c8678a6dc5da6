"""``modelsec scan-worker <ModelScan>``: the process inside a scan Job's Pod.

It reads the ModelScan, its SecurityGroup and ModelSource, runs the same engine and rules
as the operator in-process, and creates one ScanResult named after its own Pod (the only
write it is allowed, see :mod:`modelsec.k8s.result`). Anything that goes wrong becomes a
failure result with a reason; exit status 1 only when not even that could be written (the
operator then sees a Job without a result, and retries).

Environment (set by the Job): ``POD_NAME``, ``POD_UID``, ``POD_NAMESPACE`` (downward API),
``MODELSEC_JOB_NAME``, the source's
credentials (``MODELSEC_HF_TOKEN`` or ``AWS_*``, from the Secret by the kubelet).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from kubernetes.client import ApiClient, CustomObjectsApi
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from modelsec.engine import Engine
from modelsec.k8s import API_VERSION, GROUP, MODELSCANS, MODELSOURCES, SECURITYGROUPS, VERSION
from modelsec.k8s.config import KubeConfigError, load_configuration
from modelsec.k8s.result import ScanResultSpec, WorkerFailure, WorkerVerdict
from modelsec.k8s.scan import ModelScanSpec
from modelsec.policy import evaluate
from modelsec.rules.base import EvaluationInput, SourceType
from modelsec.safe_text import printable
from modelsec_operator.config import scan_delay_from_env
from modelsec_operator.jobs.manifest import HF_TOKEN_ENV, JOB_NAME_ENV, JOB_NAME_LABEL, S3_KEYS
from modelsec_operator.kube import NotFound, not_found
from modelsec_operator.scanning import ScanJob, ScanNotRun, ScanRetry, check_exists, resolve, run_scan
from modelsec_operator.validation import explain, validate_group, validate_source
from modelsec_operator.verdicts import completed_status

DESCRIPTION = "Run one scan of a ModelScan inside a scan Job (used by `modelsec operator --scan-mode job`)."
log = logging.getLogger("modelsec.scan-worker")


class Refused(Exception):
    def __init__(self, failure: WorkerFailure) -> None:
        super().__init__(failure.message)
        self.failure = failure


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = DESCRIPTION
    parser.add_argument("scan", metavar="MODELSCAN", help="name of the ModelScan to judge")
    parser.add_argument(
        "--local-root",
        type=Path,
        metavar="DIR",
        help="Local ModelSources must point inside DIR (as the operator's --local-root)",
    )
    parser.add_argument(
        "--kubeconfig",
        type=Path,
        metavar="FILE",
        help="kubeconfig (default: the Pod's in-cluster credentials)",
    )


def _failure(reason: str, message: str, retry: bool) -> Refused:
    return Refused(WorkerFailure(reason=reason, message=printable(message)[:1000], retry=retry))


class Worker:
    def __init__(self, custom: CustomObjectsApi, scan: str, local_root: Path | None) -> None:
        self.custom = custom
        self.scan = scan
        self.local_root = local_root

    def _get(self, plural: str, name: str) -> dict[str, Any] | None:
        try:
            with not_found(f"{plural}/{name}"):
                found: dict[str, Any] = self.custom.get_cluster_custom_object(GROUP, VERSION, plural, name)
                return found
        except NotFound:
            return None

    def verdict(self) -> WorkerVerdict:
        body = self._get(MODELSCANS[2], self.scan)
        if body is None:
            raise _failure("ScanDeleted", f"ModelScan {self.scan} no longer exists", retry=False)
        try:
            spec = ModelScanSpec.model_validate(body.get("spec") or {})
        except ValidationError as exc:
            raise _failure("InvalidSpec", explain(exc), retry=False) from None
        group_body = self._get(SECURITYGROUPS[2], spec.security_group)
        if group_body is None:
            raise _failure(
                "GroupNotFound", f"SecurityGroup {spec.security_group!r} does not exist", retry=True
            )
        group_spec = dict(group_body.get("spec") or {})
        source_name = str(group_spec.get("sourceRef") or "")
        source_body = self._get(MODELSOURCES[2], source_name)
        source = (
            validate_source(source_name, source_body.get("spec"), self.local_root) if source_body else None
        )
        view = validate_group(
            spec.security_group, group_spec, (group_body.get("metadata") or {}).get("generation"), source
        )
        if not view.ready:
            raise _failure(
                "GroupNotReady", f"SecurityGroup {spec.security_group!r}: {view.message}", retry=True
            )
        assert view.source is not None and view.source.spec is not None
        try:
            job = resolve(spec.model, spec.revision, view.source.spec, view.source.digest)
            job = ScanJob(job.ref, job.source_type, job.source_digest, credentials(view.source.spec))
            check_exists(job)
            scanned = run_scan(job, Engine(), scan_delay_from_env())
        except ScanNotRun as exc:
            raise _failure(exc.reason, exc.message, retry=isinstance(exc, ScanRetry)) from None
        verdict = evaluate(
            view.group(), EvaluationInput(scanned.report, scanned.source_type, scanned.metadata)
        )
        status = completed_status(
            verdict,
            scanned,
            generation=None,
            group_digest=view.digest,
            group_generation=view.generation,
            worker="",
            attempts=1,
            conditions=None,
        )
        fields = {
            k: v
            for k, v in status.items()
            if k in WorkerVerdict.model_fields or k in {f.alias for f in WorkerVerdict.model_fields.values()}
        }
        return WorkerVerdict.model_validate(fields)


def credentials(source: Any) -> dict[str, Any]:
    """ScanOptions.config from the source's spec and the Secret-backed environment."""
    config: dict[str, Any] = {}
    if source.type == SourceType.HUGGING_FACE and source.hugging_face is not None:
        config["endpoint"] = source.hugging_face.endpoint
        if os.environ.get(HF_TOKEN_ENV):
            config["token"] = os.environ[HF_TOKEN_ENV].strip()
    elif source.type == SourceType.S3 and source.s3 is not None:
        config.update(endpoint=source.s3.endpoint, region=source.s3.region)
        for key in S3_KEYS:
            if os.environ.get(key):
                config[key] = os.environ[key].strip()
    if getattr(source, "limits", None) is not None:  # deadlines and size bounds (HuggingFace, S3)
        config.update(source.limits.config())
    return {k: v for k, v in config.items() if v is not None}


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    missing = [v for v in ("POD_NAME", "POD_UID", "POD_NAMESPACE", JOB_NAME_ENV) if not os.environ.get(v)]
    if missing:
        print(
            f"modelsec scan-worker: {', '.join(missing)} not set; this command runs inside a scan "
            "Job's Pod (the Job sets them from the downward API)",
            file=sys.stderr,
        )
        return 2
    pod, uid, namespace = os.environ["POD_NAME"], os.environ["POD_UID"], os.environ["POD_NAMESPACE"]
    try:
        configuration = load_configuration(args.kubeconfig)
    except KubeConfigError as exc:
        print(f"modelsec scan-worker: {exc}", file=sys.stderr)
        return 2
    custom = CustomObjectsApi(ApiClient(configuration))
    worker = Worker(custom, args.scan, args.local_root)
    result: dict[str, Any] = {"modelScan": args.scan, "job": os.environ[JOB_NAME_ENV], "podUID": uid}
    try:
        result["verdict"] = worker.verdict().wire()
    except Refused as exc:
        result["failure"] = exc.failure.wire()
    except Exception as exc:  # noqa: BLE001 - reported, never a silent exit
        result["failure"] = WorkerFailure(
            reason="InternalError",
            message=printable(f"{type(exc).__name__}: {str(exc)[:500]}"),
            retry=True,
        ).wire()
    spec = ScanResultSpec.model_validate(result).wire()
    body = {
        "apiVersion": API_VERSION,
        "kind": "ScanResult",
        # The label lets the operator list the results of the Jobs it waits for; it proves
        # nothing (the operator checks the Pod's name, UID and owner itself).
        "metadata": {
            "name": pod,
            "namespace": namespace,
            "labels": {JOB_NAME_LABEL: os.environ[JOB_NAME_ENV]},
            "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": pod, "uid": uid}],
        },
        "spec": spec,
    }
    try:
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "scanresults", body)
    except ApiException as exc:
        print(
            printable(
                f"modelsec scan-worker: could not write the result: {exc.status} {exc.reason}: "
                f"{(exc.body or '')[:500]}"
            ),
            file=sys.stderr,
        )
        return 1
    outcome = spec.get("verdict", {}).get("outcome") or f"failure {spec['failure']['reason']}"
    log.info(printable(f"{args.scan}: {outcome}"))
    return 0
