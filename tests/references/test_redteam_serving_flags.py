"""Red-team admission bypasses through serving programs' options (/work/redteam/admission,
B1, B6, B7, B12): each test is named after the bypass and failed before the fix."""

from __future__ import annotations

import json
from typing import Any

from reference_helpers import extraction, pod, refs

from modelsec.references import Extraction, to_model_ref

SHA = "0123456789abcdef0123456789abcdef01234567"
LLAMA_IMAGE = "ghcr.io/ggml-org/llama.cpp:server"


def vllm(*words: str) -> dict[str, Any]:
    return pod({"name": "s", "image": "python", "command": ["vllm", "serve", *words]})


def llama(*words: str, **container: Any) -> dict[str, Any]:
    return pod({"name": "l", "image": "busybox", "command": ["llama-server", *words], **container})


def whys(found: Extraction) -> list[str]:
    return [u.why for u in found.unresolved]


# -- B1: the positional model after options ------------------------------------------


def test_b1_vllm_positional_model_after_options() -> None:
    assert refs("Pod", vllm("--port", "8000", "org/m")) == ["hf://org/m"]
    assert refs("Pod", vllm("--dtype", "auto", "--trust-remote-code", "/models/x")) == ["file:///models/x"]
    # `--port 8000` takes a value, `--trust-remote-code` does not: neither value is a model
    assert refs("Pod", vllm("--trust-remote-code", "org/m", "--served-model-name", "org/alias")) == [
        "hf://org/m"
    ]


def test_b1_vllm_positional_model_after_double_dash() -> None:
    assert refs("Pod", vllm("--port", "1", "--", "org/m")) == ["hf://org/m"]


def test_b1_vllm_image_args_and_shell_script_with_options_first() -> None:
    image = pod({"name": "s", "image": "vllm/vllm-openai:v0.9.2", "args": ["--dtype", "auto", "org/m"]})
    script = pod({"name": "s", "image": "x", "command": ["sh", "-c", "exec vllm serve --host 0.0.0.0 org/m"]})
    assert refs("Pod", image) == ["hf://org/m"]
    assert refs("Pod", script) == ["hf://org/m"]


def test_b1_word_after_an_unknown_option_is_checked_as_the_model() -> None:
    # An option this module does not know may be a flag: the word after it may be the model.
    assert refs("Pod", vllm("--some-new-flag", "org/m")) == ["hf://org/m"]
    # -O takes an attached value in some releases (-O3) and is a flag to read past there
    assert refs("Pod", vllm("-O", "org/m")) == ["hf://org/m"]


def test_b1_vllm_launch_naming_no_model_is_unresolved() -> None:
    found = extraction("Pod", vllm("--port", "8000"))
    assert found.references == ()
    assert whys(found) == ["no model is named, so vLLM loads its default model"]


# -- B6: option spellings and unread options ----------------------------------------


def test_b6_vllm_underscore_spelling_of_lora_modules() -> None:
    assert refs("Pod", vllm("org/m", "--enable-lora", "--lora_modules", "x=/models/evil")) == [
        "file:///models/evil",
        "hf://org/m",
    ]


def test_b6_vllm_lora_module_without_name_is_still_checked() -> None:
    assert refs("Pod", vllm("org/m", "--lora-modules", "org/adapter")) == ["hf://org/adapter", "hf://org/m"]


def test_b6_vllm_abbreviated_revision() -> None:
    assert refs("Pod", vllm("org/m", "--revisi", SHA)) == [f"hf://org/m@{SHA}"]
    assert refs("Pod", vllm("org/m", f"--revis={SHA}")) == [f"hf://org/m@{SHA}"]


def test_b6_vllm_ambiguous_abbreviation_of_a_model_option_is_unresolved() -> None:
    found = extraction("Pod", vllm("org/m", "--tok", "org/t"))
    assert any("--tok abbreviates several vLLM options" in why for why in whys(found))


def test_b6_vllm_code_revision_is_judged() -> None:
    assert refs("Pod", vllm("org/m", "--trust-remote-code", "--code-revision", "refs/pr/7")) == [
        "hf://org/m",
        "hf://org/m@refs/pr/7",
    ]


def test_b6_vllm_tokenizer_revision_without_tokenizer_applies_to_the_model() -> None:
    assert refs("Pod", vllm("org/m", "--tokenizer-revision", "refs/pr/7")) == [
        "hf://org/m",
        "hf://org/m@refs/pr/7",
    ]


def test_b6_vllm_speculative_config_json_and_dotted() -> None:
    spec = json.dumps({"model": "org/draft", "num_speculative_tokens": 4, "revision": "v1"})
    assert refs("Pod", vllm("org/m", "--speculative-config", spec)) == ["hf://org/draft@v1", "hf://org/m"]
    dotted = vllm(
        "org/m", "--speculative_config.model", "org/draft", "--speculative-config.num_speculative_tokens", "4"
    )
    assert refs("Pod", dotted) == ["hf://org/draft", "hf://org/m"]


def test_b6_vllm_unreadable_speculative_config_is_unresolved() -> None:
    found = extraction("Pod", vllm("org/m", "--speculative-config", "{model: org/draft}"))
    assert any("--speculative-config" in why for why in whys(found))


