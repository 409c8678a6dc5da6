"""Text Generation Inference and Text Embeddings Inference."""

from __future__ import annotations

from reference_helpers import extraction, pod, refs

TGI = "ghcr.io/huggingface/text-generation-inference:3.0.1"
TEI = "ghcr.io/huggingface/text-embeddings-inference:cpu-1.5"


def test_model_id_flag_and_revision() -> None:
    obj = pod(
        {"name": "tgi", "image": TGI, "args": ["--model-id", "org/m", "--revision", "abc", "--port", "80"]}
    )
    assert refs("Pod", obj) == ["hf://org/m@abc"]


def test_environment_variables_with_the_official_images() -> None:
    tgi = pod(
        {
            "name": "tgi",
            "image": TGI,
            "env": [{"name": "MODEL_ID", "value": "org/gen"}, {"name": "REVISION", "value": "r1"}],
        }
    )
    tei = pod({"name": "tei", "image": TEI, "env": [{"name": "MODEL_ID", "value": "BAAI/bge-large-en-v1.5"}]})
    assert refs("Pod", tgi) == ["hf://org/gen@r1"]
    assert refs("Pod", tei) == ["hf://BAAI/bge-large-en-v1.5"]


def test_launcher_named_in_a_command() -> None:
    obj = pod({"name": "x", "image": "custom", "command": ["text-generation-launcher", "--model-id=org/m"]})
    router = pod(
        {
            "name": "x",
            "image": "custom",
            "command": ["/usr/bin/text-embeddings-router"],
            "args": ["--model-id", "org/e"],
        }
    )
    assert refs("Pod", obj) == ["hf://org/m"]
    assert refs("Pod", router) == ["hf://org/e"]


def test_flag_wins_over_environment() -> None:
    obj = pod(
        {
            "name": "tgi",
            "image": TGI,
            "args": ["--model-id", "org/flag"],
            "env": [{"name": "MODEL_ID", "value": "org/env"}],
        }
    )
    assert refs("Pod", obj) == ["hf://org/flag"]


def test_model_id_from_a_configmap_is_unresolved() -> None:
    obj = pod(
        {
            "name": "tei",
            "image": TEI,
            "env": [
                {"name": "MODEL_ID", "valueFrom": {"configMapKeyRef": {"name": "models", "key": "embedder"}}}
            ],
        }
    )
    found = extraction("Pod", obj)
    assert found.references == ()
    assert [u.origin for u in found.unresolved] == ["container tei: env MODEL_ID"]


def test_lora_adapters() -> None:
    obj = pod(
        {
            "name": "tgi",
            "image": TGI,
            "env": [
                {"name": "MODEL_ID", "value": "org/base"},
                {"name": "LORA_ADAPTERS", "value": "org/a, b=org/b"},
            ],
        }
    )
    assert refs("Pod", obj) == ["hf://org/a", "hf://org/b", "hf://org/base"]


def test_model_id_in_another_image_is_not_tgi() -> None:
    obj = pod({"name": "app", "image": "myapp", "env": [{"name": "MODEL_ID", "value": "org/m"}]})
    assert not extraction("Pod", obj)
