"""How the admission webhook enforces a SecurityGroup: ``spec.enforcement``.

```yaml
spec:
  enforcement:
    mode: Enforce              # Enforce | Warn | Audit
    pendingAction: Deny        # no verdict yet: Deny | AllowWithWarning
    errorAction: Deny          # verdict ERROR (could not judge): Deny | Allow
```

- ``Enforce``: BLOCKED denies; no verdict yet and ERROR follow the two actions.
- ``Warn``: never denies; what would have been denied comes back as admission warnings.
- ``Audit``: never denies and says nothing to the user; what would have been denied is
  recorded as an audit annotation on the request and a Kubernetes Event.

Only the webhook reads these; scans and verdicts do not depend on them.
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
