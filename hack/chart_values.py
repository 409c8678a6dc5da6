"""The Helm chart's values, as pydantic models: the one source of ``values.yaml`` (defaults
and comments), ``values.schema.json`` (types, enums, bounds, no unknown keys) and the
values table of ``charts/modelsec/README.md``. ``hack/gen_chart.py`` writes all three;
tests/chart fails when they are stale.

Every field has a description (it becomes the comment in values.yaml and the README
row). Kubernetes-shaped values (resources, affinity, volumes, resource specs) are free-form
objects here; the API server validates them on install.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
DURATION = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"


class Values(BaseModel):
    """Unknown keys are rejected (a typo is an error, not a silently ignored setting)."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)


def free_form(description: str, default: Any = None) -> Any:
    factory = (lambda: dict(default)) if isinstance(default, dict) else dict
    return Field(default_factory=factory, description=description, json_schema_extra={"freeForm": True})


def k8s_list(description: str, default: list[Any] | None = None) -> Any:
    return Field(
        default_factory=lambda: list(default or []),
        description=description,
        json_schema_extra={"freeForm": True},
    )


# --- shared pieces ----------------------------------------------------------------------


class Image(Values):
    repository: str = Field(
        "docker.io/modelsec/modelsec",
        min_length=1,
        description="Image repository. No public registry publishes it: load "
        "dist/modelsec-<version>.oci.tar (hack/build-image.sh) into your registry "
        "and point this at it (docs/install.md, air-gapped).",
    )
    tag: str = Field("", description="Image tag; empty: the chart's appVersion.")
    digest: str = Field(
        "",
        pattern=r"^(sha256:[0-9a-f]{64})?$",
        description="Image digest (sha256:...). When set the image is pulled by digest "
        "(the tag is then informative only): what a mirrored, verified image should use.",
    )
    pull_policy: Literal["Always", "IfNotPresent", "Never"] = Field(
        "IfNotPresent", description="Image pull policy."
    )


class IssuerRef(Values):
    name: str = Field(
        "",
        description="Name of an existing cert-manager Issuer or ClusterIssuer; "
        "empty: the chart creates a self-signed CA and an Issuer for it.",
    )
    kind: Literal["Issuer", "ClusterIssuer"] = Field("Issuer", description="Kind of the issuer.")
    group: str = Field("cert-manager.io", description="API group of the issuer.")


class CertManager(Values):
    enabled: bool = Field(
        False,
        description="Let cert-manager issue the webhook's serving certificate "
        "and inject its CA into the ValidatingWebhookConfiguration (needs cert-manager "
        "installed). Overrides webhook.tls.mode.",
    )
    issuer_ref: IssuerRef = Field(default_factory=IssuerRef, description="Issuer to use.")
    duration: str = Field("2160h", pattern=DURATION, description="Lifetime of the serving certificate.")
    renew_before: str = Field(
        "720h",
        pattern=DURATION,
        description="Renew this long before expiry (the webhook reloads the "
        "renewed files without a restart).",
    )


class PodDisruptionBudget(Values):
    enabled: bool = Field(True, description="Create a PodDisruptionBudget.")
    max_unavailable: int = Field(
        1, ge=0, description="Pods a voluntary disruption (drain, upgrade) may take down at once."
    )


def spread(key: str) -> dict[str, Any]:
    return {"maxSkew": 1, "topologyKey": key, "whenUnsatisfiable": "ScheduleAnyway"}


DEFAULT_SPREAD = [spread("kubernetes.io/hostname"), spread("topology.kubernetes.io/zone")]


class Workload(Values):
    """What both Deployments share."""

    resources: dict[str, Any] = free_form("Container resources (requests and limits).")
    priority_class_name: str = Field("", description="PriorityClass of the pods.")
    node_selector: dict[str, str] = Field(default_factory=dict, description="Node selector of the pods.")
    tolerations: list[dict[str, Any]] = k8s_list("Tolerations of the pods.")
    affinity: dict[str, Any] = free_form("Affinity of the pods.")
    topology_spread_constraints: list[dict[str, Any]] = k8s_list(
        "Topology spread constraints; a constraint without labelSelector gets the pods' own labels.",
        DEFAULT_SPREAD,
    )
    pod_annotations: dict[str, str] = Field(default_factory=dict, description="Extra pod annotations.")
    pod_labels: dict[str, str] = Field(default_factory=dict, description="Extra pod labels.")
    extra_args: list[str] = Field(default_factory=list, description="Extra command-line flags.")
    extra_env: list[dict[str, Any]] = k8s_list(
        "Extra environment variables (Kubernetes EnvVar objects). Put credentials in Secrets and use "
        "valueFrom.secretKeyRef, never a plain value."
    )
    verbose: bool = Field(False, description="Debug logging.")
    tmp_size_limit: str = Field(
        "256Mi",
        description="Size limit of the writable /tmp (an emptyDir; the root filesystem is read-only).",
    )
    termination_grace_period_seconds: int = Field(30, ge=1, description="Grace period on shutdown.")


