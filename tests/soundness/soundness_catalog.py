"""What the generator builds programs from: the allowlist, looked at as an attacker would.

Everything here comes from introspecting the installed libraries in the *generating*
process (imports and ``inspect``, never a load of model content):

* the allowlisted globals that import here, split into module and attribute path, with
  the classes whose instances take arbitrary attributes (a BUILD dict lands in their
  ``__dict__``, where the unpickler later finds ``__setstate__``, ``append``, ``extend``,
  ``add``);
* allowlisted classes whose own ``__setstate__`` / ``__setattr__`` / ``__init__`` is Python
  code, with the attribute names that code touches (keys a state dict should carry to
  drive it);
* *sinks*: callables that do something the oracle calls dangerous, each with a harmless
  argument (``true`` as a command, a closed port, a missing module), and *aliases*: paths
  through an allowlisted module that reach a sink (``argparse`` + ``_os.system``).
"""

from __future__ import annotations

import collections
import dis
import functools
import importlib
import inspect
import re
import types
import warnings
from dataclasses import dataclass

from modelsec.pickle import allowlist
from modelsec.pickle.allowlist import safe_globals
from modelsec.pickle.policy import Verdict, classify


@dataclass(frozen=True)
class Sink:
    """A dangerous callable, the style it is called in, and a harmless argument."""

    module: str
    name: str
    style: str  # "one" (one argument), "list" (one list argument: extend), "none" (no argument)
    argument: object = None

    @property
    def path(self) -> str:
        return f"{self.module}.{self.name}"


SINKS: tuple[Sink, ...] = (
    Sink("os", "system", "one", "true"),
    Sink("subprocess", "getoutput", "one", "true"),
    Sink("subprocess", "check_call", "list", "true"),
    Sink("builtins", "exec", "one", "pass"),
    Sink("builtins", "eval", "one", "0"),
    Sink("builtins", "open", "one", "/etc/hostname"),
    Sink("importlib", "import_module", "one", "tabnanny"),
    Sink("builtins", "__import__", "one", "tabnanny"),
    Sink("shutil", "rmtree", "one", "modelsec-oracle-missing-dir"),
    Sink("webbrowser", "open", "one", "http://127.0.0.1:9/"),
    Sink("socket", "create_connection", "one", ("127.0.0.1", 9)),
    Sink("multiprocessing.connection", "Client", "one", "modelsec-oracle.sock"),
    Sink("socket", "socket", "none"),
)

# Harmless standard-library modules that no allowlisted module imports (as of writing: the
# oracle sees no import of one that is already loaded): importing one is an import the
# allowlist does not permit, and runs its top-level code.
UNLISTED_MODULES = ("tabnanny", "wave", "this", "netrc", "graphlib", "pyclbr", "chunk", "xdrlib", "mailcap")

# Classes of the allowlist the attacks need by name (present in every version we support).
NAMESPACES = ("types.SimpleNamespace", "argparse.Namespace")
BUNCH = "sklearn.utils._bunch.Bunch"


@dataclass(frozen=True)
class Allowed:
    """One allowlisted global, resolved here."""

    module: str  # the part that imports as a module
    name: str  # the attribute path inside it
    is_class: bool
    python_class: bool  # a class defined in Python (copyreg._reconstructor can build it)
    open_dict: bool  # instances take arbitrary attributes in their __dict__

    @property
    def path(self) -> str:
        return f"{self.module}.{self.name}"


@dataclass(frozen=True)
class Probe:
    """An allowlisted class whose pickle-path methods are Python code, and the attribute
    names those methods read or write (keys for a state that drives them)."""

    cls: Allowed
    method: str  # __setstate__, __setattr__ or __init__
    keys: tuple[str, ...]
    init_params: tuple[tuple[str, str], ...]  # (name, annotation) of required __init__ params
    risky: bool  # the method names something that reaches files, sockets, processes

    @property
    def weight(self) -> int:
        return (10 if self.risky else 1) * (1 if self.method == "__init__" else 3)


@dataclass(frozen=True)
class Alias:
    """``module`` + ``name`` reaches ``sink`` through a re-export of an allowlisted module."""

    module: str
    name: str
    sink: Sink


