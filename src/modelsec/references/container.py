"""One container as the runtime will start it, read lazily from its pod-spec entry.

Most containers a webhook sees are ordinary applications that no extractor cares about,
so nothing is derived up front: each view (image name, environment, command lines) is
computed the first time an extractor asks, then kept. The entry's *shape* is checked at
once (cheaply): a field of the wrong JSON type raises :class:`~.model.Malformed`.

Commands are split the way they will run:

- the environment is built as the kubelet builds it: ``envFrom`` sources in order, then
  ``env`` entries (``$(VAR)`` in their values expanded from what came before); values
  from ConfigMaps come from ``configmaps`` when the caller read them;
- ``$(VAR)`` in ``command``/``args`` is expanded from that environment as the kubelet
  does (``$$(VAR)`` is a literal ``$(VAR)``);
- ``sh -c '<script>'`` (and bash, ash, dash, zsh, ksh; nested ones too) is split into its
  simple commands with :mod:`shlex` (:mod:`.shell`), variables expanded from the
  environment, the script's own assignments and its positional parameters.

**Values modelsec cannot see are never guessed, and never dropped.** A variable set from a
Secret, from a ConfigMap nobody read, from a field reference, or (in a shell) from the
image's environment, a command substitution, a variable assigned in several places:
each expands to a *marker* (:data:`MARK`) that records why its value is unknown. An
extractor that reads a marked word as a model hands it to :func:`~modelsec.references.extract`,
which reports it as :class:`~.model.Unresolved` (with the ConfigMaps that would resolve
it) instead of a reference or nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, overload

from modelsec.references.argv import program
from modelsec.references.model import Malformed, Unresolved
from modelsec.references.pins import EXPANDED, SHELL_SCRIPT, Option, Path, Site, Spelled, Spelling

# A marked (unknown) value: MARK + "<container index>" + SEP + "<token>" + MARK. NUL never
# reaches a container from the API server in a name or value a program would read as a
# model, and extractors split words on printable separators only, so a mark survives them.
MARK = "\x00"
SEP = "\x01"
_MARKED = re.compile(r"\x00(\d+)\x01(\d+)\x00")
# The kubelet reads any name up to ")" (third_party/forked/golang/expansion), and with
# RelaxedEnvironmentVariableValidation (on by default from Kubernetes 1.32) a variable may
# be named with any printable ASCII but "=": "$(1M)" and "$(.M)" are variables too.
_KUBE_VAR = re.compile(r"\$\$|\$\(([^)]*)\)")
_ENV_NAME = re.compile(r"^[\x21-\x3c\x3e-\x7e]+$")

# Every key of a container object this module reads. Extractors read containers only
# through the views below, never ``raw`` directly, so that this list is complete: the
# webhook caches extractions keyed by exactly these fields (see tests/references).
FIELDS = (
    "name",
    "image",
    "command",
    "args",
    "env",
    "envFrom",
    "modelFormat",
    "workingDir",
    "lifecycle",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
)
# Commands the kubelet runs in the container besides its own: lifecycle hooks and exec
# probes ("postStart: nohup vllm serve <model> &" starts a server as well as args do).
HOOKS = (
    ("lifecycle", "postStart"),
    ("lifecycle", "preStop"),
    ("livenessProbe", None),
    ("readinessProbe", None),
    ("startupProbe", None),
)

T = TypeVar("T")


class lazy(Generic[T]):
    """Compute on first access, then live in the instance's ``__dict__`` (where attribute
    lookup finds it first). ``functools.cached_property`` without its per-class lock,
    which costs more than most of these computations."""

    def __init__(self, compute: Callable[[Any], T]) -> None:
        self.compute = compute
        self.name = compute.__name__
        self.__doc__ = compute.__doc__

    @overload
    def __get__(self, instance: None, owner: type | None = None) -> lazy[T]: ...
    @overload
    def __get__(self, instance: object, owner: type | None = None) -> T: ...

    def __get__(self, instance: object, owner: type | None = None) -> T | lazy[T]:
        if instance is None:
            return self
        value = instance.__dict__[self.name] = self.compute(instance)
        return value


@dataclass(frozen=True)
class Unreadable:
    """A ConfigMap the caller tried and failed to read (forbidden, timed out): its values
    stay unknown, and ``why`` says so."""

    why: str


# What a caller knows of one ConfigMap: its data, None (it does not exist) or Unreadable.
ConfigMapData = Mapping[str, str] | None | Unreadable


@dataclass(frozen=True)
class Unknown:
    """Why a value cannot be known from the request, and the ConfigMaps that would say."""

    why: str
    configmaps: tuple[str, ...] = ()


# Characters one expanded value may hold. $(VAR) built from variables that repeat an
# earlier one doubles at every step (E1=$(E0)$(E0), E2=$(E1)$(E1) ...): thirty entries of a
# small Pod would ask for gigabytes. Past this a value is unknown, as one modelsec cannot see.
MAX_VALUE = 64 * 1024
TOO_LONG = Unknown(
    f"it expands to more than {MAX_VALUE} characters (variables built from variables), "
    "which modelsec does not follow"
)


NO_WORKING_DIR = Unknown("the container sets no workingDir, so the image decides where relative paths lead")


def bounded_sub(pattern: re.Pattern[str], replace: Callable[[re.Match[str]], str], word: str) -> str | None:
    """``pattern.sub(replace, word)``, or None as soon as expansion would make it more than
    :data:`MAX_VALUE` characters longer than ``word`` (nothing longer is ever built)."""
    pieces: list[str] = []
    limit = len(word) + MAX_VALUE
    size = last = 0
    for match in pattern.finditer(word):
        literal, value = word[last : match.start()], replace(match)
        size += len(literal) + len(value)
        if size > limit:
            return None
        pieces += (literal, value)
        last = match.end()
    return "".join(pieces) + word[last:]


class Env:
    """Variables as a process sees them: known values, and names whose values are
    unknown (each with its :class:`Unknown`). ``lookup`` answers a value, a marker, or
    None for a variable that is not set at all."""

    def __init__(
        self,
        marks: Marks,
        values: dict[str, str] | None = None,
        unknown: dict[str, Unknown] | None = None,
        wildcards: tuple[tuple[str, Unknown], ...] = (),
        cwd: str | Unknown = NO_WORKING_DIR,
    ) -> None:
        self.marks = marks
        self.values = values if values is not None else {}
        self.unknown = unknown if unknown is not None else {}
        self.wildcards = wildcards  # (name prefix, why): envFrom sources not read
        # The working directory the process starts in (relative paths lead from it): the
        # container's workingDir, or why it is not known (modelsec.references.paths).
        self.cwd = cwd

    def copy(self) -> Env:
        return Env(self.marks, dict(self.values), dict(self.unknown), self.wildcards, self.cwd)

    def why_unknown(self, name: str) -> Unknown | None:
        if name in self.values:
            return None
        found = self.unknown.get(name)
        if found is not None:
            return found
        for prefix, why in self.wildcards:
            if name.startswith(prefix):
                return why
        return None

    def lookup(self, name: str) -> str | None:
        value = self.values.get(name)
        if value is not None:
            return value
        why = self.why_unknown(name)
        return self.marks.mark(why) if why is not None else None

    def set(self, name: str, value: str) -> None:
        self.values[name] = value
        self.unknown.pop(name, None)

    def forget(self, name: str, why: Unknown) -> None:
        self.values.pop(name, None)
        self.unknown[name] = why

    def get(self, name: str) -> str | None:
        """What an extractor reading ``name`` from the environment should see."""
        return self.lookup(name)


class Marks:
    """The unknown values of one container, by token (see :data:`MARK`)."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.by_token: list[Unknown] = []
        self._tokens: dict[Unknown, int] = {}

    def mark(self, why: Unknown) -> str:
        token = self._tokens.get(why)
        if token is None:
            token = self._tokens[why] = len(self.by_token)
            self.by_token.append(why)
        return f"{MARK}{self.index}{SEP}{token}{MARK}"


