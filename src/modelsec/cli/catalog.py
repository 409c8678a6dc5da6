"""Catalogue commands: ``rules``, ``groups``, ``formats``, ``threats``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any, TypedDict

from modelsec.cli import exitcodes
from modelsec.cli.console import say

if TYPE_CHECKING:
    from modelsec.policy import GroupSpec
    from modelsec.rules.params import RuleParams

RULES_DESCRIPTION = """\
List every rule a security group can use: its id (the `name:` in a group), what it checks,
the source types it applies to, and its parameters with types and defaults.
"""
GROUPS_DESCRIPTION = """\
Security groups bundle rules with modes (Blocking, NonBlocking, Disabled) and parameters.

  modelsec groups                 list the built-in groups
  modelsec groups show NAME|FILE  print a group as a SecurityGroup resource (YAML)
  modelsec groups validate FILE   check a group file; exit 0 if valid, 4 with reasons if not

A group file has the shape of the SecurityGroup custom resource (apiVersion, kind,
metadata.name, spec) or just its spec; the same file works with `kubectl apply`.
"""
FORMATS_DESCRIPTION = """\
List the formats modelsec recognises by content. Use these names in the ApprovedFormats
rule's approvedFormats parameter.
"""
THREATS_DESCRIPTION = """\
List the threat codes that findings carry (stable ids), with the rule each one fails,
its severity and the remediation hint.
"""


def _add_format_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-f",
        "--format",
        choices=("table", "json"),
        default="table",
        help="output format (default: %(default)s)",
    )


def configure_rules(parser: argparse.ArgumentParser) -> None:
    _add_format_flag(parser)
    parser.set_defaults(handler=run_rules)


def configure_groups(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", nargs="?", choices=("list", "show", "validate"), default="list")
    parser.add_argument("group", nargs="?", metavar="NAME|FILE")
    parser.set_defaults(handler=run_groups)


def configure_formats(parser: argparse.ArgumentParser) -> None:
    _add_format_flag(parser)
    parser.set_defaults(handler=run_formats)


def configure_threats(parser: argparse.ArgumentParser) -> None:
    _add_format_flag(parser)
    parser.set_defaults(handler=run_threats)


class ParamRow(TypedDict):
    """One parameter of a rule, as `modelsec rules` lists it."""

    name: str
    type: str
    default: Any  # the JSON schema's default: any JSON value
    description: str


class RuleRow(TypedDict):
    """One rule, as `modelsec rules` lists it (also its JSON output)."""

    id: str
    title: str
    description: str
    sources: list[str]
    judgesContent: bool
    params: list[ParamRow]


def _param_rows(params_model: type[RuleParams]) -> list[ParamRow]:
    from modelsec.rules.params import schema as params_schema

    rows: list[ParamRow] = []
    schema = params_schema(params_model)
    for name, prop in schema.get("properties", {}).items():
        kind = prop.get("type") or "/".join(p.get("type", "?") for p in prop.get("anyOf", []))
        if "enum" in prop:
            kind = "|".join(str(v) for v in prop["enum"])
        if kind == "array":
            items = prop.get("items", {})
            kind = f"list of {items.get('type') or ('object' if '$ref' in items else 'any')}"
        rows.append(
            {
                "name": name,
                "type": kind,
                "default": prop.get("default"),
                "description": prop.get("description", ""),
            }
        )
    return rows


def run_rules(args: argparse.Namespace) -> int:
    from modelsec.rules import registry

    rules: list[RuleRow] = [
        {
            "id": rule.id,
            "title": rule.title,
            "description": rule.description,
            "sources": sorted(s.value for s in rule.sources),
            "judgesContent": rule.judges_content,
            "params": _param_rows(rule.Params),
        }
        for rule in registry().values()
    ]
    if args.format == "json":
        json.dump(rules, sys.stdout, indent=2)
        print()
        return exitcodes.OK
    for rule in rules:
        print(f"{rule['id']}  ({', '.join(rule['sources'])})")
        print(f"    {rule['title']}. {rule['description']}")
        for p in rule["params"]:
            default = json.dumps(p["default"]) if p["default"] is not None else "-"
            print(f"    param {p['name']}: {p['type']} (default {default}) {p['description']}")
        print()
    return exitcodes.OK


def run_groups(args: argparse.Namespace) -> int:
    import yaml

    from modelsec.policy import GroupError, builtin_group_names, load_group

    if args.action == "list":
        for name in builtin_group_names():
            group = load_group(name)
            modes = ", ".join(f"{r.name}={r.mode.value}" for r in group.spec.rules)
            print(f"{name}\n    {modes}")
        return exitcodes.OK
    if not args.group:
        print(f"modelsec groups {args.action}: name a group or a file", file=sys.stderr)
        return exitcodes.USAGE
    try:
        group = load_group(args.group)
    except GroupError as exc:
        say(f"modelsec groups: {exc}")
        return exitcodes.USAGE
    empty = group.spec.emptiness()
    if args.action == "validate":
        if empty is not None and not group.spec.allow_empty:
            say(f"modelsec groups: {group.origin}: {empty}")
            return exitcodes.USAGE
        if empty is not None:
            say(f"modelsec groups: warning: {group.origin}: {empty}")
        say(
            f"{group.origin}: valid SecurityGroup {group.name!r} with {len(group.spec.rules)} rule(s)",
            sys.stdout,
        )
        return exitcodes.OK
    if empty is not None:
        say(f"modelsec groups: warning: {group.origin}: {empty}")
    resource = {
        "apiVersion": "modelsec.io/v1alpha1",
        "kind": "SecurityGroup",
        "metadata": {"name": group.name},
        "spec": _spec_with_defaults(group.spec),
    }
    sys.stdout.write(yaml.safe_dump(resource, sort_keys=False))
    return exitcodes.OK


def _spec_with_defaults(spec: GroupSpec) -> dict[str, Any]:
    """The spec as YAML shows it, every rule's params filled in with their defaults, so
    that `groups show` teaches what can be tuned (and the output still validates)."""
    from modelsec.group_spec import SecurityGroupSpec
    from modelsec.rules import get
    from modelsec.rules.params import dump

    shown: dict[str, Any] = SecurityGroupSpec.of(spec).model_dump(
        by_alias=True, exclude_none=True, mode="json"
    )
    for config, rule in zip(spec.rules, shown["rules"]):
        registered = get(config.name)
        assert registered is not None  # validated with the spec
        rule["params"] = dump(registered.parse_params(config.params))
    return shown


def run_formats(args: argparse.Namespace) -> int:
    from modelsec import formats

    # One row per format name. A format recognised both per file and as a directory
    # layout (tf-savedmodel: saved_model.pb, and the directory around it) is one format
    # to the user, and approvedFormats names it once; "layout" says it spans files.
    rows: dict[str, dict[str, Any]] = {}
    for scanner in formats.scanners():
        rows.setdefault(
            scanner.name,
            {
                "name": scanner.name,
                "category": scanner.category.value,
                "layout": False,
                "module": type(scanner).__module__,
            },
        )
    for analyzer in formats.directory_analyzers():
        row = rows.setdefault(
            analyzer.name,
            {
                "name": analyzer.name,
                "category": "layout",
                "layout": True,
                "module": type(analyzer).__module__,
            },
        )
        row["layout"] = True
    if args.format == "json":
        json.dump(list(rows.values()), sys.stdout, indent=2)
        print()
    else:
        for row in rows.values():
            spans_files = row["layout"] and row["category"] != "layout"
            category = row["category"] + ("+layout" if spans_files else "")
            print(f"{row['name']:<20} {category:<16} {row['module']}")
    return exitcodes.OK


def run_threats(args: argparse.Namespace) -> int:
    from modelsec import formats, rules
    from modelsec.findings import THREATS

    formats.load_all()  # threats are declared by the format modules as they load
    rules.registry()
    import modelsec.engine  # noqa: F401  (engine-level threats)

    rows = [
        {
            "code": t.code,
            "rule": t.rule,
            "severity": t.severity.name,
            "title": t.title,
            "remediation": t.remediation,
        }
        for t in sorted(THREATS.values(), key=lambda t: t.code)
    ]
    if args.format == "json":
        json.dump(rows, sys.stdout, indent=2)
        print()
    else:
        for row in rows:
            print(f"{row['code']:<14} {row['severity']:<8} {row['rule']:<26} {row['title']}")
    return exitcodes.OK
