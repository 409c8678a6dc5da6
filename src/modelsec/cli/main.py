"""``modelsec``: the command line. Subcommands import what they need when they run, so
``modelsec scan`` of a local file never imports Kubernetes or cloud clients."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from modelsec import __version__
from modelsec.cli import exitcodes
from modelsec.safe_text import printable

DESCRIPTION = """\
Scan AI models for code execution, tampering and policy violations, and enforce the
results in Kubernetes. The same engine and rules run on a laptop, in CI and in the cluster.
"""

EPILOG = """\
examples:
  modelsec scan model.pt                      scan one file with the default group
  modelsec scan ./my-model/ --group strict    a model directory, production rules
  modelsec scan hf://org/name@<commit>        a Hugging Face model, without downloading it
  modelsec scan s3://bucket/models/llama/     every object under an S3 prefix
  modelsec scan m.pkl --format sarif -o modelsec.sarif   for GitHub code scanning
  modelsec verify ./my-model/ --report scan.json   are these the files that were scanned?
  modelsec bom ./my-model/ -o model.cdx.json  a CycloneDX ML-BOM of the scanned model
  modelsec rules                              rules and their parameters
  modelsec groups show local-default          a built-in security group as YAML

exit codes:
  0 ALLOWED   1 BLOCKED   2 ERROR (something could not be inspected; fails closed)
  4 usage error

docs: README.md and docs/ in the source tree.
"""


class Parser(argparse.ArgumentParser):
    """argparse with the project's exit code for usage errors (4, not argparse's 2,
    which means ERROR here)."""

    def error(self, message: str) -> NoReturn:
        # the message may quote the arguments given, escape sequences included
        self.print_usage(sys.stderr)
        self.exit(exitcodes.USAGE, f"{self.prog}: error: {printable(message)}\n")


def _formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32, width=100)


def build_parser(argv: Sequence[str]) -> Parser:
    parser = Parser(prog="modelsec", description=DESCRIPTION, epilog=EPILOG, formatter_class=_formatter)
    parser.add_argument("--version", action="version", version=f"modelsec {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    from modelsec.cli import bom, catalog, scan, verify

    local: tuple[tuple[str, str, Callable[[Parser], None], str, str | None], ...] = (
        # name, one-line help, configure, description, epilog
        (
            "scan",
            "scan model files, directories or hf:// / s3:// references",
            scan.configure,
            scan.DESCRIPTION,
            scan.EPILOG,
        ),
        (
            "verify",
            "check files on disk against the digests a scan recorded",
            verify.configure,
            verify.DESCRIPTION,
            verify.EPILOG,
        ),
        ("bom", "write a CycloneDX ML-BOM of a scanned model", bom.configure, bom.DESCRIPTION, bom.EPILOG),
        (
            "rules",
            "list the rules, what they check and their parameters",
            catalog.configure_rules,
            catalog.RULES_DESCRIPTION,
            None,
        ),
        (
            "groups",
            "list, show or validate security groups",
            catalog.configure_groups,
            catalog.GROUPS_DESCRIPTION,
            None,
        ),
        (
            "formats",
            "list the file formats modelsec recognises (names for approvedFormats)",
            catalog.configure_formats,
            catalog.FORMATS_DESCRIPTION,
            None,
        ),
        (
            "threats",
            "list the threat codes findings carry",
            catalog.configure_threats,
            catalog.THREATS_DESCRIPTION,
            None,
        ),
    )
    for name, help_text, configure, description, epilog in local:
        configure(
            commands.add_parser(
                name, help=help_text, description=description, epilog=epilog, formatter_class=_formatter
            )
        )
    for name, help_text, module in PLUGINS:
        _add_plugin(commands, argv, name, help_text, module)
    return parser


# Cluster commands: name, one-line help, the module that configures and runs it.
PLUGINS = (
    ("crds", "print the CustomResourceDefinitions as YAML", "modelsec.k8s.command"),
    ("operator", "run the Kubernetes operator that performs ModelScans", "modelsec_operator.command"),
    (
        "scan-worker",
        "judge one ModelScan inside a scan Job (operator scan mode job)",
        "modelsec_operator.jobs.worker",
    ),
    ("webhook", "run the validating admission webhook", "modelsec_webhook.command"),
)


def _add_plugin(
    commands: argparse._SubParsersAction[Parser],
    argv: Sequence[str],
    name: str,
    help_text: str,
    module: str,
) -> None:
    """Cluster commands live in their own packages; import one only when it is the command
    being run, so that scanning a file stays fast."""
    sub = commands.add_parser(name, help=help_text, description=help_text, formatter_class=_formatter)
    if name not in argv:
        return
    import importlib

    try:
        plugin = importlib.import_module(module)
    except ImportError as exc:
        sub.set_defaults(handler=_missing(name, exc))
        return
    plugin.configure(sub)
    sub.set_defaults(handler=plugin.run)


def _missing(name: str, exc: ImportError) -> Callable[[argparse.Namespace], int]:
    def handler(args: argparse.Namespace) -> int:
        print(f"modelsec {name}: not available in this installation ({exc})", file=sys.stderr)
        return exitcodes.USAGE

    return handler


TRACEBACK_ENV = "MODELSEC_TRACEBACK"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    _never_fail_on_encoding()
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return exitcodes.USAGE
    try:
        return int(handler(args))
    except KeyboardInterrupt:
        print("modelsec: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return exitcodes.OK
    except Exception as exc:
        # A bug must not look like a verdict: exit 1 (a traceback's code) reads as BLOCKED
        # in CI. It is an ERROR, in one line; the traceback is there for who asks.
        if os.environ.get(TRACEBACK_ENV):
            import traceback

            traceback.print_exc()
        print(
            f"modelsec: internal error, failing closed: {type(exc).__name__}: "
            f"{printable(str(exc))} (set {TRACEBACK_ENV}=1 for the traceback)",
            file=sys.stderr,
        )
        return exitcodes.ERROR


def _never_fail_on_encoding() -> None:
    """Text that the terminal's encoding cannot show is written as escapes, not raised
    as UnicodeEncodeError halfway through a report."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")


if __name__ == "__main__":
    sys.exit(main())
