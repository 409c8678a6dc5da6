"""Pinning where each extractor found a reference (modelsec.references.pins).

The property every case checks: after the pins are written, the *same extractors* read the
rewritten object and find the reference with the pinned revision, so what the pinning
webhook writes is what the validating webhook (and the serving stack) reads. Places that
take no revision are reported with the reason and left exactly as they were."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from modelsec.references import extract_object, pins
from modelsec.references.pins import Pin, pinnable

SHA = "0123456789abcdef0123456789abcdef01234567"
VERSION = "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY"


def pod(
    *containers: dict[str, Any],
    annotations: dict[str, str] | None = None,
    init: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": list(containers)}
    if init:
        spec["initContainers"] = init
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "ns", "annotations": annotations or {}},
        "spec": spec,
    }


def pin_everything(
    kind: str,
    obj: dict[str, Any],
    revisions: dict[str, str] | None = None,
    configmaps: dict[str, Any] | None = None,
) -> tuple[pins.Applied, dict[str, str | None]]:
    """Pin every reference at every site, as the webhook does; then what the extractors
    read from the result: {uri: revision}."""
    before = extract_object(kind, obj, configmaps)
    wanted = [
        Pin(site, r.ref.scheme, r.ref.location, (revisions or {}).get(r.ref.uri, SHA))
        for r in before.references
        for site in r.sites
    ]
    original = copy.deepcopy(obj)
    applied = pins.apply(obj, wanted)
    assert obj == original, "apply() must never touch the object it was given"
    after = extract_object(kind, applied.obj, configmaps)
    return applied, {r.ref.uri: r.ref.revision for r in after.references}


def test_annotation_entries_are_rewritten_one_by_one() -> None:
    obj = pod(
        {"name": "c", "image": "busybox"},
        annotations={
            "modelsec.io/models": "hf://acme/a,  s3://bucket/m/w.bin\nfile:///models/x  hf://acme/b@main"
        },
    )
    applied, found = pin_everything("Pod", obj, {"s3://bucket/m/w.bin": VERSION})
    assert found == {
        "hf://acme/a": SHA,
        "s3://bucket/m/w.bin": VERSION,
        "file:///models/x": None,
        "hf://acme/b": SHA,
    }
    value = applied.obj["metadata"]["annotations"]["modelsec.io/models"]
    assert value == f"hf://acme/a@{SHA},  s3://bucket/m/w.bin@{VERSION}\nfile:///models/x  hf://acme/b@{SHA}"
    assert applied.changed == [("metadata", "annotations", "modelsec.io/models")]
    assert [p.scheme for p, _why in applied.problems] == ["file"]  # a path names no revision


def test_annotation_on_a_template_is_pinned_where_it_is() -> None:
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d"},
        "spec": {
            "template": {
                "metadata": {"annotations": {"modelsec.io/models": "hf://acme/a"}},
                "spec": {"containers": [{"name": "c", "image": "x"}]},
            }
        },
    }
    applied, found = pin_everything("Deployment", deployment)
    assert found == {"hf://acme/a": SHA}
    assert applied.changed == [("spec", "template", "metadata", "annotations", "modelsec.io/models")]


@pytest.mark.parametrize(
    "container, expected_args",
    [
        (
            {"name": "v", "image": "vllm/vllm-openai", "command": ["vllm", "serve", "acme/m"]},
            [f"--revision={SHA}"],
        ),
        (
            {"name": "v", "image": "vllm/vllm-openai", "args": ["acme/m", "--revision", "main"]},
            ["acme/m", "--revision", SHA],
        ),
        (
            {
                "name": "v",
                "image": "python",
                "command": ["python3", "-m", "vllm.entrypoints.openai.api_server"],
                "args": ["--model=acme/m", "--revision=v1.0"],
            },
            ["--model=acme/m", f"--revision={SHA}"],
        ),
    ],
)
def test_vllm_gets_its_revision_option(container: dict[str, Any], expected_args: list[str]) -> None:
    applied, found = pin_everything("Pod", pod(container))
    assert found == {"hf://acme/m": SHA}
    assert applied.obj["spec"]["containers"][0]["args"] == expected_args
    assert applied.changed == [("spec", "containers", 0)]


def test_vllm_tokenizer_has_its_own_revision_and_lora_adapters_have_none() -> None:
    container = {
        "name": "v",
        "image": "vllm/vllm-openai",
        "args": ["acme/m", "--tokenizer", "acme/tok", "--enable-lora", "--lora-modules", "sql=acme/sql-lora"],
    }
    applied, found = pin_everything("Pod", pod(container))
    assert found == {"hf://acme/m": SHA, "hf://acme/tok": SHA, "hf://acme/sql-lora": None}
    args = applied.obj["spec"]["containers"][0]["args"]
    assert f"--revision={SHA}" in args and f"--tokenizer-revision={SHA}" in args
    assert [why for _p, why in applied.problems] == ["vLLM takes no revision for LoRA adapters"]


def test_a_shell_script_is_read_but_never_rewritten() -> None:
    container = {"name": "v", "image": "vllm/vllm-openai", "command": ["sh", "-c", "vllm serve acme/m"]}
    obj = pod(container)
    applied, found = pin_everything("Pod", obj)
    assert found == {"hf://acme/m": None}
    assert applied.obj == obj and applied.changed == []
    assert [why for _p, why in applied.problems] == [pins.SHELL_SCRIPT.why]
    reference = extract_object("Pod", obj).references[0]
    assert not reference.pinnable


def test_options_after_a_double_dash_would_be_arguments() -> None:
    container = {"name": "v", "image": "vllm/vllm-openai", "command": ["vllm", "serve", "acme/m", "--"]}
    applied, found = pin_everything("Pod", pod(container))
    assert found == {"hf://acme/m": None} and applied.changed == []
    assert "--" in applied.problems[0][1]


@pytest.mark.parametrize(
    "container, where",
    [
        (
            {
                "name": "t",
                "image": "ghcr.io/huggingface/text-generation-inference:3",
                "args": ["--model-id", "acme/m"],
            },
            "env",
        ),
        (
            {
                "name": "t",
                "image": "ghcr.io/huggingface/text-generation-inference:3",
                "env": [
                    {"name": "MODEL_ID", "value": "acme/m"},
                    {"name": "REVISION", "value": "main"},
                    {"name": "SHOWN", "value": "$(REVISION)"},
                ],
            },
            "env",
        ),
        (
            {
                "name": "t",
                "image": "ghcr.io/huggingface/text-generation-inference:3",
                "args": ["--model-id", "acme/m", "--revision", "main"],
            },
            "args",
        ),
    ],
)
def test_tgi_gets_revision_where_the_launcher_reads_it(container: dict[str, Any], where: str) -> None:
    applied, found = pin_everything("Pod", pod(container))
    assert found == {"hf://acme/m": SHA}
    pinned = applied.obj["spec"]["containers"][0]
    if where == "env":
        env = {e["name"]: e.get("value") for e in pinned["env"]}
        assert env["REVISION"] == SHA
        names = [e["name"] for e in pinned["env"]]
        assert names.count("REVISION") == 1
        if "SHOWN" in names:  # set in place: entries after it still see it
            assert names.index("REVISION") < names.index("SHOWN")
    else:
        assert pinned["args"] == ["--model-id", "acme/m", "--revision", SHA]


def test_tgi_revision_from_a_configmap_is_overridden_by_an_entry() -> None:
    container = {
        "name": "t",
        "image": "ghcr.io/huggingface/text-generation-inference:3",
        "env": [
            {"name": "MODEL_ID", "value": "acme/m"},
            {"name": "REVISION", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "rev"}}},
        ],
    }
    obj = pod(container)
    applied, found = pin_everything("Pod", obj, configmaps={"cm": {"rev": "main"}})
    assert {"name": "REVISION", "value": SHA} in applied.obj["spec"]["containers"][0]["env"]
    assert found == {"hf://acme/m": SHA}


def test_llama_cpp_hub_urls_are_pinned_and_hf_repos_cannot_be() -> None:
    url = "https://huggingface.co/acme/m/resolve/main/m-Q4_K_M.gguf"
    container = {
        "name": "l",
        "image": "ghcr.io/ggml-org/llama.cpp:server",
        "args": ["--model-url", url, "-hfd", "acme/draft:Q4"],
        "env": [{"name": "LLAMA_ARG_HF_REPO", "value": "acme/other"}],
    }
    applied, found = pin_everything("Pod", pod(container))
    assert found == {"hf://acme/m": SHA, "hf://acme/draft": None, "hf://acme/other": None}
    assert (
        applied.obj["spec"]["containers"][0]["args"][1]
        == f"https://huggingface.co/acme/m/resolve/{SHA}/m-Q4_K_M.gguf"
    )
    reasons = {why for _p, why in applied.problems}
    assert any("main branch" in why for why in reasons)


def test_llama_cpp_url_in_the_environment() -> None:
    container = {
        "name": "l",
        "image": "ghcr.io/ggml-org/llama.cpp:server",
        "env": [{"name": "LLAMA_ARG_MODEL_URL", "value": "https://huggingface.co/acme/m/resolve/v2/m.gguf"}],
    }
    applied, found = pin_everything("Pod", pod(container))
    assert found == {"hf://acme/m": SHA}
    assert applied.obj["spec"]["containers"][0]["env"][0]["value"].endswith(f"/resolve/{SHA}/m.gguf")


def test_an_argument_built_from_a_variable_is_not_rewritten() -> None:
    container = {
        "name": "l",
        "image": "ghcr.io/ggml-org/llama.cpp:server",
        "args": ["--model-url", "$(URL)"],
        "env": [{"name": "URL", "value": "https://huggingface.co/acme/m/resolve/main/m.gguf"}],
    }
    obj = pod(container)
    applied, found = pin_everything("Pod", obj)
    assert found == {"hf://acme/m": "main"} and applied.obj == obj
    assert [why for _p, why in applied.problems] == [pins.EXPANDED.why]


def test_triton_repositories_take_no_revision() -> None:
    container = {
        "name": "t",
        "image": "nvcr.io/nvidia/tritonserver:24.05-py3",
        "command": ["tritonserver", "--model-repository=s3://bucket/repo"],
    }
    obj = pod(container)
    applied, found = pin_everything("Pod", obj)
    assert found == {"s3://bucket/repo": None} and applied.obj == obj
    assert "Triton" in applied.problems[0][1]


def test_kserve_storage_uris_runtime_and_storage_initializer() -> None:
    isvc = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "i", "namespace": "ns"},
        "spec": {
            "predictor": {
                "model": {
                    "modelFormat": {"name": "huggingface"},
                    "storageUri": "hf://acme/m",
                    "args": ["--model_id=acme/runtime"],
                },
                "storageUris": [{"uri": "hf://acme/extra", "mountPath": "/mnt/x"}, "hf://acme/plain:main"],
            }
        },
    }
    applied, found = pin_everything("InferenceService", isvc)
    assert found == {
        "hf://acme/m": SHA,
        "hf://acme/runtime": SHA,
        "hf://acme/extra": SHA,
        "hf://acme/plain": SHA,
    }
    predictor = applied.obj["spec"]["predictor"]
    assert predictor["model"]["storageUri"] == f"hf://acme/m:{SHA}"
    assert predictor["storageUris"] == [
        {"uri": f"hf://acme/extra:{SHA}", "mountPath": "/mnt/x"},
        f"hf://acme/plain:{SHA}",
    ]
    assert predictor["model"]["args"] == ["--model_id=acme/runtime", f"--model_revision={SHA}"]

    injected = pod(
        {"name": "kserve-container", "image": "kserve/huggingfaceserver"},
        annotations={"internal.serving.kserve.io/storage-initializer-sourceuri": "hf://acme/m"},
        init=[
            {
                "name": "storage-initializer",
                "image": "kserve/storage-initializer",
                "args": ["hf://acme/m", "/mnt/models"],
            }
        ],
    )
    applied, found = pin_everything("Pod", injected)
    assert found == {"hf://acme/m": SHA}
    assert applied.obj["spec"]["initContainers"][0]["args"] == [f"hf://acme/m:{SHA}", "/mnt/models"]
    assert (
        applied.obj["metadata"]["annotations"]["internal.serving.kserve.io/storage-initializer-sourceuri"]
        == f"hf://acme/m:{SHA}"
    )


def test_s3_is_pinned_only_in_the_annotation() -> None:
    container = {
        "name": "v",
        "image": "vllm/vllm-openai",
        "args": ["s3://bucket/m/", "--load-format", "runai_streamer"],
    }
    obj = pod(container, annotations={"modelsec.io/models": "s3://bucket/m/"})
    reference = extract_object("Pod", obj).references[0]
    assert [pinnable(site, "s3") for site in reference.sites] == [True, False]
    applied, found = pin_everything("Pod", obj, {"s3://bucket/m/": VERSION})
    assert applied.obj["metadata"]["annotations"]["modelsec.io/models"] == f"s3://bucket/m/@{VERSION}"
    assert applied.obj["spec"]["containers"] == obj["spec"]["containers"]
    assert [why for _p, why in applied.problems] == [pins.S3_VERSIONS]


def test_pinnable_is_part_of_a_references_identity_but_sites_are_not() -> None:
    """The webhook's caches key on references: two workloads naming a model the same way
    share entries, but one that can be pinned must not share a decision with one that
    cannot."""
    exec_form = extract_object("Pod", pod({"name": "v", "image": "vllm/vllm-openai", "args": ["acme/m"]}))
    again = extract_object(
        "Pod", pod({"name": "v", "image": "vllm/vllm-openai", "args": ["acme/m", "--port=1"]})
    )
    script = extract_object(
        "Pod", pod({"name": "v", "image": "vllm/vllm-openai", "command": ["sh", "-c", "vllm serve acme/m"]})
    )
    assert exec_form.references[0].pinnable and not script.references[0].pinnable
    assert exec_form.references[0].ref == script.references[0].ref
    assert exec_form.references[0] != script.references[0]
    assert exec_form == again and hash(exec_form) == hash(again)
