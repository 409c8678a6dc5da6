"""The dependency direction of the packages (docs/architecture.md, "Layers"), and a core
that imports with the base install.

Imports are read with ``ast``, never by importing: module level (what importing a module
pulls in) and the rest (imports inside functions, loaded when called, and imports under
``if TYPE_CHECKING:``, for annotations) are checked separately.
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[2]
PACKAGE_ROOTS = (REPO / "src", REPO / "operator", REPO / "webhook")

# Lowest first. A module may import modules of its own layer and of the layers below.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "primitives",
        (
            "modelsec",
            "modelsec.safe_text",
            "modelsec.bytesource",
            "modelsec.findings",
            "modelsec.context",
            "modelsec.metadata",
            "modelsec.protobuf_wire",
            "modelsec.heap",
        ),
    ),
    (
        "analysis",
        (
            "modelsec.archive",
            "modelsec.pickle",
            "modelsec.backdoor",
            "modelsec.keras",
            "modelsec.onnx",
            "modelsec.tensorflow",
            "modelsec.templates",
            "modelsec.integrity",
        ),
    ),
    ("formats", ("modelsec.formats",)),
    (
        "engine",
        (
            "modelsec.engine",
            "modelsec.interpretations",
            "modelsec.disguise",
            "modelsec.parallel",
            "modelsec.forked",
        ),
    ),
    ("rules/policy", ("modelsec.rules", "modelsec.policy", "modelsec.group_spec")),
    # a scanned model and the documents made from it
    ("sources", ("modelsec.sources", "modelsec.report", "modelsec.bom")),
    ("k8s/references", ("modelsec.k8s", "modelsec.references")),
    # what users run: the CLI (and the back ends of `modelsec verify`), operator, webhook
    (
        "entry points",
        (
            "modelsec.cli",
            "modelsec.__main__",
            "modelsec.integrity.verify",
            "modelsec.integrity.expected",
            "modelsec.integrity.cluster",
            "modelsec_operator",
            "modelsec_webhook",
        ),
    ),
)

# Function-level imports that point upward, each with the reason it is sound. Keep short:
# an entry here is a dependency the layering does not show.
LAZY_UPWARD: dict[tuple[str, str], str] = {}

# The operator and the webhook are separate deployables: neither imports the other, and
# the core imports neither.
SERVICES = ("modelsec_operator", "modelsec_webhook")

# Core modules that exist to wrap one optional dependency, and so import it at module
# level; other core modules import them only inside functions, behind a clear error.
_REMOTE = (
    "httpx2 and httpcore2 (huggingface_hub's HTTP stack, modelsec[remote]); loaded by "
    "sources.scan_model through SOURCE_MODULES, which turns ImportError into MS-SRC-011"
)
EXTRA_ADAPTERS: dict[str, str] = {
    "modelsec.bom.build": "cyclonedx-python-lib (modelsec[integrity]); imported by "
    "bom.record_bom_json, which turns ImportError into BomUnavailable",
    "modelsec.sources.http": _REMOTE,
    "modelsec.sources.s3_http": _REMOTE,
    "modelsec.sources.huggingface": _REMOTE,
    "modelsec.sources.s3": _REMOTE,
}


@dataclass(frozen=True)
class Import:
    importer: str
    target: str  # the imported module (a name imported from a module resolves to the module)
    line: int
    lazy: bool  # not loaded with the module: inside a function, or under TYPE_CHECKING


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def _sources() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for root in PACKAGE_ROOTS:
        for path in sorted(root.rglob("*.py")):
            if "__pycache__" not in path.parts:
                found[_module_name(root, path)] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    return isinstance(node.test, (ast.Name, ast.Attribute)) and ast.unparse(node.test).endswith(
        "TYPE_CHECKING"
    )


def _imported_names(node: ast.Import | ast.ImportFrom, package: str) -> list[str]:
    """Every dotted name the statement imports (for ``from a import b``: ``a.b`` and ``a``)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
        base = ".".join(anchor + ([base] if base else []))
    return [f"{base}.{alias.name}" for alias in node.names] + [base]


