"""One container as the runtime will start it, read lazily from its pod-spec entry.

Most containers a webhook sees are ordinary applications that no extractor cares about,
so nothing is derived up front: each view (image name, environment, command lines) is
computed the first time an extractor asks, then kept.

Commands are split the way they will run:

- ``$(VAR)`` in ``command``/``args`` is expanded from the container's literal ``env`` as the
  kubelet does (``$$(VAR)`` is a literal ``$(VAR)``);
- ``sh -c '<script>'`` (and bash, ash, dash, zsh, ksh) is split into its simple commands
  with :mod:`shlex`, ``$VAR``/``${VAR}`` expanded from the same literal env, leading
  ``exec``, ``env``, ``nohup`` and ``VAR=value`` words dropped, so
  ``sh -c "pip install x && exec vllm serve $MODEL"`` yields ``("vllm", "serve", "<model>")``.

Nothing here reads the cluster: env values from ConfigMaps or Secrets are only *named*
(:attr:`Container.env_from_elsewhere`) so that extractors can say a model comes from
somewhere they cannot see.
"""

from __future__ import annotations

import functools
import re
import shlex
from typing import Any, Callable, Generic, Mapping, TypeVar

from modelsec.references.argv import program

SHELLS = frozenset({"sh", "bash", "ash", "dash", "zsh", "ksh"})
_SKIP_WORDS = frozenset({"exec", "env", "nohup", "time", "command", "eval"})
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_KUBE_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")
_SHELL_VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
_OPERATORS = ";&|()<>\n"
MAX_SCRIPT = 64 * 1024  # a longer inline script is read up to here

T = TypeVar("T")


class lazy(Generic[T]):
    """Compute on first access, then live in the instance's ``__dict__`` (where attribute
    lookup finds it first). ``functools.cached_property`` without its per-class lock,
    which costs more than most of these computations."""

    def __init__(self, compute: Callable[[Any], T]) -> None:
        self.compute = compute
        self.name = compute.__name__
        self.__doc__ = compute.__doc__

    def __get__(self, instance: Any, owner: type | None = None) -> T:
        if instance is None:
            return self  # type: ignore[return-value]
        value = instance.__dict__[self.name] = self.compute(instance)
        return value


# Every key of a container object this module reads. Extractors read containers only
# through the views below, never ``raw`` directly, so that this list is complete: the
# webhook caches extractions keyed by exactly these fields (see tests/references).
FIELDS = ("name", "image", "command", "args", "env", "modelFormat")


