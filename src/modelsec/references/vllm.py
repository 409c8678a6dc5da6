"""vLLM: ``vllm serve <model>``, ``python -m vllm.entrypoints.openai.api_server --model``.

Recognised in any command line of a container (shell scripts included), and as plain
``args`` to a vLLM image's own entrypoint (``vllm/vllm-openai``: either the positional
model of ``vllm serve`` or ``--model``).

The arguments are read the way vLLM's parser reads them (argparse, through vLLM's
``FlexibleArgumentParser``): the positional model may stand anywhere among the options
and after ``--``; ``--foo_bar`` is ``--foo-bar``; an unambiguous prefix (``--revisi``) is
the option it abbreviates; ``--json-opt.key value`` is a key of a JSON option. Read:
the positional model and ``--model`` with ``--revision`` and ``--code-revision`` (the
remote code's revision), ``--tokenizer`` with ``--tokenizer-revision`` (which applies to
the model when there is no ``--tokenizer``), ``--hf-config-path``, the draft model of
``--speculative-config`` (and the older ``--speculative-model``), and each adapter of
``--lora-modules`` / ``--prompt-adapters`` / ``--qlora-adapter-name-or-path`` (adapters
are model files too, and can carry pickles).

Where the reading is unsure it leans towards checking: the word after an option this
module does not know may be the positional model, so it is read as one; an ambiguous
abbreviation of a model option, ``--config <file>`` (options from a file the request
does not carry) and a launch that names no model at all (vLLM then loads its default)
are unresolved.
"""

from __future__ import annotations

import bisect
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field

from modelsec.references.argv import describe, image_matches
from modelsec.references.container import MARK, Container, Env
from modelsec.references.model import Found, Unresolved, Workload
from modelsec.references.pins import Site, Unpinnable
from modelsec.references.redirects import Downloader

API_SERVERS = frozenset(
    {
        "vllm.entrypoints.openai.api_server",
        "vllm.entrypoints.api_server",
    }
)
CLI_MODULES = frozenset({"vllm", "vllm.entrypoints.cli.main"})
LORA = Unpinnable("vLLM takes no revision for LoRA adapters")
DRAFT = Unpinnable("modelsec does not rewrite vLLM's speculative config")

# Options that name a model, a revision of one, or bring options from elsewhere.
MODEL_OPTIONS = frozenset(
    {
        "--model",
        "--tokenizer",
        "--hf-config-path",
        "--revision",
        "--code-revision",
        "--tokenizer-revision",
        "--speculative-config",
        "--speculative-model",
        "--lora-modules",
        "--prompt-adapters",
        "--qlora-adapter-name-or-path",
        "--config",
    }
)
# Options taking several words (argparse nargs='+'): each is an adapter.
ADAPTER_LISTS = frozenset({"--lora-modules", "--prompt-adapters"})