def imports_of(module: str, path: Path, *, prefix: tuple[str, ...] | None = None) -> list[Import]:
    """The imports of one file; with ``prefix``, only names under those top-level packages,
    resolved to the longest module that exists."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[Import] = []

    def visit(nodes: list[ast.stmt], lazy: bool) -> None:
        for node in nodes:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                visit(node.body, True)
            elif isinstance(node, ast.If) and _is_type_checking(node):
                visit(node.body, True)
                visit(node.orelse, lazy)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names = _imported_names(node, package)
                if prefix is None:
                    targets = {n for n in names if n}
                else:
                    resolved = (_resolve(n) for n in names if n.split(".")[0] in prefix)
                    targets = {t for t in resolved if t is not None}
                found.extend(Import(module, t, node.lineno, lazy) for t in sorted(targets))
            else:
                for block in ("body", "orelse", "finalbody"):
                    visit(getattr(node, block, []) or [], lazy)
                for handler in getattr(node, "handlers", []) or []:
                    visit(handler.body, lazy)

    visit(ast.parse(path.read_text(), str(path)).body, False)
    return found


def _resolve(name: str) -> str | None:
    modules = _sources()
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def layer_of(module: str) -> int | None:
    best: tuple[int, int] | None = None  # (prefix length, layer)
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            # the root package is a layer of its own (__version__), never a catch-all
            hit = module == prefix or (prefix != "modelsec" and module.startswith(prefix + "."))
            if hit and (best is None or len(prefix) > best[0]):
                best = (len(prefix), index)
    return None if best is None else best[1]


def _edges(lazy: bool) -> list[Import]:
    ours = ("modelsec", *SERVICES)
    return [
        i
        for module, path in _sources().items()
        for i in imports_of(module, path, prefix=ours)
        if i.lazy == lazy and i.target != module
    ]


def _upward(edges: list[Import]) -> list[str]:
    problems = []
    for edge in edges:
        low, high = layer_of(edge.importer), layer_of(edge.target)
        assert low is not None and high is not None, edge
        if high > low and (edge.importer, edge.target) not in LAZY_UPWARD:
            problems.append(
                f"{edge.importer} ({LAYERS[low][0]}) imports {edge.target} ({LAYERS[high][0]})"
                f"{' lazily' if edge.lazy else ''}, line {edge.line}"
            )
    return problems


def test_every_module_has_a_layer() -> None:
    unplaced = [m for m in _sources() if layer_of(m) is None]
    assert not unplaced, f"add these modules to a layer in LAYERS (and docs/architecture.md): {unplaced}"


def test_module_level_imports_point_down() -> None:
    assert _upward(_edges(lazy=False)) == []


def test_function_level_imports_point_down() -> None:
    assert _upward(_edges(lazy=True)) == []
    for (importer, target), reason in LAZY_UPWARD.items():
        assert reason and any(e.importer == importer and e.target == target for e in _edges(lazy=True)), (
            f"stale LAZY_UPWARD entry {importer} -> {target}"
        )


def test_services_stay_apart() -> None:
    crossing = [
        f"{e.importer} imports {e.target}, line {e.line}"
        for e in _edges(lazy=False) + _edges(lazy=True)
        if e.target.split(".")[0] in SERVICES and e.importer.split(".")[0] != e.target.split(".")[0]
    ]
    assert crossing == []


def test_the_checker_sees_an_upward_import(tmp_path: Path) -> None:
    """The checks above can fail: an upward import in a core file is found."""
    probe = tmp_path / "probe.py"
    probe.write_text("from modelsec.engine import Engine\n\ndef f():\n    import modelsec.cli.main\n")
    found = imports_of("modelsec.archive.probe", probe, prefix=("modelsec",))
    assert [(i.target, i.lazy) for i in found] == [("modelsec.engine", False), ("modelsec.cli.main", True)]
    assert _upward(found) == [
        "modelsec.archive.probe (analysis) imports modelsec.engine (engine), line 1",
        "modelsec.archive.probe (analysis) imports modelsec.cli.main (entry points) lazily, line 4",
    ]


# --- optional dependencies ---------------------------------------------------------------


def _closure(requirements: list[Requirement], extra: str = "") -> set[str]:
    """The installed distributions ``requirements`` pull in, transitively (normalised names)."""
    seen: set[str] = set()
    todo = [r for r in requirements if r.marker is None or r.marker.evaluate({"extra": extra})]
    while todo:
        name = re.sub(r"[-_.]+", "-", todo.pop().name).lower()
        if name in seen:
            continue
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue  # not installed here (another platform's dependency)
        seen.add(name)
        for spec in dist.requires or []:
            req = Requirement(spec)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req)
    return seen


@cache
def optional_modules() -> frozenset[str]:
    """Top-level import names of every distribution the extras bring in and the base install
    does not (kubernetes, kopf, aiohttp, boto3, huggingface_hub, model_signing, cyclonedx,
    prometheus_client, ... and the test-only libraries)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    base = _closure([Requirement(r) for r in project["dependencies"]])
    extras: set[str] = set()
    for requirements in project["optional-dependencies"].values():
        extras |= _closure([Requirement(r) for r in requirements])
    optional = extras - base
    names = {
        module
        for module, dists in importlib.metadata.packages_distributions().items()
        if all(re.sub(r"[-_.]+", "-", d).lower() in optional for d in dists)
    }
    return frozenset(n for n in names if n.isidentifier() and n not in sys.stdlib_module_names)