class Container:
    """A pod-spec container (``raw``), with the views extractors read."""

    def __init__(self, raw: Mapping[str, Any], init: bool = False) -> None:
        self.raw = raw
        self.init = init
        name = raw.get("name")
        self.name = name if isinstance(name, str) else ""
        image = raw.get("image")
        self.image = image if isinstance(image, str) else ""

    @classmethod
    def of(cls, name: str = "", image: str = "", command: list[str] | None = None,
           args: list[str] | None = None, env: Mapping[str, str] | None = None,
           init: bool = False) -> "Container":
        """Build one from parts (tests, tools) rather than from a pod spec."""
        raw: dict[str, Any] = {"name": name, "image": image}
        if command is not None:
            raw["command"] = command
        if args is not None:
            raw["args"] = args
        if env:
            raw["env"] = [{"name": k, "value": v} for k, v in env.items()]
        return cls(raw, init)

    def __repr__(self) -> str:
        return f"Container({self.name!r}, image={self.image!r}, commands={self.commands!r})"

    @lazy
    def image_name(self) -> str:
        """The image's repository path, lower case, without tag or digest:
        ``ghcr.io/ggml-org/llama.cpp:server`` -> ``ghcr.io/ggml-org/llama.cpp``."""
        image = self.image.lower().split("@", 1)[0]
        slash = image.rfind("/")
        colon = image.rfind(":")
        return image[:colon] if colon > slash else image

    @lazy
    def _env(self) -> tuple[dict[str, str], frozenset[str]]:
        values: dict[str, str] = {}
        elsewhere: set[str] = set()
        items = self.raw.get("env")
        for item in items if isinstance(items, list) else ():
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                continue
            if isinstance(item.get("value"), str):
                values[item["name"]] = item["value"]
            elif item.get("valueFrom") is not None:
                elsewhere.add(item["name"])
        return values, frozenset(elsewhere)

    @property
    def env(self) -> Mapping[str, str]:
        """Environment variables with literal values."""
        return self._env[0]

    @property
    def env_from_elsewhere(self) -> frozenset[str]:
        """Names whose value comes from a ConfigMap, Secret or field reference."""
        return self._env[1]

    @property
    def model_format(self) -> str | None:
        """KServe ``modelFormat.name`` of an InferenceService component, if any."""
        model_format = self.raw.get("modelFormat")
        name = model_format.get("name") if isinstance(model_format, dict) else None
        return name if isinstance(name, str) else None

    @lazy
    def entrypoint(self) -> bool:
        """True when ``command`` is unset: the image's entrypoint receives ``args``."""
        return not _strings(self.raw.get("command"))

    @lazy
    def commands(self) -> tuple[tuple[str, ...], ...]:
        """The command lines it runs: one for exec form, several for a shell script."""
        argv = (*_strings(self.raw.get("command")), *_strings(self.raw.get("args")))
        if not argv:
            return ()
        if any("$" in word for word in argv):
            argv = tuple(_kube_expand(word, self.env) for word in argv)
        script = _shell_script(argv)
        if script is None:
            return (argv,)
        # Scripts repeat across the pods of a workload; shlex is slow, so remember them.
        return _split_cached(script, tuple(sorted(self.env.items()))) or (argv,)

    @lazy
    def programs(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """(program, arguments) of each command line (see :func:`~.argv.program`)."""
        return tuple(program(line) for line in self.commands)


def _strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(v for v in value if isinstance(v, str))


def _kube_expand(word: str, env: Mapping[str, str]) -> str:
    if "$" not in word:
        return word

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return _KUBE_VAR.sub(replace, word)


def _shell_script(argv: tuple[str, ...]) -> str | None:
    if argv[0].rsplit("/", 1)[-1] not in SHELLS:
        return None
    for i, word in enumerate(argv[1:-1], start=1):
        # -c, or clustered flags ending in c (-ec, -xc, -euxc): the next word is the script.
        if word.startswith("-") and not word.startswith("--") and word.endswith("c"):
            return argv[i + 1]
    return None


@functools.lru_cache(maxsize=2048)
def _split_cached(script: str, env: tuple[tuple[str, str], ...]) -> tuple[tuple[str, ...], ...]:
    return split_script(script, dict(env))


def split_script(script: str, env: Mapping[str, str]) -> tuple[tuple[str, ...], ...]:
    """The simple commands of a shell script, words expanded from ``env`` where literal."""
    # Backslash-newline continues a line; a bare newline ends a command like `;` does.
    script = script[:MAX_SCRIPT].replace("\\\n", " ")
    lexer = shlex.shlex(script, posix=True, punctuation_chars=_OPERATORS)
    lexer.whitespace = " \t\r"
    lexer.whitespace_split = True
    # shlex's own comment handling swallows the newline that ends the comment (and with it
    # the command boundary), so comments are dropped below instead.
    lexer.commenters = ""
    words: list[str] = []
    try:
        words = list(lexer)
    except ValueError:  # unbalanced quotes: fall back to whitespace, still useful
        words = script.split()
    lines: list[tuple[str, ...]] = []
    current: list[str] = []
    in_comment = False
    for word in words:
        if word and all(ch in _OPERATORS for ch in word):
            if in_comment and "\n" not in word:
                continue
            in_comment = False
            if current:
                lines.append(tuple(current))
            current = []
            continue
        if in_comment or word.startswith("#"):
            in_comment = True
            continue
        current.append(_shell_expand(word, env))
    if current:
        lines.append(tuple(current))
    return tuple(filter(None, (_strip_prefix(line) for line in lines)))


def _strip_prefix(line: tuple[str, ...]) -> tuple[str, ...]:
    i = 0
    while i < len(line) and (line[i] in _SKIP_WORDS or _ASSIGNMENT.match(line[i])):
        i += 1
    return line[i:]


def _shell_expand(word: str, env: Mapping[str, str]) -> str:
    if "$" not in word:
        return word
    return _SHELL_VAR.sub(lambda m: env.get(m.group(1) or m.group(2), m.group(0)), word)