# Options of `vllm serve` that take a value (vLLM's EngineArgs.add_cli_args and the
# OpenAI server's arguments). Only options known to take one belong here: the word after
# any other option is read as a possible positional model. Boolean flags are not listed:
# what follows a flag is positional, which is how an unknown option is read anyway.
VALUE_OPTIONS = MODEL_OPTIONS | frozenset(
    {
        # model and loading
        "--task",
        "--runner",
        "--convert",
        "--tokenizer-mode",
        "--dtype",
        "--seed",
        "--max-model-len",
        "--quantization",
        "--load-format",
        "--download-dir",
        "--model-loader-extra-config",
        "--ignore-patterns",
        "--pt-load-map-location",
        "--config-format",
        "--model-impl",
        "--hf-overrides",
        "--generation-config",
        "--override-generation-config",
        "--rope-scaling",
        "--rope-theta",
        "--max-logprobs",
        "--logprobs-mode",
        "--max-seq-len-to-capture",
        "--served-model-name",
        "--allowed-local-media-path",
        "--logits-processor-pattern",
        "--logits-processors",
        "--pooler-config",
        "--override-pooler-config",
        "--limit-mm-per-prompt",
        "--mm-processor-kwargs",
        "--media-io-kwargs",
        "--mm-encoder-tp-mode",
        # cache, scheduler, parallelism
        "--kv-cache-dtype",
        "--block-size",
        "--gpu-memory-utilization",
        "--swap-space",
        "--cpu-offload-gb",
        "--num-gpu-blocks-override",
        "--prefix-caching-hash-algo",
        "--max-num-batched-tokens",
        "--max-num-seqs",
        "--max-num-partial-prefills",
        "--max-long-partial-prefills",
        "--long-prefill-token-threshold",
        "--scheduling-policy",
        "--scheduler-cls",
        "--preemption-mode",
        "--tensor-parallel-size",
        "--pipeline-parallel-size",
        "--data-parallel-size",
        "--data-parallel-size-local",
        "--data-parallel-address",
        "--data-parallel-rpc-port",
        "--data-parallel-start-rank",
        "--data-parallel-backend",
        "--distributed-executor-backend",
        "--max-parallel-loading-workers",
        "--worker-cls",
        "--worker-extension-cls",
        "--device",
        # LoRA and speculative decoding
        "--max-lora-rank",
        "--max-loras",
        "--max-cpu-loras",
        "--lora-dtype",
        "--lora-extra-vocab-size",
        "--long-lora-scaling-factors",
        "--num-speculative-tokens",
        # JSON configs
        "--compilation-config",
        "--kv-transfer-config",
        "--kv-events-config",
        "--additional-config",
        "--structured-outputs-config",
        "--guided-decoding-backend",
        # observability
        "--otlp-traces-endpoint",
        "--collect-detailed-traces",
        # the OpenAI server
        "--host",
        "--port",
        "--uds",
        "--uvicorn-log-level",
        "--allowed-origins",
        "--allowed-methods",
        "--allowed-headers",
        "--api-key",
        "--chat-template",
        "--chat-template-content-format",
        "--response-role",
        "--ssl-keyfile",
        "--ssl-certfile",
        "--ssl-ca-certs",
        "--ssl-cert-reqs",
        "--root-path",
        "--middleware",
        "--tool-call-parser",
        "--tool-parser-plugin",
        "--reasoning-parser",
        "--max-log-len",
        "--api-server-count",
        "--log-config-file",
        "--shutdown-timeout",
        # short spellings
        "-tp",
        "-pp",
        "-dp",
        "-dpl",
        "-dpa",
        "-dpp",
        "-dpr",
        "-dpb",
        "-dcp",
        "-asc",
        "-q",
        # not -O: releases differ on whether it takes a separate value (-O 3) or only an
        # attached one (-O3); read as a flag, the word after it is checked as a model
    }
)
LONG_OPTIONS = tuple(sorted(o for o in VALUE_OPTIONS if o.startswith("--")))


def _server_args(container: Container) -> Iterator[tuple[tuple[str, ...], Env]]:
    """The arguments of each vLLM server the container starts, and its environment."""
    for prog, rest, env in container.launches():
        if prog in CLI_MODULES and rest[:1] == ("serve",):
            yield rest[1:], env
        elif prog in API_SERVERS:
            yield rest, env
    if container.entrypoint and container.commands and image_matches(container, "vllm"):
        # The image's entrypoint gets `args`: `vllm serve` (positional model) in current
        # images, the OpenAI api_server module (`--model`) in older ones.
        yield container.commands[0], container.environment


def _is_option(word: str) -> bool:
    # argparse reads "-1" as a value (no vLLM option looks like a negative number)
    return len(word) > 1 and word[0] == "-" and not word[1].isdigit()


@dataclass
class _Parsed:
    """One vLLM command line as argparse reads it."""

    values: dict[str, list[str]] = field(default_factory=dict)  # option -> values, in order
    # Words argparse may take as the positional model: the positionals, and the word after
    # an option whose arity is not known here (if that option is a flag, it is positional).
    candidates: list[str] = field(default_factory=list)
    dotted: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # --opt.key value
    ambiguous: list[str] = field(default_factory=list)  # abbreviations of several options

    def all(self, option: str) -> list[str]:
        return self.values.get(option, [])

    def last(self, option: str) -> str | None:
        """argparse keeps the last value given."""
        found = self.values.get(option)
        return found[-1] if found else None


