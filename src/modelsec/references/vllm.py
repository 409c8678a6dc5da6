"""vLLM: ``vllm serve <model>``, ``python -m vllm.entrypoints.openai.api_server --model``.

Recognised in any command line of a container (shell scripts included), and as plain
``args`` to a vLLM image's own entrypoint (``vllm/vllm-openai``: either the positional
model of ``vllm serve`` or ``--model``). Reads ``--model`` and the positional model with
``--revision``, ``--tokenizer`` with ``--tokenizer-revision``, and each LoRA adapter of
``--lora-modules name=path`` (adapters are model files too, and can carry pickles).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from modelsec.references.argv import describe, first, image_matches, values
from modelsec.references.container import Container
from modelsec.references.model import Found, Workload
from modelsec.references.pins import Unpinnable

API_SERVERS = frozenset(
    {
        "vllm.entrypoints.openai.api_server",
        "vllm.entrypoints.api_server",
    }
)
CLI_MODULES = frozenset({"vllm", "vllm.entrypoints.cli.main"})
LORA = Unpinnable("vLLM takes no revision for LoRA adapters")


def _server_args(container: Container) -> Iterator[tuple[tuple[str, ...], bool]]:
    """(arguments of a vLLM server, whether a positional model may lead them)."""
    for prog, rest in container.programs:
        if prog in CLI_MODULES and rest[:1] == ("serve",):
            yield rest[1:], True
        elif prog in API_SERVERS:
            yield rest, False
    if container.entrypoint and container.commands and image_matches(container, "vllm"):
        # The image's entrypoint gets `args`: `vllm serve` (positional model) in current
        # images, the OpenAI api_server module (`--model`) in older ones.
        yield container.commands[0], True


def _lora_path(value: str) -> str | None:
    value = value.strip()
    if value.startswith("{"):
        try:
            spec = json.loads(value)
        except ValueError:
            return None
        path = spec.get("path") if isinstance(spec, dict) else None
        return path if isinstance(path, str) else None
    _name, eq, path = value.partition("=")
    return path if eq else None


class VllmExtractor:
    name = "vllm"

    def extract(self, workload: Workload) -> Iterator[Found]:
        for container in workload.containers:
            for args, positional in _server_args(container):
                revision = first(args, "--revision")
                site = container.option_site("--revision")
                if positional and args and not args[0].startswith("-"):
                    yield Found(args[0], describe(container, "vllm serve <model>"), revision, site=site)
                model = first(args, "--model")
                if model:
                    yield Found(model, describe(container, "vllm --model"), revision, site=site)
                tokenizer = first(args, "--tokenizer")
                if tokenizer:
                    yield Found(
                        tokenizer,
                        describe(container, "vllm --tokenizer"),
                        first(args, "--tokenizer-revision"),
                        site=container.option_site("--tokenizer-revision"),
                    )
                for _flag, value in values(args, "--lora-modules", many=True):
                    path = _lora_path(value)
                    if path:
                        yield Found(path, describe(container, "vllm --lora-modules"), site=LORA)


EXTRACTOR = VllmExtractor()