# --- operator ---------------------------------------------------------------------------


class SecretAccess(Values):
    namespace: str = Field(
        pattern=DNS_LABEL, max_length=63, description="Namespace holding Secrets that ModelSources name."
    )
    names: list[str] = Field(
        default_factory=list,
        description="Only these Secrets (resourceNames); empty: every Secret in the namespace.",
    )


class Models(Values):
    volume: dict[str, Any] = free_form(
        "A volume source for Local ModelSources (e.g. {persistentVolumeClaim: {claimName: models, "
        "readOnly: true}}), mounted read-only at mountPath and given as --local-root. Empty: no "
        "volume, and Local ModelSources have nothing to read."
    )
    mount_path: str = Field("/models", pattern=r"^/", description="Where the volume is mounted.")


class ScanJobs(Values):
    max_concurrent: int = Field(
        10,
        ge=1,
        le=10000,
        description="Scan Jobs at once, cluster-wide "
        "(--max-concurrent-scan-jobs), shared fairly between SecurityGroups.",
    )
    active_deadline_seconds: int = Field(
        3600,
        ge=10,
        description="A scan Job running longer fails (JobDeadlineExceeded) and the scan is retried.",
    )
    backoff_limit: int = Field(
        0,
        ge=0,
        le=10,
        description="Pod retries inside one Job; the operator retries with a new Job per attempt anyway.",
    )
    ttl_seconds_after_finished: int = Field(
        600, ge=0, description="Finished Jobs, their Pods and results are removed after this long."
    )
    schedule_timeout_seconds: int = Field(
        300,
        ge=1,
        description="A scan Pod not scheduled after this "
        "long: the Job is deleted and the scan retried (Unschedulable).",
    )
    running_status_after_seconds: int = Field(
        30,
        ge=1,
        description="A scan Job still running after this long is shown Running with its Job in the "
        "ModelScan status (--scan-job-running-status-after); shorter ones go from Pending to their "
        "verdict, which names the Job (one status write less per scan).",
    )
    sizing: dict[str, Any] = free_form(
        "Requests and limits from the model size: cpuRequest, cpuLimit, memoryBaseMiB, memoryPerGiBMiB, "
        "memoryMaxMiB, storageBaseMiB, storagePerGiBMiB, storageMaxMiB (docs/operator.md, Sizing). "
        "Empty: the operator's defaults."
    )
    node_selector: dict[str, Any] = free_form("Node selector of the scan Pods.")
    tolerations: list[Any] = k8s_list("Tolerations of the scan Pods.")
    affinity: dict[str, Any] = free_form("Affinity of the scan Pods.")
    priority_class_name: str = Field("", description="PriorityClass of the scan Pods.")


class Boms(Values):
    enabled: bool = Field(
        True,
        description="Keep each verdict's CycloneDX ML-BOM in a ConfigMap "
        "named like its ModelScan (--bom-namespace): modelsec verify --scan and "
        "the verifyAtStart init containers name the files that changed with it.",
    )
    namespace: str = Field(
        "",
        description="Where; empty: the release namespace. Every ConfigMap of "
        "it becomes readable by the verifiers' ServiceAccounts "
        "(webhook.mutating.bindAllServiceAccounts): prefer a namespace of its own.",
    )