def test_b6_vllm_config_file_is_unresolved() -> None:
    found = extraction("Pod", vllm("--config", "/etc/vllm/cfg.yaml"))
    assert found.references == ()
    assert [u.origin for u in found.unresolved] == ["container s: vllm --config"]


# -- B7: Hub URL spellings --------------------------------------------------------------


def test_b7_llamacpp_model_url_hub_spellings() -> None:
    for url in (
        "https://hf.co/org/m/resolve/main/m.gguf",
        "https://HuggingFace.co/org/m/resolve/main/m.gguf",
        "https://huggingface.co:443/org/m/resolve/main/m.gguf",
        "https://anon@huggingface.co/org/m/resolve/main/m.gguf",
        "https://huggingface.co./org/m/resolve/main/m.gguf",
        "HTTPS://WWW.HUGGINGFACE.CO/org/m/resolve/main/m.gguf",
    ):
        assert refs("Pod", llama("-mu", url)) == ["hf://org/m@main"], url


def test_b7_llamacpp_model_url_from_env_on_hf_co() -> None:
    obj = pod(
        {
            "name": "l",
            "image": LLAMA_IMAGE,
            "env": [{"name": "LLAMA_ARG_MODEL_URL", "value": "https://hf.co/org/m/resolve/main/m.gguf"}],
        }
    )
    assert refs("Pod", obj) == ["hf://org/m@main"]


def test_b7_hub_url_with_dot_segments_is_not_judged_as_the_repository_it_spells() -> None:
    found = extraction(
        "Pod", llama("-mu", "https://huggingface.co/org/good/../../org/evil/resolve/main/m.gguf")
    )
    assert found.references == ()
    assert len(found.unresolved) == 1


def test_b7_model_url_on_another_server_is_unresolved() -> None:
    for url in ("https://example.com/m.gguf", "https://huggingface.co:8443/org/m/resolve/main/m.gguf"):
        found = extraction("Pod", llama("-mu", url))
        assert found.references == ()
        assert "not the Hugging Face Hub" in whys(found)[0]


def test_b7_to_model_ref_reads_every_hub_host_spelling() -> None:
    assert str(to_model_ref("https://hf.co/org/m/resolve/abc/f.gguf")) == "hf://org/m@abc"
    assert str(to_model_ref("http://user:pw@HF.CO:80/org/m")) == "hf://org/m"


# -- B12: other llama.cpp options that load model files ------------------------------------


def test_b12_llamacpp_mmproj_lora_and_vocoder() -> None:
    obj = llama(
        "-m",
        "/opt/ok.gguf",
        "--mmproj",
        "/models/a/mmproj.gguf",
        "-mmu",
        "https://huggingface.co/org/proj/resolve/main/p.gguf",
        "--lora",
        "/models/b/lora.gguf",
        "--lora",
        "/models/c/lora.gguf",
        "--lora-scaled",
        "/models/d/lora.gguf",
        "0.5",
        "-hfv",
        "org/vocoder",
        "--control-vector",
        "/models/e/cv.gguf",
    )
    assert refs("Pod", obj) == [
        "file:///models/a/mmproj.gguf",
        "file:///models/b/lora.gguf",
        "file:///models/c/lora.gguf",
        "file:///models/d/lora.gguf",
        "file:///models/e/cv.gguf",
        "file:///opt/ok.gguf",
        "hf://org/proj@main",
        "hf://org/vocoder",
    ]


def test_b12_llamacpp_env_mmproj_and_draft_repo() -> None:
    obj = llama(
        "-m",
        "/opt/ok.gguf",
        env=[
            {"name": "LLAMA_ARG_MMPROJ", "value": "/models/a/p.gguf"},
            {"name": "LLAMA_ARG_HFD_REPO", "value": "org/draft:Q8_0"},
            {"name": "LLAMA_ARG_HF_REPO_V", "value": "org/voc"},
        ],
    )
    assert refs("Pod", obj) == [
        "file:///models/a/p.gguf",
        "file:///opt/ok.gguf",
        "hf://org/draft",
        "hf://org/voc",
    ]


def test_b12_llamacpp_underscore_spelling() -> None:
    assert refs("Pod", llama("--hf_repo", "org/m")) == ["hf://org/m"]


def test_b12_llamacpp_hf_file_climbing_out_of_the_repository_is_unresolved() -> None:
    found = extraction("Pod", llama("-hf", "org/good", "-hff", "../../org/evil/resolve/main/m.gguf"))
    assert [str(r.ref) for r in found.references] == ["hf://org/good"]
    assert any("may lead out of the repository" in why for why in whys(found))


def test_b12_llamacpp_repo_that_is_not_org_name_is_unresolved() -> None:
    found = extraction("Pod", llama("-hf", "org/good/../../org/evil"))
    assert found.references == ()
    assert "not a Hub repository" in whys(found)[0]


def test_b12_llamacpp_docker_repo_is_unresolved() -> None:
    found = extraction("Pod", llama("-dr", "ai/gemma3"))
    assert found.references == ()
    assert "Docker Hub" in whys(found)[0]


def test_b12_vllm_hf_config_path_is_judged() -> None:
    assert refs(
        "Pod", vllm("org/m", "--hf-config-path", "org/cfg", "--trust-remote-code", "--revision", SHA)
    ) == [
        f"hf://org/cfg@{SHA}",
        f"hf://org/m@{SHA}",
    ]
