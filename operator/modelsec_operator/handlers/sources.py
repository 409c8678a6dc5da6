"""ModelSource: validate, report Ready, and tell the groups that use it."""

from __future__ import annotations

from typing import Any

import kopf

from modelsec.k8s import ANNOTATION_SOURCE, MODELSOURCES, SECURITYGROUPS
from modelsec.k8s.common import ConditionStatus, SecretKeyRef, SecretRef, set_condition
from modelsec.k8s.source import ModelSourceSpec
from modelsec.safe_text import printable
from modelsec_operator.runtime import Runtime
from modelsec_operator.validation import SourceView, digest, validate_source


async def check_secrets(runtime: Runtime, view: SourceView) -> SourceView:
    """A referenced Secret that does not exist makes the source not Ready (checked here so
    the message appears on the source, not only on each failing scan)."""
    spec: ModelSourceSpec | None = view.spec
    if spec is None or not view.ready:
        return view
    ref: SecretKeyRef | SecretRef | None = None
    if spec.hugging_face and spec.hugging_face.token_secret_ref:
        ref = spec.hugging_face.token_secret_ref
    elif spec.s3 and spec.s3.credentials_secret_ref:
        ref = spec.s3.credentials_secret_ref
    if ref is None:
        return view
    data = await runtime.kube.read_secret(ref.namespace, ref.name)
    if data is None:
        return SourceView(
            view.name,
            False,
            "SecretNotFound",
            f"Secret {ref.namespace}/{ref.name} does not exist",
            view.digest,
            spec,
        )
    key = getattr(ref, "key", None)
    if key is not None and key not in data:
        return SourceView(
            view.name,
            False,
            "SecretKeyNotFound",
            f"Secret {ref.namespace}/{ref.name} has no key {key!r} (keys: {', '.join(sorted(data))})",
            view.digest,
            spec,
        )
    return view


async def reconcile_source(
    name: str,
    spec: kopf.Spec,
    meta: kopf.Meta,
    status: kopf.Status,
    patch: kopf.Patch,
    memo: kopf.Memo,
    logger: kopf.Logger,
    **kwargs: Any,
) -> None:
    runtime: Runtime = memo.runtime
    groups_by_source: kopf.Index[str, str] = kwargs["groups_by_source"]  # indices come by name
    view = await check_secrets(runtime, validate_source(name, dict(spec), runtime.config.local_root))
    generation = meta.get("generation")
    patch.status["observedGeneration"] = generation
    patch.status["digest"] = view.digest
    patch.status["conditions"] = set_condition(
        status.get("conditions"),
        "Ready",
        ConditionStatus.TRUE if view.ready else ConditionStatus.FALSE,
        view.reason,
        view.message,
        generation,
    )
    (logger.info if view.ready else logger.warning)(printable(f"source {view.reason}: {view.message}"))
    await poke_groups(runtime, name, digest(view.digest, view.ready, view.reason), groups_by_source)


async def source_deleted(name: str, memo: kopf.Memo, **kwargs: Any) -> None:
    await poke_groups(memo.runtime, name, "deleted", kwargs["groups_by_source"])


async def poke_groups(runtime: Runtime, source: str, value: str, index: kopf.Index[str, str]) -> None:
    """Groups re-validate when this annotation changes (their handler watches it)."""
    for group in sorted(set(index.get(source, []))):
        await runtime.kube.patch_metadata(SECURITYGROUPS[2], group, annotations={ANNOTATION_SOURCE: value})


def groups_by_source(name: str, spec: kopf.Spec, **_: Any) -> dict[str, str]:
    return {str(spec.get("sourceRef") or "local"): name}


def register(registry: kopf.OperatorRegistry) -> None:
    group, version, plural = MODELSOURCES
    for decorate in (kopf.on.resume, kopf.on.create, kopf.on.update):
        decorate(group, version, plural, registry=registry, id="reconcile")(reconcile_source)
    kopf.on.delete(group, version, plural, registry=registry, optional=True, id="deleted")(source_deleted)
    kopf.index(*SECURITYGROUPS, registry=registry, id="groups_by_source")(groups_by_source)