class Operator(Workload):
    replicas: int = Field(
        2,
        ge=1,
        description="Replicas. They elect one active by kopf peering; the "
        "others stand by and take over when it goes away.",
    )
    max_concurrent_scans: int = Field(
        2, ge=1, le=256, description="Engine runs at once per replica (--max-concurrent-scans)."
    )
    boms: Boms = Field(default_factory=Boms, description="Each verdict's ML-BOM (in-process scans).")
    report_cache_size: int = Field(
        64,
        ge=0,
        description="Scan reports kept to re-evaluate unchanged "
        "models without reading them again (--report-cache-size).",
    )
    resync_seconds: float = Field(
        60.0, gt=0, description="How often to look for scans whose rescanInterval elapsed (--resync-seconds)."
    )
    max_attempts: int = Field(
        5,
        ge=1,
        description="Attempts for transient failures before a scan is "
        "Failed with outcome ERROR (--max-attempts).",
    )
    scan_mode: Literal["inProcess", "job"] = Field(
        "inProcess",
        description="inProcess: the active replica scans in its own threads. job: each "
        "scan attempt is a Job in the release namespace running `modelsec scan-worker` (scanJobs); "
        "the chart then adds the worker ServiceAccount, its RBAC, and the admission policy that keeps "
        "verdicts unforgeable (docs/operator.md, Scan Jobs).",
    )
    scan_jobs: ScanJobs = Field(default_factory=ScanJobs, description="Scan Jobs (scanMode: job).")
    models: Models = Field(default_factory=Models, description="The models volume for Local sources.")
    secret_access: list[SecretAccess] = Field(
        default_factory=list,
        description="Secrets the operator may read (a Role and RoleBinding per namespace), for "
        "ModelSources created outside this chart. Secrets named by this chart's own modelSources are "
        "added automatically. Nothing else: the operator has no cluster-wide Secret access.",
    )
    metrics_port: int = Field(9090, ge=1, le=65535, description="Prometheus /metrics port.")
    health_port: int = Field(8080, ge=1, le=65535, description="Liveness /healthz port.")
    pod_disruption_budget: PodDisruptionBudget = Field(
        default_factory=PodDisruptionBudget, description="PodDisruptionBudget."
    )
    resources: dict[str, Any] = free_form(
        "Container resources. Memory grows with maxConcurrentScans (archives spool to /tmp past 8 MiB).",
        {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "2Gi"}},
    )
    tmp_size_limit: str = Field(
        "4Gi",
        description="Size limit of /tmp, where large archive members "
        "are spooled while scanned (an emptyDir).",
    )
    termination_grace_period_seconds: int = Field(60, ge=1, description="Grace period on shutdown.")


# --- webhook ----------------------------------------------------------------------------


class HelmTls(Values):
    validity_days: int = Field(
        365, ge=30, description="Lifetime of the CA and serving certificate the chart generates."
    )
    renew_before_days: int = Field(
        30,
        ge=1,
        description="A `helm upgrade` this close to expiry "
        "generates a new pair; the old CA stays in the caBundle for that "
        "release so running pods stay trusted while they reload.",
    )


class Tls(Values):
    mode: Literal["helm", "bootstrap", "secret"] = Field(
        "helm",
        description="Where the serving certificate comes from when certManager.enabled is "
        "false. helm: a CA and certificate generated at install and kept across upgrades; bootstrap: "
        "the webhook's own --bootstrap-tls (one replica only, development); secret: an existing "
        "kubernetes.io/tls Secret (secretName) and its CA (caBundle).",
    )
    secret_name: str = Field("", description="secret mode: the Secret with tls.crt and tls.key.")
    ca_bundle: str = Field("", description="secret mode: base64 of the PEM CA that signed it.")
    helm: HelmTls = Field(default_factory=HelmTls, description="helm mode settings.")
    reload_seconds: float = Field(
        10.0,
        gt=0,
        description="How often the webhook checks the mounted "
        "files for a renewed certificate (--tls-reload-seconds).",
    )


class ConfigMapReads(Values):
    cluster_wide: bool = Field(
        False,
        description="Bind the ClusterRole <release>-webhook-configmap-"
        "reader (get ConfigMaps; no list, no watch) cluster-wide, so that $(VAR) "
        "model names from ConfigMaps are judged wherever a SecurityGroup applies.",
    )
    namespaces: list[str] = Field(
        default_factory=list,
        description="Or bind it in these namespaces "
        "only (a RoleBinding each): the ones your SecurityGroups govern. "
        "Elsewhere such models are unresolvable: denied where an Enforce group "
        "applies, with a message saying why.",
    )


