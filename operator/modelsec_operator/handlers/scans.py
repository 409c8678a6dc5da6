"""ModelScan: decide what is needed (:mod:`..planning`), run it, record the verdict.

One handler serves creation, resumption after a restart and every update (pokes by the
group handler, the resync loop or a user). kopf never runs two handlers of one object at
once, so a scan's status has a single writer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Any, NoReturn, cast

import kopf
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from modelsec.k8s import ANNOTATION_RESCAN, LABEL_GROUP, LABEL_SCAN_KEY, MODELSCANS
from modelsec.k8s.common import ConditionStatus, set_condition, timestamp
from modelsec.k8s.naming import scan_key
from modelsec.k8s.scan import ModelScanSpec, Phase
from modelsec.policy import Outcome, Verdict, evaluate
from modelsec.rules.base import EvaluationInput, RuleResult, SourceType
from modelsec.safe_text import printable
from modelsec.sources import ScannedModel
from modelsec_operator import metrics
from modelsec_operator.jobs.runner import JobVerdict
from modelsec_operator.kube import NotFound, transient
from modelsec_operator.planning import Action, Plan, plan
from modelsec_operator.runtime import Runtime
from modelsec_operator.scanning import ScanJob, ScanRefused, ScanRetry, resolve
from modelsec_operator.validation import GroupView, explain
from modelsec_operator.verdicts import VERDICT_KEYS, completed_status, failed_status, history_after

PLURAL = MODELSCANS[2]
audit = logging.getLogger("modelsec.audit")
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$")


class ScanDeleted(Exception):
    """The ModelScan was deleted while we worked on it: nothing left to record."""


def backoff(retry: int) -> float:
    """5s, 10s, 20s, ... capped at 5 minutes."""
    return float(min(300, 5 * 2**retry))


class ScanRun:
    """One reconciliation of one ModelScan; holds what the steps share."""

    def __init__(self, runtime: Runtime, name: str, body: kopf.Body, retry: int, logger: kopf.Logger) -> None:
        self.runtime = runtime
        self.name = name
        self.body = body
        self.retry = retry
        self.logger = logger
        self.status: dict[str, Any] = dict(body.get("status") or {})
        self.generation = body.get("metadata", {}).get("generation")
        self.rescan_request = (body.get("metadata", {}).get("annotations") or {}).get(ANNOTATION_RESCAN)

    async def write(self, status: dict[str, Any]) -> None:
        status = {**status, "rescanRequest": self.rescan_request}
        try:
            patched = await self.runtime.kube.patch_status(PLURAL, self.name, status)
        except NotFound:
            raise ScanDeleted() from None
        self.status = dict(patched.get("status") or {})

    async def fail(self, reason: str, message: str, view: GroupView | None, because: str) -> None:
        message = printable(message)  # names and reasons come from specs and model files
        history, dropped = history_after(self.status, because)
        status = failed_status(
            reason,
            message,
            generation=self.generation,
            group_digest=view.digest if view else None,
            group_generation=view.generation if view else None,
            worker=self.runtime.identity,
            attempts=self.retry + 1,
            conditions=self.status.get("conditions"),
        )
        await self.write({**status, "history": history, "historyDropped": dropped or None})
        metrics.VERDICTS.labels(Outcome.ERROR.value).inc()
        metrics.ERRORS.labels(reason).inc()
        kopf.warn(self.body, reason="ScanError", message=f"{reason}: {message}")
        self.logger.warning(f"scan failed ({reason}): {message}")
        audit_record(self.name, self.body, status)

    async def claim(
        self, because: str, *, queue_position: int | None = None, queued: str | None = None
    ) -> None:
        """Pending, with the superseded verdict moved to history first: from here until the
        new verdict, the status shows no outcome (nothing is admitted on a stale one).
        ``queue_position`` and ``queued`` say where the scan waits (scan mode job)."""
        history, dropped = history_after(self.status, because)
        status: dict[str, Any] = {key: None for key in VERDICT_KEYS}
        status.update(
            phase=Phase.PENDING.value,
            history=history,
            historyDropped=dropped or None,
            attempts=self.retry + 1,
            queuePosition=queue_position,
            job=None,  # scan mode job: the next verdict (or Running) names its Job
            conditions=set_condition(
                self.status.get("conditions"),
                "Ready",
                ConditionStatus.FALSE,
                "Queued",
                f"{queued or 'waiting for a scan slot'} ({because})",
                self.generation,
            ),
        )
        await self.write(status)

    async def back_off(self, reason: str, message: str) -> NoReturn:
        """Pending with ``reason`` and ``message``; kopf calls again after a backoff."""
        await self.write(
            {
                "phase": Phase.PENDING.value,
                "attempts": self.retry + 1,
                "conditions": set_condition(
                    self.status.get("conditions"),
                    "Ready",
                    ConditionStatus.FALSE,
                    reason,
                    f"{message}; retrying in {backoff(self.retry):.0f}s",
                    self.generation,
                ),
            }
        )
        raise kopf.TemporaryError(message, delay=backoff(self.retry))

    async def running(self) -> None:
        await self.write(
            {
                "phase": Phase.RUNNING.value,
                "startedAt": timestamp(),
                "worker": self.runtime.identity,
                "conditions": set_condition(
                    self.status.get("conditions"),
                    "Ready",
                    ConditionStatus.FALSE,
                    "Scanning",
                    f"scanning on {self.runtime.identity}",
                    self.generation,
                ),
            }
        )
        kopf.info(
            self.body, reason="ScanStarted", message=printable(f"scanning {self.body['spec']['model']}")
        )


def audit_record(name: str, body: kopf.Body, status: dict[str, Any]) -> None:
    """One JSON line per verdict on the modelsec.audit logger: the unbounded audit trail
    for log pipelines, beside the bounded status.history."""
    audit.info(
        json.dumps(
            {
                "modelScan": name,
                "model": body["spec"].get("model"),
                "revision": body["spec"].get("revision"),
                "securityGroup": body["spec"].get("securityGroup"),
                "phase": status.get("phase"),
                "outcome": status.get("outcome"),
                "reason": status.get("reason"),
                "fingerprint": status.get("fingerprint"),
                "groupDigest": status.get("groupDigest"),
                "completedAt": status.get("completedAt"),
                "failedRules": [
                    r["name"] for r in status.get("rules") or [] if r.get("result") == RuleResult.FAILED
                ],
            },
            sort_keys=True,
        )
    )


def labels_for(spec: ModelScanSpec, existing: dict[str, str]) -> dict[str, str]:
    wanted = {LABEL_SCAN_KEY: scan_key(spec.model, spec.revision, spec.security_group)}
    if _LABEL_VALUE.match(spec.security_group):
        wanted[LABEL_GROUP] = spec.security_group
    return {k: v for k, v in wanted.items() if existing.get(k) != v}


async def secrets_config(runtime: Runtime, view: GroupView) -> dict[str, Any]:
    """ScanOptions.config for remote sources: endpoint and region from the spec, credentials
    from the referenced Secret (read at scan time, never stored)."""
    assert view.source is not None and view.source.spec is not None
    spec = view.source.spec
    config: dict[str, Any] = {}
    if spec.type == SourceType.HUGGING_FACE:
        hf = spec.hugging_face
        if hf is not None:
            config["endpoint"] = hf.endpoint
            if hf.token_secret_ref is not None:
                ref = hf.token_secret_ref
                data = await runtime.kube.read_secret(ref.namespace, ref.name)
                if data is None or ref.key not in data:
                    raise ScanRetry(
                        "SecretNotFound", f"Secret {ref.namespace}/{ref.name} key {ref.key!r} not found"
                    )
                config["token"] = data[ref.key].decode().strip()
    elif spec.type == SourceType.S3:
        s3 = spec.s3
        assert s3 is not None
        config.update(endpoint=s3.endpoint, region=s3.region)
        if s3.credentials_secret_ref is not None:
            secret = s3.credentials_secret_ref
            data = await runtime.kube.read_secret(secret.namespace, secret.name)
            if data is None:
                raise ScanRetry("SecretNotFound", f"Secret {secret.namespace}/{secret.name} not found")
            for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
                if key in data:
                    config[key] = data[key].decode().strip()
    if spec.limits is not None:  # deadlines and size bounds (HuggingFace, S3)
        config.update(spec.limits.config())
    return {k: v for k, v in config.items() if v is not None}


async def reconcile_scan(
    name: str,
    body: kopf.Body,
    spec: kopf.Spec,
    meta: kopf.Meta,
    retry: int,
    memo: kopf.Memo,
    logger: kopf.Logger,
    **_: Any,
) -> None:
    runtime: Runtime = memo.runtime
    if runtime.diffbase.remembers(str(meta.get("uid"))):
        # Handled here before: this body may predate our own last status write (kopf no
        # longer waits for a patch of its own, see diffbase.py), so plan on a fresh one.
        try:
            fresh = await runtime.kube.get(PLURAL, name)
        except ApiException as exc:
            raise kopf.TemporaryError(f"API server: {exc.status} {exc.reason}", delay=backoff(retry)) from exc
        if fresh is None:
            logger.info("deleted; nothing to record")
            return
        body = kopf.Body(cast(kopf.RawBody, fresh))
        spec, meta = kopf.Spec(body), kopf.Meta(body)
    run = ScanRun(runtime, name, body, retry, logger)
    try:
        await _reconcile(run, spec, meta)
    except ScanDeleted:
        logger.info("deleted while being judged; nothing to record")
    except ApiException as exc:
        if transient(exc):
            metrics.ERRORS.labels("ApiTransient").inc()
            raise kopf.TemporaryError(f"API server: {exc.status} {exc.reason}", delay=backoff(retry)) from exc
        raise
    except (kopf.TemporaryError, kopf.PermanentError, asyncio.CancelledError):
        raise
    except Exception as exc:  # noqa: BLE001 - never retry forever without a status
        await _unexpected(run, exc)


async def _unexpected(run: ScanRun, exc: Exception) -> None:
    """A bug or an input nothing anticipated: say so in the status, retry with backoff,
    and after max_attempts record Failed (outcome ERROR) rather than loop silently."""
    what = printable(f"{type(exc).__name__}: {str(exc)[:300]}")
    metrics.ERRORS.labels("InternalError").inc()
    run.logger.error(f"unexpected error (attempt {run.retry + 1}): {what}")
    if run.retry + 1 >= run.runtime.config.max_attempts:
        await run.fail(
            "InternalError",
            f"the operator could not judge this scan: {what} "
            f"(gave up after {run.retry + 1} attempts; failing closed)",
            None,
            "internal error",
        )
        return
    await run.back_off("InternalError", what)


async def _reconcile(run: ScanRun, spec: kopf.Spec, meta: kopf.Meta) -> None:
    """Check the spec, label, plan, then scan (or only evaluate) and record the verdict."""
    scan_spec = await _checked_spec(run, spec)
    if scan_spec is None:
        return
    await _label(run, scan_spec, meta)
    view = await run.runtime.group_view(scan_spec.security_group)
    decision: Plan = plan(run.status, view, scan_spec.security_group, rescan_requested=run.rescan_request)
    run.logger.debug(f"plan: {decision.action.value} ({decision.why})")
    if decision.action == Action.NOTHING:
        return
    if decision.action == Action.FAIL:
        await run.fail(decision.reason, decision.message, view, decision.why)
        return
    assert view is not None and view.source is not None and view.source.spec is not None
    try:
        job = resolve(scan_spec.model, scan_spec.revision, view.source.spec, view.source.digest)
        if run.runtime.jobs is not None:  # scan mode job: the worker reads, judges and reports
            result = await run.runtime.jobs.verdict(run, view, job, scan_spec.security_group, decision.why)
            await record_job_verdict(run, view, result)
            return
        scanned, how = await _scan_here(run, view, job, decision, scan_spec.security_group)
    except ScanRefused as exc:
        await run.fail(exc.reason, exc.message, view, decision.why)
        return
    except ScanRetry as exc:
        await _retry_later(run, exc, view, decision.why)
        return
    verdict = await asyncio.to_thread(
        evaluate, view.group(), EvaluationInput(scanned.report, scanned.source_type, scanned.metadata)
    )
    await record(run, view, scanned, verdict, how)


async def _checked_spec(run: ScanRun, spec: kopf.Spec) -> ModelScanSpec | None:
    """The validated spec; None once an invalid one is recorded as Failed."""
    try:
        return ModelScanSpec.model_validate(dict(spec))
    except ValidationError as exc:
        # Terminal at once: no retry can fix a spec (it is immutable). A model or revision
        # that can never be read is InvalidReference; anything else InvalidSpec.
        fields = {str(e["loc"][0]) for e in exc.errors() if e["loc"]}
        reason = "InvalidReference" if fields & {"model", "revision"} else "InvalidSpec"
        if run.status.get("phase") != Phase.FAILED.value or run.status.get("reason") != reason:
            await run.fail(reason, explain(exc), None, "spec invalid")
        return None


async def _label(run: ScanRun, scan_spec: ModelScanSpec, meta: kopf.Meta) -> None:
    """The scan-key and group labels, written now rather than with kopf's patch at the end
    of a possibly long scan, so that `kubectl get mscan -l modelsec.io/security-group=...`
    finds the scan while it is queued."""
    missing = labels_for(scan_spec, dict(meta.get("labels") or {}))
    if missing and await run.runtime.kube.patch_metadata(PLURAL, run.name, labels=dict(missing)) is None:
        raise ScanDeleted()


async def _scan_here(
    run: ScanRun, view: GroupView, job: ScanJob, decision: Plan, group: str
) -> tuple[ScannedModel, str]:
    """Scan mode inProcess: claim the scan, then read the model in the pool (or take a
    cached or in-flight report of the same content). Returns the report and how it came."""
    config = await secrets_config(run.runtime, view)
    job = ScanJob(job.ref, job.source_type, job.source_digest, config)
    await run.claim(decision.why)
    return await run.runtime.pool.scanned(
        job,
        fresh=decision.action == Action.SCAN,
        on_start=run.running,
        group=group,
    )


async def _retry_later(run: ScanRun, exc: ScanRetry, view: GroupView, why: str) -> None:
    """Back off (Pending, kopf comes back later), or Failed once the attempts are used up."""
    metrics.ERRORS.labels(exc.reason).inc()
    if run.retry + 1 >= run.runtime.config.max_attempts:
        await run.fail(exc.reason, f"{exc.message} (gave up after {run.retry + 1} attempts)", view, why)
        return
    await run.back_off(exc.reason, exc.message)


async def record(run: ScanRun, view: GroupView, scanned: ScannedModel, verdict: Verdict, how: str) -> None:
    status = completed_status(
        verdict,
        scanned,
        generation=run.generation,
        group_digest=view.digest,
        group_generation=view.generation,
        worker=run.runtime.identity,
        attempts=run.retry + 1,
        conditions=run.status.get("conditions"),
    )
    # Keep startedAt from the Running write; a cached or shared report has none of its own.
    status["startedAt"] = run.status.get("startedAt") or status.get("completedAt")
    if run.runtime.boms is not None:  # the BOM's ConfigMap first, then the status naming it
        status["bom"] = await run.runtime.boms.publish(run.body, scanned, verdict)
    await run.write(status)
    announce(run, status, verdict.outcome, f"{verdict.outcome.value}: {verdict.reason} (report: {how})")


async def record_job_verdict(run: ScanRun, view: GroupView, result: JobVerdict) -> None:
    """A scan Job's verdict, checked and bounded again (ScanResult schema), recorded like
    one computed here, with the group version the worker judged against: if the group
    changed meanwhile, the next reconciliation sees another digest and judges again."""
    verdict = result.verdict
    status = {
        **verdict.wire(),
        "phase": Phase.COMPLETED.value,
        "queuePosition": None,
        "job": {"namespace": run.runtime.jobs.namespace, "name": result.job} if run.runtime.jobs else None,
        "worker": f"{run.runtime.jobs.namespace}/{result.pod}" if run.runtime.jobs else result.pod,
        "attempts": run.retry + 1,
        "observedGeneration": run.generation,
        "groupGeneration": view.generation if verdict.group_digest == view.digest else None,
        "reason": printable(verdict.reason),
    }
    status.setdefault("startedAt", run.status.get("startedAt") or verdict.completed_at)
    status["conditions"] = set_condition(
        run.status.get("conditions"),
        "Ready",
        ConditionStatus.TRUE,
        verdict.outcome.value.title(),
        status["reason"][:1024],
        run.generation,
    )
    await run.write(status)
    announce(
        run,
        status,
        verdict.outcome,
        f"{verdict.outcome.value}: {verdict.reason} (scan Job {result.job}, {result.how})",
    )


def announce(run: ScanRun, status: dict[str, Any], outcome: Outcome, summary: str) -> None:
    """Metrics, an Event, a log line and the audit record for a verdict just written."""
    metrics.VERDICTS.labels(outcome.value).inc()
    summary = printable(summary)
    if outcome == Outcome.ALLOWED:
        kopf.info(run.body, reason="ScanCompleted", message=summary)
    elif outcome == Outcome.BLOCKED:
        kopf.warn(run.body, reason="ScanBlocked", message=summary)
    else:
        kopf.warn(run.body, reason="ScanError", message=summary)
    run.logger.info(f"verdict {summary}")
    audit_record(run.name, run.body, status)


def register(registry: kopf.OperatorRegistry) -> None:
    group, version, plural = MODELSCANS
    for decorate in (kopf.on.resume, kopf.on.create, kopf.on.update):
        decorate(group, version, plural, registry=registry, id="reconcile", retries=None)(reconcile_scan)
