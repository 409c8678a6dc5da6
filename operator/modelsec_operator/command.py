"""``modelsec operator``: the command line of the operator.

The modelsec CLI calls :func:`configure` to add these options to its ``operator``
sub-command and :func:`run` to start it; ``python -m modelsec_operator`` does the same
without the rest of the CLI.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import kopf
from pydantic import ValidationError

from modelsec.k8s.config import KubeConfigError, load_configuration
from modelsec_operator import metrics
from modelsec_operator.bom_export import BomPublisher
from modelsec_operator.config import SCAN_DELAY_ENV, OperatorConfig, ScanMode, scan_delay_from_env
from modelsec_operator.handlers import register
from modelsec_operator.jobs.settings import SettingsError
from modelsec_operator.jobs.setup import job_scanner
from modelsec_operator.kube import Kube, connection_info
from modelsec_operator.pool import SCAN_THREAD_PREFIX, ScanPool
from modelsec_operator.runtime import Runtime, own_identity

DESCRIPTION = "Run the modelsec operator: judge ModelScans, validate SecurityGroups and ModelSources."

EPILOG = textwrap.dedent(f"""\
    what it does:
      Watches the cluster-scoped modelsec.io resources (install them first:
      `modelsec crds | kubectl apply -f -` or `kubectl apply -f crds/`).
      - ModelSource: checks it is usable (Local directory present, Secret present) -> Ready.
      - SecurityGroup: checks its source, rules and params -> Ready with the reason.
      - ModelScan: scans the model through the group's source, writes the verdict to
        status (phase, outcome, rules, findings), posts Events, and re-evaluates it when
        the group or source changes or its rescanInterval elapses. Superseded verdicts
        stay in status.history; every verdict is also one JSON line on the
        modelsec.audit logger.

    credentials:
      --kubeconfig if given, else in-cluster service account, else $KUBECONFIG or
      ~/.kube/config (with --context).

    several replicas:
      With peering (the default, `--peering modelsec`) replicas elect the one with the
      highest --priority (random unless given); the others stand by. This needs the
      ClusterKopfPeering CRD from crds/. Use --standalone for exactly one replica.

    examples:
      modelsec operator --local-root /models
      modelsec operator --standalone --metrics-port 0 --health-port 0 --kubeconfig kc.yaml
      curl localhost:8080/healthz; curl localhost:9090/metrics

    test-only: {SCAN_DELAY_ENV}=<seconds> makes each scan sleep first, so tests can
    stop the operator while a scan is in flight. Never set it in production.
    """)


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the operator's options to ``parser`` (its own or a sub-command's)."""
    parser.description = parser.description or DESCRIPTION
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    cluster = parser.add_argument_group("cluster access")
    cluster.add_argument(
        "--kubeconfig",
        type=Path,
        metavar="FILE",
        help="kubeconfig to use (default: in-cluster, then $KUBECONFIG)",
    )
    cluster.add_argument("--context", metavar="NAME", help="kubeconfig context (default: current)")
    ha = cluster.add_mutually_exclusive_group()
    ha.add_argument(
        "--peering",
        metavar="NAME",
        default="modelsec",
        help="kopf peering name shared by replicas; one is active (default: %(default)s)",
    )
    ha.add_argument(
        "--standalone", action="store_true", help="no peering: for exactly one replica, or no peering CRD"
    )
    cluster.add_argument(
        "--priority",
        type=int,
        metavar="N",
        help="peering priority; the highest live replica is active (default: random, so replicas never tie)",
    )

    scans = parser.add_argument_group("scanning")
    scans.add_argument(
        "--max-concurrent-scans",
        type=int,
        default=2,
        metavar="N",
        help="engine runs at once, each in a worker thread (default: %(default)s)",
    )
    scans.add_argument(
        "--local-root",
        type=Path,
        metavar="DIR",
        help="Local ModelSources must point inside DIR (the models volume); "
        "default: any directory the operator can read",
    )
    scans.add_argument(
        "--report-cache-size",
        type=int,
        default=64,
        metavar="N",
        help="scan reports kept to re-evaluate unchanged models without "
        "re-reading them; 0 disables (default: %(default)s)",
    )
    scans.add_argument(
        "--resync-seconds",
        type=float,
        default=60.0,
        metavar="S",
        help="how often to look for scans whose rescanInterval elapsed (default: %(default)s)",
    )
    scans.add_argument(
        "--running-status-after",
        type=float,
        default=2.0,
        metavar="S",
        help="write phase Running (and the ScanStarted Event) only once an engine "
        "run has lasted this long; 0: always (default: %(default)s)",
    )
    scans.add_argument(
        "--scan-mode",
        choices=[m.value for m in ScanMode],
        default=ScanMode.IN_PROCESS.value,
        help="inProcess: scan in the operator's threads; job: one Kubernetes Job "
        "per scan attempt (default: %(default)s)",
    )
    scans.add_argument(
        "--max-concurrent-scan-jobs",
        type=int,
        default=10,
        metavar="N",
        help="scan mode job: scan Jobs at once, cluster-wide, shared fairly "
        "between security groups (default: %(default)s)",
    )
    scans.add_argument(
        "--scan-job-namespace",
        metavar="NS",
        default=os.environ.get("POD_NAMESPACE") or "modelsec",
        help="scan mode job: namespace of the scan Jobs and their results "
        "(default: $POD_NAMESPACE, else %(default)s)",
    )
    scans.add_argument(
        "--scan-job-settings",
        type=Path,
        metavar="FILE",
        help="scan mode job: YAML with the Jobs' image, resources, placement and "
        "deadlines (see docs/operator.md; the Helm chart renders it)",
    )
    scans.add_argument(
        "--scan-job-poll-seconds",
        type=float,
        default=2.0,
        metavar="S",
        help="scan mode job: how often running Jobs are checked (default: %(default)s)",
    )
    scans.add_argument(
        "--queue-refresh-seconds",
        type=float,
        default=60.0,
        metavar="S",
        help="scan mode job: how often a queued scan may rewrite its queue "
        "position (only when it dropped to a tenth) (default: %(default)s)",
    )
    scans.add_argument(
        "--scan-job-running-status-after",
        type=float,
        default=30.0,
        metavar="S",
        help="scan mode job: a scan Job still running after this long is shown Running "
        "with its Job in the status; shorter ones go from Pending to their verdict, which "
        "names the Job (default: %(default)s)",
    )
    scans.add_argument(
        "--max-attempts",
        type=int,
        default=5,
        metavar="N",
        help="attempts for transient failures (model missing, source "
        "unreachable) before the scan is Failed with outcome ERROR "
        "(default: %(default)s)",
    )
    scans.add_argument(
        "--bom-namespace",
        metavar="NS",
        help="keep each verdict's CycloneDX ML-BOM in a ConfigMap named like "
        "its ModelScan in NS (modelsec verify --scan reads it to name the "
        "files that changed; docs/integrity.md); default: no BOMs",
    )

    serving = parser.add_argument_group("observability")
    serving.add_argument(
        "--metrics-port",
        type=int,
        default=9090,
        metavar="PORT",
        help="Prometheus /metrics port; 0 disables (default: %(default)s)",
    )
    serving.add_argument(
        "--health-port",
        type=int,
        default=8080,
        metavar="PORT",
        help="liveness /healthz port; 0 disables (default: %(default)s)",
    )
    serving.add_argument(
        "--bind-address",
        default="0.0.0.0",
        metavar="ADDR",
        help="address for both servers (default: %(default)s)",
    )
    serving.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def _config(args: argparse.Namespace) -> OperatorConfig:
    priority = args.priority
    if priority is None and not args.standalone:
        priority = random.randint(1, 2**31 - 1)
    return OperatorConfig(
        kubeconfig=args.kubeconfig,
        context=args.context,
        metrics_port=args.metrics_port,
        health_port=args.health_port,
        bind_address=args.bind_address,
        max_concurrent_scans=args.max_concurrent_scans,
        report_cache_size=args.report_cache_size,
        peering=None if args.standalone else args.peering,
        priority=priority,
        local_root=args.local_root,
        resync_seconds=args.resync_seconds,
        max_attempts=args.max_attempts,
        bom_namespace=args.bom_namespace or None,
        scan_delay_seconds=scan_delay_from_env(),
        running_status_after=args.running_status_after,
        scan_mode=ScanMode(args.scan_mode),
        max_concurrent_scan_jobs=args.max_concurrent_scan_jobs,
        scan_job_namespace=args.scan_job_namespace,
        scan_job_settings=args.scan_job_settings,
        scan_job_poll_seconds=args.scan_job_poll_seconds,
        queue_refresh_seconds=args.queue_refresh_seconds,
        scan_job_running_status_after=args.scan_job_running_status_after,
    )