class FirstDeploy(Values):
    enabled: bool = Field(
        True,
        description="A request naming a model without a verdict waits for "
        "its scan when it is expected to finish within timeoutSeconds less "
        "marginSeconds, and is answered with the verdict (--first-deploy-wait).",
    )
    margin_seconds: float = Field(
        2.0, gt=0, description="Seconds of timeoutSeconds kept for answering (--first-deploy-margin)."
    )
    max_waiting: int = Field(
        32,
        ge=1,
        description="Requests waiting at once per replica; beyond, "
        "denied at once as scan pending (--first-deploy-max-waiting).",
    )


class Mutating(Values):
    enabled: bool = Field(
        True,
        description="Create the MutatingWebhookConfiguration "
        "(pin.models.modelsec.io, path /mutate): it pins references for groups with "
        "spec.enforcement.pin and adds the verifier init containers of "
        "spec.enforcement.verifyAtStart. Without it those groups deny the workloads "
        "it would have changed; others are not affected.",
    )
    verifier_image: str = Field(
        "",
        description="Image of the verifyAtStart init containers "
        "(--verifier-image; its entrypoint must be modelsec); empty: this "
        "chart's image.",
    )
    bind_all_service_accounts: bool = Field(
        True,
        description="The verifier runs as the Pod's own ServiceAccount and reads the ModelScan "
        "and its BOM: bind `get modelscans` (ClusterRole <release>-verifier) and `get configmaps` in "
        "the BOM namespace to every ServiceAccount (group system:serviceaccounts). false: bind "
        "<release>-verifier yourself; without it verifiers exit 2 and their Pods do not start.",
    )


class Webhook(Workload):
    replicas: int = Field(3, ge=1, description="Replicas behind the webhook Service.")
    failure_policy: Literal["Fail", "Ignore"] = Field(
        "Fail",
        description="What the API server does when the webhook cannot answer. Fail closes the "
        "door (see docs/install.md, break-glass); Ignore admits unjudged workloads.",
    )
    timeout_seconds: int = Field(
        15,
        ge=1,
        le=30,
        description="API server timeout for one call (both "
        "configurations); a first deploy may wait for its scan within it.",
    )
    mutating: Mutating = Field(default_factory=Mutating, description="Pinning and verifyAtStart.")
    first_deploy: FirstDeploy = Field(default_factory=FirstDeploy, description="The first-deploy wait.")
    exempt_namespaces: list[str] = Field(
        default_factory=list,
        description="Namespaces never checked, besides kube-system and the "
        "release namespace (always exempt, by the immutable kubernetes.io/metadata.name label).",
    )
    skip_unchanged_updates: bool = Field(
        True,
        description="matchConditions that keep UPDATEs changing neither spec nor annotations "
        "(status-like metadata edits) away from the webhook; the webhook would admit them anyway.",
    )
    unresolved_action: Literal["Allow", "Warn", "Deny"] = Field(
        "Warn",
        description="A model the webhook cannot see, in a namespace no SecurityGroup covers "
        "(--unresolved-action).",
    )
    max_staleness_seconds: float | None = Field(
        None,
        gt=0,
        description="Decide only while the in-memory view is at most this old; beyond, "
        "/readyz fails and workloads naming models are denied (--max-staleness). null: the "
        "webhook's default (10 s).",
    )
    tls: Tls = Field(default_factory=Tls, description="Serving certificate.")
    config_map_reads: ConfigMapReads = Field(
        default_factory=ConfigMapReads, description="ConfigMap reads for $(VAR) model names."
    )
    port: int = Field(8443, ge=1, le=65535, description="HTTPS port of /validate.")
    metrics_port: int = Field(
        9091, ge=1, le=65535, description="Plain-HTTP port of /metrics, /healthz and /readyz (the probes)."
    )
    pod_disruption_budget: PodDisruptionBudget = Field(
        default_factory=PodDisruptionBudget, description="PodDisruptionBudget."
    )
    resources: dict[str, Any] = free_form(
        "Container resources.",
        {"requests": {"cpu": "100m", "memory": "192Mi"}, "limits": {"memory": "512Mi"}},
    )
    tmp_size_limit: str = Field("64Mi", description="Size limit of /tmp (an emptyDir).")


# --- cluster-wide extras ------------------------------------------------------------------


