"""A group bound to a Hugging Face source governs only the references its patterns match."""

from modelsec.k8s.source import ModelSourceSpec
from modelsec.references import Reference
from modelsec.sources import parse_model_uri
from modelsec_webhook.matching import source_matcher


def reference(text: str) -> Reference:
    return Reference(parse_model_uri(text), None, ("test",))


def test_hub_source_matches_its_model_patterns():
    spec = ModelSourceSpec.model_validate(
        {"type": "HuggingFace", "huggingFace": {"models": ["meta-llama/*"]}}
    )
    matcher = source_matcher("hub", spec)
    assert matcher(reference("hf://meta-llama/Llama-3-8B"))
    assert not matcher(reference("hf://someone-else/Llama-3-8B"))


def test_hub_source_without_patterns_matches_every_hf_reference():
    matcher = source_matcher(
        "hub", ModelSourceSpec.model_validate({"type": "HuggingFace", "huggingFace": {}})
    )
    assert matcher(reference("hf://org/name"))


def test_hub_source_patterns_match_any_spelling_of_an_id():
    # The Hub serves Meta-Llama/x for meta-llama/x: a respelled id must not escape the group.
    spec = ModelSourceSpec.model_validate(
        {"type": "HuggingFace", "huggingFace": {"models": ["Meta-Llama/*"]}}
    )
    matcher = source_matcher("hub", spec)
    assert matcher(reference("hf://META-LLAMA/evil")) and matcher(reference("hf://meta-llama/x"))