def _logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not verbose:
        # kopf's per-handler chatter ("Handler ... succeeded") hides the verdicts.
        logging.getLogger("kopf").setLevel(logging.WARNING)
        logging.getLogger("kopf.objects").setLevel(logging.INFO)
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)  # health probes


def run(args: argparse.Namespace) -> int:
    """Start the operator and block until SIGINT/SIGTERM; returns the exit code."""
    _logging(getattr(args, "verbose", False))
    log = logging.getLogger("modelsec.operator")
    try:
        config = _config(args)
    except (ValidationError, ValueError) as exc:
        print(f"modelsec operator: {exc}", file=sys.stderr)
        return 2
    try:
        configuration = load_configuration(config.kubeconfig, config.context)
    except KubeConfigError as exc:
        print(f"modelsec operator: {exc}", file=sys.stderr)
        return 2
    if config.scan_delay_seconds:
        log.warning(f"{SCAN_DELAY_ENV}={config.scan_delay_seconds}: test-only scan delay is on")
    try:
        asyncio.run(_operate(config, configuration))
    except KeyboardInterrupt:
        pass
    except (KubeConfigError, SettingsError) as exc:
        print(f"modelsec operator: {exc}", file=sys.stderr)
        return 2
    _abandon_unfinished_scans(log)
    return 0


