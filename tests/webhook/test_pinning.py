"""The mutating webhook's decisions (pinning, verifiers) and the validating webhook's
checks of its work, on views built from API objects. What the API server does with the
patch is shown by tests/webhook/test_admission_side_cluster.py."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import pytest
from webhook_helpers import SHA, group, review, scan, source, view

from modelsec.k8s.naming import scan_name
from modelsec_webhook.admission import Admission, AdmissionSettings, Answer
from modelsec_webhook.mutation import PINNED_ANNOTATION, MutateAnswer, Mutator, pointer
from modelsec_webhook.review import parse
from modelsec_webhook.verifier import API_VOLUME, PREFIX

IMAGE = "registry.example/modelsec@sha256:" + "ab" * 32
PIN = {"mode": "Enforce", "pin": True}


def apply_patch(obj: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    """RFC 6902 add/replace, as the API server applies the webhook's patch."""
    out = copy.deepcopy(obj)
    for op in ops:
        assert op["op"] in ("add", "replace"), op
        steps = [s.replace("~1", "/").replace("~0", "~") for s in op["path"].split("/")[1:]]
        target = out
        for step in steps[:-1]:
            target = target[int(step)] if isinstance(target, list) else target[step]
        last = steps[-1]
        if isinstance(target, list):
            target[int(last)] = op["value"]
        else:
            assert op["op"] == "add" or last in target, f"replace of a missing member: {op['path']}"
            target[last] = op["value"]
    return out


def mutated(admission: Admission, obj: dict[str, Any], **kw: Any) -> tuple[MutateAnswer, dict[str, Any]]:
    request = parse(review(obj, **kw))
    answer = Mutator(admission).answer(request)
    assert isinstance(answer, MutateAnswer)
    response = json.loads(answer.body)["response"]
    assert response["allowed"] is True
    ops = json.loads(base64.b64decode(response["patch"])) if "patch" in response else []
    return answer, apply_patch(obj, ops)


def validated(admission: Admission, obj: dict[str, Any]) -> tuple[Answer, dict[str, Any]]:
    answer = admission.review(review(obj))
    return answer, json.loads(answer.body)["response"]


def hub_view(enforcement: dict[str, Any], revision: str | None = SHA, phase: str = "Completed") -> Admission:
    objects = [source("hub"), group("g", "hub", enforcement=enforcement)]
    if phase:
        record = scan(
            "hf://acme/m", None, "g", phase=phase, outcome="ALLOWED" if phase == "Completed" else None
        )
        if revision:
            record["status"]["revision"] = revision
        objects.append(record)
    return Admission(view(*objects), AdmissionSettings(verifier_image=IMAGE))


def vllm_pod(*args: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "llm", "annotations": {"modelsec.io/models": "hf://acme/m"}},
        "spec": {"containers": [{"name": "vllm", "image": "vllm/vllm-openai", "args": ["acme/m", *args]}]},
    }


def test_references_are_pinned_to_the_revision_the_scan_read_and_then_admitted() -> None:
    admission = hub_view(PIN)
    answer, pinned = mutated(admission, vllm_pod("--max-model-len", "4096"))
    assert answer.reason == "pinned" and not answer.waiting
    assert pinned["metadata"]["annotations"]["modelsec.io/models"] == f"hf://acme/m@{SHA}"
    assert pinned["spec"]["containers"][0]["args"] == [
        "acme/m",
        "--max-model-len",
        "4096",
        f"--revision={SHA}",
    ]
    records = json.loads(pinned["metadata"]["annotations"][PINNED_ANNOTATION])
    assert {(r["model"], r["revision"], r["group"]) for r in records} == {("hf://acme/m", SHA, "g")}
    assert {r["at"] for r in records} == {
        "annotation modelsec.io/models",
        "container vllm: vllm serve <model>",
    }
    # The pinned references are judged by the scan that read that commit: admitted.
    result, response = validated(admission, pinned)
    assert result.allowed, response
    # A second pass (reinvocation, an UPDATE) has nothing left to do.
    again, same = mutated(admission, pinned)
    assert again.reason == "none" and same == pinned