@dataclass(frozen=True)
class Catalog:
    allowed: tuple[Allowed, ...]
    references: tuple[Allowed, ...]  # reference-only callables: naming them is fine, calling is not
    risky_references: tuple[Allowed, ...]  # ... whose code names I/O (numpy.memmap opens files)
    classes: tuple[Allowed, ...]
    open_dict: tuple[Allowed, ...]  # instances a BUILD dict can give methods
    python_classes: tuple[Allowed, ...]
    probes: tuple[Probe, ...]
    aliases: tuple[Alias, ...]
    by_path: dict[str, Allowed]
    signatures: dict[str, tuple[tuple[str, str], ...]]  # class path -> required constructor params

    def find(self, path: str) -> Allowed | None:
        return self.by_path.get(path)

    def container_kind(self, path: str) -> str | None:
        """ "dict", "list" or "set" if the class subclasses one (what picklers write
        SETITEMS, APPENDS, ADDITEMS for), else None."""
        resolved = split_path(path)
        cls = resolved[2] if resolved else None
        if isinstance(cls, type):
            for base in (dict, list, set, collections.deque):
                if issubclass(cls, base):
                    return base.__name__
        return None


def split_path(path: str) -> tuple[str, str, object] | None:
    """(module, attribute path, object) for an importable dotted path, resolved the way
    ``find_class`` does: the longest prefix that imports, then attributes."""
    parts = path.split(".")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numpy.core.* and other deprecated spellings are the point
        for end in range(len(parts) - 1, 0, -1):
            module_name = ".".join(parts[:end])
            try:
                obj: object = importlib.import_module(module_name)
            except Exception:
                continue
            try:
                for attr in parts[end:]:
                    obj = getattr(obj, attr)
            except AttributeError:
                return None
            return module_name, ".".join(parts[end:]), obj
    return None


def _open_dict(cls: type) -> bool:
    if not isinstance(cls, type) or cls.__dictoffset__ == 0:
        return False
    return not issubclass(cls, (types.ModuleType, type, BaseException))


def _touched_names(function: object) -> tuple[str, ...]:
    """Attribute names a method's code loads or stores (dis over its instructions)."""
    code = getattr(function, "__code__", None)
    if code is None:
        return ()
    names = []
    for instruction in dis.get_instructions(code):
        if instruction.opname in ("LOAD_ATTR", "STORE_ATTR", "LOAD_METHOD") and isinstance(
            instruction.argval, str
        ):
            if not instruction.argval.startswith("__"):
                names.append(instruction.argval)
        elif instruction.opname == "LOAD_CONST" and isinstance(instruction.argval, str):
            if re.fullmatch(r"_?[a-z][a-z0-9_]{1,40}", instruction.argval):
                names.append(instruction.argval)
    return tuple(dict.fromkeys(names))


_RISKY = re.compile(
    r"listen|socket|connect|client|open|file|path|url|send|load|request|popen|system|"
    r"exec|spawn|remote|fetch|download|thread|import",
    re.IGNORECASE,
)


def _risky(function: object) -> bool:
    """Whether a method's code names anything that sounds like I/O (globals included)."""
    code = getattr(function, "__code__", None)
    return code is not None and any(_RISKY.search(name) for name in code.co_names)


def _python_method(cls: type, name: str) -> object | None:
    for klass in cls.__mro__:
        method = klass.__dict__.get(name)
        if method is not None:
            return method if hasattr(method, "__code__") else None
    return None


def _init_params(cls: type) -> tuple[tuple[str, str], ...]:
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):
        return ()
    params = []
    for param in signature.parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD) or param.default is not param.empty:
            continue
        annotation = (
            param.annotation
            if isinstance(param.annotation, str)
            else getattr(param.annotation, "__name__", "")
        )
        params.append((param.name, str(annotation)))
    return tuple(params)


def _probes(classes: list[tuple[Allowed, type]]) -> list[Probe]:
    probes = []
    for allowed, cls in classes:
        for method_name in ("__setstate__", "__setattr__", "__init__"):
            method = _python_method(cls, method_name)
            if method is None or getattr(method, "__module__", "").startswith(("builtins", "abc", "typing")):
                continue
            keys = _touched_names(method)
            if keys:
                probes.append(Probe(allowed, method_name, keys, _init_params(cls), _risky(method)))
    return probes


