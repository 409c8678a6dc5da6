"""Red-team bypass: a workload's environment redirects its download (HF_ENDPOINT,
AWS_ENDPOINT_URL). The webhook judged the reference by the Hub's (or the bucket's) scan and
admitted a model the Pod would fetch from a server of its choosing. A redirected
reference is governed only by a ModelSource of that endpoint, and where none holds it, it
is unresolved: denied under an Enforce group. Each test failed before the fix."""

from __future__ import annotations

import json

from webhook_helpers import SHA, group, pod, review, scan, source, view

from modelsec.references import Extraction, Reference, to_model_ref
from modelsec_webhook.admission import Admission, AdmissionSettings, Answer
from modelsec_webhook.decision import decide

TEAM_A = {"team": "a", "kubernetes.io/metadata.name": "team-a"}
HF = "hf://org/model"


def redirected(text: str, endpoint: str, variable: str) -> Extraction:
    reference = Reference(
        to_model_ref(text), endpoint, ("container c: vllm serve <model>",), redirected_by=variable
    )
    return Extraction((reference,))


def test_hub_scan_does_not_judge_a_download_from_elsewhere() -> None:
    v = view(source("hub"), group("g-hub", "hub"), scan(HF, SHA, "g-hub", "ALLOWED"))
    decision = decide(redirected(f"{HF}@{SHA}", "https://evil.example", "HF_ENDPOINT"), "team-a", TEAM_A, v)
    assert not decision.allowed
    assert "HF_ENDPOINT=https://evil.example sends the download of" in decision.message
    assert "no ModelSource holds" in decision.message
    assert decision.judgements == ()


def test_a_mirror_source_of_that_endpoint_governs_it() -> None:
    v = view(
        source("hub"),
        source("mirror", endpoint="https://mirror.internal"),
        group("g-hub", "hub"),
        group("g-mirror", "mirror"),
        scan(HF, SHA, "g-mirror", "ALLOWED"),
        scan(HF, SHA, "g-hub", "BLOCKED", failed=["LoadTimeCodeExecution"]),
    )
    decision = decide(
        redirected(f"{HF}@{SHA}", "https://MIRROR.internal/", "HF_ENDPOINT"), "team-a", TEAM_A, v
    )
    assert decision.allowed, decision.message
    assert [j.group for j in decision.judgements] == ["g-mirror"]


def test_a_hub_source_naming_the_hub_does_not_govern_a_redirect() -> None:
    v = view(source("hub", endpoint="https://huggingface.co"), group("g-hub", "hub"))
    decision = decide(redirected(HF, "https://evil.example", "HF_ENDPOINT"), "team-a", TEAM_A, v)
    assert not decision.allowed and decision.judgements == ()


def test_s3_redirect_to_another_server_is_unresolved() -> None:
    v = view(source("store", "S3", bucket="models", endpoint="http://minio:9000"), group("g-s3", "store"))
    decision = decide(
        redirected("s3://models/llama", "http://evil:9000", "AWS_ENDPOINT_URL"), "team-a", TEAM_A, v
    )
    assert not decision.allowed
    assert "AWS_ENDPOINT_URL=http://evil:9000" in decision.message


def test_s3_redirect_to_the_source_endpoint_is_judged_by_it() -> None:
    v = view(source("store", "S3", bucket="models", endpoint="http://minio:9000"), group("g-s3", "store"))
    decision = decide(
        redirected("s3://models/llama", "http://minio:9000", "AWS_ENDPOINT_URL"), "team-a", TEAM_A, v
    )
    assert [j.group for j in decision.judgements] == ["g-s3"]


def test_a_redirect_where_no_group_covers_the_namespace_follows_the_unresolved_setting() -> None:
    v = view(source("hub"), group("g-hub", "hub", selector={"matchLabels": {"team": "b"}}))
    decision = decide(redirected(HF, "https://evil.example", "HF_ENDPOINT"), "team-a", TEAM_A, v)
    assert decision.allowed  # --unresolved-action Warn (the default): a warning
    assert any("HF_ENDPOINT" in w for w in decision.warnings)


def _admission(model: str) -> Admission:
    v = view(source("hub"), group("g-hub", "hub"), scan(model, None, "g-hub", "ALLOWED"))
    return Admission(v, AdmissionSettings())


def _response(adm: Admission, workload: dict[str, object]) -> dict[str, object]:
    answer = adm.answer(adm.parse(review(workload)))
    assert isinstance(answer, Answer)
    response: dict[str, object] = json.loads(answer.body)["response"]
    return response


def test_admission_of_a_pod_redirecting_an_allowed_model_is_denied() -> None:
    # The whole path: AdmissionReview -> extraction from the container -> decision.
    adm = _admission("hf://org/good")

    def admitted(env: list[dict[str, str]]) -> dict[str, object]:
        container = {"name": "s", "image": "python", "command": ["vllm", "serve", "org/good"], "env": env}
        return _response(adm, pod(None, container))

    assert admitted([])["allowed"] is True
    denied = admitted([{"name": "HF_ENDPOINT", "value": "https://evil.example"}])
    assert denied["allowed"] is False
    assert "HF_ENDPOINT=https://evil.example" in str(denied["status"])


def test_admission_of_an_annotated_model_a_container_redirects_is_denied() -> None:
    # The annotation names the model, not its program: any container's HF_ENDPOINT counts
    # (review of session 21: the annotation was judged by the Hub's scan whatever it said).
    adm = _admission("hf://org/good")

    def admitted(env: list[dict[str, str]]) -> dict[str, object]:
        container = {"name": "s", "image": "python", "command": ["python", "serve.py"], "env": env}
        return _response(adm, pod("hf://org/good", container))

    assert admitted([])["allowed"] is True
    denied = admitted([{"name": "HF_ENDPOINT", "value": "https://evil.example"}])
    assert denied["allowed"] is False
    assert "HF_ENDPOINT=https://evil.example" in str(denied["status"])
