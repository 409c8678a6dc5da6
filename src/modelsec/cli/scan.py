"""``modelsec scan``: scan models and apply a security group."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from modelsec.cli import exitcodes

if TYPE_CHECKING:
    from modelsec.report import RunResult

DESCRIPTION = """\
Scan each TARGET as one model and apply a security group to it.

A TARGET is a file, a directory (all files under it form one model), or a reference:
hf://org/name[@revision], https://huggingface.co/org/name, s3://bucket/key-or-prefix/,
file:///path. Files are recognised by their content, never by their extension alone;
archives are scanned recursively. Nothing in a model is ever loaded or executed.
"""

EPILOG = """\
output:
  table   readable verdicts per rule and the findings (default)
  json    stable machine-readable document, schema modelsec.io/scan-result/v1
          (docs/json-output.md)
  sarif   SARIF 2.1.0 for GitHub code scanning (upload with github/codeql-action/upload-sarif)

exit codes:
  0 every model ALLOWED     1 a model BLOCKED (a blocking rule failed)
  2 ERROR: something could not be inspected or a source failed (fails closed)
  4 usage error (bad arguments, unknown or invalid group)

examples:
  modelsec scan model.safetensors
  modelsec scan ./checkpoints/ --group strict --format json -o result.json
  modelsec scan model.pkl --group ./team-group.yaml
"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("targets", nargs="+", metavar="TARGET", help="file, directory or model reference")
    parser.add_argument(
        "-g", "--group", default="local-default", metavar="NAME|FILE",
        help="security group: a built-in name (see `modelsec groups`) or a YAML file with a "
        "SecurityGroup resource or spec (default: %(default)s)",
    )
    parser.add_argument(
        "-f", "--format", choices=("table", "json", "sarif"), default="table",
        help="output format (default: %(default)s)",
    )
    parser.add_argument("-o", "--output", metavar="FILE", help="write the report to FILE instead of stdout")
    parser.add_argument("--revision", help="revision for a single hf:// or s3:// target (overrides @rev)")
    parser.add_argument(
        "--source-option", action="append", default=[], metavar="KEY=VALUE",
        help="remote source setting, repeatable: endpoint=URL (private hub, MinIO), region=..., "
        "addressingStyle=path, allowPatterns=*.safetensors, ignorePatterns=... (docs/sources.md). "
        "Credentials come from the environment (HF_TOKEN, AWS_*), never from the command line",
    )
    parser.add_argument(
        "--max-findings", type=int, default=20, metavar="N",
        help="findings shown per model in the table (default: %(default)s; json shows all)",
    )
    parser.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing; use the exit code")
    parser.set_defaults(handler=run)


def _local_size(path: str) -> int:
    if os.path.isfile(path):
        return os.path.getsize(path)
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(dirpath, name))
            except OSError:
                pass
    return total


def run(args: argparse.Namespace) -> int:
    from modelsec.cli.progress import Progress
    from modelsec.engine import Engine
    from modelsec.policy import GroupError, evaluate, load_group
    from modelsec.report import ModelResult, RunResult
    from modelsec.rules.base import EvaluationInput
    from modelsec.sources import ModelRefError, ScanOptions, parse_model_uri, scan_model

    try:
        group = load_group(args.group)
    except GroupError as exc:
        print(f"modelsec scan: {exc}", file=sys.stderr)
        return exitcodes.USAGE
    if args.revision and len(args.targets) != 1:
        print("modelsec scan: --revision needs exactly one target", file=sys.stderr)
        return exitcodes.USAGE
    try:
        refs = [parse_model_uri(t, args.revision) for t in args.targets]
    except ModelRefError as exc:
        print(f"modelsec scan: {exc}", file=sys.stderr)
        return exitcodes.USAGE
    config: dict[str, str] = {}
    for option in args.source_option:
        key, sep, value = option.partition("=")
        if not sep or not key:
            print(f"modelsec scan: --source-option wants KEY=VALUE, got {option!r}", file=sys.stderr)
            return exitcodes.USAGE
        config[key.strip()] = value
    missing = [r.location for r in refs if r.scheme == "file" and not os.path.lexists(r.location)]
    if missing:
        print(f"modelsec scan: no such file or directory: {', '.join(missing)}", file=sys.stderr)
        return exitcodes.USAGE

    engine = Engine()
    local_total = sum(_local_size(r.location) for r in refs if r.scheme == "file")
    progress = Progress(local_total, enabled=not (args.no_progress or args.quiet))
    results: list[ModelResult] = []
    try:
        for ref, target in zip(refs, args.targets):
            display = target if ref.scheme == "file" and "://" not in target else None
            scanned = scan_model(ref, engine, ScanOptions(progress=progress, display=display, config=config))
            verdict = evaluate(
                group, EvaluationInput(scanned.report, scanned.source_type, scanned.metadata)
            )
            results.append(ModelResult(scanned, verdict))
    finally:
        progress.close()

    run_result = RunResult(group, results)
    if not args.quiet:
        _write(run_result, args)
    from modelsec.report.jsonout import overall_outcome

    return exitcodes.FOR_OUTCOME[overall_outcome(results).value]


def _write(run_result: "RunResult", args: argparse.Namespace) -> None:
    if args.format == "json":
        from modelsec.report import jsonout

        text = jsonout.render(run_result)
    elif args.format == "sarif":
        from modelsec.report import sarif

        text = sarif.render(run_result)
    else:
        from modelsec.report import table

        style = table.Style(False) if args.output else table.Style.for_stream(sys.stdout)
        text = table.render(run_result, style, args.max_findings)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as out:
            out.write(text)
    else:
        sys.stdout.write(text)
