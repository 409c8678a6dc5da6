{{/* The webhook's serving certificate in helm mode: a CA and a certificate for the Service
names, generated once and kept in the Secret across upgrades (lookup). An upgrade within
renewBeforeDays of expiry, or after the Service names changed, generates a new pair; the
caBundle of that release holds the old CA too, so pods still serving the old certificate
(the kubelet refreshes mounted Secrets within a minute or so, the webhook reloads them)
stay trusted. `helm template` has no cluster to look in: it always generates.

Computed once per render and shared by the Secret and the webhook configuration. */}}
{{- define "modelsec.webhook.helmTls" -}}
{{- if not (hasKey .Values "__modelsecHelmTls") }}
{{- $service := include "modelsec.webhook.name" . }}
{{- $fqdn := printf "%s.%s.svc" $service .Release.Namespace }}
{{- $names := list $service (printf "%s.%s" $service .Release.Namespace) $fqdn (printf "%s.cluster.local" $fqdn) }}
{{- $days := int .Values.webhook.tls.helm.validityDays }}
{{- $renewBy := now | dateModify (printf "+%dh" (mul (int .Values.webhook.tls.helm.renewBeforeDays) 24)) }}
{{- $secret := lookup "v1" "Secret" .Release.Namespace (include "modelsec.webhook.tlsSecret" .) }}
{{- $material := dict }}
{{- if and $secret $secret.data }}
{{- $annotations := $secret.metadata.annotations | default dict }}
{{- $notAfter := get $annotations "modelsec.io/not-after" }}
{{- if and $notAfter (eq (get $annotations "modelsec.io/dns-names") (join "," $names)) (hasKey $secret.data "ca.crt") }}
{{- if (toDate "2006-01-02T15:04:05Z07:00" $notAfter).After $renewBy }}
{{- $material = dict "crt" (index $secret.data "tls.crt" | b64dec) "key" (index $secret.data "tls.key" | b64dec) "ca" (index $secret.data "ca.crt" | b64dec) "notAfter" $notAfter "previousCa" "" }}
{{- end }}
{{- end }}
{{- end }}
{{- if not $material }}
{{- $ca := genCA (printf "%s-ca" $service) $days }}
{{- $cert := genSignedCert $fqdn nil $names $days $ca }}
{{- $previous := "" }}
{{- if and $secret $secret.data (hasKey $secret.data "ca.crt") }}{{ $previous = index $secret.data "ca.crt" | b64dec }}{{ end }}
{{- $material = dict "crt" $cert.Cert "key" $cert.Key "ca" $ca.Cert "previousCa" $previous "notAfter" (dateInZone "2006-01-02T15:04:05Z07:00" (now | dateModify (printf "+%dh" (mul $days 24))) "UTC") }}
{{- end }}
{{- $_ := set $material "dnsNames" (join "," $names) }}
{{- $_ := set .Values "__modelsecHelmTls" $material }}
{{- end }}
{{- toJson (get .Values "__modelsecHelmTls") }}
{{- end }}

{{/* The caBundle for the webhook configuration, base64; empty where cert-manager injects it
or --bootstrap-tls patches it. */}}
{{- define "modelsec.webhook.caBundle" -}}
{{- if .Values.certManager.enabled }}
{{- else if eq .Values.webhook.tls.mode "helm" }}
{{- $tls := include "modelsec.webhook.helmTls" . | fromJson }}
{{- printf "%s%s" $tls.ca $tls.previousCa | b64enc }}
{{- else if eq .Values.webhook.tls.mode "secret" }}
{{- required "webhook.tls.caBundle (base64 PEM of the CA) is required when webhook.tls.mode is secret" .Values.webhook.tls.caBundle }}
{{- end }}
{{- end }}
