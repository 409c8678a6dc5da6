"""Security groups and verdicts: which rules apply, how strictly, and the resulting outcome.

A :class:`SecurityGroupSpec` has the same shape as the ``spec`` of the ``SecurityGroup``
custom resource, so a group tried with ``modelsec scan --group team.yaml`` behaves exactly
as it will in the cluster. It validates (pydantic) and converts to the plain
:class:`GroupSpec` rules are evaluated with.
"""

from __future__ import annotations

import enum
import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelsec import rules as rule_registry
from modelsec.findings import Finding
from modelsec.rules import params as rule_params
from modelsec.rules.base import EvaluationInput, RuleOutcome, RuleResult, SourceType

if TYPE_CHECKING:
    # Defined apart (they need pydantic, which a scan with a built-in group never imports)
    # and importable from here, where they always were: see __getattr__.
    from modelsec.group_spec import RuleConfig as RuleConfig
    from modelsec.group_spec import SecurityGroupSpec as SecurityGroupSpec


class Mode(enum.StrEnum):
    BLOCKING = "Blocking"
    NON_BLOCKING = "NonBlocking"
    DISABLED = "Disabled"


class Outcome(enum.StrEnum):
    ALLOWED = "ALLOWED"
    BLOCKED = "BLOCKED"
    ERROR = "ERROR"


@dataclass(frozen=True)
class RuleSetting:
    """A rule as a group lists it: its id, its mode, and its parameters as written (each
    rule parses its own; :attr:`SecurityGroup.parsed_params` holds them parsed)."""

    name: str
    mode: Mode = Mode.BLOCKING
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GroupSpec:
    """A group's spec at run time: what :class:`modelsec.group_spec.SecurityGroupSpec`
    validated (a user's file, a resource), or a built-in group's validated dump. Plain
    dataclasses: a scan with a built-in group does not import pydantic (issue 14)."""

    source_ref: str = "local"
    source_type: SourceType | None = None
    namespace_selector: dict[str, Any] | None = None
    error_outcome: Outcome = Outcome.ERROR
    rules: list[RuleSetting] = field(default_factory=list)
    allow_empty: bool = False
    # Cluster only: accepted and ignored here (see SecurityGroupSpec).
    rescan_interval: str | None = None
    enforcement: dict[str, Any] | None = None
    scan_job: dict[str, Any] | None = None

    @property
    def checks_nothing(self) -> bool:
        """True if no rule is enabled: such a group would allow every model."""
        return all(rule.mode == Mode.DISABLED for rule in self.rules)

    def emptiness(self) -> str | None:
        """None if a rule is enabled; otherwise what is wrong, in the user's terms: an error
        without ``allowEmpty``, a warning with it."""
        return emptiness([rule.mode for rule in self.rules], self.allow_empty)


def emptiness(modes: list[Mode], allow_empty: bool) -> str | None:
    """What is wrong with a group whose rules have these ``modes`` if none is enabled (an
    error without ``allowEmpty``, a warning with it); None if one is."""
    if any(mode != Mode.DISABLED for mode in modes):
        return None
    what = "lists no rules" if not modes else "has every rule Disabled"
    if allow_empty:
        return f"the group {what} (allowEmpty: true): every model is ALLOWED"
    return (
        f"the group {what}, so it would allow every model; add rules, or set "
        "spec.allowEmpty: true if that is what you want"
    )


@dataclass(frozen=True)
class SecurityGroup:
    """A group's name and spec, with where it came from (built-in, a file, the cluster)."""

    name: str
    spec: GroupSpec
    origin: str = "built-in"
    # Rule parameters already parsed, by rule name: a built-in group's, constructed from the
    # parameters validated when its dump was generated (load_group). Any other rule's are
    # parsed as it is evaluated.
    parsed_params: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass
class RuleEvaluation:
    """One rule's outcome within a verdict, with the mode (blocking or not) it ran in."""

    name: str
    mode: Mode
    result: RuleResult
    violations: list[Finding] = field(default_factory=list)
    message: str = ""
    decisive: bool = False

    def to_dict(self, with_findings: int = 0) -> dict[str, Any]:
        """The rule's line in a result; ``with_findings`` > 0 adds that many violations."""
        out: dict[str, Any] = {
            "name": self.name,
            "mode": self.mode.value,
            "result": self.result.value,
            "violations": len(self.violations),
            "message": self.message,
        }
        if with_findings:
            out["findings"] = [f.to_dict() for f in self.violations[:with_findings]]
        return out


