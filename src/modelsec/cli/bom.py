"""``modelsec bom``: a CycloneDX 1.6 ML-BOM of a scanned model."""

from __future__ import annotations

import argparse
import sys

from modelsec.cli import exitcodes
from modelsec.cli.console import say

DESCRIPTION = """\
Write a CycloneDX 1.6 ML-BOM of one model: a machine-learning-model component (name,
revision, license, source, the security group's verdict and every rule's result as
properties) and a file component per file (SHA-256, format, license, source, revision).

Either scan TARGET now (same options as modelsec scan), or convert a saved JSON scan
result with --report, so that CI scans once and keeps both documents.
"""

EPILOG = """\
exit codes (as modelsec scan, from the verdict the BOM records; the BOM is written anyway):
  0 ALLOWED   1 BLOCKED   2 ERROR or the BOM could not be made   4 usage error

examples:
  modelsec bom ./model/ --group strict -o model.cdx.json
  modelsec bom hf://org/name@<commit> -o model.cdx.json
  modelsec scan ./model/ -f json -o scan.json && modelsec bom --report scan.json -o model.cdx.json
"""


def configure(parser: argparse.ArgumentParser) -> None:
    from modelsec.cli.scan import add_judging_arguments

    parser.add_argument(
        "targets",
        nargs="?",
        metavar="TARGET",
        help="file, directory or model reference to scan (not with --report)",
    )
    parser.add_argument("--report", metavar="FILE", help="build the BOM from a saved JSON scan result")
    parser.add_argument(
        "--model",
        metavar="TARGET",
        help="with --report: the model, when the report holds several (target or URI)",
    )
    add_judging_arguments(parser)
    parser.add_argument("-o", "--output", metavar="FILE", help="write the BOM to FILE instead of stdout")
    parser.add_argument("-q", "--quiet", action="store_true", help="no warnings on stderr")
    parser.set_defaults(handler=run)


def _fail(message: str, code: int) -> int:
    say(f"modelsec bom: {message}")
    return code


def run(args: argparse.Namespace) -> int:
    from modelsec.bom import BomUnavailable, record_bom_json
    from modelsec.cli.output import OutputError, check_writable, write_report
    from modelsec.cli.scan import CommandError, judge
    from modelsec.report.document import DocumentError, load, model_record

    if bool(args.targets) == bool(args.report):
        return _fail("give a TARGET to scan, or --report FILE", exitcodes.USAGE)
    if args.model and not args.report:
        return _fail("--model goes with --report", exitcodes.USAGE)
    if args.report:
        if args.output:
            try:
                check_writable(args.output)
            except OutputError as exc:
                return _fail(str(exc), exitcodes.ERROR)
        try:
            document = load(args.report)
            record = document.model(args.model)
        except DocumentError as exc:
            return _fail(str(exc), exitcodes.ERROR)
        group, version = document.group.name, document.scanner.version
    else:
        from modelsec import __version__

        try:
            run_result = judge(args, [args.targets])
        except CommandError as exc:
            return _fail(str(exc), exc.code)
        (result,) = run_result.models
        record, group, version = model_record(result), run_result.group.name, __version__
    try:
        text = record_bom_json(record, group, version)
    except BomUnavailable as exc:
        return _fail(str(exc), exitcodes.ERROR)
    if args.output:
        try:
            write_report(args.output, text)
        except OutputError as exc:
            return _fail(str(exc), exitcodes.ERROR)
    else:
        sys.stdout.write(text)
    return exitcodes.FOR_OUTCOME.get(record.outcome, exitcodes.ERROR)
