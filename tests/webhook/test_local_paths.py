"""Admission of workloads naming Local models by relative paths, ``~``, and volumes
mounted elsewhere (docs/webhook.md, "Local paths")."""

from __future__ import annotations

import json
from typing import Any

from webhook_helpers import group, pod, review, scan, source, view

from modelsec_webhook.admission import Admission, AdmissionSettings, Answer, NeedConfigMaps

EVIL = "file:///models/team/evil.gguf"


def make(*extra: dict[str, Any], **local: Any) -> Admission:
    blocked = scan(EVIL, None, "g-local", "BLOCKED", failed=["LoadTimeCodeExecution"])
    v = view(
        source("local", "Local", path="/models/team", **local), group("g-local", "local"), blocked, *extra
    )
    return Admission(v, AdmissionSettings())


def decided(adm: Admission, obj: dict[str, Any]) -> dict[str, Any]:
    answer = adm.answer(adm.parse(review(obj)))
    assert not isinstance(answer, NeedConfigMaps)
    assert isinstance(answer, Answer)
    response: dict[str, Any] = json.loads(answer.body)["response"]
    return response


def llama(*args: str, **fields: Any) -> dict[str, Any]:
    return pod(None, {"name": "s", "image": "python", "command": ["llama-server", *args], **fields})


def test_a_relative_path_under_a_local_source_is_judged_by_its_group() -> None:
    answer = decided(make(), llama("-m", "evil.gguf", workingDir="/models/team"))
    assert (
        answer["allowed"] is False
        and f"{EVIL} (container s: llama.cpp --model) is BLOCKED" in (answer["status"]["message"])
    )


def test_a_tilde_the_shell_expands_is_judged_under_home() -> None:
    obj = pod(
        None,
        {
            "name": "s",
            "image": "python",
            "command": ["sh", "-c", "llama-server -m ~/evil.gguf"],
            "env": [{"name": "HOME", "value": "/models/team"}],
        },
    )
    answer = decided(make(), obj)
    assert answer["allowed"] is False and "is BLOCKED" in answer["status"]["message"]


def test_a_relative_path_without_working_dir_fails_closed_under_enforce() -> None:
    answer = decided(make(), llama("-m", "evil.gguf"))
    assert answer["allowed"] is False
    assert "the image decides where relative paths lead" in answer["status"]["message"]


def test_extractions_are_not_shared_between_pods_in_other_working_dirs() -> None:
    """The extraction cache keys on the container fields extractors read: workingDir is one."""
    adm = make()
    assert decided(adm, llama("-m", "evil.gguf", workingDir="/elsewhere"))["allowed"] is True
    assert decided(adm, llama("-m", "evil.gguf", workingDir="/models/team"))["allowed"] is False