def unknowns_in(text: str, containers: tuple[Container, ...]) -> list[Unknown]:
    """The :class:`Unknown` of each marker in ``text`` (extract() turns them into
    Unresolved entries); a marker that cannot be traced still says the value is unknown."""
    found = []
    for index, token in _MARKED.findall(text):
        i, t = int(index), int(token)
        if i < len(containers) and t < len(containers[i].marks.by_token):
            found.append(containers[i].marks.by_token[t])
    return found or [Unknown("it is built from values modelsec cannot see")]


class Container:
    """A pod-spec container (``raw``), with the views extractors read.

    ``where`` is its path in the object (for messages), ``index`` its position among the
    workload's containers (markers name it), ``configmaps`` what the caller read of the
    ConfigMaps in the workload's namespace (name -> :data:`ConfigMapData`; absent: not
    read)."""

    def __init__(
        self,
        raw: Mapping[str, Any],
        init: bool = False,
        *,
        index: int = 0,
        where: str = "container",
        configmaps: Mapping[str, ConfigMapData] | None = None,
        path: Path = (),
    ) -> None:
        self.raw = raw
        self.init = init
        self.where = where
        self.path = path  # where it is in the object, for pinning
        self.configmaps = configmaps or {}
        self.marks = Marks(index)
        self.problems: list[Unresolved] = []
        # Shape checks run on every container of every review: paths are only formatted
        # for the message when a check fails.
        self.name = _optional_str(raw.get("name"), where, ".name") or ""
        self.image = _optional_str(raw.get("image"), where, ".image") or ""
        self._command = _string_list(raw.get("command"), where, ".command")
        self._args = _string_list(raw.get("args"), where, ".args")
        self._env_items = _object_list(raw.get("env"), where, ".env")
        self._env_from = _object_list(raw.get("envFrom"), where, ".envFrom")
        self._hooks = tuple(_hook_commands(raw, where))
        self._working_dir = _optional_str(raw.get("workingDir"), where, ".workingDir")
        model_format = raw.get("modelFormat")
        if model_format is not None and not isinstance(model_format, dict):
            raise Malformed(f"{where}.modelFormat", "an object")
        self._model_format = (
            _optional_str(model_format.get("name"), where, ".modelFormat.name")
            if isinstance(model_format, dict)
            else None
        )
        for i, item in enumerate(self._env_items):
            if not isinstance(item.get("name"), (str, type(None))) or not isinstance(
                item.get("value"), (str, type(None))
            ):
                field = "name" if not isinstance(item.get("name"), (str, type(None))) else "value"
                raise Malformed(f"{where}.env[{i}].{field}", "a string")
            value_from = item.get("valueFrom")
            if value_from is not None:
                if not isinstance(value_from, dict):
                    raise Malformed(f"{where}.env[{i}].valueFrom", "an object")
                for key in ("configMapKeyRef", "secretKeyRef"):
                    _reference(value_from.get(key), where, f".env[{i}].valueFrom.{key}", "key")
        for i, source in enumerate(self._env_from):
            _optional_str(source.get("prefix"), where, f".envFrom[{i}].prefix")
            for key in ("configMapRef", "secretRef"):
                _reference(source.get(key), where, f".envFrom[{i}].{key}")

    @classmethod
    def of(
        cls,
        name: str = "",
        image: str = "",
        command: list[str] | None = None,
        args: list[str] | None = None,
        env: Mapping[str, str] | None = None,
        init: bool = False,
        working_dir: str | None = None,
    ) -> Container:
        """Build one from parts (tests, tools) rather than from a pod spec."""
        raw: dict[str, Any] = {"name": name, "image": image}
        if working_dir is not None:
            raw["workingDir"] = working_dir
        if command is not None:
            raw["command"] = command
        if args is not None:
            raw["args"] = args
        if env:
            raw["env"] = [{"name": k, "value": v} for k, v in env.items()]
        return cls(raw, init)

    def __repr__(self) -> str:
        return f"Container({self.name!r}, image={self.image!r}, commands={self.commands!r})"

    def describe(self, what: str) -> str:
        kind = "init container" if self.init else "container"
        return f"{kind} {self.name or '?'}: {what}"

    @lazy
    def image_name(self) -> str:
        """The image's repository path, lower case, without tag or digest:
        ``ghcr.io/ggml-org/llama.cpp:server`` -> ``ghcr.io/ggml-org/llama.cpp``."""
        image = self.image.lower().split("@", 1)[0]
        slash = image.rfind("/")
        colon = image.rfind(":")
        return image[:colon] if colon > slash else image

    # -- the environment ------------------------------------------------------------------

    @lazy
    def environment(self) -> Env:
        """The container's environment as the kubelet builds it (see the module doc)."""
        env = Env(self.marks, cwd=self.working_dir)
        wildcards: list[tuple[str, Unknown]] = []
        for i, source in enumerate(self._env_from):
            prefix = source.get("prefix") or ""
            data, why = self._env_from_source(source, i)
            if data is not None:
                for key, text in data.items():
                    if _ENV_NAME.match(prefix + key):
                        env.set(prefix + key, text)
            elif why is not None:
                # Any variable with this prefix may come from here, overriding earlier ones.
                for overridden in [n for n in env.values if n.startswith(prefix)]:
                    env.forget(overridden, why)
                wildcards.append((prefix, why))
        env.wildcards = tuple(wildcards)
        for item in self._env_items:
            name = item.get("name")
            if not isinstance(name, str):
                continue
            if isinstance(item.get("value"), str):
                env.set(name, _kube_expand(item["value"], env))
            elif isinstance(item.get("valueFrom"), dict):
                value, why = self._value_from(item["valueFrom"])
                if value is not None:
                    env.set(name, value)
                elif why is not None:
                    env.forget(name, why)
                # else: optional and absent: the kubelet skips the entry, and whatever
                # envFrom set stays (or the container does not start at all)
            else:
                env.set(name, "")
        return env

    def _configmap(self, name: str) -> Mapping[str, str] | None | Unknown:
        if name not in self.configmaps:
            return Unknown(f"it comes from ConfigMap {name}, which the request does not carry", (name,))
        data = self.configmaps[name]
        if isinstance(data, Unreadable):
            return Unknown(f"it comes from ConfigMap {name}, which could not be read ({data.why})")
        return data

    def _env_from_source(
        self, source: Mapping[str, Any], i: int
    ) -> tuple[Mapping[str, str] | None, Unknown | None]:
        where = f"{self.where}.envFrom[{i}]"
        config_map, secret = source.get("configMapRef"), source.get("secretRef")
        if isinstance(config_map, dict):
            name = config_map["name"]
            data = self._configmap(name)
            if isinstance(data, Unknown):
                return None, data
            return (data or {}), None  # a missing ConfigMap sets nothing
        if isinstance(secret, dict):
            return None, Unknown(
                f"it may come from Secret {secret['name']} (envFrom), and modelsec does not read Secrets"
            )
        return None, Unknown(f"it may come from {where}, a source modelsec does not know")

    def _value_from(self, value_from: Mapping[str, Any]) -> tuple[str | None, Unknown | None]:
        ref = value_from.get("configMapKeyRef")
        if isinstance(ref, dict):
            name, key = ref["name"], ref["key"]
            data = self._configmap(name)
            if isinstance(data, Unknown):
                return None, Unknown(f"{data.why} (key {key})", data.configmaps)
            if data is None or key not in data:
                return None, None  # the container cannot start, or the value is optional
            return data[key], None
        ref = value_from.get("secretKeyRef")
        if isinstance(ref, dict):
            return None, Unknown(
                f"it comes from Secret {ref.get('name')} (key {ref.get('key')}), "
                "and modelsec does not read Secrets"
            )
        field_ref = value_from.get("fieldRef")
        if isinstance(field_ref, dict):
            return None, Unknown(f"it comes from the pod field {field_ref.get('fieldPath')}")
        return None, Unknown("it comes from a valueFrom source modelsec cannot see")

    @property
    def env(self) -> Mapping[str, str]:
        """Environment variables with known values (markers excluded)."""
        return {k: v for k, v in self.environment.values.items() if MARK not in v}

    @property
    def env_from_elsewhere(self) -> frozenset[str]:
        """Names whose value comes from somewhere the request does not show."""
        return frozenset(self.environment.unknown)

    @property
    def model_format(self) -> str | None:
        """KServe ``modelFormat.name`` of an InferenceService component, if any."""
        return self._model_format

    @property
    def working_dir(self) -> str | Unknown:
        """Where the container's processes start: ``workingDir`` (the kubelet passes it as
        written, without ``$(VAR)`` expansion), or why that is not known."""
        if not self._working_dir:
            return NO_WORKING_DIR
        if not self._working_dir.startswith("/"):
            return Unknown(
                f"its workingDir {self._working_dir[:200]!r} is not an absolute path (the runtime refuses it)"
            )
        return self._working_dir

    @lazy
    def entrypoint(self) -> bool:
        """True when ``command`` is unset: the image's entrypoint receives ``args``."""
        return not self._command

    # -- command lines --------------------------------------------------------------------

    @lazy
    def lines(self) -> tuple[CommandLine, ...]:
        """Every command line it runs, each with the environment it runs in."""
        from modelsec.references import shell

        lines: list[CommandLine] = []
        for argv in ((*self._command, *self._args), *self._hooks):
            if not argv:
                continue
            env = self.environment
            if any("$" in word for word in argv):
                argv = tuple(_kube_expand(word, env) for word in argv)
            lines.extend(
                CommandLine(words, line_env)
                for words, line_env in shell.command_lines(argv, env, self.problems.append, self.describe)
            )
        return tuple(lines)

    # -- where things are, for pinning (see modelsec.references.pins) ------------------

    @lazy
    def exec_form(self) -> bool:
        """True when the container runs its program directly (no shell script): its
        arguments are the program's, word for word."""
        from modelsec.references.shell import shell_script

        return shell_script((*self._command, *self._args)) is None

    def option_site(self, flag: str, env: str | None = None) -> Site:
        """Where a revision option of this container's program would go."""
        return Option(self.path, flag, env) if self.exec_form else SHELL_SCRIPT

    def word_site(self, word: str, spelling: Spelling) -> Site:
        """Where the argument ``word`` (as the program receives it) is in the object."""
        if not self.exec_form:
            return SHELL_SCRIPT
        for key, words in (("command", self._command), ("args", self._args)):
            if word in words:
                return Spelled((*self.path, key, words.index(word)), word, spelling)
        return EXPANDED

    def env_site(self, name: str, spelling: Spelling) -> Site:
        """Where the literal value of environment variable ``name`` is in the object."""
        for i, item in reversed(list(enumerate(self._env_items))):
            if item.get("name") == name:
                value = item.get("value")
                if isinstance(value, str) and "$(" not in value:
                    return Spelled((*self.path, "env", i, "value"), value, spelling)
                break
        return EXPANDED

    @lazy
    def commands(self) -> tuple[tuple[str, ...], ...]:
        """The command lines it runs: one for exec form, several for a shell script."""
        return tuple(line.words for line in self.lines)

    @lazy
    def programs(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """(program, arguments) of each command line (see :func:`~.argv.program`)."""
        return tuple(program(line) for line in self.commands)

    def launches(self) -> Iterator[tuple[str, tuple[str, ...], Env]]:
        """(program, arguments, environment) of each command line."""
        for line, (prog, rest) in zip(self.lines, self.programs):
            yield prog, rest, line.env


@dataclass(frozen=True)
class CommandLine:
    """One command line the container runs: its words, expanded, and the environment it runs in."""

    words: tuple[str, ...]
    env: Env


def _optional_str(value: Any, where: str, field: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise Malformed(where + field, "a string")


def _reference(value: Any, where: str, field: str, *keys: str) -> None:
    """A ConfigMap or Secret reference: an object with a string name (and ``keys``)."""
    if value is None:
        return
    if not isinstance(value, dict):
        raise Malformed(where + field, "an object")
    for key in ("name", *keys):
        if not isinstance(value.get(key), str):
            raise Malformed(f"{where}{field}.{key}", "a string")


def _list_of(value: Any, where: str, field: str, kind: type, what: str) -> tuple[Any, ...]:
    """``value`` as a tuple of ``kind`` items (None: empty), or Malformed naming the item."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise Malformed(where + field, f"a list of {what}s")
    for i, item in enumerate(value):
        if not isinstance(item, kind):
            raise Malformed(f"{where}{field}[{i}]", f"an {what}" if what[0] in "aeiou" else f"a {what}")
    return tuple(value)


def _hook_commands(raw: Mapping[str, Any], where: str) -> Iterator[tuple[str, ...]]:
    """The ``exec.command`` of each lifecycle hook and probe (see :data:`HOOKS`)."""
    for field, hook in HOOKS:
        holder = raw.get(field)
        if holder is None:
            continue
        if not isinstance(holder, dict):
            raise Malformed(f"{where}.{field}", "an object")
        path = f".{field}"
        if hook is not None:
            holder = holder.get(hook)
            path += f".{hook}"
            if holder is None:
                continue
            if not isinstance(holder, dict):
                raise Malformed(f"{where}{path}", "an object")
        action = holder.get("exec")
        if action is None:
            continue
        if not isinstance(action, dict):
            raise Malformed(f"{where}{path}.exec", "an object")
        yield _string_list(action.get("command"), where, f"{path}.exec.command")


def _string_list(value: Any, where: str, field: str) -> tuple[str, ...]:
    return _list_of(value, where, field, str, "string")


def _object_list(value: Any, where: str, field: str) -> tuple[Mapping[str, Any], ...]:
    return _list_of(value, where, field, dict, "object")


def _kube_expand(word: str, env: Env) -> str:
    """``$(VAR)`` as the kubelet expands it: known values, markers for unknown ones, and
    the literal text for variables that are not set."""
    if "$" not in word:
        return word

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        value = env.lookup(match.group(1))
        return match.group(0) if value is None else value

    expanded = bounded_sub(_KUBE_VAR, replace, word)
    return env.marks.mark(TOO_LONG) if expanded is None else expanded
