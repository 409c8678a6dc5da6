{{/* Names, labels and shared pod pieces. */}}

{{- define "modelsec.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* <release>-<chart>, or just <release> when it already contains the chart name. Short
enough that "-operator" and "-webhook-tls" suffixes stay within 63 characters. */}}
{{- define "modelsec.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 48 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 48 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 48 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "modelsec.operator.name" -}}{{ include "modelsec.fullname" . }}-operator{{- end }}
{{- define "modelsec.webhook.name" -}}{{ include "modelsec.fullname" . }}-webhook{{- end }}
{{- define "modelsec.webhook.tlsSecret" -}}
{{- if and (not .Values.certManager.enabled) (eq .Values.webhook.tls.mode "secret") }}
{{- required "webhook.tls.secretName is required when webhook.tls.mode is secret" .Values.webhook.tls.secretName }}
{{- else }}
{{- include "modelsec.fullname" . }}-webhook-tls
{{- end }}
{{- end }}

{{- define "modelsec.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "modelsec.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: modelsec
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels of one component: (dict "ctx" $ "component" "webhook"). Immutable in a
Deployment, so they never include the version. */}}
{{- define "modelsec.selectorLabels" -}}
app.kubernetes.io/name: {{ include "modelsec.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "modelsec.componentLabels" -}}
{{ include "modelsec.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "modelsec.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* The webhook configuration's name: cluster-scoped, so it carries the release. */}}
{{- define "modelsec.webhook.configName" -}}{{ include "modelsec.webhook.name" . }}{{- end }}

{{/* Namespaces the webhook never judges: kube-system, the release namespace, and extras. */}}
{{- define "modelsec.webhook.exempt" -}}
{{- $exempt := list "kube-system" .Release.Namespace }}
{{- range .Values.webhook.exemptNamespaces }}{{ $exempt = append $exempt . }}{{ end }}
{{- toJson ($exempt | uniq) }}
{{- end }}

{{/* Pod security: non-root numeric user, no privilege escalation, no capabilities,
read-only root filesystem, RuntimeDefault seccomp. Not configurable on purpose. */}}
{{- define "modelsec.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "modelsec.containerSecurityContext" -}}
allowPrivilegeEscalation: false
privileged: false
readOnlyRootFilesystem: true
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Scheduling of one component: (dict "ctx" $ "component" "webhook" "values" .Values.webhook). */}}
{{- define "modelsec.scheduling" -}}
{{- with .values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if .values.topologySpreadConstraints }}
topologySpreadConstraints:
{{- range .values.topologySpreadConstraints }}
  {{- $constraint := . }}
  {{- if not (hasKey $constraint "labelSelector") }}
  {{- $constraint = merge (dict "labelSelector" (dict "matchLabels" (include "modelsec.selectorLabels" (dict "ctx" $.ctx "component" $.component) | fromYaml))) $constraint }}
  {{- end }}
  {{- toYaml (list $constraint) | nindent 2 }}
{{- end }}
{{- end }}
{{- end }}

{{/* Environment every modelsec container gets: HOME on the writable /tmp (libraries that
cache under ~ never hit the read-only root), the pod's name for logs and status.worker. */}}
{{- define "modelsec.env" -}}
- name: HOME
  value: /tmp
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
{{- with .extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Namespace -> Secret names the operator may read: operator.secretAccess plus whatever the
chart's own modelSources name. An empty list means every Secret of that namespace. */}}
{{- define "modelsec.operator.secretAccess" -}}
{{- $access := dict }}
{{- range .Values.operator.secretAccess }}
{{- $names := get $access .namespace | default list }}
{{- if or (not .names) (and (hasKey $access .namespace) (not (get $access .namespace))) }}
{{- $_ := set $access .namespace list }}
{{- else }}
{{- $_ := set $access .namespace (concat $names .names | uniq) }}
{{- end }}
{{- end }}
{{- range .Values.modelSources }}
{{- $spec := .spec | default dict }}
{{- $refs := list }}
{{- with $spec.huggingFace }}{{ with .tokenSecretRef }}{{ $refs = append $refs . }}{{ end }}{{ end }}
{{- with $spec.s3 }}{{ with .credentialsSecretRef }}{{ $refs = append $refs . }}{{ end }}{{ end }}
{{- range $refs }}
{{- if hasKey $access .namespace }}
{{- $names := get $access .namespace }}
{{- if $names }}{{ $_ := set $access .namespace (append $names .name | uniq) }}{{ end }}
{{- else }}
{{- $_ := set $access .namespace (list .name) }}
{{- end }}
{{- end }}
{{- end }}
{{- toJson $access }}
{{- end }}

{{- /* Where the operator keeps the verdicts' ML-BOMs (ConfigMaps). */ -}}
{{- define "modelsec.bomNamespace" -}}{{ .Values.operator.boms.namespace | default .Release.Namespace }}{{- end }}
