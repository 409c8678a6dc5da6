"""Rules: named checks with typed parameters that turn a scan report into a verdict.

A rule module defines one :class:`Rule` subclass, exposes an instance as ``RULE`` and is
registered by one line in :mod:`modelsec.rules`. Most rules are *finding rules*
(:class:`FindingRule`): they fail when the engine reported a finding whose ``rule`` is
their id. Others (formats, location, metadata) compute their own violations from the
report. A rule is generic in its parameter model, so ``evaluate`` receives the parsed
parameters with their own type.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, TypeVar

from modelsec.findings import Finding, Severity

# Re-exported: rules declare the sources they apply to with it (the rule author's API).
from modelsec.metadata import SourceType as SourceType
from modelsec.rules import params as rule_params

# Re-exported: rules define their parameters with these (the rule author's API).
from modelsec.rules.params import Check as Check
from modelsec.rules.params import RuleParams as RuleParams
from modelsec.rules.params import param as param

if TYPE_CHECKING:
    from modelsec.engine import ScanReport
    from modelsec.metadata import ModelMetadata


ALL_SOURCES = frozenset(SourceType)


class RuleResult(enum.StrEnum):
    PASSED = "PASSED"
    FAILED = "FAILED"
    ERROR = "ERROR"  # could not be evaluated (unreadable, uninspectable, source error)
    SKIPPED = "SKIPPED"  # disabled, or not applicable to this source


SeverityName = Literal["LOW", "MEDIUM", "HIGH", "CRITICAL"]

MIN_SEVERITY_DESCRIPTION = (
    "Findings below this severity (LOW, MEDIUM, HIGH, CRITICAL) are reported but do not fail the rule."
)


@dataclass(frozen=True, kw_only=True)
class FindingRuleParams(RuleParams):
    """Parameters every finding rule takes."""

    min_severity: SeverityName = param(
        default="LOW", alias="minSeverity", description=MIN_SEVERITY_DESCRIPTION
    )


ParamsT = TypeVar("ParamsT", bound=RuleParams)
FindingParamsT = TypeVar("FindingParamsT", bound=FindingRuleParams)


@dataclass(frozen=True)
class EvaluationInput:
    """What a rule sees: the engine's report and, where the source has it, metadata."""

    report: ScanReport
    source_type: SourceType
    metadata: ModelMetadata | None = None


@dataclass
class RuleOutcome:
    """What one rule decided about one model: its result and the findings behind it."""

    result: RuleResult
    violations: list[Finding] = field(default_factory=list)
    message: str = ""
    # A FAILED outcome that decides the verdict on its own, whatever the rule's mode and
    # the other rules say (an explicitly denied model).
    decisive: bool = False


class Rule(ABC, Generic[ParamsT]):
    """A rule judging with parameters of type ``ParamsT``: subclasses set the class
    attributes (``Params`` the parameter dataclass, ``ParamsT``) and :meth:`evaluate`."""

    id: ClassVar[str]
    title: ClassVar[str]
    description: ClassVar[str]
    # Set at class level by each rule; not a ClassVar only because a ClassVar cannot
    # mention a type variable.
    Params: type[ParamsT]
    sources: ClassVar[frozenset[SourceType]] = ALL_SOURCES
    # True if the rule judges file content: then anything the engine could not inspect
    # makes the rule ERROR rather than PASSED (fail closed).
    judges_content: ClassVar[bool] = True

    def parse_params(self, raw: dict[str, Any] | None) -> ParamsT:
        """``raw`` validated (pydantic, imported now); ``pydantic.ValidationError`` if invalid."""
        return rule_params.validate(self.Params, raw or {})

    @abstractmethod
    def evaluate(self, given: EvaluationInput, params: ParamsT) -> RuleOutcome:
        """The rule's outcome for ``given`` under ``params``."""

    def passed_or_incomplete(self, given: EvaluationInput) -> RuleOutcome:
        incompletes = given.report.all_incompletes()
        if self.judges_content and incompletes:
            first = incompletes[0]
            more = f" (and {len(incompletes) - 1} more)" if len(incompletes) > 1 else ""
            return RuleOutcome(
                RuleResult.ERROR,
                message=f"could not inspect {first.describe()}{more}; failing closed",
            )
        return RuleOutcome(RuleResult.PASSED, message="no findings")


class FindingRule(Rule[FindingParamsT]):
    """A rule that fails on the engine's findings carrying its id (at or above
    ``minSeverity``); anything the engine could not inspect makes it ERROR."""

    def evaluate(self, given: EvaluationInput, params: FindingParamsT) -> RuleOutcome:
        floor = Severity[params.min_severity]
        violations = [f for f in given.report.all_findings() if f.rule == self.id and f.severity >= floor]
        if violations:
            files = {f.file for f in violations}
            return RuleOutcome(
                RuleResult.FAILED,
                violations,
                f"{len(violations)} finding(s) in {len(files)} file(s)",
            )
        return self.passed_or_incomplete(given)
