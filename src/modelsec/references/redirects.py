"""Environment variables that send a serving stack's downloads somewhere else.

A workload that names ``meta-llama/Llama-3.1-8B`` is judged by the scan of that
repository on the Hub, but the program reads its environment first: ``HF_ENDPOINT`` (every
client built on ``huggingface_hub``, and llama.cpp), ``MODEL_ENDPOINT`` (llama.cpp, before
``HF_ENDPOINT``) and ``VLLM_USE_MODELSCOPE`` (vLLM downloads from ModelScope instead) decide
where ``org/name`` comes from; ``AWS_ENDPOINT_URL_S3``, ``AWS_ENDPOINT_URL`` (boto3, the AWS
SDKs) and ``RUNAI_STREAMER_S3_ENDPOINT`` (vLLM's streamer) decide which server
``s3://bucket/key`` is read from (vLLM's tensorizer also reads ``S3_ENDPOINT_URL``), and
vLLM's ``VLLM_MODEL_REDIRECT_PATH`` names a file that maps model names to other paths. A Pod
that sets one of them could load a model from a server (or a path) it controls while the
webhook judges the scan of the real one.

So a reference read from a program's command line carries its :class:`Downloader`, and
:func:`endpoint` says where the download goes:

- no variable set (or set to the Hub itself): as named, no endpoint;
- one endpoint, whichever variables name it: the reference carries it, and only a
  ModelSource of that endpoint governs it (the webhook treats a redirected reference that
  no source governs as unresolved: fail closed);
- a value the request does not show (a Secret, an unread ConfigMap), variables that
  disagree, or ModelScope: :class:`Redirected`, reported as unresolved.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from modelsec.references.container import Env

ANY_PROGRAM = "any"  # Downloader.program of a reference no known program reads
VLLM_ENGINES = frozenset({"vllm", "kserve-hf"})  # programs that load through vLLM's engine

# Variables each program reads for a scheme, in no particular order: where several are set
# they must agree, since which one wins differs between programs and releases.
HUB_ENDPOINT = ("HF_ENDPOINT",)
S3_ENDPOINT = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
ENDPOINT_VARIABLES: dict[tuple[str, str], tuple[str, ...]] = {
    ("vllm", "hf"): HUB_ENDPOINT,
    ("vllm", "s3"): (*S3_ENDPOINT, "RUNAI_STREAMER_S3_ENDPOINT", "S3_ENDPOINT_URL"),
    ("tgi", "hf"): HUB_ENDPOINT,
    ("llama.cpp", "hf"): ("MODEL_ENDPOINT", *HUB_ENDPOINT),
    ("triton", "s3"): S3_ENDPOINT,
    # KServe's storage initializer (huggingface_hub, boto3), and its Hugging Face runtime,
    # which hands the model to vLLM (whose switches then apply) or to transformers
    ("kserve", "hf"): HUB_ENDPOINT,
    ("kserve", "s3"): S3_ENDPOINT,
    ("kserve-hf", "hf"): HUB_ENDPOINT,
    ("kserve-hf", "s3"): (*S3_ENDPOINT, "RUNAI_STREAMER_S3_ENDPOINT", "S3_ENDPOINT_URL"),
    # A program modelsec does not know, named by the modelsec.io/models annotation: the
    # variables of the clients every Python program downloads with
    (ANY_PROGRAM, "hf"): HUB_ENDPOINT,
    (ANY_PROGRAM, "s3"): S3_ENDPOINT,
}
# KServe's storage initializer: a JSON storage spec (from the InferenceService's storage
# key, usually a Secret) whose endpoint_url it copies into AWS_ENDPOINT_URL before
# downloading, STORAGE_OVERRIDE_CONFIG's keys over STORAGE_CONFIG's
KSERVE_STORAGE_SPECS = ("STORAGE_CONFIG", "STORAGE_OVERRIDE_CONFIG")
MODELSCOPE = "VLLM_USE_MODELSCOPE"  # vLLM: "true" (any case) downloads from ModelScope
# vLLM: a JSON (or whitespace) table in this file maps model names to other paths
# (maybe_model_redirect), read before anything is downloaded
MODEL_REDIRECT_FILE = "VLLM_MODEL_REDIRECT_PATH"
WEIGHTS_OVERRIDE = "WEIGHTS_CACHE_OVERRIDE"  # TGI (also --weights-cache-override): weights from a directory
HUB_HOSTS = frozenset({"huggingface.co", "hf.co"})


@dataclass(frozen=True)
class Downloader:
    """The program that downloads a reference, and the environment it runs in."""

    # a key of ENDPOINT_VARIABLES: "vllm", "tgi", "llama.cpp", "triton", "kserve", "kserve-hf", ANY_PROGRAM
    program: str
    env: Env


@dataclass(frozen=True)
class Redirect:
    """The download goes to ``url``, as ``variable`` says."""

    url: str
    variable: str


@dataclass(frozen=True)
class Redirected:
    """The download goes somewhere modelsec cannot judge: why (``marked``: the value, when
    the request does not show it; extract() traces its marker to the Secret or ConfigMap)."""

    why: str
    marked: str = ""


def endpoint_key(url: str | None) -> str | None:
    """``host:port`` of an endpoint URL (a bare host is https), lower case; None if empty."""
    if not url:
        return None
    parts = urlsplit(url if "://" in url else f"https://{url}")
    host = (parts.hostname or "").lower()
    try:
        port = parts.port or (80 if parts.scheme.lower() == "http" else 443)
    except ValueError:  # a port that is not a number: no server anyone can reach as such
        port = 0
    return f"{host}:{port}"


_PLAIN_URL = re.compile(r"https://([A-Za-z0-9.-]+)(?::443)?/?", re.IGNORECASE)


def is_the_hub(url: str) -> bool:
    """Whether ``url`` is the Hub, spelled so that every HTTP client reads it the same way:
    https, one of the Hub's host names, no user, port 443, nothing after the host. Anything
    else (``https://evil.example\\@huggingface.co`` is the Hub to Python's urlsplit and
    evil.example to requests; ``http://``; another port) counts as another server."""
    found = _PLAIN_URL.fullmatch(url.strip())
    return found is not None and found.group(1).lower() in HUB_HOSTS


def redirect(
    downloader: Downloader, scheme: str, named: str | None, mark: str
) -> Redirect | Redirected | None:
    """Where ``downloader`` fetches a ``scheme`` reference that names endpoint ``named``
    (None: the program's default) when its environment says otherwise; None when it does
    not. ``mark`` is the text that flags a value the request does not show."""
    env = downloader.env
    if downloader.program in VLLM_ENGINES and (table := env.get(MODEL_REDIRECT_FILE)):
        return Redirected(
            f"{MODEL_REDIRECT_FILE} names a file that may map the model to another path, and modelsec "
            "does not read files in the image or on volumes",
            table if mark in table else "",
        )
    if downloader.program == "tgi" and (directory := env.get(WEIGHTS_OVERRIDE)):
        return Redirected(
            f"{WEIGHTS_OVERRIDE} makes TGI load the weights from a directory instead of the model "
            "it names, and modelsec does not read files in the image or on volumes",
            directory if mark in directory else "",
        )
    if downloader.program in VLLM_ENGINES and scheme == "hf":
        switch = env.get(MODELSCOPE)
        if switch is not None and mark in switch:
            return Redirected(f"{MODELSCOPE} decides whether vLLM downloads it from ModelScope", switch)
        if switch is not None and switch.lower() == "true":
            return Redirected(
                f"{MODELSCOPE}={switch} makes vLLM download it from ModelScope, which modelsec does not scan"
            )
    if named is not None:
        return None  # the reference names its server (Triton's s3://host:port/...)
    settings = [(v, env.get(v)) for v in ENDPOINT_VARIABLES.get((downloader.program, scheme), ())]
    if downloader.program in ("kserve", "kserve-hf") and scheme == "s3":
        spec = _kserve_storage_endpoint(env, mark)
        if isinstance(spec, Redirected):
            return spec
        settings.append(spec)
    found: dict[str, Redirect] = {}  # by endpoint_key: the first variable naming each server
    for variable, value in settings:
        if not value:
            continue  # unset, or empty: the program falls back to its default
        if mark in value:
            return Redirected(f"{variable} decides which server it is downloaded from", value)
        key = endpoint_key(value)
        if key is None or (scheme == "hf" and is_the_hub(value)):
            continue  # the Hub itself
        found.setdefault(key, Redirect(value, variable))
    if len(found) > 1:
        said = " and ".join(f"{r.variable}={r.url}" for r in found.values())
        return Redirected(f"{said} name different servers, and which one wins differs between releases")
    return next(iter(found.values()), None)


def redirect_any(
    downloaders: tuple[Downloader, ...], scheme: str, named: str | None, mark: str
) -> Redirect | Redirected | None:
    """Where the download of a reference goes when any of ``downloaders`` may be the one
    that makes it (the annotation names a model, not the program that loads it): the one
    server those that set a variable agree on. A program that sets none is taken not to
    download (a sidecar beside a server that uses a mirror); servers that differ are
    unresolved, since modelsec cannot tell which program loads the model."""
    found: dict[str | None, Redirect] = {}
    for downloader in downloaders:
        where = redirect(downloader, scheme, named, mark)
        if isinstance(where, Redirected):
            return where
        if where is not None:
            found.setdefault(endpoint_key(where.url), where)
    if len(found) > 1:
        said = " and ".join(f"{r.variable}={r.url}" for r in found.values())
        return Redirected(f"the containers' {said} name different servers, and any of them may load it")
    return next(iter(found.values()), None)


def _kserve_storage_endpoint(env: Env, mark: str) -> tuple[str, str | None] | Redirected:
    """(variable, endpoint) that KServe's storage spec variables set, as its storage
    initializer merges them (``endpoint_url`` of an ``s3`` spec); unresolved where the
    request does not show a spec or it cannot be read."""
    merged: dict[str, object] = {}
    said = ""
    for variable in KSERVE_STORAGE_SPECS:
        text = env.get(variable)
        if text is None:
            continue
        if mark in text:
            return Redirected(f"{variable} (a KServe storage spec) may name the S3 endpoint", text)
        try:
            spec = json.loads(text or "{}")
        except ValueError:
            spec = None
        if not isinstance(spec, dict):
            return Redirected(f"{variable} is not a JSON object, and KServe reads its endpoint_url from it")
        merged.update(spec)
        if "endpoint_url" in spec:
            said = variable
    url = merged.get("endpoint_url") if merged.get("type") == "s3" else None
    if url is not None and not isinstance(url, str):
        return Redirected(f"{said} gives an endpoint_url that is not a string")
    return said or KSERVE_STORAGE_SPECS[0], url


# Hosts a download of each scheme connects to when the reference names no endpoint: the
# Hub and the hosts it sends file downloads to (cdn-lfs.hf.co, cas-bridge.xethub.hf.co...),
# and AWS's S3 endpoints.
DEFAULT_DOMAINS = {"hf": ("huggingface.co", "hf.co"), "s3": ("amazonaws.com",)}


def aliased(
    scheme: str, endpoint: str | None, aliases: tuple[tuple[str, str], ...]
) -> tuple[str, str] | None:
    """The pod's ``hostAliases`` entry (hostname, ip) that sends the download of a
    ``scheme`` reference (from ``endpoint``, or the scheme's default hosts) to an address
    of the pod's choosing; None when there is none. With a CA bundle of its choosing
    (``REQUESTS_CA_BUNDLE``, a volume over the certificates) that address serves any file."""
    if endpoint:
        host = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}").hostname or ""
        return next(((name, ip) for name, ip in aliases if name == host.lower()), None)
    domains = DEFAULT_DOMAINS.get(scheme, ())
    for name, ip in aliases:
        if any(name == domain or name.endswith(f".{domain}") for domain in domains):
            return name, ip
    return None