def _aliases(modules: set[str]) -> list[Alias]:
    """Paths ``allowlisted module`` + ``attr[.name]`` that reach a sink object."""
    sink_objects = {}
    for sink in SINKS:
        resolved = split_path(sink.path)
        if resolved is not None:
            sink_objects[id(resolved[2])] = sink
    sink_modules = {sink.module for sink in SINKS}
    found = []
    for module_name in sorted(modules):
        try:
            module = importlib.import_module(module_name)
        except Exception:
            continue
        for attr, value in sorted(vars(module).items()):
            if id(value) in sink_objects:
                found.append(Alias(module_name, attr, sink_objects[id(value)]))
            elif (
                isinstance(value, types.ModuleType)
                and value.__name__ in sink_modules
                and attr != value.__name__
            ):
                for sink in SINKS:
                    if sink.module == value.__name__:
                        found.append(Alias(module_name, f"{attr}.{sink.name}", sink))
    return found


@functools.cache
def catalog() -> Catalog:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numpy.core.* and other deprecated spellings are the point
        return _build()


@functools.cache
def class_methods(path: str) -> tuple[str, ...]:
    """Callable attributes of an allowlisted class (``OrderedDict.update``,
    ``DataFrame.to_clipboard``, ``__setstate__``): what a dotted GLOBAL or a getattr reaches."""
    resolved = split_path(path)
    if resolved is None or not isinstance(resolved[2], type):
        return ()
    cls = resolved[2]
    names = []
    for name in sorted(dir(cls)):
        try:
            value = inspect.getattr_static(cls, name)
        except AttributeError:
            continue
        if callable(value) or isinstance(value, (classmethod, staticmethod)):
            names.append(name)
    return tuple(names)


@functools.cache
def positional_parameters(path: str) -> tuple[str, ...]:
    """Names of the parameters an allowlisted callable takes by position (REDUCE passes
    a tuple), or () if its signature cannot be read (many C functions)."""
    resolved = split_path(path)
    if resolved is None or not callable(resolved[2]):
        return ()
    try:
        signature = inspect.signature(resolved[2])
    except (TypeError, ValueError):
        return ()
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return tuple(p.name for p in signature.parameters.values() if p.kind in kinds)


def _reference_candidates() -> frozenset[str]:
    """Names the allowlist lets a pickle *name* but not call (``numpy.memmap``, score
    functions a fitted estimator keeps), whatever this version of allowlist.py calls them."""
    reader = getattr(allowlist, "reference_only", None)
    if callable(reader):
        return frozenset(reader())
    return frozenset(getattr(allowlist, "DATA_ONLY", ()))


def _risky_callable(obj: object) -> bool:
    methods = [obj] if not isinstance(obj, type) else [obj.__dict__.get(m) for m in ("__new__", "__init__")]
    return any(_risky(getattr(m, "__func__", m)) for m in methods if m is not None)


def _references() -> list[tuple[Allowed, bool]]:
    found = []
    for path in sorted(_reference_candidates()):
        resolved = split_path(path)
        if resolved is None or not callable(resolved[2]):
            continue
        module, name, obj = resolved
        if classify(module, name).verdict is Verdict.DATA:
            found.append((Allowed(module, name, isinstance(obj, type), False, False), _risky_callable(obj)))
    return found


def _build() -> Catalog:
    allowed: list[Allowed] = []
    resolved_classes: list[tuple[Allowed, type]] = []
    for path in sorted(safe_globals()):
        resolved = split_path(path)
        if resolved is None:
            continue
        module, name, obj = resolved
        is_class = isinstance(obj, type)
        entry = Allowed(
            module,
            name,
            is_class,
            python_class=is_class
            and hasattr(obj, "__dict__")
            and not obj.__module__ == "builtins"
            and getattr(obj, "__flags__", 0) & (1 << 9) != 0,  # Py_TPFLAGS_HEAPTYPE
            open_dict=is_class and _open_dict(obj),
        )
        allowed.append(entry)
        if is_class:
            resolved_classes.append((entry, obj))
    classes = [a for a in allowed if a.is_class]
    references = _references()
    return Catalog(
        allowed=tuple(allowed),
        references=tuple(ref for ref, _ in references),
        risky_references=tuple(ref for ref, risky in references if risky),
        classes=tuple(classes),
        open_dict=tuple(a for a in classes if a.open_dict),
        python_classes=tuple(a for a in classes if a.python_class),
        probes=tuple(_probes(resolved_classes)),
        aliases=tuple(_aliases({a.module for a in allowed})),
        by_path={a.path: a for a in allowed},
        signatures={entry.path: _init_params(cls) for entry, cls in resolved_classes},
    )
