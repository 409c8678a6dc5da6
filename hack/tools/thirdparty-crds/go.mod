// Pins the modules whose CustomResourceDefinitions the chart's optional objects use
// (cert-manager's Certificate and Issuer; the Prometheus Operator's ServiceMonitor and
// PrometheusRule), so that tests/chart can apply the rendered chart to the local API
// server with `kubectl apply --dry-run=server` against the real schemas.
// hack/thirdparty-crds.sh downloads them (go mod download, checked against go.sum) and
// copies the CRD files out. Nothing here is built.
module modelsec.local/hack/tools/thirdparty-crds

go 1.26.0

require (
	github.com/cert-manager/cert-manager v1.21.2
	github.com/prometheus-operator/prometheus-operator v0.85.0
)
