"""KServe: InferenceService storage URIs, the storage initializer, the HF runtime."""

from __future__ import annotations

from reference_helpers import extraction, pod, refs

SHA = "0123456789abcdef0123456789abcdef01234567"


def isvc(spec: dict) -> dict:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "m"},
        "spec": spec,
    }


def test_predictor_model_storage_uri() -> None:
    obj = isvc(
        {"predictor": {"model": {"modelFormat": {"name": "sklearn"}, "storageUri": "s3://models/iris"}}}
    )
    assert refs("InferenceService", obj) == ["s3://models/iris"]


def test_framework_keys_transformer_and_storage_uris() -> None:
    obj = isvc(
        {
            "predictor": {
                "pytorch": {"storageUri": f"hf://org/m:{SHA}"},
                "storageUris": [{"uri": "s3://models/extra", "mountPath": "/mnt/extra"}],
            },
            "transformer": {"containers": [{"name": "t", "image": "x"}], "storageUri": "gs://b/not-ours"},
        }
    )
    assert refs("InferenceService", obj) == [f"hf://org/m@{SHA}", "s3://models/extra"]


def test_hugging_face_runtime_arguments() -> None:
    obj = isvc(
        {
            "predictor": {
                "model": {
                    "modelFormat": {"name": "huggingface"},
                    "args": ["--model_name=llama", "--model_id=org/llama", "--model_revision=abc"],
                }
            }
        }
    )
    assert refs("InferenceService", obj) == ["hf://org/llama@abc"]


def test_custom_predictor_container_with_vllm() -> None:
    obj = isvc(
        {
            "predictor": {
                "containers": [
                    {"name": "kserve-container", "image": "vllm/vllm-openai", "args": ["--model", "org/v"]}
                ]
            }
        }
    )
    assert refs("InferenceService", obj) == ["hf://org/v"]


def test_pods_before_and_after_the_storage_initializer_is_injected() -> None:
    annotation = {"internal.serving.kserve.io/storage-initializer-sourceuri": "s3://models/a"}
    before = pod({"name": "kserve-container", "image": "kserve/sklearnserver"}, annotations=annotation)
    after = pod(
        {"name": "kserve-container", "image": "kserve/sklearnserver"},
        annotations=annotation,
        init=[
            {
                "name": "storage-initializer",
                "image": "kserve/storage-initializer:v0.14.0",
                "args": ["s3://models/a", "/mnt/models"],
            }
        ],
    )
    assert refs("Pod", before) == refs("Pod", after) == ["s3://models/a"]


def test_storage_initializer_pairs() -> None:
    obj = pod(
        {"name": "c"},
        init=[
            {
                "name": "storage-initializer",
                "image": "kserve/storage-initializer",
                "args": ["hf://org/a", "/mnt/a", "s3://b/k", "/mnt/b"],
            }
        ],
    )
    assert refs("Pod", obj) == ["hf://org/a", "s3://b/k"]


def test_pvc_uris_are_not_judged() -> None:
    obj = isvc({"predictor": {"model": {"storageUri": "pvc://claim/models/x"}}})
    assert not extraction("InferenceService", obj)
