"""A Hugging Face ModelSource serves the org/name patterns it lists, nothing else."""

import pytest

from modelsec.k8s.source import ModelSourceSpec
from modelsec_operator.scanning import ScanRefused, resolve


def hub(models=None):
    body = {"type": "HuggingFace", "huggingFace": {} if models is None else {"models": models}}
    return ModelSourceSpec.model_validate(body)


def test_default_source_serves_every_model():
    assert resolve("hf://anyone/anything@" + "a" * 40, None, hub(), "d").ref.location == "anyone/anything"


def test_patterns_limit_what_the_operator_scans():
    spec = hub(["meta-llama/*", "acme/*-instruct"])
    assert resolve("hf://meta-llama/Llama-3-8B", None, spec, "d")
    assert resolve("hf://acme/small-instruct", None, spec, "d")
    with pytest.raises(ScanRefused) as refused:
        resolve("hf://evil/Llama-3-8B", None, spec, "d")
    assert refused.value.reason == "OutsideSource" and "failing closed" in refused.value.message


def test_patterns_are_validated():
    with pytest.raises(ValueError):
        hub(["no-slash"])
