"""llama.cpp server: paths, Hub repositories, environment."""

from __future__ import annotations

from reference_helpers import extraction, pod, refs

IMAGE = "ghcr.io/ggml-org/llama.cpp:server"


def test_model_path_and_hub_repo_flags() -> None:
    obj = pod(
        {"name": "l", "image": IMAGE, "args": ["-m", "/models/x.gguf", "--port", "8080"]},
        {"name": "h", "image": IMAGE, "args": ["-hf", "org/gguf-model:Q4_K_M", "-hff", "m.Q4_K_M.gguf"]},
    )
    assert refs("Pod", obj) == ["file:///models/x.gguf", "hf://org/gguf-model"]


def test_long_flags_and_draft_models() -> None:
    obj = pod(
        {
            "name": "l",
            "image": "busybox",
            "command": [
                "/app/llama-server",
                "--hf-repo",
                "org/main",
                "--model-draft",
                "/m/draft.gguf",
                "--hf-repo-draft=org/draft:Q8_0",
            ],
        }
    )
    assert refs("Pod", obj) == ["file:///m/draft.gguf", "hf://org/draft", "hf://org/main"]


def test_llama_arg_environment() -> None:
    obj = pod(
        {
            "name": "l",
            "image": IMAGE,
            "env": [
                {"name": "LLAMA_ARG_HF_REPO", "value": "org/env:Q5"},
                {"name": "LLAMA_ARG_MODEL", "value": "/m/e.gguf"},
            ],
        }
    )
    assert refs("Pod", obj) == ["file:///m/e.gguf", "hf://org/env"]


def test_model_url_on_the_hub_only() -> None:
    obj = pod(
        {"name": "l", "image": IMAGE, "args": ["-mu", "https://huggingface.co/org/m/resolve/main/m.gguf"]},
        {"name": "k", "image": IMAGE, "args": ["--model-url", "https://example.com/m.gguf"]},
    )
    assert refs("Pod", obj) == ["hf://org/m@main"]


def test_shell_wrapped_server() -> None:
    obj = pod(
        {
            "name": "l",
            "image": IMAGE,
            "command": ["sh", "-c", "exec /app/llama-server -hf org/s:Q4_K_M --port 8081"],
        }
    )
    assert refs("Pod", obj) == ["hf://org/s"]


def test_env_from_a_secret_is_unresolved() -> None:
    obj = pod(
        {
            "name": "l",
            "image": IMAGE,
            "env": [{"name": "LLAMA_ARG_HF_REPO", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
        }
    )
    assert [u.origin for u in extraction("Pod", obj).unresolved] == ["container l: env LLAMA_ARG_HF_REPO"]


def test_a_program_called_server_elsewhere_is_not_llama() -> None:
    obj = pod({"name": "w", "image": "nginx", "command": ["server", "-m", "/etc/x"]})
    assert not extraction("Pod", obj)