@dataclass
class Verdict:
    """A group's decision on one scanned model: the outcome, each rule's part, and why."""

    group: str
    outcome: Outcome
    rules: list[RuleEvaluation]
    reason: str

    @property
    def blocking_failures(self) -> list[RuleEvaluation]:
        return [r for r in self.rules if r.mode == Mode.BLOCKING and r.result == RuleResult.FAILED]

    @property
    def warnings(self) -> list[RuleEvaluation]:
        return [
            r
            for r in self.rules
            if r.mode == Mode.NON_BLOCKING and r.result in (RuleResult.FAILED, RuleResult.ERROR)
        ]


def evaluate(group: SecurityGroup, given: EvaluationInput) -> Verdict:
    """Apply every rule of ``group``; BLOCKED beats ERROR beats ALLOWED."""
    if (empty := group.spec.emptiness()) is not None and not group.spec.allow_empty:
        # fail closed: a group that checks nothing is a mistake until it says otherwise
        return Verdict(group.name, Outcome.ERROR, [], f"{empty} (failing closed)")
    evaluations: list[RuleEvaluation] = []
    for config in group.spec.rules:
        rule = rule_registry.get(config.name)
        assert rule is not None  # validated with the spec
        if config.mode == Mode.DISABLED:
            outcome = RuleOutcome(RuleResult.SKIPPED, message="disabled in this group")
        elif given.source_type not in rule.sources:
            outcome = RuleOutcome(
                RuleResult.SKIPPED, message=f"does not apply to {given.source_type.value} sources"
            )
        else:
            try:
                params = group.parsed_params.get(config.name)
                if params is None:
                    params = rule.parse_params(config.params)
                outcome = rule.evaluate(given, params)
            except Exception as exc:  # a rule bug must not turn into ALLOWED
                outcome = RuleOutcome(
                    RuleResult.ERROR, message=f"rule failed to evaluate: {type(exc).__name__}: {exc}"
                )
        evaluations.append(
            RuleEvaluation(
                config.name,
                config.mode,
                outcome.result,
                outcome.violations,
                outcome.message,
                outcome.decisive,
            )
        )

    for evaluation in evaluations:
        if evaluation.decisive and evaluation.result == RuleResult.FAILED:
            return Verdict(
                group.name,
                Outcome.BLOCKED,
                evaluations,
                f"{evaluation.name}: {evaluation.message} (overrides every other rule)",
            )

    blocking = [e for e in evaluations if e.mode == Mode.BLOCKING]
    failed = [e for e in blocking if e.result == RuleResult.FAILED]
    errored = [e for e in blocking if e.result == RuleResult.ERROR]
    if failed:
        names = ", ".join(e.name for e in failed)
        return Verdict(group.name, Outcome.BLOCKED, evaluations, f"blocking rule(s) failed: {names}")
    if errored:
        names = ", ".join(e.name for e in errored)
        reason = f"blocking rule(s) could not be evaluated: {names}"
        if group.spec.error_outcome == Outcome.ALLOWED:
            return Verdict(group.name, Outcome.ALLOWED, evaluations, reason + " (group allows this)")
        return Verdict(group.name, group.spec.error_outcome, evaluations, reason)
    if empty is not None:
        return Verdict(group.name, Outcome.ALLOWED, evaluations, empty)
    return Verdict(group.name, Outcome.ALLOWED, evaluations, "no blocking rule failed")


# --- loading groups -----------------------------------------------------------------------


class GroupError(ValueError):
    """A group that cannot be used; the message says why, in the user's terms."""


# The built-in groups' YAML files, validated by hack/gen_builtin_groups.py and written
# here as the specs' dumps (tests keep them fresh): a scan with a built-in group then needs
# neither PyYAML nor the spec's validators, a fifth of a small scan's start-up (issue 14).
# The package is installed as files (setuptools package data), so a path beside this
# module finds it.
BUILTIN_GROUPS_FILE = Path(__file__).with_name("groups") / "builtin.json"


@functools.cache
def _builtin_documents() -> dict[str, Any]:
    documents: dict[str, Any] = json.loads(BUILTIN_GROUPS_FILE.read_text(encoding="utf-8"))
    return documents