def _core_modules() -> list[str]:
    return [m for m in _sources() if m.split(".")[0] == "modelsec" and m != "modelsec.__main__"]


def test_optional_dependencies_are_known() -> None:
    """The blocked set is computed from pyproject.toml, so it must contain what the brief of
    each extra names; if this fails the computation broke, not the core."""
    expected = {
        "kubernetes",
        "kopf",
        "aiohttp",
        "boto3",
        "botocore",
        "huggingface_hub",
        "model_signing",
        "cyclonedx",
        "prometheus_client",
    }
    assert expected <= optional_modules()
    assert not {"pydantic", "yaml", "numpy", "jinja2", "h5py"} & optional_modules()


def test_core_imports_no_optional_dependency_at_module_level() -> None:
    offending = [
        f"{i.importer} imports {i.target} at module level, line {i.line}"
        for module in _core_modules()
        if module not in EXTRA_ADAPTERS
        for i in imports_of(module, _sources()[module])
        if not i.lazy and i.target.split(".")[0] in optional_modules()
    ]
    assert offending == []


def test_extra_adapters_are_imported_lazily() -> None:
    eager = [
        f"{i.importer} imports {i.target} at module level, line {i.line}"
        for i in _edges(lazy=False)
        if i.target in EXTRA_ADAPTERS
        and i.importer.split(".")[0] == "modelsec"
        and i.importer not in EXTRA_ADAPTERS
    ]
    assert eager == []


# Runs in a fresh interpreter where every optional dependency is refused (a meta-path
# finder ahead of all others), then the body of the test; the last line printed is JSON.
_REFUSE_OPTIONAL = """
import importlib, importlib.abc, json, sys

blocked = frozenset(json.loads(sys.argv[1]))

class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in blocked:
            raise ModuleNotFoundError(f"{name} is an optional dependency (blocked)", name=name)
        return None

sys.meta_path.insert(0, Refuse())
"""

# Imports every module named on stdin; {"failed": {module: error}, "control": the error of
# importing a blocked module}.
_IMPORT_ALL = """
failed = {}
for module in sys.stdin.read().split():
    try:
        importlib.import_module(module)
    except BaseException as exc:
        failed[module] = f"{type(exc).__name__}: {exc}"
try:
    import kubernetes
    control = None
except ImportError as exc:
    control = str(exc)
print(json.dumps({"failed": failed, "control": control}))
"""


def _with_optional_blocked(body: str, stdin: str = "") -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-c", _REFUSE_OPTIONAL + body, json.dumps(sorted(optional_modules()))],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    outcome: dict[str, object] = json.loads(result.stdout.splitlines()[-1])
    return outcome


def test_core_imports_with_the_base_install() -> None:
    """Every core module (``import modelsec.k8s`` included) imports in a fresh interpreter
    that refuses every optional dependency; the adapters fail there, which shows that the
    refusal works."""
    core = _core_modules()
    assert "modelsec.k8s" in core and "modelsec.k8s.config" in core
    outcome = _with_optional_blocked(_IMPORT_ALL, "\n".join(core))
    assert outcome["control"] == "kubernetes is an optional dependency (blocked)"
    failed = outcome["failed"]
    assert isinstance(failed, dict)
    assert set(failed) == set(EXTRA_ADAPTERS), failed
    assert all("(blocked)" in error for error in failed.values()), failed


_SCAN_REMOTE = """
from modelsec.sources import parse_model_uri, scan_model

found = {}
for uri in ("hf://org/model", "s3://bucket/model"):
    scanned = scan_model(parse_model_uri(uri))
    found[uri] = [[i.code, i.reason] for i in scanned.report.incompletes]
print(json.dumps(found))
"""


def test_remote_sources_without_their_extra_fail_closed() -> None:
    """A base install asked for hf:// or s3:// reports MS-SRC-011 naming the extra (it used
    to raise ModuleNotFoundError: httpcore2 from inside scan_model)."""
    found = _with_optional_blocked(_SCAN_REMOTE)
    assert set(found) == {"hf://org/model", "s3://bucket/model"}
    for uri, incompletes in found.items():
        assert isinstance(incompletes, list) and len(incompletes) == 1, (uri, incompletes)
        code, reason = incompletes[0]
        assert code == "MS-SRC-011"
        assert "pip install 'modelsec[remote]'; failing closed" in reason
