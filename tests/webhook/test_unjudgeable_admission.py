"""Admission of workloads naming models the request does not show (issue 10, items 1, 5,
6) and the bounded caches (item 7)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from webhook_helpers import group, pod, review, scan, source, view

from modelsec.references import ConfigMapData, Unreadable
from modelsec_webhook.admission import Admission, AdmissionSettings, Answer, NeedConfigMaps
from modelsec_webhook.caches import BoundedCache, content_key

CM_MODEL = {"name": "MODEL", "valueFrom": {"configMapKeyRef": {"name": "models", "key": "id"}}}


class ConfigMaps:
    def __init__(self, known: dict[str, ConfigMapData] | None = None) -> None:
        self.known = known or {}
        self.asked: list[tuple[str, frozenset[str]]] = []

    def cached(self, namespace: str, names: frozenset[str]) -> dict[str, ConfigMapData]:
        self.asked.append((namespace, names))
        return {name: self.known[name] for name in names if name in self.known}


def make(configmaps: ConfigMaps | None = None, **group_args: Any) -> Admission:
    blocked = scan("hf://org/evil", None, "g-hub", "BLOCKED", failed=["LoadTimeCodeExecution"])
    v = view(source("hub"), group("g-hub", "hub", **group_args), blocked)
    return Admission(v, AdmissionSettings(), configmaps=configmaps or ConfigMaps())


def out(answer: Answer | NeedConfigMaps) -> dict[str, Any]:
    assert isinstance(answer, Answer)
    return json.loads(answer.body)["response"]


def vllm_pod(*args: str, **container: Any) -> dict[str, Any]:
    return pod(None, {"name": "s", "image": "python", "command": ["vllm", "serve", *args], **container})


def test_a_configmap_naming_a_model_is_read_where_a_group_applies_and_judged() -> None:
    configmaps = ConfigMaps()
    adm = make(configmaps)
    request = adm.parse(review(vllm_pod("$(MODEL)", env=[CM_MODEL])))
    first = adm.answer(request)
    assert first == NeedConfigMaps("team-a", frozenset({"models"}))
    configmaps.known["models"] = {"id": "org/evil"}  # what the server's reader fetched
    decided = out(adm.answer(request, fetched=True))
    assert (
        decided["allowed"] is False
        and "hf://org/evil (container s: vllm serve <model>) is BLOCKED" in decided["status"]["message"]
    )


def test_a_configmap_that_cannot_be_read_denies_under_an_enforce_group() -> None:
    adm = make(ConfigMaps({"models": Unreadable("the webhook may not read ConfigMaps in namespace team-a")}))
    decided = out(adm.answer(adm.parse(review(vllm_pod("$(MODEL)", env=[CM_MODEL])))))
    assert decided["allowed"] is False
    assert "could not be read (the webhook may not read ConfigMaps" in decided["status"]["message"]
    assert "SecurityGroup g-hub covers namespace team-a" in decided["status"]["message"]


def test_a_workload_naming_thousands_of_configmaps_is_denied_without_reading_them() -> None:
    """One small Pod made the webhook GET every ConfigMap it named, 3,000 at once (red team,
    2026-12-07): past the cap their values stay unknown, and an Enforce group denies."""
    env = [
        {"name": f"V{i}", "valueFrom": {"configMapKeyRef": {"name": f"cm-{i}", "key": "k"}}}
        for i in range(100)
    ]
    adm = make(ConfigMaps())
    answer = adm.answer(adm.parse(review(vllm_pod("".join(f"$(V{i})" for i in range(100)), env=env))))
    assert not isinstance(answer, NeedConfigMaps)
    decided = out(answer)
    assert decided["allowed"] is False
    assert "reads at most 32 for one request" in decided["status"]["message"]


def test_configmaps_are_never_read_where_no_group_applies() -> None:
    configmaps = ConfigMaps()
    adm = make(configmaps)
    answer = adm.answer(adm.parse(review(vllm_pod("$(MODEL)", env=[CM_MODEL]), namespace="team-b")))
    assert configmaps.asked == [] and out(answer)["allowed"] is True
    assert "cannot judge the model named by container s" in out(answer)["warnings"][0]


def test_a_secret_naming_a_model_denies_under_an_enforce_group_and_is_never_read() -> None:
    configmaps = ConfigMaps()
    secret = {"name": "MODEL", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "model"}}}
    adm = make(configmaps)
    decided = out(adm.answer(adm.parse(review(vllm_pod("$(MODEL)", env=[secret])))))
    assert decided["allowed"] is False and "does not read Secrets" in decided["status"]["message"]
    assert configmaps.asked == []


def test_a_secret_naming_a_model_warns_under_a_warn_group() -> None:
    secret = {"name": "MODEL", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "model"}}}
    adm = make(enforcement={"mode": "Warn"})
    decided = out(adm.answer(adm.parse(review(vllm_pod("$(MODEL)", env=[secret])))))
    assert decided["allowed"] is True and "Secret creds" in decided["warnings"][0]


def test_a_model_beyond_the_container_cap_is_denied_where_a_group_applies() -> None:
    filler = [{"name": f"c{i}", "image": "busybox"} for i in range(256)]
    obj = pod(None, *filler, {"name": "s", "command": ["vllm", "serve", "org/evil"]})
    decided = out(make().review(review(obj)))
    assert decided["allowed"] is False and "too many containers to judge" in decided["status"]["message"]


def test_a_model_looking_argument_that_does_not_parse_denies_under_a_group_and_warns_elsewhere() -> None:
    adm = make()
    governed = out(adm.review(review(vllm_pod("hf://org"))))
    assert governed["allowed"] is False and "looks like a model reference" in governed["status"]["message"]
    elsewhere = out(adm.review(review(vllm_pod("file://host/models/x"), namespace="team-b")))
    assert elsewhere["allowed"] is True and "looks like a model" in elsewhere["warnings"][0]


def test_an_annotation_entry_that_is_not_a_reference_denies_everywhere() -> None:
    decided = out(make().review(review(pod("models/x.pkl"), namespace="team-b")))
    assert decided["allowed"] is False and "ambiguous" in decided["status"]["message"]


def test_escape_sequences_never_reach_the_denial_message() -> None:
    decided = out(make().review(review(pod("file:///m/\x1b[2J\x1b[32mOUTCOME ALLOWED"))))
    message = decided["status"]["message"]
    assert decided["allowed"] is False and "\x1b" not in message and "\\x1b[2J" in message


# --- caches (item 7) ------------------------------------------------------------------------------


def test_extraction_cache_keys_are_digests_whatever_the_arguments_weigh() -> None:
    big = vllm_pod("org/m", "--chat-template", "x" * (1 << 20))
    key = content_key("Pod", big)
    assert key is not None and len(key) == 32


def test_caches_are_bounded_by_bytes_not_entries() -> None:
    adm = Admission(view(source("hub"), group("g-hub", "hub")), AdmissionSettings(cache_bytes=4 << 20))
    for i in range(300):  # 300 pods with 1 MiB of arguments each: 300 MiB if kept
        adm.review(review(vllm_pod(f"org/m{i}", "--chat-template", f"{i}" + "x" * (1 << 20))))
    for cache in (adm.caches.decisions, adm.caches.extractions, adm.caches.judgements):
        assert cache.bytes <= 4 << 20
    assert len(adm.caches.extractions) > 10  # and it still caches


def test_bounded_cache_evicts_oldest_first_and_skips_what_cannot_fit() -> None:
    cache: BoundedCache[str, str] = BoundedCache(2200, size_of=lambda k, v: len(v))
    for i in range(10):
        cache.put(f"k{i}", "v" * 500)  # 700 bytes each, with the entry's overhead
    assert list(cache.entries) == ["k7", "k8", "k9"] and cache.bytes <= 2200
    cache.put("huge", "v" * 5000)
    assert cache.get("huge") is None


@pytest.mark.parametrize(
    "weird",
    [{"metadata": []}, {"metadata": {"annotations": "x"}}, {"spec": {"containers": [["not", "a", "dict"]]}}],
)
def test_objects_of_unexpected_shape_are_never_cached(weird: dict[str, Any]) -> None:
    assert content_key("Pod", weird) is None


def test_unexpected_shapes_never_share_a_key_with_valid_objects() -> None:
    valid = {"spec": {"containers": [{"name": "n", "image": "i"}]}}
    listed = {"spec": {"containers": [["n", "i", None, None, None, None, None]]}}
    assert content_key("Pod", listed) is None and content_key("Pod", valid) is not None


def test_extractions_are_not_shared_between_pods_with_other_host_aliases() -> None:
    """The extraction cache keyed on annotations and container fields only: a Pod whose
    hostAliases send huggingface.co elsewhere reused the extraction of the same Pod without
    them, and was admitted on the Hub scan's verdict."""
    allowed = scan("hf://org/good", None, "g-hub", "ALLOWED")
    adm = Admission(view(source("hub"), group("g-hub", "hub"), allowed), AdmissionSettings())
    plain = vllm_pod("org/good")
    assert out(adm.review(review(plain)))["allowed"] is True
    aliased = json.loads(json.dumps(plain))
    aliased["spec"]["hostAliases"] = [{"ip": "6.6.6.6", "hostnames": ["huggingface.co"]}]
    decided = out(adm.review(review(aliased)))
    assert decided["allowed"] is False and "hostAliases maps huggingface.co" in decided["status"]["message"]