def _abandon_unfinished_scans(log: logging.Logger) -> None:
    """Exit now even if worker threads are still reading a model: threads cannot be
    interrupted, and the interpreter would otherwise wait for them at exit (a multi-GB scan
    outliving the pod's grace period). Nothing is lost: those ModelScans are still
    Pending/Running in the API server and the next operator redoes them."""
    for thread in threading.enumerate():
        if thread.name.startswith(SCAN_THREAD_PREFIX):
            thread.join(timeout=0.5)
    busy = [t for t in threading.enumerate() if t.name.startswith(SCAN_THREAD_PREFIX) and t.is_alive()]
    if busy:
        log.warning(f"stopping with {len(busy)} scan(s) unfinished; they are redone on the next start")
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


async def _operate(config: OperatorConfig, configuration: Any) -> None:
    log = logging.getLogger("modelsec.operator")
    registry = register(kopf.OperatorRegistry())
    info = connection_info(configuration)

    @kopf.on.login(registry=registry, id="kubeconfig")
    def login(**_: Any) -> kopf.ConnectionInfo:
        return info

    kube = Kube(configuration)
    runtime = Runtime(
        config=config,
        kube=kube,
        pool=ScanPool(
            config.max_concurrent_scans,
            config.report_cache_size,
            config.scan_delay_seconds,
            config.running_status_after,
        ),
        identity=own_identity(),
        jobs=await job_scanner(config, kube.api_client) if config.scan_mode == ScanMode.JOB else None,
        boms=BomPublisher(kube.api_client, config.bom_namespace),
    )
    if config.peering:
        await runtime.kube.ensure_peering(config.peering)
    server = metrics.serve(config.metrics_port, config.bind_address)
    liveness = f"http://{config.bind_address}:{config.health_port}/healthz" if config.health_port else None
    log.info(
        f"starting as {runtime.identity}: "
        + (f"peering {config.peering!r} priority {config.priority}" if config.peering else "standalone")
        + (
            f", scan Jobs in namespace {config.scan_job_namespace} (at most {config.max_concurrent_scan_jobs})"
            if runtime.jobs
            else f", {config.max_concurrent_scans} concurrent scan(s)"
        )
        + (f", local root {config.local_root}" if config.local_root else "")
    )
    try:
        await kopf.operator(
            registry=registry,
            clusterwide=True,
            standalone=config.standalone,
            peering_name=config.peering,
            priority=config.priority,
            identity=runtime.identity,  # type: ignore[arg-type]  # kopf's NewType over str
            liveness_endpoint=liveness,
            memo=kopf.Memo(runtime=runtime),
        )
    finally:
        if server is not None:
            server.shutdown()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m modelsec_operator", description=DESCRIPTION)
    configure(parser)
    return run(parser.parse_args(argv))