def builtin_group_names() -> list[str]:
    return sorted(_builtin_documents())


def _validated(document: Any, origin: str, default_name: str) -> tuple[str, SecurityGroupSpec]:
    """The group's name and validated spec, from a SecurityGroup resource
    (``kind``/``metadata``/``spec``) or a bare spec."""
    from pydantic import ValidationError

    from modelsec.group_spec import SecurityGroupSpec

    if not isinstance(document, dict):
        raise GroupError(f"{origin}: expected a mapping, got {type(document).__name__}")
    name = default_name
    body = document
    if "spec" in document or "kind" in document:
        kind = document.get("kind", "SecurityGroup")
        if kind != "SecurityGroup":
            raise GroupError(f"{origin}: kind is {kind!r}, expected SecurityGroup")
        name = (document.get("metadata") or {}).get("name", default_name)
        body = document.get("spec") or {}
    try:
        spec = SecurityGroupSpec.model_validate(body)
    except ValidationError as exc:
        problems = "\n".join(
            f"  {'.'.join(str(p) for p in e['loc']) or 'spec'}: {e['msg']}" for e in exc.errors()
        )
        raise GroupError(f"{origin}: invalid SecurityGroup spec:\n{problems}") from None
    return name, spec


def parse_group(document: Any, origin: str, default_name: str) -> SecurityGroup:
    """A group from a SecurityGroup resource (``kind``/``metadata``/``spec``) or a bare spec."""
    name, spec = _validated(document, origin, default_name)
    return SecurityGroup(name, spec.runtime(), origin)


def builtin_group_dump(document: Any, default_name: str) -> dict[str, Any]:
    """What BUILTIN_GROUPS_FILE holds of a built-in group's YAML document: its name and the
    dump of its validated spec, fields as set (hack/gen_builtin_groups.py)."""
    name, spec = _validated(document, default_name, default_name)
    return {"name": name, "spec": spec.model_dump(mode="json", exclude_unset=True)}


def _enums(fields: dict[str, Any], **types: type[enum.Enum]) -> dict[str, Any]:
    """``fields`` with the named values turned back into the enums JSON held as strings."""
    return {k: types[k](v) if k in types and v is not None else v for k, v in fields.items()}


def _prevalidated(fields: dict[str, Any]) -> GroupSpec:
    """A spec from the dump of its validated self (``model_dump(exclude_unset=True)``):
    the dataclass' defaults are the model's, so the values are the same as validation's."""
    typed = _enums(fields, source_type=SourceType, error_outcome=Outcome)
    typed["rules"] = [RuleSetting(**_enums(rule, mode=Mode)) for rule in fields.get("rules", [])]
    return GroupSpec(**typed)


def _constructed_params(spec: GroupSpec) -> dict[str, Any]:
    """Each rule's parameters, constructed without validation (so without pydantic): they
    were validated with the group when its dump was written. Tests compare them with what
    parse_params gives."""
    parsed: dict[str, Any] = {}
    for config in spec.rules:
        rule = rule_registry.get(config.name)
        if rule is None:  # only if the dump is stale: validation rejected unknown rules
            raise GroupError(f"unknown rule {config.name!r}: run hack/gen_builtin_groups.py")
        parsed[config.name] = rule_params.construct(rule.Params, config.params)
    return parsed


def load_group(name_or_path: str) -> SecurityGroup:
    """A built-in group by name, or a group from a YAML file."""
    if name_or_path in builtin_group_names():
        dump = _builtin_documents()[name_or_path]
        spec = _prevalidated(dump["spec"])
        return SecurityGroup(dump["name"], spec, "built-in", _constructed_params(spec))
    path = Path(name_or_path)
    if not path.is_file():
        raise GroupError(
            f"no built-in group or file named {name_or_path!r} "
            f"(built-in groups: {', '.join(builtin_group_names())})"
        )
    import yaml  # only for a user's file: a built-in group is read from JSON

    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise GroupError(f"{path}: cannot read YAML: {exc}") from None
    return parse_group(document, str(path), path.stem)


def __getattr__(name: str) -> Any:
    """``SecurityGroupSpec`` and ``RuleConfig``, imported (with pydantic) on first use."""
    if name in ("SecurityGroupSpec", "RuleConfig"):
        from modelsec import group_spec

        return getattr(group_spec, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