def _resolve(name: str) -> tuple[str | None, bool]:
    """(the option ``name`` spells, whether only as an abbreviation); None when unknown.

    argparse accepts any unambiguous prefix of a long option (vLLM leaves
    ``allow_abbrev`` on)."""
    if name in VALUE_OPTIONS:
        return name, False
    if not name.startswith("--") or len(name) < 3:
        return None, False
    # The options a prefix abbreviates are adjacent in sorted order: found by bisection, so
    # a line of many unknown words costs no more than a table scan each.
    start = bisect.bisect_left(LONG_OPTIONS, name)
    matches = list(itertools.takewhile(lambda option: option.startswith(name), LONG_OPTIONS[start:]))
    if len(matches) == 1:
        return matches[0], True
    if any(option in MODEL_OPTIONS for option in matches):
        # It may abbreviate a model option in the vLLM that runs; which one, if any, this
        # table cannot tell.
        raise _AmbiguousError(name)
    return None, False


class _AmbiguousError(Exception):
    pass


def parse(args: tuple[str, ...]) -> _Parsed:
    """One vLLM command line's arguments as vLLM's parser reads them."""
    parsed = _Parsed()
    i = 0
    while i < len(args):
        word = args[i]
        i += 1
        if word == "--":  # everything after it is positional
            parsed.candidates.extend(args[i:])
            break
        if not _is_option(word):
            parsed.candidates.append(word)
            continue
        name, eq, inline = word.partition("=")
        name, dot, key = name.partition(".")
        if name.startswith("--"):
            name = name.replace("_", "-")  # FlexibleArgumentParser: --foo_bar is --foo-bar
        try:
            option, abbreviated = _resolve(name)
        except _AmbiguousError:
            parsed.ambiguous.append(name)
            continue
        if option is None and not dot:
            continue  # a flag, or an option not known here: the next word may be positional
        if eq:
            value = inline
        elif i < len(args) and not _is_option(args[i]):
            value = args[i]
            i += 1
            if abbreviated:
                # The table may miss a flag this abbreviates: then the word is positional.
                parsed.candidates.append(value)
        else:
            continue  # argparse would refuse the line: nothing more to read
        if option is None:
            continue  # a dotted key of a JSON option not known here
        if dot:
            parsed.dotted.setdefault(option, []).append((key, value))
            continue
        parsed.values.setdefault(option, []).append(value)
        if option in ADAPTER_LISTS and not eq:
            while i < len(args) and not _is_option(args[i]):
                parsed.values[option].append(args[i])
                i += 1
    return parsed


def _adapter_path(value: str) -> str:
    """The path of a LoRA module (``name=path`` or JSON with a ``path``); the word itself
    when it is neither (vLLM would refuse it, or read it some other way: it is checked)."""
    value = value.strip()
    if value.startswith("{") and MARK not in value:
        try:
            spec = json.loads(value)
        except ValueError:
            return value
        path = spec.get("path") if isinstance(spec, dict) else None
        return path if isinstance(path, str) else value
    _name, eq, path = value.partition("=")
    return path if eq else value


def _draft_models(parsed: _Parsed) -> tuple[list[tuple[str, str | None]], list[str]]:
    """((draft model, revision) pairs, problems) of ``--speculative-config``: JSON values and
    dotted keys (vLLM merges ``--speculative-config.model X`` into the JSON)."""
    configs: list[dict[str, object]] = []
    problems: list[str] = []
    for value in parsed.all("--speculative-config"):
        if MARK in value:
            configs.append({"model": value})  # unknown text: extract() reports it unresolved
            continue
        try:
            config = json.loads(value)
        except ValueError:
            config = None
        if not isinstance(config, dict):
            problems.append(f"--speculative-config {value[:200]!r} is not a JSON object modelsec can read")
            continue
        configs.append(config)
    dotted: dict[str, object] = {
        key.rstrip("+").replace("-", "_"): value
        for key, value in parsed.dotted.get("--speculative-config", [])
    }
    if dotted:
        configs.append(dotted)
    models = [m for c in configs if isinstance(m := c.get("model"), str)]
    models += parsed.all("--speculative-model")
    revisions: list[str | None] = [
        r for c in configs for k in ("revision", "code_revision") if isinstance(r := c.get(k), str)
    ]
    return [(m, r) for m in models for r in (revisions or [None])], problems


