"""Reviews the webhook cannot understand are denied with a reason, and hostile requests
get a clean answer and one log line (issue 10, items 4 and 8). Each of these was admitted,
or answered with HTTP 500 and a traceback, before."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given, settings
from hypothesis import strategies as st
from kubernetes.client import Configuration
from webhook_helpers import SHA, group, pod, review, scan, source, view

from modelsec_webhook.admission import Admission, AdmissionSettings, BadReview
from modelsec_webhook.kubeapi import KubeAPI
from modelsec_webhook.review import member, metadata_of
from modelsec_webhook.server import ServerConfig, Webhook

PINNED = f"hf://org/model@{SHA}"


def admission() -> Admission:
    blocked = scan("hf://org/model", SHA, "g-hub", "BLOCKED", failed=["LoadTimeCodeExecution"])
    return Admission(view(source("hub"), group("g-hub", "hub"), blocked), AdmissionSettings())


ADMISSION = admission()


def answer(body: bytes) -> dict[str, Any]:
    return json.loads(admission().review(body).body)["response"]


def request_of(**changes: Any) -> bytes:
    document = json.loads(review(pod(PINNED)))
    for key, value in changes.items():
        if value is ...:
            document["request"].pop(key, None)
        else:
            document["request"][key] = value
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    "changes, reason",
    [
        ({"operation": ...}, "request.operation (missing) is not one of"),
        ({"operation": "CRAETE"}, "request.operation 'CRAETE' is not one of"),
        ({"operation": ["CREATE"]}, "request.operation (a JSON list)"),
        ({"kind": ...}, "request.kind must be an object"),
        (
            {"kind": {"group": "", "version": "v1", "kind": "Pdo"}},
            "'/Pdo' is not a kind this webhook is registered for",
        ),
        ({"kind": {"group": "", "version": "v1", "kind": "Deployment"}}, "'/Deployment' is not a kind"),
        ({"kind": "Pod"}, "request.kind must be an object"),
        ({"namespace": ...}, "request.namespace must name the namespace"),
        ({"namespace": 7}, "request.namespace must name the namespace"),
        ({"object": ...}, "request.object must be an object for CREATE"),
        ({"object": [pod(PINNED)]}, "request.object must be an object for CREATE"),
        ({"operation": "UPDATE", "oldObject": None}, "request.oldObject must be an object for UPDATE"),
        ({"subResource": "status"}, "request.subResource 'status' of Pod is not one"),
        ({"dryRun": "yes"}, "request.dryRun must be true or false"),
    ],
)
def test_reviews_that_cannot_be_understood_are_denied_with_the_reason(
    changes: dict[str, Any], reason: str
) -> None:
    out = answer(request_of(**changes))
    assert out["uid"] == "uid-1" and out["allowed"] is False, out
    assert reason in out["status"]["message"] and "failing closed" in out["status"]["message"]


@pytest.mark.parametrize(
    "obj, reason",
    [
        (
            {**pod(None), "metadata": {"annotations": {"modelsec.io/models": [PINNED]}}},
            "metadata.annotations['modelsec.io/models'] is not a string",
        ),
        ({**pod(None), "spec": {"containers": ["vllm serve org/m"]}}, "spec.containers[0] is not an object"),
        ({**pod(None), "spec": {"containers": {"name": "c"}}}, "spec.containers is not a list of objects"),
        (
            {**pod(None), "spec": {"containers": [{"name": "c", "args": ["x", 5]}]}},
            "spec.containers[0].args[1] is not a string",
        ),
        ({**pod(None), "metadata": "x"}, "metadata is not an object"),
    ],
)
def test_objects_kubernetes_never_sends_are_denied_naming_the_field(obj: dict[str, Any], reason: str) -> None:
    out = answer(review(obj))
    assert out["allowed"] is False and f"the object cannot be read: {reason}" in out["status"]["message"]


def test_metadata_members_of_the_wrong_type_count_as_absent() -> None:
    owner = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": 7, "controller": True}
    meta = metadata_of(
        {"metadata": {"name": 5, "uid": "u", "annotations": ["a"], "ownerReferences": [owner, "x"]}}
    )
    assert meta == {
        "uid": "u",
        "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "controller": True}
        ],
    }
    assert metadata_of({"metadata": "x"}) == {} and metadata_of(None) == {}
    assert member({"a": {"b": 1}}, "a", "b") == 1 and member({"a": [1]}, "a", "b") is None


def test_unparseable_bodies_are_bad_reviews() -> None:
    deep = b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": ' + b"[" * 100_000
    for body, problem in (
        (deep, "nested too deeply"),
        (b"[" * 5000 + b"]" * 5000, "nested too deeply"),
        (b"\xff\xfe{", "not JSON"),
        (b"{}", "expected an AdmissionReview"),
    ):
        with pytest.raises(BadReview, match=problem):
            admission().review(body)


def test_a_lone_surrogate_is_denied_not_crashed_on() -> None:
    body = request_of().replace(b'"name": "p"', b'"name": "p\\ud800"')
    assert b"\\ud800" in body
    out = answer(body)
    assert out["allowed"] is False and "lone surrogate" in out["status"]["message"]
    escaped_pair = request_of().replace(b'"name": "p"', b'"name": "p\\ud83d\\ude00"')
    assert answer(escaped_pair)["allowed"] is False  # a valid pair: judged (BLOCKED) as usual


def test_an_ephemeral_container_added_by_kubectl_debug_is_judged() -> None:
    old = pod(None)
    new = json.loads(json.dumps(old))
    new["spec"]["ephemeralContainers"] = [
        {"name": "debugger", "image": "python", "command": ["vllm", "serve", "org/model", "--revision", SHA]}
    ]
    body = json.loads(review(new, operation="UPDATE", old=old))
    body["request"]["subResource"] = "ephemeralcontainers"
    out = answer(json.dumps(body).encode())
    assert (
        out["allowed"] is False
        and "container debugger: vllm serve <model>) is BLOCKED" in out["status"]["message"]
    )


# --- the HTTP server: status codes and log lines ----------------------------------------------


@pytest.fixture
async def client() -> Any:
    configuration = Configuration()
    configuration.host = "https://127.0.0.1:1"  # never called: no informer runs here
    hook = Webhook(ServerConfig(), KubeAPI(configuration))
    hook.admission.staleness = lambda: None
    async with TestClient(TestServer(hook.admission_app())) as test_client:
        yield test_client
    await hook.api.close()


HOSTILE = [
    b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":'
    + b"[" * 990
    + b"]" * 990
    + b"}",
    b"[" * 100_000,
    b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u\\udc80"}}',
    request_of(name=b"\\ud800".decode("unicode_escape")),
    request_of().replace(b'"name": "p"', b'"name": "\\udfff"'),
    b"\x00\x01\x02",
    b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","object":'
    + b'{"a":' * 900
    + b"1"
    + b"}" * 900
    + b"}}",
]


@pytest.mark.parametrize("body", HOSTILE, ids=range(len(HOSTILE)))
async def test_hostile_requests_get_a_clean_answer_and_one_log_line(
    client: Any, body: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    response = await client.post("/validate", data=body)
    text = await response.text()
    assert response.status in (200, 400), text
    if response.status == 200:
        assert json.loads(text)["response"]["allowed"] is False
    # (the test client logs access lines; the webhook runs without an access log)
    records = [
        r
        for r in caplog.records
        if r.name.startswith("modelsec") or r.name in ("aiohttp.server", "aiohttp.web")
    ]
    assert len(records) == 1, [r.getMessage() for r in records]
    assert records[0].exc_info is None and "Traceback" not in caplog.text
    assert "\n" not in records[0].getMessage()


async def test_an_ordinary_review_still_works_through_the_server(client: Any) -> None:
    response = await client.post("/validate", data=review(pod(None)))
    assert response.status == 200 and json.loads(await response.text())["response"]["allowed"] is True


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=25,
)
request_fields = st.fixed_dictionaries(
    {"uid": st.text(max_size=8)},
    optional={
        "operation": st.sampled_from(["CREATE", "UPDATE", "DELETE", "CONNECT", "X"]) | json_values,
        "kind": st.fixed_dictionaries(
            {
                "group": st.sampled_from(["", "apps", "batch"]),
                "version": st.just("v1"),
                "kind": st.sampled_from(["Pod", "Deployment", "CronJob", "ConfigMap"]),
            }
        )
        | json_values,
        "namespace": st.sampled_from(["team-a", "team-b", ""]) | json_values,
        "subResource": st.sampled_from(["", "ephemeralcontainers", "status"]) | json_values,
        "object": st.fixed_dictionaries({}, optional={"metadata": json_values, "spec": json_values})
        | json_values,
        "oldObject": json_values,
        "dryRun": json_values,
        "userInfo": json_values,
        "name": json_values,
    },
)


@settings(max_examples=400, deadline=None)
@given(request=request_fields)
def test_any_review_gets_an_answer_never_an_exception(request: dict[str, Any]) -> None:
    body = json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request})
    answer = ADMISSION.review(body.encode())
    out = json.loads(answer.body)["response"]
    assert out["uid"] == request["uid"]
    assert answer.reason != "internal-error", out
