"""One AdmissionReview in, one out: the request handling around the decision."""

from __future__ import annotations

import json
from typing import Any

import pytest
from webhook_helpers import SHA, group, pod, review, scan, source, view

from modelsec_webhook import admission as admission_module
from modelsec_webhook.admission import Admission, AdmissionSettings, BadReview
from modelsec_webhook.decision import Decision

PINNED = f"hf://org/model@{SHA}"


class Recorder:
    def __init__(self) -> None:
        self.scans: list[tuple[Decision, str]] = []
        self.events: list[tuple[Decision, dict[str, str]]] = []


def make(*objects: dict[str, Any], ready: bool = True, **group_args: Any) -> tuple[Admission, Recorder]:
    recorded = Recorder()
    v = view(source("hub"), group("g-hub", "hub", **group_args), *objects)
    adm = Admission(
        v,
        AdmissionSettings(),
        request_scans=lambda d, by: recorded.scans.append((d, by)),
        record_events=lambda d, o: recorded.events.append((d, o)),
        staleness=lambda: None if ready else "the admission webhook is starting and has not synced",
    )
    return adm, recorded


def response(answer: Any) -> dict[str, Any]:
    document = json.loads(answer.body)
    assert document["apiVersion"] == "admission.k8s.io/v1" and document["kind"] == "AdmissionReview"
    return document["response"]


@pytest.mark.parametrize(
    "body, problem",
    [
        (b"not json", "not JSON"),
        (b"[]", "expected an AdmissionReview"),
        (
            json.dumps(
                {"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview", "request": {}}
            ).encode(),
            r"admissionReviewVersions: \[v1\]",
        ),
        (
            json.dumps(
                {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {}}
            ).encode(),
            "request.uid",
        ),
    ],
)
def test_malformed_reviews_are_refused(body: bytes, problem: str) -> None:
    adm, _ = make()
    with pytest.raises(BadReview, match=problem):
        adm.review(body)


def test_pod_without_models_is_allowed_with_the_minimal_response() -> None:
    adm, recorded = make()
    answer = adm.review(review(pod(None), uid="u-1"))
    assert response(answer) == {"uid": "u-1", "allowed": True}
    assert (answer.allowed, answer.reason, answer.models) == (True, "no-models", False)


def test_blocked_model_is_denied_with_403_and_the_message() -> None:
    adm, _ = make(scan("hf://org/model", SHA, "g-hub", "BLOCKED", failed=["LoadTimeCodeExecution"]))
    out = response(adm.review(review(pod(PINNED), uid="u-2")))
    assert out["uid"] == "u-2" and out["allowed"] is False
    assert out["status"]["code"] == 403 and out["status"]["reason"] == "Forbidden"
    assert "LoadTimeCodeExecution failed" in out["status"]["message"]


def test_allowed_model_response_carries_warnings_and_audit_annotations() -> None:
    adm, _ = make(scan("hf://org/model", SHA, "g-hub", "ALLOWED", warned=["ApprovedFormats"]))
    out = response(adm.review(review(pod(PINNED))))
    assert out["allowed"] is True and out["warnings"] and "judgements" in out["auditAnnotations"]


def test_pending_model_requests_a_scan_naming_the_workload() -> None:
    adm, recorded = make()
    answer = adm.review(review(pod(PINNED, name="web-1")))
    assert not answer.allowed
    ((decision, requested_by),) = recorded.scans
    assert requested_by == "Pod team-a/web-1 (CREATE by alice)" and decision.scans


def test_dry_run_has_no_side_effects_and_says_so() -> None:
    adm, recorded = make()
    out = response(adm.review(review(pod(PINNED), dry_run=True)))
    assert out["allowed"] is False and "dry run: no ModelScan was created" in out["status"]["message"]
    assert recorded.scans == [] and recorded.events == []


def test_audit_mode_records_an_event_about_the_workload() -> None:
    blocked = scan("hf://org/model", SHA, "g-hub", "BLOCKED", failed=["X"])
    adm, recorded = make(blocked, enforcement={"mode": "Audit"})
    obj = pod(PINNED, name="web-2")
    obj["metadata"]["uid"] = "pod-uid"
    assert response(adm.review(review(obj)))["allowed"] is True
    ((_, involved),) = recorded.events
    assert involved == {
        "apiVersion": "v1",
        "kind": "Pod",
        "name": "web-2",
        "namespace": "team-a",
        "uid": "pod-uid",
    }


def test_exempt_namespaces_are_not_judged() -> None:
    adm, recorded = make()
    answer = adm.review(review(pod(PINNED), namespace="kube-system"))
    assert answer.allowed and answer.reason == "exempt" and recorded.scans == []


@pytest.mark.parametrize("operation", ["DELETE", "CONNECT"])
def test_other_operations_pass(operation: str) -> None:
    adm, _ = make()
    assert adm.review(review(pod(PINNED), operation=operation)).allowed


def test_kinds_the_webhook_is_not_registered_for_are_denied() -> None:
    # The configuration never routes ConfigMaps here: a review of one is not understood.
    adm, _ = make()
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "x", "annotations": {"modelsec.io/models": PINNED}},
    }
    out = response(adm.review(review(cm)))
    assert out["allowed"] is False and "not a kind this webhook is registered for" in out["status"]["message"]