def test_an_unpinned_reference_that_could_have_been_pinned_is_denied() -> None:
    admission = hub_view(PIN)
    result, response = validated(admission, vllm_pod())
    assert not result.allowed
    message = response["status"]["message"]
    assert "is not pinned" in message and SHA in message and "pin.models.modelsec.io" in message
    # Where no revision can be written (a shell script), nothing is asked of the workload.
    script = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "s"},
        "spec": {
            "containers": [
                {"name": "v", "image": "vllm/vllm-openai", "command": ["sh", "-c", "vllm serve acme/m"]}
            ]
        },
    }
    answer, unchanged = mutated(admission, script)
    assert unchanged == script and any(
        "shell script" in w for w in json.loads(answer.body)["response"]["warnings"]
    )
    result, _ = validated(admission, script)
    assert result.allowed


def test_warn_mode_warns_about_an_unpinned_reference() -> None:
    admission = hub_view({"mode": "Warn", "pin": True})
    result, response = validated(admission, vllm_pod())
    assert result.allowed and any("not pinned" in w for w in response["warnings"])


def test_without_pin_nothing_is_patched() -> None:
    admission = hub_view({"mode": "Enforce"})
    answer, same = mutated(admission, vllm_pod())
    assert answer.reason == "not-needed" and same == vllm_pod()
    result, _ = validated(admission, vllm_pod())
    assert result.allowed


def test_a_model_without_a_verdict_waits_for_one_to_be_pinned() -> None:
    admission = hub_view(PIN, phase="")
    answer, same = mutated(admission, vllm_pod())
    assert same == vllm_pod() and [j.scan for j in answer.waiting] == [scan_name("hf://acme/m", None, "g")]
    running = hub_view(PIN, revision=None, phase="Running")
    answer, _ = mutated(running, vllm_pod())
    assert len(answer.waiting) == 1


def test_a_dry_run_is_pinned_too() -> None:
    admission = hub_view(PIN)
    _answer, pinned = mutated(admission, vllm_pod(), dry_run=True)
    assert pinned["spec"]["containers"][0]["args"][-1] == f"--revision={SHA}"


def test_json_pointers_escape_annotation_keys() -> None:
    assert (
        pointer(("metadata", "annotations", "modelsec.io/pinned"))
        == "/metadata/annotations/modelsec.io~1pinned"
    )
    assert pointer(("a~b", 0)) == "/a~0b/0"


# --- verifyAtStart ---------------------------------------------------------------------------

MODEL = "/models/team/bert"


def local_view(enforcement: dict[str, Any], image: str | None = IMAGE) -> Admission:
    record = scan(f"file://{MODEL}", None, "v")
    return Admission(
        view(
            source("local", "Local", path="/models/team"),
            group("v", "local", enforcement=enforcement),
            record,
        ),
        AdmissionSettings(verifier_image=image),
    )


def serving_pod(mount: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "server", "image": "vllm/vllm-openai", "args": [MODEL]}
    container["volumeMounts"] = [mount or {"name": "models", "mountPath": "/models"}]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "srv"},
        "spec": {
            "containers": [container],
            "volumes": [{"name": "models", "persistentVolumeClaim": {"claimName": "models"}}],
            **extra,
        },
    }


VERIFY = {"mode": "Enforce", "verifyAtStart": True}


def verifier_of(pod: dict[str, Any]) -> dict[str, Any]:
    found = [c for c in pod["spec"].get("initContainers", []) if c["name"].startswith(PREFIX)]
    assert len(found) == 1, pod["spec"].get("initContainers")
    return found[0]


