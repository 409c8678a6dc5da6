"""The pydantic model of a SecurityGroup's ``spec``: what validates a user's group file and a
SecurityGroup resource, and what the CRD schema is generated from.

A validated spec converts to the run-time :class:`modelsec.policy.GroupSpec` (plain
dataclasses), which is what rules are evaluated with. Kept apart from :mod:`modelsec.policy`
so that a scan with a built-in group never imports pydantic (issue 14: start-up).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from modelsec import rules as rule_registry
from modelsec.metadata import SourceType
from modelsec.policy import GroupSpec, Mode, Outcome, RuleSetting, emptiness


class RuleConfig(BaseModel):
    # Validators are built on first validation (a user's file, a resource).
    model_config = ConfigDict(extra="forbid", populate_by_name=True, defer_build=True)

    name: str = Field(description="Rule id, as listed by `modelsec rules`.")
    mode: Mode = Field(default=Mode.BLOCKING, description="Blocking, NonBlocking or Disabled.")
    params: dict[str, Any] = Field(
        default_factory=dict, description="Rule parameters, validated against the rule."
    )

    @model_validator(mode="after")
    def _known_rule_and_params(self) -> RuleConfig:
        rule = rule_registry.get(self.name)
        if rule is None:
            known = ", ".join(sorted(rule_registry.registry()))
            raise ValueError(f"unknown rule {self.name!r} (known rules: {known})")
        try:
            rule.parse_params(self.params)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'params'}: {e['msg']}" for e in exc.errors()
            )
            raise ValueError(f"rule {self.name}: invalid params: {problems}") from None
        return self


class SecurityGroupSpec(BaseModel):
    """The ``spec`` of a SecurityGroup."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, defer_build=True)

    source_ref: str = Field(
        default="local",
        alias="sourceRef",
        description="Name of the ModelSource this group applies to.",
    )
    source_type: SourceType | None = Field(
        default=None,
        alias="sourceType",
        description="Source type, when the group is used without a cluster (CLI). In the "
        "cluster it comes from the referenced ModelSource.",
    )
    namespace_selector: dict[str, Any] | None = Field(
        default=None,
        alias="namespaceSelector",
        description="Label selector of the namespaces where this group is enforced.",
    )
    error_outcome: Outcome = Field(
        default=Outcome.ERROR,
        alias="errorOutcome",
        description="Outcome when a blocking rule could not be evaluated: ERROR (default), "
        "BLOCKED, or ALLOWED (only for groups that accept uninspectable content).",
    )
    rules: list[RuleConfig] = Field(default_factory=list)
    allow_empty: bool = Field(
        default=False,
        alias="allowEmpty",
        description="Set true for a group that deliberately enforces no rule (none listed, or "
        "every rule Disabled): it allows every model. Without it such a group is refused "
        "wherever it would decide: modelsec scan, the operator and its verdicts.",
    )
    rescan_interval: str | None = Field(
        default=None,
        alias="rescanInterval",
        description="Cluster only: how often the operator scans this group's models again "
        "(30m, 12h, 1d). Accepted and ignored here, so a group exported from the cluster "
        "loads unchanged.",
    )
    enforcement: dict[str, Any] | None = Field(
        default=None,
        description="Cluster only: how the admission webhook applies verdicts (mode, "
        "pendingAction, errorAction). Accepted and ignored here, like rescanInterval.",
    )
    scan_job: dict[str, Any] | None = Field(
        default=None,
        alias="scanJob",
        description="Cluster only: where this group's scan Jobs run (operator scan mode job). "
        "Accepted and ignored here, like rescanInterval.",
    )

    @field_validator("rules")
    @classmethod
    def _unique_rules(cls, value: list[RuleConfig]) -> list[RuleConfig]:
        seen: set[str] = set()
        for rule in value:
            if rule.name in seen:
                raise ValueError(f"rule {rule.name} listed twice")
            seen.add(rule.name)
        return value

    def emptiness(self) -> str | None:
        """None if a rule is enabled; otherwise what is wrong, in the user's terms."""
        return emptiness([rule.mode for rule in self.rules], self.allow_empty)

    def runtime(self) -> GroupSpec:
        """The run-time spec rules are evaluated with (the same values, plain dataclasses)."""
        plain = {
            field.name: getattr(self, field.name)
            for field in dataclasses.fields(GroupSpec)
            if field.name != "rules"
        }
        settings = [RuleSetting(rule.name, rule.mode, dict(rule.params)) for rule in self.rules]
        return GroupSpec(**plain, rules=settings)

    @classmethod
    def of(cls, spec: GroupSpec) -> SecurityGroupSpec:
        """A run-time spec back in this model (``modelsec groups show`` dumps it)."""
        fields = {field.name: getattr(spec, field.name) for field in dataclasses.fields(spec)}
        fields["rules"] = [dataclasses.asdict(rule) for rule in spec.rules]
        return cls.model_validate(fields)