def test_update_that_keeps_the_models_passes_even_if_now_blocked() -> None:
    adm, recorded = make(scan("hf://org/model", SHA, "g-hub", "BLOCKED", failed=["X"]))
    old = pod(PINNED)
    new = json.loads(json.dumps(old))
    new["metadata"]["labels"] = {"touched": "yes"}
    answer = adm.review(review(new, operation="UPDATE", old=old))
    assert answer.allowed and answer.reason == "unchanged"
    # A different spelling of the same references is unchanged too.
    respelled = pod(f"  {PINNED} ")
    assert adm.review(review(respelled, operation="UPDATE", old=old)).reason == "unchanged"
    assert recorded.scans == []


def test_update_that_adds_a_model_is_judged() -> None:
    adm, recorded = make()
    answer = adm.review(review(pod(f"{PINNED},hf://org/new@{SHA}"), operation="UPDATE", old=pod(PINNED)))
    assert not answer.allowed and answer.reason == "judged" and recorded.scans


def test_before_the_first_sync_models_are_denied_and_plain_pods_pass() -> None:
    adm, _ = make(ready=False)
    assert adm.review(review(pod(None))).allowed
    out = response(adm.review(review(pod(PINNED))))
    assert out["allowed"] is False and "has not synced" in out["status"]["message"]


def test_internal_errors_fail_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: Any, **__: Any) -> Decision:
        raise KeyError("boom")

    monkeypatch.setattr(admission_module, "decide", broken)
    adm, _ = make()
    out = response(adm.review(review(pod(PINNED), uid="u-9")))
    assert out["uid"] == "u-9" and out["allowed"] is False
    assert "internal error (KeyError); failing closed" in out["status"]["message"]


def test_decisions_and_judgements_are_cached_until_the_view_changes() -> None:
    adm, _ = make()
    body = review(pod(PINNED))
    assert not adm.review(body).allowed
    assert len(adm.caches.decisions.entries) == 1 and len(adm.caches.judgements) == 1
    adm.review(body)
    assert len(adm.caches.decisions.entries) == 1
    adm.view.set_scan(scan("hf://org/model", SHA, "g-hub", "ALLOWED"))
    adm.view._changed()
    assert adm.caches.decisions.entries == {} and len(adm.caches.judgements) == 0
    assert adm.review(body).allowed


def test_namespace_relabel_changes_the_decision() -> None:
    adm, _ = make(scan("hf://org/model", SHA, "g-hub", "BLOCKED", failed=["X"]))
    body = review(pod(PINNED))
    assert not adm.review(body).allowed
    adm.view.set_namespace({"metadata": {"name": "team-a", "labels": {"team": "z"}}})
    assert adm.review(body).allowed


def test_deployment_and_inference_service() -> None:
    adm, _ = make(scan("hf://org/model", SHA, "g-hub", "BLOCKED", failed=["X"]))
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d"},
        "spec": {
            "template": {
                "metadata": {},
                "spec": {
                    "containers": [
                        {
                            "name": "vllm",
                            "image": "vllm/vllm-openai",
                            "args": ["org/model", "--revision", SHA],
                        }
                    ]
                },
            }
        },
    }
    isvc = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "i"},
        "spec": {"predictor": {"model": {"storageUri": f"hf://org/model:{SHA}"}}},
    }
    assert not adm.review(review(deployment)).allowed
    assert not adm.review(review(isvc)).allowed


def test_extractions_are_cached_by_exactly_what_extractors_read() -> None:
    adm, _ = make()
    base = pod(
        PINNED,
        {
            "name": "vllm",
            "image": "vllm/vllm-openai",
            "args": ["org/a"],
            "volumeMounts": [{"name": "kube-api-access-abcde", "mountPath": "/var/run"}],
        },
        name="web-1",
    )
    first = adm.caches.extraction("Pod", base)
    replica = json.loads(json.dumps(base))
    replica["metadata"]["name"] = "web-2"
    replica["spec"]["containers"][0]["volumeMounts"][0]["name"] = "kube-api-access-fghij"
    assert adm.caches.extraction("Pod", replica) is first and len(adm.caches.extractions.entries) == 1
    for field, value in (
        ("args", ["org/b"]),
        ("image", "other"),
        ("name", "x"),
        ("command", ["sh"]),
        ("env", [{"name": "MODEL_ID", "value": "org/c"}]),
        ("modelFormat", {"name": "huggingface"}),
    ):
        changed = json.loads(json.dumps(base))
        changed["spec"]["containers"][0][field] = value
        adm.caches.extraction("Pod", changed)
    assert len(adm.caches.extractions.entries) == 7


def test_extraction_cache_ignores_annotations_extractors_do_not_read() -> None:
    adm, _ = make()
    base = pod(PINNED)
    first = adm.caches.extraction("Pod", base)
    noisy = json.loads(json.dumps(base))
    noisy["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] = "{...}" * 1000
    assert adm.caches.extraction("Pod", noisy) is first
    other = json.loads(json.dumps(base))
    other["metadata"]["annotations"]["internal.serving.kserve.io/storage-initializer-sourceuri"] = "s3://b/k"
    assert adm.caches.extraction("Pod", other) is not first


def test_update_that_moves_a_model_to_another_container_is_unchanged() -> None:
    adm, recorded = make()
    old = pod(None, {"name": "server", "image": "vllm/vllm-openai", "args": ["org/model", "--revision", SHA]})
    new = pod(
        None, {"name": "renamed", "image": "vllm/vllm-openai", "args": ["org/model", "--revision", SHA]}
    )
    assert adm.review(review(new, operation="UPDATE", old=old)).reason == "unchanged"
    assert recorded.scans == []
