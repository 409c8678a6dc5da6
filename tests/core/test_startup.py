"""Start-up: what a one-file scan imports (issue 14). CI pipelines run the CLI once per
file, so detection (run on every file, for every format) must not load every format's
scanning code. The time itself is measured by benchmarks/startup.py, never here; these
tests hold the imports that decide it."""

from __future__ import annotations

import json
import os
import pickle
import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src" / "modelsec"

# Scanning code of formats a clean safetensors or pickle file is not, and libraries that
# only their scans (or other commands) need.
NOT_FOR_OTHER_FORMATS = (
    "jinja2",
    "markupsafe",
    "modelsec.templates",
    "modelsec.onnx.reader",
    "modelsec.onnx.model",
    "modelsec.backdoor",
    "modelsec.keras.config",
    "modelsec.tensorflow",
    "h5py",
    "numpy",
    "subprocess",
    "multiprocessing",
    "concurrent.futures",
    "tqdm",
    "py7zr",
    "lz4",
    "kubernetes",
    "boto3",
    "huggingface_hub",
    "httpx2",
)


def last_line_of(code: str) -> str:
    """The last line ``code`` prints in a fresh interpreter."""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def imported_by(code: str) -> list[str]:
    """The modules a fresh interpreter has imported after running ``code``."""
    return json.loads(last_line_of(f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"))


def loaded(modules: list[str], names: tuple[str, ...]) -> list[str]:
    return [m for m in modules if any(m == n or m.startswith(n + ".") for n in names)]


def scan_modules(path: Path) -> list[str]:
    return imported_by(
        "from modelsec.cli.main import main\n"
        f"assert main(['scan', '-q', '--no-progress', {str(path)!r}]) == 0"
    )


def test_version_loads_neither_scanner_nor_policy():
    modules = imported_by(
        "from modelsec.cli.main import main\n"
        "try:\n    main(['--version'])\nexcept SystemExit as exit:\n    assert exit.code == 0"
    )
    assert (
        loaded(
            modules,
            (
                "modelsec.engine",
                "modelsec.formats",
                "modelsec.pickle",
                "modelsec.policy",
                "modelsec.rules",
                "pydantic",
                "yaml",
                *NOT_FOR_OTHER_FORMATS,
            ),
        )
        == []
    )


def test_a_safetensors_scan_loads_no_other_format_scanning_code(tmp_path):
    header = json.dumps({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}).encode()
    path = tmp_path / "model.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + bytes(16))
    modules = scan_modules(path)
    assert "modelsec.formats.safetensors" in modules  # it did run
    assert loaded(modules, NOT_FOR_OTHER_FORMATS) == []
    assert [m for m in modules if m.startswith("modelsec.formats.") and m.endswith("_scan")] == []
    # Rules are imported as the group names them: local-default lists six.
    assert "modelsec.rules.signature_verified" not in modules
    # The built-in group is read from its JSON form: PyYAML is for a user's group file.
    assert loaded(modules, ("yaml",)) == []
    # The pickle detector ruled the head out by its first bytes (formats/pickle_head.py):
    # the symbolic machine is not imported (only the small modules rules name).
    assert loaded(modules, ("modelsec.pickle",)) == ["modelsec.pickle", "modelsec.pickle.threats"]


def test_a_pickle_scan_loads_no_other_format_scanning_code(tmp_path):
    path = tmp_path / "state.pkl"
    path.write_bytes(pickle.dumps({"layer.weight": [0.5, 0.25]}, protocol=4))
    modules = scan_modules(path)
    assert "modelsec.pickle.scanner" in modules
    assert loaded(modules, NOT_FOR_OTHER_FORMATS) == []
    # The allowlists and class facts are read beside their modules: importlib.resources'
    # readers would import zipfile (3.5 ms of every scan worker's start-up).
    assert loaded(modules, ("zipfile", "importlib.resources", "importlib.readers")) == []


def test_a_directory_scanned_in_forked_workers_loads_no_process_pool(tmp_path):
    """Where fork is safe, workers are forked and fed over pipes (modelsec.forked):
    multiprocessing and concurrent.futures (~12 ms of imports) stay out of the scan."""
    for i in range(12):
        (tmp_path / f"state{i}.pkl").write_bytes(pickle.dumps({"step": i}, protocol=4))
    modules = imported_by(
        "from modelsec import engine\n"
        "from modelsec.cli.main import main\n"
        "engine.SCAN_HERE_FIRST = False  # twelve quick files: to workers at once, not only when it pays\n"
        f"assert main(['scan', '-q', '--no-progress', '--jobs', '2', {str(tmp_path)!r}]) == 0"
    )
    assert "modelsec.forked" in modules  # workers did scan it
    assert loaded(modules, ("multiprocessing", "concurrent.futures", "ctypes")) == []


def test_detection_of_every_format_loads_only_detectors():
    modules = imported_by(
        "from modelsec.bytesource import BytesSource\n"
        "from modelsec.interpretations import detect_all\n"
        "for data in (b'PK\\x05\\x06' + bytes(18), b'\\x80\\x04K\\x01.', b'GGUF' + bytes(60),"
        " b'\\x93NUMPY' + bytes(60), bytes(range(256)) * 4, b'plain text\\n' * 50):\n"
        "    detect_all(data, BytesSource(data), 'file')"
    )
    assert loaded(modules, ("pydantic", "yaml", *NOT_FOR_OTHER_FORMATS)) == []


def test_scanning_code_is_loaded_where_a_format_needs_it(tmp_path):
    """The other side of the laziness: a file of the format does load its scanner."""
    config = tmp_path / "tokenizer_config.json"
    config.write_text(json.dumps({"chat_template": "{% for m in messages %}{{ m.content }}{% endfor %}"}))
    assert "jinja2" in scan_modules(config)


def test_every_rule_module_is_named_after_its_rule():
    """rules.get imports ``rules/<snake_case id>.py`` alone; a rule whose module is named
    otherwise would make every lookup of it import all rules."""
    import importlib

    from modelsec import rules

    for name in rules.RULE_MODULES:
        rule = importlib.import_module(f"modelsec.rules.{name}").RULE
        assert rules.module_name(rule.id) == name
        assert rules.get(rule.id) is rule


def test_the_catalogue_holds_every_declared_threat():
    """Every ``threat("MS-...")`` in the source is in the catalogue once the lazily imported
    scanning code is loaded (docs/threats.md, ``modelsec threats``, SARIF descriptions)."""
    pytest.importorskip("httpx2")  # the remote sources declare their own threats
    import modelsec.engine  # noqa: F401
    import modelsec.sources.huggingface  # noqa: F401
    import modelsec.sources.s3  # noqa: F401
    from modelsec import formats, rules
    from modelsec.findings import THREATS

    formats.load_all()
    rules.registry()
    declared = {
        code
        for path in SRC.rglob("*.py")
        for code in re.findall(r'threat\(\s*"(MS-[A-Z0-9]+-\d+)"', path.read_text())
    }
    assert len(declared) > 100
    assert sorted(declared - set(THREATS)) == []


@pytest.fixture(scope="module")
def built_lib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What goes into the wheel: setuptools' build_py, as configured by pyproject.toml, run
    offline on a copy of the tree (building the wheel itself needs the isolated build's
    setuptools from PyPI)."""
    import shutil

    tmp_path = tmp_path_factory.mktemp("build")
    tree = tmp_path / "tree"
    (tree / "hack").mkdir(parents=True)
    for name in ("pyproject.toml", "MANIFEST.in", "README.md", "hack/wheel_bytecode.py"):
        shutil.copy(REPO / name, tree / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in ("src", "operator", "webhook"):
        shutil.copytree(REPO / name, tree / name, ignore=ignore)
    out = tmp_path / "lib"
    built = subprocess.run(
        [sys.executable, "-c", "from setuptools import setup; setup()", "build_py", "--build-lib", str(out)],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=600,
        env=os.environ | {"PYTHONDONTWRITEBYTECODE": "1"},  # the wheel carries bytecode regardless
    )
    assert built.returncode == 0, built.stderr
    return out


def test_the_build_writes_hash_checked_bytecode_for_every_module(built_lib: Path) -> None:
    """benchmarks/startup.py's "uncached" rows are what this saves."""
    import importlib.util

    sources = sorted((built_lib / "modelsec").rglob("*.py"))
    assert len(sources) > 100
    for source in sources:
        pyc = Path(importlib.util.cache_from_source(str(source)))
        assert pyc.is_file(), source
        data = pyc.read_bytes()
        assert data[:4] == importlib.util.MAGIC_NUMBER
        assert int.from_bytes(data[4:8], "little") == 0b11, f"{pyc}: not a checked hash-based pyc"
        assert data[8:16] == importlib.util.source_hash(source.read_bytes()), pyc


@pytest.mark.parametrize("package", ["modelsec", "modelsec_operator", "modelsec_webhook"])
def test_the_build_marks_every_package_typed(built_lib: Path, package: str) -> None:
    """PEP 561: the py.typed marker is in the wheel, so type checkers of code that imports
    modelsec read its annotations."""
    assert (built_lib / package / "py.typed").is_file()


def test_the_build_ships_the_built_in_groups_json(built_lib: Path) -> None:
    """``modelsec scan`` reads the built-in groups from it (modelsec.policy.BUILTIN_GROUPS_FILE)."""
    shipped = built_lib / "modelsec" / "groups" / "builtin.json"
    assert shipped.is_file()
    assert shipped.read_bytes() == (SRC / "groups" / "builtin.json").read_bytes()


@pytest.mark.parametrize("kind", ["safetensors", "pickle"])
def test_a_scan_with_a_built_in_group_imports_no_pydantic(tmp_path: Path, kind: str) -> None:
    """pydantic's import was 40% of a small scan's start-up. The built-in group and its
    rules' parameters are constructed from the group's validated dump as plain dataclasses
    (modelsec.policy.load_group); pydantic is imported when something is validated (a
    user's group, a resource) or a schema is made."""
    if kind == "pickle":
        path = tmp_path / "state.pkl"
        path.write_bytes(pickle.dumps({"layer.weight": [0.5, 0.25]}, protocol=4))
    else:
        header = json.dumps({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}).encode()
        path = tmp_path / "model.safetensors"
        path.write_bytes(struct.pack("<Q", len(header)) + header + bytes(16))
    modules = scan_modules(path)
    # the group was evaluated, with its rules' parameters
    assert "modelsec.rules.load_time_code_execution" in modules
    assert "modelsec.rules.suspicious_components" in modules
    assert loaded(modules, ("pydantic", "pydantic_core", "annotated_types", "modelsec.group_spec")) == []


def test_a_user_group_file_is_validated_with_pydantic(tmp_path: Path) -> None:
    """The other side: a group from a file is validated (an invalid parameter is refused)."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - name: SuspiciousComponents\n    params: {allowedGlobals: [os.system]}\n")
    out = last_line_of(
        "from modelsec.policy import GroupError, load_group\n"
        f"try:\n    load_group({str(bad)!r})\nexcept GroupError as exc:\n    print(repr(str(exc)))\n"
        "import sys\nprint('pydantic' in sys.modules)"
    )
    assert out == "True"


def test_every_dataclass_has_a_docstring() -> None:
    """Python 3.11 gives a dataclass without a docstring one built from inspect.signature at
    import: 40 us to over 1 ms a class, 8 ms of a directory scan's imports for the 23 it
    loads. A line saying what the class holds is cheaper and reads better."""
    import ast

    missing = []
    for root in (REPO / "src", REPO / "operator", REPO / "webhook"):
        for path in sorted(root.rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if not isinstance(node, ast.ClassDef) or ast.get_docstring(node) is not None:
                    continue
                decorators = [d.func if isinstance(d, ast.Call) else d for d in node.decorator_list]
                names = {getattr(d, "id", None) or getattr(d, "attr", None) for d in decorators}
                if "dataclass" in names:
                    missing.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name}")
    assert missing == []
