"""``modelsec crds``: print (or write) the CustomResourceDefinitions.

The modelsec CLI calls :func:`configure` and :func:`run`; the YAML comes from
:func:`modelsec.k8s.crds.render_all`, the same text as ``crds/``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from modelsec.k8s import crds

EPILOG = """\
examples:
  modelsec crds | kubectl apply -f -        install or upgrade the CRDs
  modelsec crds --out crds/                 one file per CRD (what hack/gen-crds.sh does)

The CRDs are generated from the pydantic models in modelsec.k8s: ModelSource,
SecurityGroup and ModelScan (group modelsec.io, version v1alpha1, cluster-scoped), plus
kopf's ClusterKopfPeering, which `modelsec operator --peering` needs.
"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "--out", type=Path, metavar="DIR", help="write one YAML file per CRD into DIR instead of printing"
    )


def run(args: argparse.Namespace) -> int:
    if args.out:
        for path in crds.write_all(args.out):
            print(path)
    else:
        sys.stdout.write(crds.render_all())
    return 0