def test_a_verifier_is_added_last_and_the_pod_admitted() -> None:
    admission = local_view(VERIFY)
    pod = serving_pod(initContainers=[{"name": "fetch", "image": "busybox"}])
    answer, with_verifier = mutated(admission, pod)
    assert answer.reason == "verifiers"
    init = with_verifier["spec"]["initContainers"]
    assert init[0]["name"] == "fetch" and init[-1]["name"].startswith(PREFIX)
    added = verifier_of(with_verifier)
    assert added["image"] == IMAGE and "command" not in added
    assert added["args"] == [
        "verify",
        MODEL,
        "--scan",
        scan_name(f"file://{MODEL}", None, "v"),
        "--no-progress",
    ]
    assert {"name": "models", "mountPath": "/models", "readOnly": True} in added["volumeMounts"]
    assert (
        added["securityContext"]["runAsNonRoot"] is True
        and added["securityContext"]["readOnlyRootFilesystem"]
    )
    assert any(v["name"] == API_VOLUME for v in with_verifier["spec"]["volumes"])
    result, response = validated(admission, with_verifier)
    assert result.allowed, response
    # Idempotent: a reinvocation leaves it as it is.
    _again, same = mutated(admission, with_verifier)
    assert same == with_verifier


@pytest.mark.parametrize(
    "tamper, why",
    [
        (lambda pod: pod["spec"]["initContainers"].pop(), "lacks its verifier"),
        (lambda pod: verifier_of(pod).__setitem__("args", ["verify", "/tmp", "--scan", "x"]), "args differ"),
        (lambda pod: verifier_of(pod).__setitem__("image", "busybox"), "image differ"),
        (lambda pod: verifier_of(pod).__setitem__("command", ["true"]), "command"),
        (
            lambda pod: verifier_of(pod).__setitem__(
                "env", [{"name": "KUBERNETES_SERVICE_HOST", "value": "10.0.0.9"}]
            ),
            "env",
        ),
        (lambda pod: verifier_of(pod).__setitem__("restartPolicy", "Always"), "restartPolicy"),
        (
            lambda pod: verifier_of(pod)["volumeMounts"][0].__setitem__("readOnly", False),
            "volume mounts differ",
        ),
        (
            lambda pod: pod["spec"]["initContainers"].append({"name": "late", "image": "busybox"}),
            "runs after it",
        ),
        (lambda pod: pod["spec"]["volumes"][-1]["projected"]["sources"].pop(0), API_VOLUME),
    ],
)
def test_a_pod_whose_verifier_was_removed_or_altered_is_denied(tamper: Any, why: str) -> None:
    admission = local_view(VERIFY)
    _answer, pod = mutated(admission, serving_pod())
    tamper(pod)
    result, response = validated(admission, pod)
    assert not result.allowed
    message = response["status"]["message"]
    assert "must be verified at start" in message and why in message, message


def test_models_that_cannot_be_verified_from_another_container_are_denied() -> None:
    admission = local_view(VERIFY)
    in_image = serving_pod()
    in_image["spec"]["containers"][0]["volumeMounts"] = []
    _answer, same = mutated(admission, in_image)
    assert same == in_image  # nothing to add
    result, response = validated(admission, in_image)
    assert not result.allowed and "is not on a volume of the Pod" in response["status"]["message"]
    expr = serving_pod({"name": "models", "mountPath": "/models", "subPathExpr": "$(POD)"})
    result, response = validated(admission, mutated(admission, expr)[1])
    assert not result.allowed and "subPathExpr" in response["status"]["message"]
    no_image = local_view(VERIFY, image=None)
    result, response = validated(no_image, mutated(no_image, serving_pod())[1])
    assert not result.allowed and "--verifier-image" in response["status"]["message"]


def test_verify_in_warn_mode_warns_and_nested_mounts_are_mounted_too() -> None:
    admission = local_view({"mode": "Warn", "verifyAtStart": True})
    pod = serving_pod()
    pod["spec"]["containers"][0]["volumeMounts"].append(
        {"name": "weights", "mountPath": f"{MODEL}/weights", "subPath": "bert"}
    )
    pod["spec"]["volumes"].append({"name": "weights", "emptyDir": {}})
    _answer, with_verifier = mutated(admission, pod)
    mounts = verifier_of(with_verifier)["volumeMounts"]
    assert {"name": "weights", "mountPath": f"{MODEL}/weights", "subPath": "bert", "readOnly": True} in mounts
    result, response = validated(admission, pod)  # without it: a warning, not a denial
    assert result.allowed and any("verif" in w for w in response["warnings"])


