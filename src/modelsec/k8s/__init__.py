"""The modelsec custom resources, as pydantic models: one source of truth for the CRD
schemas (:mod:`modelsec.k8s.crds`), the operator and the webhook.

All three kinds are cluster-scoped (see ``docs/operator.md`` for why):

- ``ModelSource`` (:mod:`.source`): where models live and how to reach them.
- ``SecurityGroup`` (:mod:`.group`): rules bound to a source; its spec *is*
  :class:`modelsec.policy.SecurityGroupSpec`, extended only with cluster-side settings.
- ``ModelScan`` (:mod:`.scan`): the audit record of one model revision judged by one
  group, named deterministically (:mod:`.naming`).
"""

from __future__ import annotations

GROUP = "modelsec.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

# (group, version, plural) as kopf and the kubernetes client take them.
MODELSOURCES = (GROUP, VERSION, "modelsources")
SECURITYGROUPS = (GROUP, VERSION, "securitygroups")
MODELSCANS = (GROUP, VERSION, "modelscans")

# Labels and annotations the operator sets; prefixed so they never collide with users'.
LABEL_GROUP = f"{GROUP}/security-group"
LABEL_SCAN_KEY = f"{GROUP}/scan-key"
ANNOTATION_EVALUATE = f"{GROUP}/evaluate"  # set to a group digest: re-evaluate against it
ANNOTATION_RESCAN = f"{GROUP}/rescan"  # set to a timestamp: scan again, bypassing caches
ANNOTATION_SOURCE = f"{GROUP}/source-digest"  # on groups: their source changed
