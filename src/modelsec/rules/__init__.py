"""The rule registry: one line per rule module in :data:`RULE_MODULES`.

To add a rule: write ``rules/<name>.py`` exposing ``RULE`` (a :class:`Rule` instance) and
add its module name below. The module is named after the rule id in snake case
(``LoadTimeCodeExecution`` in ``load_time_code_execution.py``): looking a rule up imports
that one module, so evaluating a group loads only the rules it lists.
"""

from __future__ import annotations

import functools
import importlib
import re
from typing import Any

from modelsec.rules.base import Rule

# A rule of the registry, whatever its parameter model. Callers get the parameters from the
# rule itself (parse_params) and hand them straight back to its evaluate.
AnyRule = Rule[Any]

RULE_MODULES: tuple[str, ...] = (
    "load_time_code_execution",
    "runtime_code_execution",
    "suspicious_components",
    "known_framework_operators",
    "model_architecture_backdoor",
    "approved_formats",
    "approved_location",
    "license_exists",
    "license_approved",
    "organization_verified",
    "organization_blocked",
    "model_blocked",
    "revision_pinned",
    "signature_verified",
)


@functools.cache
def registry() -> dict[str, AnyRule]:
    rules: dict[str, AnyRule] = {}
    for name in RULE_MODULES:
        rule: AnyRule = importlib.import_module(f"modelsec.rules.{name}").RULE
        rules[rule.id] = rule
    return rules


def module_name(rule_id: str) -> str:
    """``LoadTimeCodeExecution`` -> ``load_time_code_execution``."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", rule_id).lower()


@functools.cache
def get(rule_id: str) -> AnyRule | None:
    """The rule with this id, importing only its module (None for an unknown id)."""
    name = module_name(rule_id)
    if name in RULE_MODULES:
        rule: AnyRule = importlib.import_module(f"modelsec.rules.{name}").RULE
        if rule.id == rule_id:
            return rule
    return registry().get(rule_id)
