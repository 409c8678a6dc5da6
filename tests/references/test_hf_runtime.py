"""KServe's Hugging Face runtime read as the vLLM engine it hands its model to.

Red team, session 22 (/work/redteam/s22b): ``--model_i=evil/model`` (argparse's
abbreviation of ``--model_id``) named no model at all, ``--model_dir=s3://...`` was never
read, vLLM's own options (``--tokenizer``, ``--speculative-config``) given to the runtime
were not read, and neither were vLLM's environment switches. Each test failed before.
"""

from __future__ import annotations

from typing import Any

import pytest
from reference_helpers import extraction, pod

from modelsec.references import Extraction

IMAGE = "kserve/huggingfaceserver:v0.15.0"


def runtime(*args: str, env: dict[str, str] | None = None) -> Extraction:
    container: dict[str, Any] = {
        "name": "kserve-container",
        "image": IMAGE,
        "command": ["python", "-m", "huggingfaceserver", "--model_name=m", *args],
    }
    if env:
        container["env"] = [{"name": k, "value": v} for k, v in env.items()]
    return extraction("Pod", pod(container))


def refs(result: Extraction) -> list[tuple[str, str | None]]:
    return [(str(r.ref), r.endpoint) for r in result.references]


def test_model_id_and_its_revision() -> None:
    sha = "a" * 40
    result = runtime("--model_id", "org/m", f"--model_revision={sha}")
    assert refs(result) == [(f"hf://org/m@{sha}", None)]


@pytest.mark.parametrize(
    "args, expected",
    [
        (("--model_i=evil/model",), ["hf://evil/model"]),
        (("--model_id", "org/good", "--model_i", "evil/model"), ["hf://evil/model"]),
        (("--model_id=org/m", "--model_revision=" + "a" * 40, "--model_rev=main"), ["hf://org/m@main"]),
    ],
)
def test_argparse_abbreviations_are_the_options_they_abbreviate(
    args: tuple[str, ...], expected: list[str]
) -> None:
    assert [r for r, _ in refs(runtime(*args))] == expected


@pytest.mark.parametrize("uri", ["s3://bucket/evil", "hf://evil/model"])
def test_a_remote_model_dir_is_the_model(uri: str) -> None:
    assert [r for r, _ in refs(runtime(f"--model_dir={uri}", "--backend=huggingface"))] == [uri]


def test_the_local_model_dir_is_the_storage_initializers() -> None:
    assert not runtime("--model_dir=/mnt/models")


def test_vllm_options_given_to_the_runtime_are_read() -> None:
    result = runtime(
        "--model_id=org/m",
        "--tokenizer=evil/tok",
        "--hf-config-path=evil/cfg",
        "--speculative-config",
        '{"model": "evil/draft"}',
    )
    assert sorted(r for r, _ in refs(result)) == [
        "hf://evil/cfg",
        "hf://evil/draft",
        "hf://evil/tok",
        "hf://org/m",
    ]


@pytest.mark.parametrize(
    "env", [{"VLLM_USE_MODELSCOPE": "true"}, {"VLLM_MODEL_REDIRECT_PATH": "/etc/r.json"}]
)
def test_vllm_switches_apply_to_the_runtime(env: dict[str, str]) -> None:
    result = runtime("--model_id=meta-llama/x", env=env)
    assert result.references == () and result.unresolved


def initializer(script: str) -> Extraction:
    init = {
        "name": "storage-initializer",
        "image": "kserve/storage-initializer:v0.15.0",
        "command": ["sh", "-c", script],
    }
    return extraction("Pod", pod({"name": "kserve-container", "image": "kserve/sklearnserver"}, init=[init]))


ENTRYPOINT = "/storage-initializer/scripts/initializer-entrypoint"


def test_every_initializer_line_is_read_with_its_environment() -> None:
    script = (
        f"{ENTRYPOINT} s3://b/m /mnt/models && export AWS_ENDPOINT_URL=http://evil:9000 && "
        f"{ENTRYPOINT} s3://b/m2 /mnt/models2"
    )
    assert sorted(refs(initializer(script))) == [("s3://b/m", None), ("s3://b/m2", "http://evil:9000")]


def test_an_initializer_line_after_another_command_is_read() -> None:
    script = f"true; export AWS_ENDPOINT_URL=http://evil:9000; {ENTRYPOINT} s3://b/m /mnt/models"
    assert refs(initializer(script)) == [("s3://b/m", "http://evil:9000")]


def test_an_initializer_running_something_else_is_unresolved() -> None:
    result = initializer("python /tmp/fetch.py s3://b/m /mnt/models")
    assert result.references == () and "storage initializer" in result.unresolved[0].why


# Red team of the runtime reading (session 22, /work/redteam/s22c): each failed before.


def test_an_empty_model_id_leaves_the_model_dir() -> None:
    # `if args.model_id:` is false for "": the runtime downloads --model_dir
    assert [r for r, _ in refs(runtime("--model_id=", "--model_dir=hf://evil/model"))] == ["hf://evil/model"]


def test_options_after_a_double_dash_are_not_options() -> None:
    result = runtime("--model_id=org/good", "--", "--model_id=evil/other")
    assert "hf://org/good" in [r for r, _ in refs(result)]


def test_the_runtime_run_as_its_main_module_is_read() -> None:
    container = {
        "name": "c",
        "image": "python:3.12",
        "command": ["python", "-m", "huggingfaceserver.__main__", "--model_id=evil/model"],
    }
    assert [str(r.ref) for r in extraction("Pod", pod(container)).references] == ["hf://evil/model"]


def test_a_runtime_image_running_something_else_is_unresolved() -> None:
    container = {"name": "c", "image": IMAGE, "command": ["python", "/app/start.py", "--model_id=evil/model"]}
    result = extraction("Pod", pod(container))
    assert result.references == () and "Hugging Face runtime" in result.unresolved[0].why


def test_the_runtimes_own_options_keep_their_values() -> None:
    # --model_name's value is the served name, not a model to judge; a flag takes no value
    result = runtime("--model_name", "team/served", "--trust_remote_code", "--model_id", "org/m")
    assert [r for r, _ in refs(result)] == ["hf://org/m"]
