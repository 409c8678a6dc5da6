"""llama.cpp's server (and CLI): GGUF files by path, or pulled from the Hub.

Every option that makes the server load a model file is read: ``-m``/``--model`` (a
path), ``-hf``/``-hfr``/``--hf-repo`` (``org/name[:quant]``; the quantisation tag picks a
file, the repository is the model), ``-mu``/``--model-url``, the draft model
(``-md``/``--model-draft``, ``-hfd``/``--hf-repo-draft``), the vocoder (``-mv``,
``-hfv``/``--hf-repo-v``), the multimodal projector (``-mm``/``--mmproj``,
``-mmu``/``--mmproj-url``), LoRA adapters and control vectors (``--lora``,
``--lora-scaled``, ``--control-vector[-scaled]``: GGUF files too, each occurrence
loaded), and a router's ``--models-dir``. ``-hff``/``--hf-file`` picks a file of the
repository, so the whole repository is judged, unless the name climbs out of it
(``../``). ``-dr``/``--docker-repo`` (Docker Hub) and URLs on any server but the Hub
name models no ModelSource holds: unresolved. The server reads these options from
``LLAMA_ARG_*`` environment variables too (``LLAMA_ARG_MODEL``, ``LLAMA_ARG_HF_REPO``,
``LLAMA_ARG_MMPROJ``, ...), which is how the official images are usually configured.

Recognised by the program (``llama-server``, ``llama-cli``, the images' ``/app/llama-server``)
or by the image (``llama.cpp``, ``llama-cpp``) when its entrypoint gets ``args``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import unquote

from modelsec.references.argv import describe, image_matches, values
from modelsec.references.container import MARK, Container, Env
from modelsec.references.model import Found, Unresolved, Workload, hub_url
from modelsec.references.pins import Site, Unpinnable
from modelsec.references.redirects import Downloader
from modelsec.sources import ModelRefError

PROGRAMS = frozenset(
    {"llama-server", "llama-cli", "llama-run", "llama-mtmd-cli", "llama-embedding", "server"}
)
IMAGES = ("llama.cpp", "llama-cpp", "llamacpp")

# (flags, environment variables, what the value names), as llama.cpp's common/arg.cpp
# declares them. Older releases spelled some variables differently: both are read.
MODEL_FLAGS: tuple[tuple[tuple[str, ...], tuple[str, ...], str], ...] = (
    (("-m", "--model"), ("LLAMA_ARG_MODEL",), "path"),
    (("-hf", "-hfr", "--hf-repo"), ("LLAMA_ARG_HF_REPO",), "repo"),
    (("-mu", "--model-url"), ("LLAMA_ARG_MODEL_URL",), "url"),
    (("-md", "--model-draft", "--spec-draft-model"), ("LLAMA_ARG_MODEL_DRAFT",), "path"),
    (
        ("-hfd", "-hfrd", "--hf-repo-draft", "--spec-draft-hf"),
        ("LLAMA_ARG_HFD_REPO", "LLAMA_ARG_HF_REPO_DRAFT"),
        "repo",
    ),
    (("-mv", "--model-vocoder"), (), "path"),
    (("-hfv", "-hfrv", "--hf-repo-v"), ("LLAMA_ARG_HF_REPO_V",), "repo"),
    (("-mm", "--mmproj"), ("LLAMA_ARG_MMPROJ",), "path"),
    (("-mmu", "--mmproj-url"), ("LLAMA_ARG_MMPROJ_URL",), "url"),
    (("--lora", "--lora-scaled", "--control-vector", "--control-vector-scaled"), (), "adapters"),
    (("--models-dir",), ("LLAMA_ARG_MODELS_DIR",), "path"),
    (("-hff", "--hf-file"), ("LLAMA_ARG_HF_FILE",), "file"),
    (("-hffv", "--hf-file-v"), ("LLAMA_ARG_HF_FILE_V",), "file"),
    (("-dr", "--docker-repo"), ("LLAMA_ARG_DOCKER_REPO",), "docker"),
)

NO_REVISION: dict[str, Site] = {
    "path": Unpinnable("a path names no revision"),
    "adapters": Unpinnable("a path names no revision"),
    "repo": Unpinnable(
        "llama.cpp downloads -hf repositories from their main branch and takes no "
        "revision; name the file by URL (--model-url https://huggingface.co/<org>/"
        "<name>/resolve/<commit>/<file>) to pin it"
    ),
}

_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
# --lora-scaled FNAME:SCALE (current releases; older ones take SCALE as the next word)
_SCALE = re.compile(r":[-+]?[0-9]*\.?[0-9]+$")


def _server_args(container: Container) -> list[tuple[tuple[str, ...], Env]]:
    found = []
    for prog, rest, env in container.launches():
        # `server` is the historical binary name: only trusted inside a llama.cpp image.
        if prog in PROGRAMS and (prog != "server" or image_matches(container, *IMAGES)):
            found.append((rest, env))
    if container.entrypoint and image_matches(container, *IMAGES):
        found.append((container.commands[0] if container.commands else (), container.environment))
    return found


def _normalised(args: tuple[str, ...]) -> tuple[str, ...]:
    """``--hf_repo`` is ``--hf-repo`` (llama.cpp folds ``_`` in long option names)."""
    out = []
    for word in args:
        if word.startswith("--") and "_" in word:
            name, eq, rest = word.partition("=")
            word = name.replace("_", "-") + eq + rest
        out.append(word)
    return tuple(out)


def _adapters(value: str) -> list[str]:
    """Each file of a ``--lora`` value: the whole value and its comma-separated parts
    (releases differ in splitting), without a ``:SCALE`` suffix."""
    items = dict.fromkeys([value, *value.split(",")])
    return [_SCALE.sub("", item.strip()) for item in items if item.strip()]


def _read(
    container: Container, value: str, kind: str, origin: str, env_name: str | None, env: Env
) -> Iterator[Found | Unresolved]:
    """What one option's value makes the server load."""
    unknown = MARK in value  # built from a value the request does not show: extract() says so
    if kind == "path":
        yield Found(value, origin, site=NO_REVISION[kind], env=env, takes_path=True)
    elif kind == "adapters":
        for path in _adapters(value):
            yield Found(path, origin, site=NO_REVISION[kind], env=env, takes_path=True)
    elif kind == "repo":
        repo, _sep, tag = value.partition(":")
        if not unknown and (not _REPO.match(repo) or ".." in repo or "/" in tag):
            # llama.cpp puts the repository and tag into Hub URLs: what it would fetch from
            # a value that is not org/name[:quant] is not something to guess.
            yield Unresolved(
                origin, f"{value[:200]!r} is not a Hub repository (org/name[:quant]) modelsec can read"
            )
        else:
            # Downloaded from MODEL_ENDPOINT or HF_ENDPOINT when set (modelsec.references.redirects)
            downloader = Downloader("llama.cpp", env)
            yield Found(
                repo if not unknown else value, origin, site=NO_REVISION[kind], downloaders=(downloader,)
            )
    elif kind == "url":
        try:
            hub = unknown or hub_url(value) is not None
        except ModelRefError:
            hub = True  # a Hub URL that does not parse: to_model_ref says why, unresolved
        if not hub:
            yield Unresolved(
                origin, f"the model is downloaded from {value[:200]!r}, which is not the Hugging Face Hub"
            )
            return
        # A Hub URL names its revision: .../resolve/<revision>/<file>.
        site = container.env_site(env_name, "hub-url") if env_name else container.word_site(value, "hub-url")
        yield Found(value, origin, site=site)
    elif kind == "file":
        # Joined into https://huggingface.co/<repo>/resolve/main/<file>: a client folds
        # '..' segments, so the file could come from another repository.
        if unknown or any(part in (".", "..") for part in unquote(value).split("/")) or "://" in value:
            yield Unresolved(
                origin, f"the file name {value[:200]!r} may lead out of the repository it picks from"
            )
    elif kind == "docker":
        yield Unresolved(
            origin, f"the model {value[:200]!r} comes from Docker Hub, which no ModelSource holds"
        )


class LlamaCppExtractor:
    name = "llamacpp"

    def extract(self, workload: Workload) -> Iterator[Found | Unresolved]:
        for container in workload.containers:
            for raw_args, env in _server_args(container):
                args = _normalised(raw_args)
                for flags, env_names, kind in MODEL_FLAGS:
                    # llama.cpp's parser takes the word after an option as its value
                    given = [value for _flag, value in values(args, *flags, verbatim=True)]
                    for value in given:
                        yield from _read(
                            container, value, kind, describe(container, f"llama.cpp {flags[-1]}"), None, env
                        )
                    if given:
                        continue  # an option on the command line wins over its variable
                    for env_name in env_names:
                        # A value the request does not show comes back as a marker, which
                        # extract() reports as unresolved.
                        from_env = env.get(env_name)
                        if from_env:
                            yield from _read(
                                container,
                                from_env,
                                kind,
                                describe(container, f"env {env_name}"),
                                env_name,
                                env,
                            )


EXTRACTOR = LlamaCppExtractor()
