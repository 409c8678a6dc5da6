"""``modelsec scan``: scan models and apply a security group."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from modelsec.cli import exitcodes
from modelsec.cli.console import say

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
    add_judging_arguments(parser)
    parser.add_argument(
        "-f",
        "--format",
        choices=("table", "json", "sarif"),
        default="table",
        help="output format (default: %(default)s)",
    )
    parser.add_argument("-o", "--output", metavar="FILE", help="write the report to FILE instead of stdout")
    parser.add_argument(
        "--max-findings",
        type=_count,
        default=20,
        metavar="N",
        help="findings shown per model in the table (default: %(default)s; json shows all)",
    )
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="print nothing on stdout (a report still goes to -o FILE); use the exit code",
    )
    parser.set_defaults(handler=run)


def add_judging_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of every command that scans and judges models (scan, bom)."""
    parser.add_argument(
        "-g",
        "--group",
        default="local-default",
        metavar="NAME|FILE",
        help="security group: a built-in name (see `modelsec groups`) or a YAML file with a "
        "SecurityGroup resource or spec (default: %(default)s)",
    )
    parser.add_argument("--revision", help="revision for a single hf:// or s3:// target (overrides @rev)")
    parser.add_argument(
        "--source-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="remote source setting, repeatable: endpoint=URL (private hub, MinIO), region=..., "
        "addressingStyle=path, allowPatterns=*.safetensors, ignorePatterns=... (docs/sources.md). "
        "Credentials come from the environment (HF_TOKEN, AWS_*), never from the command line",
    )
    parser.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    parser.add_argument(
        "-j",
        "--jobs",
        type=_positive,
        default=None,
        metavar="N",
        help="scan the files of a directory in up to N processes; the report is the same, in "
        "the same order (default: the usable CPUs, at most 4; 1 scans in this process). Below "
        "32 MiB the scan starts here and forks workers only when they would save time",
    )


def _count(text: str) -> int:
    """A count for argparse: a whole number, 0 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative; give 0 or more")
    return value


def _positive(text: str) -> int:
    """A count for argparse: a whole number, 1 or more."""
    value = _count(text)
    if value < 1:
        raise argparse.ArgumentTypeError("give 1 or more")
    return value


def _fail(message: str, code: int) -> int:
    say(f"modelsec scan: {message}")
    return code


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


class CommandError(Exception):
    """Stops a command before or after judging, with the message and the exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def run(args: argparse.Namespace) -> int:
    from modelsec.cli.output import OutputError, write_report
    from modelsec.report.jsonout import overall_outcome

    try:
        run_result = judge(args, args.targets)
    except CommandError as exc:
        return _fail(str(exc), exc.code)
    if args.output:  # -q silences stdout, never the report asked for with -o
        try:
            write_report(args.output, _render(run_result, args))
        except OutputError as exc:
            return _fail(str(exc), exitcodes.ERROR)
    elif not args.quiet:
        sys.stdout.write(_render(run_result, args))
    return exitcodes.FOR_OUTCOME[overall_outcome(run_result.models).value]


def judge(args: argparse.Namespace, targets: list[str]) -> RunResult:
    """Scan each target and apply the group (``args`` as :func:`add_judging_arguments` and
    ``-o``/``-q`` define them); :class:`CommandError` for what stops the command first."""
    from modelsec import heap
    from modelsec.cli.output import OutputError, check_writable
    from modelsec.cli.progress import Progress
    from modelsec.engine import Engine
    from modelsec.policy import GroupError, evaluate, load_group
    from modelsec.report import ModelResult, RunResult
    from modelsec.rules.base import EvaluationInput
    from modelsec.sources import ModelRefError, ScanOptions, parse_model_uri, scan_model

    try:
        group = load_group(args.group)
    except GroupError as exc:
        raise CommandError(str(exc), exitcodes.USAGE) from None
    if (empty := group.spec.emptiness()) is not None:
        if not group.spec.allow_empty:
            raise CommandError(f"{group.origin}: {empty}", exitcodes.USAGE)
        if not args.quiet:
            say(f"modelsec {args.command}: warning: {group.origin}: {empty}")
    if args.revision and len(targets) != 1:
        raise CommandError("--revision needs exactly one target", exitcodes.USAGE)
    try:
        refs = [parse_model_uri(t, args.revision) for t in targets]
    except ModelRefError as exc:
        raise CommandError(str(exc), exitcodes.USAGE) from None
    config: dict[str, str] = {}
    for option in args.source_option:
        key, sep, value = option.partition("=")
        if not sep or not key:
            raise CommandError(f"--source-option wants KEY=VALUE, got {option!r}", exitcodes.USAGE)
        config[key.strip()] = value
    missing = [r.location for r in refs if r.scheme == "file" and not os.path.lexists(r.location)]
    if missing:
        raise CommandError(f"no such file or directory: {', '.join(missing)}", exitcodes.USAGE)
    if args.output:
        try:  # before the scan: a scan of minutes must not end in "cannot write"
            check_writable(args.output)
        except OutputError as exc:
            raise CommandError(str(exc), exitcodes.ERROR) from None

    engine = Engine(workers=args.jobs)
    heap.settle()  # a one-shot process: what it imported so far lives until it exits
    progress = Progress(
        lambda: sum(_local_size(r.location) for r in refs if r.scheme == "file"),
        enabled=not (args.no_progress or args.quiet),
    )
    results: list[ModelResult] = []
    try:
        for ref, target in zip(refs, targets):
            display = target if ref.scheme == "file" and "://" not in target else None
            options = ScanOptions(
                progress=progress if progress.shown else None, display=display, config=config
            )
            scanned = scan_model(ref, engine, options)
            verdict = evaluate(group, EvaluationInput(scanned.report, scanned.source_type, scanned.metadata))
            results.append(ModelResult(scanned, verdict))
    finally:
        progress.close()
    return RunResult(group, results)


def _render(run_result: RunResult, args: argparse.Namespace) -> str:
    if args.format == "json":
        from modelsec.report import jsonout

        return jsonout.render(run_result)
    if args.format == "sarif":
        from modelsec.report import sarif

        return sarif.render(run_result)
    from modelsec.report import table

    style = table.Style(False) if args.output else table.Style.for_stream(sys.stdout)
    return table.render(run_result, style, args.max_findings)
