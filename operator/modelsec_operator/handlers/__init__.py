"""kopf handlers, registered into an explicit registry (importing them has no effects).

One module per resource; :func:`register` wires them all.
"""

from __future__ import annotations

import kopf

from modelsec_operator.handlers import groups, lifecycle, scans, sources


def register(registry: kopf.OperatorRegistry) -> kopf.OperatorRegistry:
    lifecycle.register(registry)
    sources.register(registry)
    groups.register(registry)
    scans.register(registry)
    return registry
