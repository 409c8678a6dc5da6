"""How the admission webhook enforces a SecurityGroup: ``spec.enforcement``.

```yaml
spec:
  enforcement:
    mode: Enforce              # Enforce | Warn | Audit
    pendingAction: Deny        # no verdict yet: Deny | AllowWithWarning
    errorAction: Deny          # verdict ERROR (could not judge): Deny | Allow
    pin: false                 # rewrite unpinned references to the scanned revision
    verifyAtStart: false       # inject an init container running `modelsec verify`
```

- ``Enforce``: BLOCKED denies; no verdict yet and ERROR follow the two actions.
- ``Warn``: never denies; what would have been denied comes back as admission warnings.
- ``Audit``: never denies and says nothing to the user; what would have been denied is
  recorded as an audit annotation on the request and a Kubernetes Event.
- ``pin``: the mutating webhook rewrites Hugging Face references without a commit (and S3
  references without a version id, where the bucket is versioned) to the revision the
  group's scan read, wherever the serving stack takes a revision; the validating webhook
  denies references it could have pinned but that arrive unpinned.
- ``verifyAtStart``: the mutating webhook adds to each Pod an init container running
  ``modelsec verify`` on every ``file://`` model it loads from a volume; the validating
  webhook denies a Pod without it (removed or altered). See docs/integrity.md.

Only the webhooks read these; scans and verdicts do not depend on them.
"""

from __future__ import annotations

import enum

from pydantic import Field

from modelsec.k8s.common import K8sModel


class EnforcementMode(str, enum.Enum):
    ENFORCE = "Enforce"
    WARN = "Warn"
    AUDIT = "Audit"


class PendingAction(str, enum.Enum):
    DENY = "Deny"
    ALLOW_WITH_WARNING = "AllowWithWarning"


class ErrorAction(str, enum.Enum):
    DENY = "Deny"
    ALLOW = "Allow"


class Enforcement(K8sModel):
    """How the admission webhook applies this group's verdicts to workloads."""

    mode: EnforcementMode = Field(
        default=EnforcementMode.ENFORCE,
        description="Enforce: deny workloads whose models are BLOCKED. Warn: admit them with "
        "admission warnings. Audit: admit them silently, recording an audit annotation and "
        "an Event.",
    )
    pending_action: PendingAction = Field(
        default=PendingAction.DENY,
        alias="pendingAction",
        description="When a model has no verdict yet (the webhook creates its ModelScan): "
        "Deny with 'scan pending, retry shortly' (default), or AllowWithWarning.",
    )
    error_action: ErrorAction = Field(
        default=ErrorAction.DENY,
        alias="errorAction",
        description="When the verdict is ERROR (the model could not be judged) or the group "
        "cannot judge: Deny (default, fail closed) or Allow (with a warning).",
    )
    pin: bool = Field(
        default=False,
        description="Rewrite references without a fixed revision to the revision this "
        "group's scan read (a Hugging Face commit, an S3 version id) wherever the serving "
        "stack takes one (annotation, vLLM/TGI/KServe arguments and environment, KServe "
        "storageUri), recorded in the modelsec.io/pinned annotation and an Event. Needs the "
        "mutating webhook (pin.models.modelsec.io, docs/webhook.md).",
    )
    verify_at_start: bool = Field(
        default=False,
        alias="verifyAtStart",
        description="Add to each Pod an init container (the modelsec image, non-root, the "
        "model volumes mounted read-only) that runs `modelsec verify` against the ModelScan "
        "of every file:// model, so changed files never reach the server; Pods without it "
        "are denied. Needs the mutating webhook (pin.models.modelsec.io, docs/webhook.md).",
    )