class VllmExtractor:
    name = "vllm"

    def extract(self, workload: Workload) -> Iterator[Found | Unresolved]:
        for container in workload.containers:
            for args, env in _server_args(container):
                yield from launch(container, parse(args), Downloader("vllm", env))


@dataclass(frozen=True)
class Engine:
    """Who hands the arguments to vLLM's engine: ``vllm`` itself, or a runtime that
    renames some options (KServe's Hugging Face runtime: ``--model_revision`` is the
    ``--revision`` vLLM reads, and a pin goes there)."""

    label: str = "vllm"
    spelled: dict[str, str] = field(default_factory=dict)  # vLLM option -> the runtime's name
    model_required: bool = True  # naming none loads vLLM's default (a runtime may have its own)

    def option(self, vllm_option: str) -> str:
        return self.spelled.get(vllm_option, vllm_option)


VLLM = Engine()


def launch(
    container: Container, parsed: _Parsed, downloader: Downloader, engine: Engine = VLLM
) -> Iterator[Found | Unresolved]:
    """The references (and what cannot be read) of one vLLM engine's arguments."""
    label = engine.label

    def origin(what: str) -> str:
        return describe(container, what.replace("vllm", label, 1))

    def found(text: str, where: str, revision: str | None = None, *, site: Site) -> Found:
        return Found(text, where, revision, site=site, downloaders=(downloader,), env=downloader.env)

    def option_site(vllm_option: str) -> Site:
        return container.option_site(engine.option(vllm_option))

    for name in parsed.ambiguous:
        yield Unresolved(
            origin(f"vllm {name}"),
            f"{name} abbreviates several vLLM options, among them one that names a model or revision",
        )
    if parsed.all("--config"):
        yield Unresolved(
            origin("vllm --config"),
            "vLLM reads options (the model, its revision, adapters) from this file, which the request does not carry",
        )
    revision = parsed.last("--revision")
    code_revision = parsed.last("--code-revision")
    tokenizer, tokenizer_revision = parsed.last("--tokenizer"), parsed.last("--tokenizer-revision")
    site = option_site("--revision")
    models = [(text, "vllm serve <model>") for text in parsed.candidates]
    if model := parsed.last("--model"):
        models.append((model, "vllm --model"))
    if not models and not parsed.all("--config") and engine.model_required:
        yield Unresolved(origin("vllm"), "no model is named, so vLLM loads its default model")
    config_path = parsed.last("--hf-config-path")
    if config_path:
        models.append((config_path, "vllm --hf-config-path"))
    for text, where in models:
        yield found(text, origin(where), revision, site=site)
        if code_revision:
            # trust_remote_code runs the model's code from this revision
            yield found(
                text,
                origin(f"{where} --code-revision"),
                code_revision,
                site=option_site("--code-revision"),
            )
        if tokenizer_revision and not tokenizer and where != "vllm --hf-config-path":
            # No --tokenizer: the tokenizer (chat template included) is the model's, read
            # at this revision.
            yield found(
                text,
                origin(f"{where} --tokenizer-revision"),
                tokenizer_revision,
                site=option_site("--tokenizer-revision"),
            )
    if tokenizer:
        yield found(
            tokenizer,
            origin("vllm --tokenizer"),
            tokenizer_revision,
            site=option_site("--tokenizer-revision"),
        )
    drafts, problems = _draft_models(parsed)
    for problem in problems:
        yield Unresolved(origin("vllm --speculative-config"), problem)
    for text, draft_revision in drafts:
        yield found(text, origin("vllm speculative model"), draft_revision, site=DRAFT)
    for option in (*sorted(ADAPTER_LISTS), "--qlora-adapter-name-or-path"):
        for value in parsed.all(option):
            yield found(_adapter_path(value), origin(f"vllm {option}"), site=LORA)


EXTRACTOR = VllmExtractor()
