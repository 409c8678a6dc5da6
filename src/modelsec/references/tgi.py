"""Hugging Face Text Generation Inference and Text Embeddings Inference.

Both launchers take ``--model-id`` and ``--revision``, or the environment variables
``MODEL_ID`` and ``REVISION`` (the usual way with the official images, whose entrypoint is
the launcher). Recognised by the program (``text-generation-launcher``,
``text-embeddings-router``) in any command line, or by the image
(``text-generation-inference``, ``text-embeddings-inference``). TGI's LoRA adapters
(``--lora-adapters`` / ``LORA_ADAPTERS``, comma-separated ids, each optionally
``name=id``) are references too.

``MODEL_ID`` set from a ConfigMap the webhook read is used like a literal value; set from a
Secret, or from a ConfigMap that was not read, it names a model this module cannot see:
that is reported as unresolved rather than silently skipped.
"""

from __future__ import annotations

from collections.abc import Iterator

from modelsec.references.argv import describe, first, image_matches
from modelsec.references.container import Container, Env
from modelsec.references.model import Found, Unresolved, Workload
from modelsec.references.pins import Unpinnable
from modelsec.references.redirects import Downloader

PROGRAMS = frozenset({"text-generation-launcher", "text-embeddings-router"})
IMAGES = ("text-generation-inference", "text-embeddings-inference")
ENV_MODEL, ENV_REVISION, ENV_LORA = "MODEL_ID", "REVISION", "LORA_ADAPTERS"
LORA = Unpinnable("TGI takes no revision for LoRA adapters")


def _launches(container: Container) -> list[tuple[tuple[str, ...], Env]]:
    """(launcher arguments, the environment it runs in)."""
    found = [(rest, env) for prog, rest, env in container.launches() if prog in PROGRAMS]
    if container.entrypoint and image_matches(container, *IMAGES):
        found.append((container.commands[0] if container.commands else (), container.environment))
    return found


def _adapters(value: str) -> Iterator[str]:
    for item in value.split(","):
        item = item.strip()
        if item:
            yield item.partition("=")[2] or item


class TgiExtractor:
    name = "tgi"

    def extract(self, workload: Workload) -> Iterator[Found | Unresolved]:
        for container in workload.containers:
            for args, env in _launches(container):
                # A value the request does not show (ConfigMap, Secret) comes back as a
                # marker, which extract() reports as unresolved.
                model = first(args, "--model-id")
                revision = first(args, "--revision") or env.get(ENV_REVISION)
                # --revision where the arguments give one, else REVISION (the launcher
                # reads it when the option is absent).
                site = container.option_site("--revision", ENV_REVISION)
                downloader = Downloader("tgi", env)
                if override := first(args, "--weights-cache-override"):
                    # the launcher hands the shards this directory instead of downloading
                    yield Unresolved(
                        describe(container, "--weights-cache-override"),
                        f"TGI loads the weights from {override[:200]!r} instead of the model it names, "
                        "and modelsec does not read files in the image or on volumes",
                    )
                    continue
                if model:
                    yield Found(
                        model,
                        describe(container, "--model-id"),
                        revision,
                        site=site,
                        downloaders=(downloader,),
                        env=env,
                    )
                elif value := env.get(ENV_MODEL):
                    yield Found(
                        value,
                        describe(container, f"env {ENV_MODEL}"),
                        revision,
                        site=site,
                        downloaders=(downloader,),
                        env=env,
                    )
                adapters = first(args, "--lora-adapters") or env.get(ENV_LORA)
                for adapter in _adapters(adapters or ""):
                    yield Found(
                        adapter,
                        describe(container, "LoRA adapter"),
                        site=LORA,
                        downloaders=(downloader,),
                        env=env,
                    )


EXTRACTOR = TgiExtractor()
