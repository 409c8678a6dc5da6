"""Text found in workloads -> ModelRef: the conventions serving stacks use."""

from __future__ import annotations

import pytest

from modelsec.references import to_model_ref
from modelsec.references.model import NotAReference
from modelsec.sources import ModelRef, ModelRefError, parse_model_uri

SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.mark.parametrize(
    "text, revision, expected",
    [
        ("meta-llama/Llama-3-8B", None, ModelRef("hf", "meta-llama/Llama-3-8B")),
        ("meta-llama/Llama-3-8B", SHA, ModelRef("hf", "meta-llama/Llama-3-8B", SHA)),
        ("hf://org/name", None, ModelRef("hf", "org/name")),
        (f"hf://org/name@{SHA}", None, ModelRef("hf", "org/name", SHA)),
        ("hf://org/name:v1.0", None, ModelRef("hf", "org/name", "v1.0")),  # KServe's spelling
        (f"hf://org/name@{SHA}", "main", ModelRef("hf", "org/name", "main")),  # explicit wins
        ("https://huggingface.co/org/name", None, ModelRef("hf", "org/name")),
        ("https://huggingface.co/org/name/resolve/main/x.gguf", None, ModelRef("hf", "org/name", "main")),
        ("s3://bucket/models/x", None, ModelRef("s3", "bucket/models/x")),
        ("s3://bucket/models/x@v123", None, ModelRef("s3", "bucket/models/x", "v123")),
        ("file:///models/x.pt", None, ModelRef("file", "/models/x.pt")),
        ("/models/team/../x.gguf", None, ModelRef("file", "/models/x.gguf")),
        ("  org/name  ", None, ModelRef("hf", "org/name")),
    ],
    ids=lambda v: str(v),
)
def test_references(text: str, revision: str | None, expected: ModelRef) -> None:
    assert to_model_ref(text, revision) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "gpt2",
        "./models/x",
        "models",
        "gs://bucket/x",
        "pvc://claim/model",
        "https://example.com/model.bin",
        "org/name/extra",
        "../org/x",
        ".hidden/x",
    ],
)
def test_not_references(text: str) -> None:
    with pytest.raises(NotAReference):
        to_model_ref(text)


@pytest.mark.parametrize("text", ["hf://org", "hf://org/name:", "s3://", "hf://org/name@"])
def test_malformed_references(text: str) -> None:
    with pytest.raises(ModelRefError):
        to_model_ref(text)


@pytest.mark.parametrize(
    "text",
    [
        "hf://org/name",
        f"hf://org/name@{SHA}",
        "hf://Org.x/Name_y-1.2",
        "hf://org/name@refs/pr/1",
    ],
)
def test_fast_path_agrees_with_parse_model_uri(text: str) -> None:
    # Scan names are computed from parse_model_uri: the fast path must not differ.
    assert to_model_ref(text) == parse_model_uri(text)


def test_only_the_hubs_own_hosts_are_hub_urls() -> None:
    """An address that merely ends in huggingface.co is another server: read as the Hub,
    the scan would judge the Hub's model of that name, not the one fetched (red team,
    2026-12-07)."""
    from modelsec.sources import ModelRefError, parse_model_uri

    for url in (
        "https://huggingface.co/org/m",
        "https://HF.co/org/m",
        "https://user@huggingface.co:443/org/m",
    ):
        assert str(parse_model_uri(url, None)) == "hf://org/m"
    for url in ("https://evilhuggingface.co/org/m", "https://huggingface.co.evil.example/org/m"):
        with pytest.raises(ModelRefError):
            parse_model_uri(url, None)
