"""llama.cpp's server (and CLI): GGUF files by path, or pulled from the Hub.

Flags: ``-m``/``--model`` (a path), ``-hf``/``-hfr``/``--hf-repo`` (``org/name[:quant]``; the
quantisation tag picks a file, the repository is the model; ``-hff``/``--hf-file`` picks a
file too, so it changes nothing: the whole repository is judged), and the draft-model twins ``-md``/``--model-draft``, ``-hfd``/``--hf-repo-draft``; also
``-mu``/``--model-url`` when it points at huggingface.co. The server reads every flag
from ``LLAMA_ARG_*`` environment variables too (``LLAMA_ARG_MODEL``,
``LLAMA_ARG_HF_REPO``, ...), which is how the official images are usually configured.

Recognised by the program (``llama-server``, ``llama-cli``, the images' ``/app/llama-server``)
or by the image (``llama.cpp``, ``llama-cpp``) when its entrypoint gets ``args``.
"""

from __future__ import annotations

from collections.abc import Iterator

from modelsec.references.argv import describe, first, image_matches
from modelsec.references.container import MARK, Container, Env
from modelsec.references.model import Found, Workload
from modelsec.references.pins import Site, Unpinnable

PROGRAMS = frozenset({"llama-server", "llama-cli", "llama-run", "server"})
IMAGES = ("llama.cpp", "llama-cpp", "llamacpp")

# (flags, environment variable, what it names)
MODEL_FLAGS = (
    (("-m", "--model"), "LLAMA_ARG_MODEL", "path"),
    (("-hf", "-hfr", "--hf-repo"), "LLAMA_ARG_HF_REPO", "repo"),
    (("-mu", "--model-url"), "LLAMA_ARG_MODEL_URL", "url"),
    (("-md", "--model-draft"), "LLAMA_ARG_MODEL_DRAFT", "path"),
    (("-hfd", "-hfrd", "--hf-repo-draft"), "LLAMA_ARG_HF_REPO_DRAFT", "repo"),
)


NO_REVISION: dict[str, Site] = {
    "path": Unpinnable("a path names no revision"),
    "repo": Unpinnable(
        "llama.cpp downloads -hf repositories from their main branch and takes no "
        "revision; name the file by URL (--model-url https://huggingface.co/<org>/"
        "<name>/resolve/<commit>/<file>) to pin it"
    ),
    "url": Unpinnable("not a Hub URL"),
}


def _server_args(container: Container) -> list[tuple[tuple[str, ...], Env]]:
    found = []
    for prog, rest, env in container.launches():
        # `server` is the historical binary name: only trusted inside a llama.cpp image.
        if prog in PROGRAMS and (prog != "server" or image_matches(container, *IMAGES)):
            found.append((rest, env))
    if container.entrypoint and image_matches(container, *IMAGES):
        found.append((container.commands[0] if container.commands else (), container.environment))
    return found


def _repo(value: str) -> str:
    # org/name:Q4_K_M -> org/name (the tag selects a file inside the repository)
    return value.split(":", 1)[0] if "://" not in value else value


class LlamaCppExtractor:
    name = "llamacpp"

    def extract(self, workload: Workload) -> Iterator[Found]:
        for container in workload.containers:
            for args, env in _server_args(container):
                for flags, env_name, kind in MODEL_FLAGS:
                    value = first(args, *flags)
                    origin = f"llama.cpp {flags[-1]}"
                    from_env = value is None
                    if from_env:
                        # A value the request does not show comes back as a marker, which
                        # extract() reports as unresolved.
                        value, origin = env.get(env_name), f"env {env_name}"
                    if not value:
                        continue
                    site: Site = NO_REVISION[kind]
                    if kind == "repo":
                        value = _repo(value)
                    elif kind == "url":
                        if "huggingface.co/" not in value and MARK not in value:
                            continue  # another web server: nothing a ModelSource can match
                        # A Hub URL names its revision: .../resolve/<revision>/<file>.
                        site = (
                            container.env_site(env_name, "hub-url")
                            if from_env
                            else container.word_site(value, "hub-url")
                        )
                    yield Found(value, describe(container, origin), site=site)


EXTRACTOR = LlamaCppExtractor()