class Rbac(Values):
    aggregate_to_view: bool = Field(
        True,
        description="A ClusterRole aggregated into `view` (and so "
        "`edit` and `admin`): get, list and watch ModelScans, nothing "
        "else. Only a ClusterRoleBinding reaches them: they are "
        "cluster-scoped.",
    )
    policy_editor_role: bool = Field(
        True,
        description="A ClusterRole `<release>-policy-editor` "
        "(manage ModelSources and SecurityGroups, read ModelScans), bound "
        "to nobody: bind it to your platform team.",
    )


class ServiceMonitor(Values):
    enabled: bool = Field(False, description="Create ServiceMonitors (Prometheus Operator).")
    interval: str = Field("30s", pattern=DURATION, description="Scrape interval.")
    labels: dict[str, str] = Field(
        default_factory=dict, description="Extra labels (e.g. the `release` your Prometheus selects)."
    )


class PrometheusRule(Values):
    enabled: bool = Field(False, description="Create a PrometheusRule with modelsec's alerts.")
    labels: dict[str, str] = Field(default_factory=dict, description="Extra labels.")
    scan_stuck_minutes: int = Field(
        30,
        ge=5,
        description="ModelsecScansStuck: scans waiting or running with no verdict recorded for this long.",
    )
    scan_error_ratio: float = Field(
        0.2,
        gt=0,
        le=1,
        description="ModelsecScanErrorsRising: share of verdicts that are ERROR over 30 minutes.",
    )


class Monitoring(Values):
    service_monitor: ServiceMonitor = Field(default_factory=ServiceMonitor, description="Scraping.")
    prometheus_rule: PrometheusRule = Field(default_factory=PrometheusRule, description="Alerts.")


class NetworkPolicy(Values):
    enabled: bool = Field(False, description="Create NetworkPolicies for both components.")
    api_server_cidrs: list[str] = Field(
        default_factory=list,
        description="Egress to the API server: these CIDRs; empty: any address on apiServerPorts.",
    )
    api_server_ports: list[int] = Field(
        default_factory=lambda: [443, 6443], description="Ports of the API server."
    )
    webhook_ingress_cidrs: list[str] = Field(
        default_factory=list,
        description="Who may call the webhook port: the API server's "
        "addresses; empty: anyone (the API server is not a pod a selector could name).",
    )
    metrics_from: list[dict[str, Any]] = k8s_list(
        "NetworkPolicyPeers allowed to scrape metrics (e.g. your Prometheus' namespace); empty: none."
    )
    source_egress_cidrs: list[str] = Field(
        default_factory=lambda: ["0.0.0.0/0", "::/0"],
        description="Operator egress to model sources (Hugging Face, S3).",
    )
    source_egress_ports: list[int] = Field(
        default_factory=lambda: [443], description="Ports of the model sources."
    )


class PolicyObject(Values):
    name: str = Field(pattern=DNS_SUBDOMAIN, max_length=253, description="Object name.")
    labels: dict[str, str] = Field(default_factory=dict, description="Extra labels.")
    spec: dict[str, Any] = free_form("The spec, as in the CRD (kubectl explain).")


class ChartValues(Values):
    """The values of charts/modelsec."""

    name_override: str = Field("", description="Replaces the chart name in resource names.")
    fullname_override: str = Field(
        "", description="Replaces the `<release>-<chart>` prefix of resource names."
    )
    image: Image = Field(default_factory=Image, description="The modelsec image (both components).")
    image_pull_secrets: list[str] = Field(
        default_factory=list, description="Names of existing docker-registry Secrets."
    )
    common_labels: dict[str, str] = Field(default_factory=dict, description="Labels on every object.")
    cert_manager: CertManager = Field(default_factory=CertManager, description="cert-manager.")
    operator: Operator = Field(default_factory=Operator, description="The operator Deployment.")
    webhook: Webhook = Field(default_factory=Webhook, description="The admission webhook Deployment.")
    rbac: Rbac = Field(default_factory=Rbac, description="Roles for people.")
    monitoring: Monitoring = Field(default_factory=Monitoring, description="Prometheus Operator objects.")
    network_policy: NetworkPolicy = Field(default_factory=NetworkPolicy, description="NetworkPolicies.")
    model_sources: list[PolicyObject] = Field(
        default_factory=list,
        description="ModelSources to create. Credentials are named "
        "(tokenSecretRef, credentialsSecretRef), never given: create those Secrets yourself.",
    )
    security_groups: list[PolicyObject] = Field(default_factory=list, description="SecurityGroups to create.")
