"""``modelsec verify``: are the files on disk the ones a scan judged?"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from modelsec.cli import exitcodes
from modelsec.cli.console import say
from modelsec.safe_text import printable

if TYPE_CHECKING:
    from modelsec.integrity.expected import Expected
    from modelsec.integrity.verify import Result

DESCRIPTION = """\
Check the files of a model on disk against the per-file SHA-256 digests a scan recorded,
reading each file once, front to back (constant memory, any size). Run it where the
model is loaded (a CI job after the download, an init container before the server
starts) to prove that the bytes about to be loaded are the bytes that were judged.

The scan comes from a JSON report (modelsec scan --format json), an ML-BOM (modelsec
bom), or a ModelScan in the cluster (--scan: with the BOM the operator keeps in a
ConfigMap for each verdict the files that differ are named; without it, the model's
fingerprint still detects a difference, but not which file).
"""

EPILOG = """\
each file is reported as
  CHANGED    different bytes (or not a regular file)     MISSING   scanned, not on disk
  EXTRA      on disk, never scanned                      ERROR     could not be read
  UNPROVEN   the scan only had the source's claimed digest (a remote file read by range)

exit codes:
  0 every file matches   1 a file changed, is missing or extra
  2 something could not be checked (unreadable, unproven, bad report, API unreachable)
  4 usage error

examples:
  modelsec scan ./model/ -f json -o scan.json && modelsec verify ./model/ --report scan.json
  modelsec verify /mnt/models --scan bert-base-3f2a9c0d1e4b5a67
  modelsec verify ~/.cache/huggingface/hub/models--org--name/snapshots/<sha> --report r.json
"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "path", metavar="PATH", help="the model on disk: its directory, or the file of a one-file model"
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--report", metavar="FILE", help="a JSON scan result (modelsec scan --format json)")
    source.add_argument("--bom", metavar="FILE", help="an ML-BOM written by modelsec bom")
    source.add_argument("--scan", metavar="NAME", help="a ModelScan in the cluster (cluster-scoped)")
    parser.add_argument(
        "--model",
        metavar="TARGET",
        help="with --report: the model to use when the report holds several (its target or URI)",
    )
    parser.add_argument(
        "--kubeconfig",
        type=Path,
        metavar="FILE",
        help="with --scan: kubeconfig (default: in-cluster credentials, $KUBECONFIG, ~/.kube/config)",
    )
    parser.add_argument("--context", help="with --scan: kubeconfig context")
    parser.add_argument(
        "--ignore",
        action="append",
        default=[],
        metavar="GLOB",
        help="files on disk that are not part of the model, repeatable: a glob on the path inside "
        "the model; 'dir/' means everything under dir (e.g. .cache/ for huggingface-cli downloads)",
    )
    parser.add_argument(
        "--allow-missing",
        action="store_true",
        help="scanned files absent on disk are reported, not failed (a server that "
        "downloads part of a repository)",
    )
    parser.add_argument(
        "--accept-claimed",
        action="store_true",
        help="a file matching the digest the source claimed at scan time (remote files "
        "the scan read by range) counts as verified",
    )
    parser.add_argument(
        "-j",
        "--jobs",
        type=_jobs,
        default=1,
        metavar="N",
        help="files hashed at once (default: %(default)s); more helps sharded models "
        "on fast storage with cores to spare",
    )
    parser.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing; use the exit code")
    parser.set_defaults(handler=run)


def _jobs(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= 64:
        raise argparse.ArgumentTypeError(f"{value}: give 1 to 64")
    return value


def _fail(message: str, code: int) -> int:
    say(f"modelsec verify: {message}")
    return code


def run(args: argparse.Namespace) -> int:
    from modelsec.cli.progress import Progress
    from modelsec.integrity.cluster import ClusterError
    from modelsec.integrity.expected import ExpectedError
    from modelsec.integrity.verify import Options, VerifyError, verify
    from modelsec.report.document import DocumentError

    if args.model and not args.report:
        return _fail("--model goes with --report", exitcodes.USAGE)
    if (args.kubeconfig or args.context) and not args.scan:
        return _fail("--kubeconfig and --context go with --scan", exitcodes.USAGE)
    try:
        expected = _expected(args)
    except (DocumentError, ExpectedError, ClusterError) as exc:
        return _fail(str(exc), exitcodes.ERROR)

    size = _expected_bytes(expected)
    progress = Progress(size, enabled=not (args.no_progress or args.quiet), desc="verifying")
    options = Options(tuple(args.ignore), args.allow_missing, args.accept_claimed, progress, args.jobs)
    try:
        result = verify(args.path, expected, options)
    except VerifyError as exc:
        return _fail(str(exc), exitcodes.USAGE)
    finally:
        progress.close()
    if not args.quiet:
        sys.stdout.write(render(args.path, expected, result))
    return result.exit_code


def _expected(args: argparse.Namespace) -> Expected:
    from dataclasses import replace

    from modelsec.integrity import expected
    from modelsec.integrity.expected import ExpectedError

    if args.report:
        from modelsec.report import document

        record = document.load(args.report).model(args.model)
        return expected.from_report(record, f"report {args.report}")
    if args.bom:
        return expected.load_bom(args.bom)
    from modelsec.integrity.cluster import ClusterError, read_bom, read_modelscan

    scan = read_modelscan(args.scan, args.kubeconfig, args.context)
    recorded = expected.from_modelscan(scan, f"ModelScan {args.scan}")
    bom = (scan.get("status") or {}).get("bom") or {}
    try:
        text = read_bom(scan, args.kubeconfig, args.context)
        return expected.with_bom(
            recorded,
            text,
            f"ModelScan {args.scan} (BOM in ConfigMap {bom.get('namespace')}/{bom.get('name')})",
        )
    except (ClusterError, ExpectedError) as exc:
        # The fingerprint still detects any difference; only naming the file needs the BOM.
        return replace(recorded, note=f"no per-file digests: {exc}")


def _expected_bytes(expected: Expected) -> int:
    if expected.files is None:
        return 0  # unknown until the walk: no bar rather than a wrong one
    return sum(f.size or 0 for f in expected.files.values())


def render(path: str, expected: Expected, result: Result) -> str:
    from modelsec.integrity.verify import Status
    from modelsec.policy import Outcome

    lines = [f"VERIFY  {printable(path)} against {printable(expected.origin)}"]
    if expected.note:
        lines.append(f"  note    {printable(expected.note)}")
    if expected.outcome and expected.outcome != Outcome.ALLOWED:
        lines.append(
            f"  note    the scan's outcome was {expected.outcome}: verify checks bytes, not the verdict"
        )
    problems = [c for c in result.checks if c.status is not Status.OK]
    width = max((len(printable(c.name)) for c in problems), default=0)
    for check in problems:
        name = printable(check.name) or "(model)"
        lines.append(f"  {check.status.value:<9} {name:<{width}}  {printable(check.detail)}")
    counts = ", ".join(f"{n} {s.value}" for s, n in result.counts().items() if n)
    rate = f", {result.bytes_read / result.seconds / (1 << 30):.2f} GiB/s" if result.seconds > 0.5 else ""
    lines.append(
        f"  read    {result.files_read} file(s), {_size(result.bytes_read)} in "
        f"{result.seconds:.2f}s{rate}: {counts or 'nothing to compare'}"
    )
    verdict = {0: "MATCH", 1: "MISMATCH", 2: "NOT VERIFIED"}[result.exit_code]
    lines.append(f"  result  {verdict} (exit {result.exit_code})")
    return "\n".join(lines) + "\n"


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} B"