def test_an_update_that_swaps_the_verifier_image_is_judged() -> None:
    admission = local_view(VERIFY)
    _answer, pod = mutated(admission, serving_pod())
    swapped = copy.deepcopy(pod)
    verifier_of(swapped)["image"] = "busybox"
    answer = admission.review(review(swapped, operation="UPDATE", old=pod))
    assert not answer.allowed and b"image differ" in answer.body
    relabelled = copy.deepcopy(pod)
    relabelled["metadata"]["labels"] = {"x": "y"}
    assert admission.review(review(relabelled, operation="UPDATE", old=pod)).reason == "unchanged"


def test_revision_pinned_lets_a_pinning_group_scan_and_pin_what_it_can() -> None:
    """RevisionPinned (Blocking) with pin: true: a reference the mutating webhook can pin
    is scanned and pinned, not denied outright (that would leave it unscanned, so never
    pinned); one it cannot pin is denied by the rule as before."""
    rules = [
        {"name": "LoadTimeCodeExecution", "mode": "Blocking"},
        {"name": "RevisionPinned", "mode": "Blocking"},
    ]
    fresh = Admission(
        view(source("hub"), group("g", "hub", rules, enforcement=PIN)),
        AdmissionSettings(verifier_image=IMAGE),
    )
    answer, _ = mutated(fresh, vllm_pod())
    assert [j.status.value for j in answer.waiting] == ["PENDING"]  # its scan is asked for
    record = scan("hf://acme/m", None, "g")
    record["status"]["revision"] = SHA
    admission = Admission(
        view(source("hub"), group("g", "hub", rules, enforcement=PIN), record),
        AdmissionSettings(verifier_image=IMAGE),
    )
    _answer, pinned = mutated(admission, vllm_pod())
    result, response = validated(admission, pinned)
    assert result.allowed, response
    script = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "s"},
        "spec": {
            "containers": [
                {"name": "v", "image": "vllm/vllm-openai", "command": ["sh", "-c", "vllm serve acme/m"]}
            ]
        },
    }
    result, response = validated(admission, script)
    assert not result.allowed and "RevisionPinned failed" in response["status"]["message"]


def test_pod_updates_are_left_to_the_validating_webhook() -> None:
    admission = hub_view(PIN)
    answer, same = mutated(admission, vllm_pod(), operation="UPDATE", old=vllm_pod())
    assert answer.reason == "not-needed" and same == vllm_pod()


def test_s3_objects_are_pinned_to_version_ids_only() -> None:
    """A versioned bucket's object: pinned to the version id its scan read. An unversioned
    bucket (the scan read an ETag) or a prefix (the digest of its listing) has no version
    to pin to: nothing is rewritten, and nothing is asked of the workload."""
    for revision, pinned in (
        ("3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY", True),
        ("etag:abc:12", False),
        ("sha256:" + "0" * 64, False),
    ):
        record = scan("s3://bucket/m.pkl", None, "g")
        record["status"]["revision"] = revision
        admission = Admission(
            view(source("bucket", "S3", bucket="bucket"), group("g", "bucket", enforcement=PIN), record),
            AdmissionSettings(verifier_image=IMAGE),
        )
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "s3", "annotations": {"modelsec.io/models": "s3://bucket/m.pkl"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        }
        _answer, result = mutated(admission, pod)
        expected = f"s3://bucket/m.pkl@{revision}" if pinned else "s3://bucket/m.pkl"
        assert result["metadata"]["annotations"]["modelsec.io/models"] == expected
        allowed, response = validated(admission, result)
        assert allowed.allowed, response
