"""vLLM command lines."""

from __future__ import annotations

from reference_helpers import extraction, only, pod, refs

SHA = "0123456789abcdef0123456789abcdef01234567"


def test_vllm_serve_positional_model_and_revision() -> None:
    obj = pod(
        {
            "name": "s",
            "image": "python:3.11",
            "command": ["vllm", "serve", "meta-llama/Llama-3-8B", "--revision", SHA, "--port", "8000"],
        }
    )
    assert refs("Pod", obj) == [f"hf://meta-llama/Llama-3-8B@{SHA}"]


def test_openai_api_server_module_with_model_flag() -> None:
    obj = pod(
        {
            "name": "s",
            "image": "python",
            "command": ["python3", "-m", "vllm.entrypoints.openai.api_server"],
            "args": ["--model=org/m", "--revision=v2"],
        }
    )
    assert refs("Pod", obj) == ["hf://org/m@v2"]


def test_args_to_the_vllm_image_entrypoint() -> None:
    positional = pod(
        {"name": "s", "image": "vllm/vllm-openai:v0.8.5", "args": ["org/m", "--max-model-len", "4096"]}
    )
    flagged = pod({"name": "s", "image": "docker.io/vllm/vllm-openai:latest", "args": ["--model", "org/n"]})
    assert refs("Pod", positional) == ["hf://org/m"]
    assert refs("Pod", flagged) == ["hf://org/n"]


def test_shell_string_command() -> None:
    obj = pod(
        {
            "name": "s",
            "image": "nvidia/cuda",
            "command": ["sh", "-c"],
            "args": [f"pip install vllm && exec vllm serve $(MODEL) --revision {SHA}"],
            "env": [{"name": "MODEL", "value": "org/shell"}],
        }
    )
    assert refs("Pod", obj) == [f"hf://org/shell@{SHA}"]


def test_tokenizer_and_lora_adapters_are_models_too() -> None:
    obj = pod(
        {
            "name": "s",
            "command": [
                "vllm",
                "serve",
                "org/base",
                "--tokenizer",
                "org/tok",
                "--tokenizer-revision",
                "t1",
                "--enable-lora",
                "--lora-modules",
                "sql=org/sql-lora",
                "chat=/adapters/chat",
                '{"name": "j", "path": "org/json-lora"}',
                "--port",
                "1",
            ],
        }
    )
    assert refs("Pod", obj) == [
        "file:///adapters/chat",
        "hf://org/base",
        "hf://org/json-lora",
        "hf://org/sql-lora",
        "hf://org/tok@t1",
    ]


def test_local_model_directory_is_a_file_reference() -> None:
    obj = pod({"name": "s", "command": ["vllm", "serve", "/mnt/models/llama"]})
    assert refs("Pod", obj) == ["file:///mnt/models/llama"]


def test_unrelated_programs_are_not_vllm() -> None:
    obj = pod(
        {"name": "s", "image": "busybox", "command": ["serve", "--model", "org/m"]},
        {"name": "t", "image": "myapp", "args": ["org/m"]},
    )
    assert only("vllm", "Pod", obj) == []
    assert not extraction("Pod", obj)
