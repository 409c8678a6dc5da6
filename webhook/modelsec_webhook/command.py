"""``modelsec webhook``: the command line of the admission webhook.

The modelsec CLI calls :func:`configure` to add these options to its ``webhook``
sub-command and :func:`run` to start it; ``python -m modelsec_webhook`` does the same
without the rest of the CLI.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import textwrap
from pathlib import Path

import yaml

from modelsec.k8s.config import KubeConfigError, load_configuration
from modelsec_webhook import manifest
from modelsec_webhook.admission import AdmissionSettings
from modelsec_webhook.decision import Settings, UnresolvedAction
from modelsec_webhook.firstdeploy import WaitSettings
from modelsec_webhook.freshness import DEFAULT_MAX_STALENESS
from modelsec_webhook.kubeapi import KubeAPI
from modelsec_webhook.server import ServerConfig, Webhook, install_signal_handlers

DESCRIPTION = (
    "Run the modelsec validating admission webhook: deny workloads whose models are "
    "BLOCKED by their SecurityGroup."
)

EPILOG = textwrap.dedent(f"""\
    what it does:
      Answers AdmissionReviews (admission.k8s.io/v1) on https://ADDR:PORT/validate for
      Pods, Deployments, StatefulSets, DaemonSets, ReplicaSets, Jobs, CronJobs and KServe
      InferenceServices. It finds the models a workload names (annotation
      modelsec.io/models, KServe storage URIs, vLLM, TGI/TEI, llama.cpp and Triton command
      lines and environment), picks the SecurityGroups whose ModelSource holds each model
      and whose namespaceSelector matches the namespace, and reads their verdicts from
      ModelScans. Unscanned models get a ModelScan (created in the background) and the
      request is denied with "scan pending, retry shortly". Each group's
      spec.enforcement says whether to deny (Enforce), warn (Warn) or only record (Audit).

      Decisions come from an in-memory view of ModelSources, SecurityGroups, ModelScans and
      Namespaces kept current by list+watch: no API call is made while answering (except
      reading a ConfigMap that names a model, where a group applies). /readyz turns ready
      after the first complete list, and is 503 (and model-naming workloads are denied)
      while the view is older than --max-staleness (the API server does not answer).

    TLS (the API server only calls webhooks over HTTPS):
      --tls-cert/--tls-key   serve these files; they are re-read when they change
                             (cert-manager rotation), checked every --tls-reload-seconds
      --bootstrap-tls        generate a CA and a serving certificate for --tls-san names
                             into --tls-dir (reused while valid), and write the CA into
                             the caBundle of --webhook-config-name (kept patched). One
                             replica / development only: replicas would each make a CA.

    registering it:
      modelsec webhook --print-config --url https://127.0.0.1:8443/validate \\
          --ca-file ca.crt | kubectl apply -f -
      In a cluster: deploy/webhook/ (Service-based config, RBAC). The configuration
      exempts {", ".join(manifest.DEFAULT_EXEMPT)} by namespaceSelector; the webhook
      exempts --exempt-namespace again in code.

    credentials:
      --kubeconfig if given, else in-cluster service account, else $KUBECONFIG or
      ~/.kube/config (with --context). It needs: get/list/watch modelsources,
      securitygroups, modelscans (modelsec.io) and namespaces; create modelscans and
      events; get/patch validatingwebhookconfigurations (only with --bootstrap-tls); get
      configmaps in the namespaces groups cover (to resolve $(VAR) from ConfigMaps;
      without it such models are unresolvable). Secrets are never read.

    examples:
      modelsec webhook --tls-cert /tls/tls.crt --tls-key /tls/tls.key
      modelsec webhook --bootstrap-tls --tls-dir /var/run/modelsec-tls \\
          --webhook-config-name modelsec-webhook --tls-san modelsec-webhook.modelsec-system.svc
      curl -k https://localhost:8443/readyz; curl localhost:9091/metrics
    """)


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the webhook's options to ``parser`` (its own or a sub-command's)."""
    parser.description = parser.description or DESCRIPTION
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter

    serving = parser.add_argument_group("serving")
    serving.add_argument(
        "--port",
        type=int,
        default=8443,
        metavar="PORT",
        help="HTTPS port for /validate, /healthz, /readyz (default: %(default)s)",
    )
    serving.add_argument(
        "--bind-address",
        default="0.0.0.0",
        metavar="ADDR",
        help="address for both servers (default: %(default)s)",
    )
    serving.add_argument(
        "--metrics-port",
        type=int,
        default=9091,
        metavar="PORT",
        help="plain-HTTP port for Prometheus /metrics, /healthz and /readyz; "
        "0 disables (default: %(default)s)",
    )

    tls = parser.add_argument_group("TLS")
    tls.add_argument("--tls-cert", type=Path, metavar="FILE", help="serving certificate (PEM, chain first)")
    tls.add_argument("--tls-key", type=Path, metavar="FILE", help="its private key (PEM)")
    tls.add_argument(
        "--tls-reload-seconds",
        type=float,
        default=10.0,
        metavar="S",
        help="how often to check the files for a new certificate (default: %(default)s)",
    )
    tls.add_argument(
        "--bootstrap-tls",
        action="store_true",
        help="generate a self-signed CA and serving certificate (see below)",
    )
    tls.add_argument(
        "--tls-dir",
        type=Path,
        metavar="DIR",
        help="where --bootstrap-tls keeps ca.crt, tls.crt, tls.key (default: ./modelsec-webhook-tls)",
    )
    tls.add_argument(
        "--tls-san",
        action="append",
        metavar="NAME",
        default=None,
        help="DNS name or IP for the bootstrapped certificate; repeatable "
        "(default: localhost, 127.0.0.1 and the service names of "
        "--service-name/--service-namespace)",
    )
    tls.add_argument(
        "--service-name",
        default="modelsec-webhook",
        metavar="NAME",
        help="Service in front of the webhook, for default SANs and --print-config (default: %(default)s)",
    )
    tls.add_argument(
        "--service-namespace",
        default="modelsec-system",
        metavar="NS",
        help="its namespace (default: %(default)s)",
    )
    tls.add_argument(
        "--webhook-config-name",
        metavar="NAME",
        help="ValidatingWebhookConfiguration whose caBundle --bootstrap-tls "
        f"keeps (conventionally {manifest.DEFAULT_CONFIG_NAME})",
    )

    policy = parser.add_argument_group("policy")
    policy.add_argument(
        "--exempt-namespace",
        action="append",
        metavar="NS",
        default=None,
        help=f"namespace never checked; repeatable (default: {', '.join(manifest.DEFAULT_EXEMPT)})",
    )
    policy.add_argument(
        "--unresolved-action",
        choices=[a.value for a in UnresolvedAction],
        default=UnresolvedAction.WARN.value,
        help="a model the webhook cannot see (a Secret's value, a shell variable "
        "the pod spec does not set, more containers than are read) in a "
        "namespace NO SecurityGroup covers: allow silently, warn (default) "
        "or deny. Where a group covers the namespace it is judged ERROR by "
        "that group (denied under Enforce)",
    )
    policy.add_argument(
        "--verifier-image",
        metavar="IMAGE",
        help="the modelsec image of the init containers that verify models at start "
        "(groups with spec.enforcement.verifyAtStart; its entrypoint must be "
        "modelsec); without it such Pods are denied",
    )
    policy.add_argument(
        "--first-deploy-wait",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="let a request naming a model without a verdict wait for its scan, "
        "within the API server's timeout less --first-deploy-margin, when the "
        "scan is expected to finish in time (default: on)",
    )
    policy.add_argument(
        "--first-deploy-margin",
        type=float,
        default=2.0,
        metavar="S",
        help="seconds of the API server's timeout kept for answering (default: %(default)s)",
    )
    policy.add_argument(
        "--first-deploy-max-waiting",
        type=int,
        default=32,
        metavar="N",
        help="requests that may wait for a verdict at once; beyond, they are "
        "denied at once as scan pending (default: %(default)s)",
    )
    policy.add_argument(
        "--max-staleness",
        type=float,
        default=DEFAULT_MAX_STALENESS,
        metavar="S",
        help="decide from the in-memory view only while it is at most this many "
        "seconds old; beyond, /readyz is 503 and workloads naming models are "
        "denied (default: %(default)s)",
    )

    cluster = parser.add_argument_group("cluster access")
    cluster.add_argument(
        "--kubeconfig",
        type=Path,
        metavar="FILE",
        help="kubeconfig to use (default: in-cluster, then $KUBECONFIG)",
    )
    cluster.add_argument("--context", metavar="NAME", help="kubeconfig context (default: current)")

    printing = parser.add_argument_group("printing the webhook configuration (then exit)")
    printing.add_argument(
        "--print-config",
        action="store_true",
        help="print the ValidatingWebhookConfiguration YAML and exit: for --url "
        "if given, else for --service-namespace/--service-name",
    )
    printing.add_argument("--url", metavar="URL", help="webhook URL, e.g. https://127.0.0.1:8443/validate")
    printing.add_argument("--ca-file", type=Path, metavar="FILE", help="CA certificate for the caBundle")
    printing.add_argument(
        "--mutating",
        action="store_true",
        help="with --print-config: print the MutatingWebhookConfiguration of /mutate "
        "(pinning and verifyAtStart) instead; --url stays the /validate URL",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def _logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def _exempt(args: argparse.Namespace) -> tuple[str, ...]:
    return tuple(args.exempt_namespace) if args.exempt_namespace else manifest.DEFAULT_EXEMPT


def print_config(args: argparse.Namespace) -> int:
    import base64

    ca = base64.b64encode(args.ca_file.read_bytes()).decode() if args.ca_file else None
    if args.url:
        client = manifest.client_config(url=args.url, ca_bundle=ca)
    else:
        client = manifest.client_config(service=(args.service_namespace, args.service_name), ca_bundle=ca)
    render = manifest.render_mutating if args.mutating else manifest.render
    document = render(
        client, name=args.webhook_config_name or manifest.DEFAULT_CONFIG_NAME, exempt=_exempt(args)
    )
    sys.stdout.write(yaml.safe_dump(document, sort_keys=False))
    return 0


def _server_config(args: argparse.Namespace) -> ServerConfig:
    from modelsec_webhook.tls import bootstrap

    ca_bundle = None
    cert, key = args.tls_cert, args.tls_key
    if args.bootstrap_tls:
        if cert or key:
            raise ValueError("--bootstrap-tls makes its own certificate: drop --tls-cert/--tls-key")
        service = f"{args.service_name}.{args.service_namespace}"
        hosts = args.tls_san or ["localhost", "127.0.0.1", f"{service}.svc", f"{service}.svc.cluster.local"]
        try:
            made = bootstrap(args.tls_dir or Path("modelsec-webhook-tls"), hosts)
        except ImportError:
            raise ValueError(
                "--bootstrap-tls needs the cryptography package: pip install 'modelsec[cluster]'"
            ) from None
        cert, key, ca_bundle = made.cert_file, made.key_file, made.ca_bundle
    elif not (cert and key):
        raise ValueError(
            "give --tls-cert and --tls-key, or --bootstrap-tls "
            "(the API server only calls webhooks over HTTPS)"
        )
    return ServerConfig(
        port=args.port,
        bind_address=args.bind_address,
        metrics_port=args.metrics_port,
        cert_file=cert,
        key_file=key,
        tls_check_seconds=args.tls_reload_seconds,
        ca_bundle=ca_bundle,
        webhook_config_name=args.webhook_config_name,
        admission=AdmissionSettings(
            exempt_namespaces=frozenset(_exempt(args)),
            decision=Settings(unresolved_action=UnresolvedAction(args.unresolved_action)),
            verifier_image=args.verifier_image or None,
        ),
        max_staleness=args.max_staleness,
        first_deploy=WaitSettings(
            enabled=args.first_deploy_wait,
            margin_seconds=args.first_deploy_margin,
            max_waiting=args.first_deploy_max_waiting,
        ),
    )


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM; returns the exit code."""
    if args.print_config:
        return print_config(args)
    _logging(getattr(args, "verbose", False))
    try:
        config = _server_config(args)
        configuration = load_configuration(args.kubeconfig, args.context)
    except (KubeConfigError, ValueError, OSError) as exc:
        print(f"modelsec webhook: {exc}", file=sys.stderr)
        return 2
    if args.bootstrap_tls and not args.webhook_config_name:
        logging.getLogger("modelsec.webhook").warning(
            "--bootstrap-tls without --webhook-config-name: nothing will trust this CA "
            "unless you put it into the webhook configuration yourself"
        )

    async def main() -> None:
        webhook = Webhook(config, KubeAPI(configuration))
        install_signal_handlers(webhook)
        await webhook.run()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    except (OSError, ValueError) as exc:
        print(f"modelsec webhook: {exc}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m modelsec_webhook", description=DESCRIPTION)
    configure(parser)
    return run(parser.parse_args(argv))
