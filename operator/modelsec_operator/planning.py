"""What a ModelScan needs now: nothing, a (re-)evaluation, a fresh scan, or a failure.

Level-based and pure: the decision depends only on the scan's status, the current group
view and the clock, so the same function serves creation, resumption after a restart,
a group or source change, and periodic rescans.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from modelsec.k8s.scan import Phase
from modelsec_operator.validation import GroupView


class Action(str, enum.Enum):
    NOTHING = "nothing"
    EVALUATE = "evaluate"  # judge again; a cached report of unchanged content may serve
    SCAN = "scan"  # read the model afresh (rescan due or asked for)
    FAIL = "fail"  # record a Failed phase with outcome ERROR


@dataclass(frozen=True)
class Plan:
    """What a ModelScan needs now and why; for FAIL, the condition's reason and message."""

    action: Action
    why: str
    reason: str = ""  # condition reason for FAIL
    message: str = ""


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def plan(
    status: dict[str, Any],
    group: GroupView | None,
    group_name: str,
    *,
    now: datetime | None = None,
    rescan_requested: str | None = None,
) -> Plan:
    now = now or datetime.now(UTC)
    phase = status.get("phase")
    recorded = phase in (Phase.COMPLETED.value, Phase.FAILED.value)
    if group is None:
        if recorded:
            # The record stands for audit; a re-created group brings a new digest.
            return Plan(Action.NOTHING, "group deleted; keeping the recorded verdict")
        return Plan(
            Action.FAIL,
            "group missing",
            "GroupNotFound",
            f"SecurityGroup {group_name!r} does not exist; create it (the scan runs then)",
        )
    same_group = status.get("groupDigest") == group.digest
    if not group.ready:
        if phase == Phase.FAILED.value and same_group:
            return Plan(Action.NOTHING, "group still not ready")
        return Plan(
            Action.FAIL,
            "group not ready",
            "GroupNotReady",
            f"SecurityGroup {group_name!r} is not ready ({group.reason}): {group.message}",
        )
    if phase in (None, Phase.PENDING.value):
        return Plan(Action.EVALUATE, "new scan")
    if phase == Phase.RUNNING.value:
        # Handlers for one object never overlap, so a Running phase seen here was left by
        # an operator that stopped mid-scan: redo it.
        return Plan(
            Action.SCAN, f"interrupted: {status.get('worker') or 'a previous operator'} did not finish it"
        )
    if rescan_requested and rescan_requested != status.get("rescanRequest"):
        return Plan(Action.SCAN, f"rescan requested ({rescan_requested})")
    completed = parse_time(status.get("completedAt"))
    every = group.spec.rescan_every if group.spec else None
    if every is not None and completed is not None and now - completed >= every:
        assert group.spec is not None  # every comes from it
        return Plan(Action.SCAN, f"rescanInterval {group.spec.rescan_interval} elapsed")
    if not same_group:
        return Plan(Action.EVALUATE, "security group or its source changed")
    if phase == Phase.FAILED.value:
        return Plan(Action.NOTHING, "failed for the current group; waiting for a change")
    return Plan(Action.NOTHING, "verdict is current")
