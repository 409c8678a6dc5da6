"""AdmissionReview parsing and answering (webhook/modelsec_webhook): body -> review ->
extraction -> decision -> response, against a view with a group that covers the
namespace and a BLOCKED scan. Caches are off so that each input is judged on its own."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

from harness import OracleFailure, Target, import_test_helpers
from json_mutator import mutate_json

import_test_helpers("webhook")
from webhook_helpers import SHA, group, pod, review, scan, source, view  # noqa: E402

from modelsec_webhook.admission import Admission, AdmissionSettings, BadReview  # noqa: E402

logging.getLogger("modelsec_webhook").setLevel(logging.CRITICAL)  # denials log one line each
logging.getLogger("modelsec").setLevel(logging.CRITICAL)

BLOCKED = f"hf://org/model@{SHA}"
ADMISSION = Admission(
    view(
        source("hub"),
        group("g-hub", "hub"),
        scan("hf://org/model", SHA, "g-hub", "BLOCKED", failed=["LoadTimeCodeExecution"]),
    ),
    AdmissionSettings(cache_bytes=0),
)


def run(data: bytes) -> None:
    answer = ADMISSION.review(data)  # BadReview: not an AdmissionReview at all (HTTP 400)
    try:
        response = json.loads(answer.body)["response"]
    except (ValueError, KeyError, TypeError) as exc:
        raise OracleFailure(f"answer is not an AdmissionReview response: {exc}") from None
    if not isinstance(response.get("uid"), str) or not isinstance(response.get("allowed"), bool):
        raise OracleFailure("answer without a uid or an allowed flag")
    if answer.reason == "internal-error":
        raise OracleFailure(f"internal error: {response.get('status', {}).get('message', '')[:80]}")


def _seeds() -> Iterator[bytes]:
    vllm = {"name": "v", "image": "vllm/vllm-openai", "args": ["--model", "org/model", "--revision", SHA]}
    shell = {
        "name": "s",
        "image": "busybox",
        "command": ["sh", "-c", f"vllm serve org/model --revision {SHA}"],
        "env": [{"name": "MODEL", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "model"}}}],
    }
    yield review(pod(BLOCKED))
    yield review(pod(None, vllm))
    yield review(pod(None, shell), operation="UPDATE", old=pod(None))
    yield review(pod("models/x.pkl"), dry_run=True)
    yield review(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "d"},
            "spec": {
                "template": {
                    "metadata": {"annotations": {"modelsec.io/models": BLOCKED}},
                    "spec": {"containers": [vllm]},
                }
            },
        },
        kind="Deployment",
    )
    yield review(pod(BLOCKED), namespace="team-b", uid="u\u00e9")
    yield json.dumps(
        {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "x",
                "operation": "UPDATE",
                "subResource": "ephemeralcontainers",
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "namespace": "team-a",
                "object": pod(None, vllm),
                "oldObject": pod(None),
            },
        }
    ).encode()


TARGET = Target(
    name="admission",
    run=run,
    seeds=_seeds,
    mutator=mutate_json,
    max_len=16 << 10,
    expected=(BadReview,),
    tokens=(
        b'"request"',
        b'"object"',
        b'"oldObject"',
        b'"containers"',
        b'"initContainers"',
        b'"ephemeralContainers"',
        b'"annotations"',
        b'"modelsec.io/models"',
        b'"args"',
        b'"command"',
        b'"env"',
        b'"valueFrom"',
        b'"configMapKeyRef"',
        b'"operation"',
        b'"UPDATE"',
        b"\\ud800",
        b"hf://",
        b"s3://",
        b"file:///",
        b"sh",
        b"-c",
        b"$(",
        b"${",
    ),
)
