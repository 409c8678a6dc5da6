"""From a Kubernetes object to a :class:`~modelsec.references.model.Workload`.

Pods and every controller kind carry a pod template at a known path; a KServe
InferenceService carries container-like components under ``spec.predictor`` (and
``transformer``/``explainer``). Commands are split the way they will run:

- ``$(VAR)`` in ``command``/``args`` is expanded from the container's literal ``env`` as the
  kubelet does (``$$(VAR)`` is a literal ``$(VAR)``);
- ``sh -c '<script>'`` (and bash, ash, dash, zsh) is split into its command lines with
  :mod:`shlex`, ``$VAR``/``${VAR}`` expanded from the same literal env, leading ``exec``,
  ``env``, ``nohup`` and ``VAR=value`` words dropped, so ``sh -c "pip install x && exec
  vllm serve $MODEL"`` yields ``("vllm", "serve", "<model>")``.

Nothing here reads the cluster: env values from ConfigMaps or Secrets are only *named*
(``env_from_elsewhere``) so that extractors can say a model comes from somewhere unseen.
"""

from __future__ import annotations

import re
import shlex
from types import MappingProxyType
from typing import Any, Mapping

from modelsec.references.model import Container, Workload

# kind -> path to the pod template (empty: the object is a Pod).
POD_TEMPLATE_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": (),
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "ReplicationController": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}
KSERVE_KINDS = frozenset({"InferenceService"})
KSERVE_COMPONENTS = ("predictor", "transformer", "explainer")

SHELLS = frozenset({"sh", "bash", "ash", "dash", "zsh", "ksh"})
_SKIP_WORDS = frozenset({"exec", "env", "nohup", "time", "command", "eval"})
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_KUBE_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")
_SHELL_VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
_OPERATORS = ";&|()<>\n"
MAX_SCRIPT = 64 * 1024  # a longer inline script is read up to here
MAX_CONTAINERS = 64


def _dig(obj: Any, path: tuple[str, ...]) -> Any:
    for step in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(step)
    return obj


def _annotations(obj: Any) -> Mapping[str, str]:
    annotations = _dig(obj, ("metadata", "annotations"))
    return annotations if isinstance(annotations, dict) else {}


def workload_from_object(kind: str, obj: Any) -> Workload | None:
    """The workload ``obj`` of ``kind`` describes, or None for kinds that run nothing."""
    if not isinstance(obj, dict):
        return None
    if kind in KSERVE_KINDS:
        return _inference_service(kind, obj)
    path = POD_TEMPLATE_PATHS.get(kind)
    if path is None:
        return None
    template = _dig(obj, path) if path else obj
    if not isinstance(template, dict):
        return Workload(kind, (_annotations(obj),))
    annotations = (_annotations(obj),) if not path else (_annotations(obj), _annotations(template))
    return Workload(kind, annotations, pod_containers(template.get("spec")))


def pod_containers(pod_spec: Any) -> tuple[Container, ...]:
    if not isinstance(pod_spec, dict):
        return ()
    out: list[Container] = []
    for key, init in (("initContainers", True), ("containers", False)):
        items = pod_spec.get(key)
        if isinstance(items, list):
            out.extend(container(c, init) for c in items[:MAX_CONTAINERS] if isinstance(c, dict))
    return tuple(out)


def _inference_service(kind: str, obj: dict[str, Any]) -> Workload:
    spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
    containers: list[Container] = []
    for component_name in KSERVE_COMPONENTS:
        component = spec.get(component_name)
        if not isinstance(component, dict):
            continue
        containers.extend(pod_containers(component))
        # `predictor.model` and the framework keys (`predictor.sklearn`, ...) are
        # containers with extra fields (storageUri, modelFormat, runtime).
        for name, part in component.items():
            if isinstance(part, dict) and any(k in part for k in ("args", "command", "env", "image")):
                containers.append(container({**part, "name": f"{component_name}.{name}"}, False))
    return Workload(kind, (_annotations(obj),), tuple(containers), spec)


def container(raw: dict[str, Any], init: bool) -> Container:
    env: dict[str, str] = {}
    elsewhere: set[str] = set()
    for item in raw.get("env") or []:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            continue
        if isinstance(item.get("value"), str):
            env[item["name"]] = item["value"]
        elif item.get("valueFrom") is not None:
            elsewhere.add(item["name"])
    command = _strings(raw.get("command"))
    args = _strings(raw.get("args"))
    argv = tuple(_kube_expand(word, env) for word in (*command, *args))
    return Container(
        name=str(raw.get("name") or ""),
        image=str(raw.get("image") or ""),
        commands=command_lines(argv, env),
        env=MappingProxyType(env),
        env_from_elsewhere=frozenset(elsewhere),
        entrypoint=not command,
        init=init,
    )


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
        name = match.group(1)
        return env.get(name, match.group(0))

    return _KUBE_VAR.sub(replace, word)


def command_lines(argv: tuple[str, ...], env: Mapping[str, str]) -> tuple[tuple[str, ...], ...]:
    """``argv`` itself, or the command lines of the script it hands to a shell."""
    if not argv:
        return ()
    script = _shell_script(argv)
    if script is None:
        return (argv,)
    lines = split_script(script, env)
    return lines or (argv,)


def _shell_script(argv: tuple[str, ...]) -> str | None:
    if argv[0].rsplit("/", 1)[-1] not in SHELLS:
        return None
    for i, word in enumerate(argv[1:-1], start=1):
        # -c, or clustered flags ending in c (-ec, -xc, -euxc): the next word is the script.
        if word.startswith("-") and not word.startswith("--") and word.endswith("c"):
            return argv[i + 1]
    return None


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
