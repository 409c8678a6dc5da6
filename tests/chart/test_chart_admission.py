"""The chart's parts for issue 13's admission side: the MutatingWebhookConfiguration of
/mutate (rules from the manifest module, failing closed, reinvoked), the webhook's
verifier image and first-deploy flags. (The webhook's behaviour through a real API
server: tests/webhook/test_admission_side_cluster.py.)"""

from __future__ import annotations

from typing import Any

from chart_helpers import NAMESPACE, Helm, kinds


def _webhook_args(documents: list[dict[str, Any]]) -> list[str]:
    (deployment,) = [d for d in kinds(documents, "Deployment") if d["metadata"]["name"].endswith("-webhook")]
    return deployment["spec"]["template"]["spec"]["containers"][0]["args"]


def test_the_mutating_configuration_comes_from_the_manifest_module(helm: Helm) -> None:
    from modelsec_webhook import manifest

    source = manifest.render_mutating(manifest.client_config(service=(NAMESPACE, "x")))["webhooks"][0]
    documents = helm.render()
    (config,) = kinds(documents, "MutatingWebhookConfiguration")
    hook = config["webhooks"][0]
    for key in (
        "name",
        "rules",
        "matchPolicy",
        "sideEffects",
        "admissionReviewVersions",
        "reinvocationPolicy",
    ):
        assert hook[key] == source[key], key
    assert hook["name"] == "pin.models.modelsec.io" and hook["reinvocationPolicy"] == "IfNeeded"
    assert hook["clientConfig"]["service"]["path"] == "/mutate" and hook["clientConfig"]["caBundle"]
    assert hook["failurePolicy"] == "Fail" and hook["timeoutSeconds"] == 15
    (validating,) = kinds(documents, "ValidatingWebhookConfiguration")
    assert hook["namespaceSelector"] == validating["webhooks"][0]["namespaceSelector"]
    assert hook["clientConfig"]["caBundle"] == validating["webhooks"][0]["clientConfig"]["caBundle"]
    assert not any("pods/ephemeralcontainers" in r["resources"] for r in hook["rules"])


def test_the_webhook_gets_the_verifier_image_and_the_first_deploy_settings(helm: Helm) -> None:
    documents = helm.render("--set", "image.digest=sha256:" + "ab" * 32)
    args = _webhook_args(documents)
    (image,) = [a.split("=", 1)[1] for a in args if a.startswith("--verifier-image=")]
    assert image.endswith("@sha256:" + "ab" * 32)  # the chart's own image, by digest
    assert "--first-deploy-margin=2" in args and "--first-deploy-max-waiting=32" in args
    args = _webhook_args(
        helm.render(
            "--set",
            "webhook.firstDeploy.enabled=false",
            "--set",
            "webhook.mutating.verifierImage=registry.example/v:1",
        )
    )
    assert "--no-first-deploy-wait" in args and "--verifier-image=registry.example/v:1" in args


def test_the_mutating_configuration_can_be_left_out(helm: Helm) -> None:
    assert not kinds(helm.render("--set", "webhook.mutating.enabled=false"), "MutatingWebhookConfiguration")


def test_cert_manager_injects_the_ca_into_both(helm: Helm) -> None:
    documents = helm.render("--set", "certManager.enabled=true")
    for kind in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"):
        (config,) = kinds(documents, kind)
        assert config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"].startswith(NAMESPACE + "/")
