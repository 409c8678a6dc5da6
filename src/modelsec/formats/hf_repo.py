"""The Hugging Face repository layout: what a snapshot directory wires together.

Runs once per scanned directory, after every file was scanned on its own:

* ``auto_map`` in ``config.json``, ``tokenizer_config.json``, processor/feature-extractor
  configs (and ``custom_pipelines``; diffusers ``model_index.json`` components from a
  library other than diffusers/transformers) makes ``from_pretrained(..., trust_remote_code=True)``
  import a module of the repository, or of *another* repository (``org/repo--module.Class``),
  and instantiate a class from it: RuntimeCodeExecution, naming file and class.
* Every ``*.py`` in the tree is code such a module can import (or a loader run): reported
  with its path. (The filename is the evidence here because loaders pick modules by name.)
* Shard indexes (``*.index.json`` ``weight_map``) must name files that exist inside the
  directory: a missing shard or a path with ``..``/an absolute path is SuspiciousComponents.

The directory is recorded as format ``hf-repo`` when it looks like a snapshot (a config or
tokenizer file at its root or in a subfolder).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from modelsec.context import ScanContext
from modelsec.findings import Severity, threat
from modelsec.formats.base import DirectoryAnalyzer, FormatCategory

SNAPSHOT_MARKERS = frozenset(
    {
        "config.json",
        "tokenizer_config.json",
        "tokenizer.json",
        "generation_config.json",
        "special_tokens_map.json",
        "preprocessor_config.json",
        "processor_config.json",
        "chat_template.json",
        "chat_template.jinja",
        "adapter_config.json",
        "model_index.json",
    }
)
MAX_CONFIG_BYTES = 16 << 20
DIFFUSERS_LIBRARIES = frozenset({"diffusers", "transformers"})
MAX_FINDINGS_PER_KIND = 200
MAX_CONFIG_KEYS = 10_000  # top-level keys read for file paths (a tokenizer config has dozens)

_REVIEW = (
    "Load the model without trust_remote_code (use an architecture your transformers version "
    "ships), or review the named code for this exact revision and pin it."
)
HF_AUTO_MAP = threat(
    "MS-HF-001",
    "RuntimeCodeExecution",
    Severity.HIGH,
    "Repository code runs when the model is loaded (auto_map)",
    _REVIEW,
    "``auto_map`` (or ``custom_pipelines``) names a module of the repository and a class in "
    "it; transformers imports and instantiates it under trust_remote_code.",
)
HF_REMOTE_CODE = threat(
    "MS-HF-002",
    "RuntimeCodeExecution",
    Severity.CRITICAL,
    "auto_map loads code from another repository",
    _REVIEW,
    "An ``org/repo--module.Class`` reference downloads and runs code from a different "
    "repository, which can change independently of the model you reviewed.",
)
HF_PYTHON_FILE = threat(
    "MS-HF-003",
    "RuntimeCodeExecution",
    Severity.HIGH,
    "Python source in the model repository",
    _REVIEW,
    "Modules imported under trust_remote_code can import any Python file of the repository; "
    "tooling runs others. Each one is code the model brings with it.",
)
HF_AUTO_MAP_PATH = threat(
    "MS-HF-004",
    "SuspiciousComponents",
    Severity.HIGH,
    "auto_map module path leaves the repository or is malformed",
    "Remove the reference; module references are plain module names inside the repository.",
    "A module reference with ``..``, an absolute path or characters no module name has makes "
    "the loader import a file outside the snapshot (or fail in ways that differ by tool).",
)
HF_SHARD_MISSING = threat(
    "MS-HF-010",
    "SuspiciousComponents",
    Severity.MEDIUM,
    "Shard index names a file that is not in the model",
    "Re-download the complete snapshot; every shard the index names must be present.",
    "The weights cannot be verified (and a loader would fetch or fail on the missing shard).",
)
HF_SHARD_OUTSIDE = threat(
    "MS-HF-011",
    "SuspiciousComponents",
    Severity.HIGH,
    "Model config or shard index points outside the model directory",
    "Do not load the model; the files a model names are plain names inside the snapshot.",
    "A ``weight_map`` entry, a tokenizer's ``*_file``, a sentence-transformers module path or "
    "an adapter's base model with ``..`` or an absolute path makes the loader read a file "
    "outside the model: another model's weights, or any file it can reach.",
)
HF_SHARD_MALFORMED = threat(
    "MS-HF-012",
    "SuspiciousComponents",
    Severity.MEDIUM,
    "Shard index is malformed",
    "Re-download the snapshot; the index must map tensor names to shard file names.",
    "A ``*.index.json`` whose ``weight_map`` is missing or not a mapping of names to file "
    "names: loaders fail or guess.",
)
INCOMPLETE_CONFIG = "MS-HF-090"


def _load_json(path: Path, ctx: ScanContext) -> Any:
    """The parsed JSON of a config, or None (unreadable, too large, not JSON: the per-file
    JSON scanner reports those)."""
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            ctx.incomplete(
                f"{path.name} larger than {MAX_CONFIG_BYTES} bytes; auto_map not inspected",
                code=INCOMPLETE_CONFIG,
                path=str(path),
            )
            return None
        with open(path, "rb") as fh:
            return json.loads(fh.read().decode("utf-8-sig"))
    except (OSError, ValueError, RecursionError):
        return None


def is_config_name(name: str) -> bool:
    return name.endswith("config.json") and not name.endswith(".index.json")


def _class_refs(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for v in value:
            if isinstance(v, str):
                yield v


def _unsafe_relative(ref: str) -> bool:
    p = PurePosixPath(ref.replace("\\", "/"))
    return ref.startswith(("/", "\\", "~")) or bool(re.match(r"^[A-Za-z]:", ref)) or ".." in p.parts


class HFRepoAnalyzer(DirectoryAnalyzer):
    name = "hf-repo"

    def analyze(self, root: Path, files: list[Path], ctx: ScanContext) -> None:
        by_dir: dict[Path, list[Path]] = {}
        for f in files:
            by_dir.setdefault(f.parent, []).append(f)
        if any(f.name in SNAPSHOT_MARKERS for f in files):
            ctx.set_format("hf-repo", FormatCategory.CONTAINER)
        referenced: set[str] = set()
        present = {os.path.normpath(str(f)) for f in files}
        for directory, dir_files in sorted(by_dir.items()):
            for f in sorted(dir_files):
                if is_config_name(f.name):
                    referenced |= self._auto_map(f, directory, ctx)
                elif f.name == "modules.json":
                    referenced |= self._sentence_transformers_modules(f, directory, ctx)
                elif f.name == "model_index.json":
                    referenced |= self._diffusers_components(f, directory, ctx)
                elif f.name.endswith(".index.json"):
                    self._shard_index(f, directory, root, present, ctx)
        python_files = sorted(f for f in files if f.suffix.lower() in (".py", ".pyw"))
        for f in python_files[:MAX_FINDINGS_PER_KIND]:
            if os.path.normpath(str(f)) in referenced:
                continue  # its auto_map finding names it
            ctx.report(
                HF_PYTHON_FILE.at(
                    str(f),
                    f"Python file {f.relative_to(root).as_posix()} ships with the model: code that "
                    "trust_remote_code modules (or tooling) may import and run",
                    subject=f.relative_to(root).as_posix(),
                )
            )

    # --- auto_map ---------------------------------------------------------------------------
    def _auto_map(self, config: Path, directory: Path, ctx: ScanContext) -> set[str]:
        data = _load_json(config, ctx)
        if not isinstance(data, dict):
            return set()
        referenced: set[str] = set()
        entries: list[tuple[str, str]] = []
        auto_map = data.get("auto_map")
        if isinstance(auto_map, dict):
            for auto_class, value in auto_map.items():
                entries.extend((f"auto_map.{auto_class}", ref) for ref in _class_refs(value))
        elif auto_map is not None:
            ctx.report(
                HF_AUTO_MAP_PATH.at(
                    str(config),
                    "auto_map is not a mapping of auto classes to code references",
                    subject="auto_map",
                )
            )
        pipelines = data.get("custom_pipelines")
        if isinstance(pipelines, dict):
            for task, spec in pipelines.items():
                if isinstance(spec, dict):
                    for key in ("impl", "pt", "tf"):
                        for ref in _class_refs(spec.get(key)):
                            entries.append((f"custom_pipelines.{task}.{key}", ref))
        for where, ref in entries[:MAX_FINDINGS_PER_KIND]:
            referenced |= self._reference(config, directory, where, ref, ctx)
        self._paths_outside(config, data, ctx)
        mapping = data.get("auto_mapping")  # PEFT: importlib.import_module(parent_library)
        if isinstance(mapping, dict) and mapping.get("parent_library") not in (None, "transformers"):
            library = str(mapping.get("parent_library"))[:200]
            ctx.report(
                HF_AUTO_MAP.at(
                    str(config),
                    f"auto_mapping.parent_library makes PEFT import module {library!r} and take "
                    "the base model's class from it",
                    subject=library,
                )
            )
        return referenced

    def _paths_outside(self, config: Path, data: dict[str, Any], ctx: ScanContext) -> None:
        """File and model paths a loader takes from the config in place of the snapshot's
        own (a tokenizer's ``vocab_file``, an adapter's ``base_model_name_or_path``): one that
        is absolute or climbs out makes it read a file outside the model."""
        for key, value in list(data.items())[:MAX_CONFIG_KEYS]:
            if not (isinstance(key, str) and isinstance(value, str) and value):
                continue
            if (key.endswith(("_file", "_path")) or key == "base_model_name_or_path") and _unsafe_relative(
                value
            ):
                ctx.report(
                    HF_SHARD_OUTSIDE.at(
                        str(config),
                        f"{key} = {value[:200]!r}: the loader reads it in place of the model's own, "
                        "from outside the model directory",
                        subject=value[:200],
                    )
                )

    def _sentence_transformers_modules(self, modules: Path, directory: Path, ctx: ScanContext) -> set[str]:
        """sentence-transformers' ``modules.json``: each module's ``type`` is an import path
        it loads (``sentence_transformers.*``, else any installed module, else under
        trust_remote_code or for a local model a repository's code through transformers'
        dynamic modules), and its ``path`` a folder joined to the model's."""
        data = _load_json(modules, ctx)
        if not isinstance(data, list):
            return set()
        referenced: set[str] = set()
        for i, entry in enumerate(data[:MAX_FINDINGS_PER_KIND]):
            if not isinstance(entry, dict):
                continue
            kind, path = entry.get("type"), entry.get("path")
            if isinstance(path, str) and path and _unsafe_relative(path):
                ctx.report(
                    HF_SHARD_OUTSIDE.at(
                        str(modules),
                        f"module {i} path {path[:200]!r}: loaded from outside the model directory",
                        subject=path[:200],
                    )
                )
            if not isinstance(kind, str) or kind.startswith("sentence_transformers."):
                continue
            if "--" in kind or kind.count(".") == 1:  # transformers' [repo--]module.Class
                referenced |= self._reference(modules, directory, f"modules.json[{i}].type", kind, ctx)
            else:
                ctx.report(
                    HF_AUTO_MAP.at(
                        str(modules),
                        f"modules.json[{i}].type = {kind[:200]!r}: sentence-transformers imports "
                        "that module and runs its class",
                        subject=kind[:200],
                    )
                )
        return referenced

    def _reference(self, config: Path, directory: Path, where: str, ref: str, ctx: ScanContext) -> set[str]:
        """One ``[repo--]module.Class`` reference, split the way transformers splits it
        (``split("--")`` then ``split(".")``: exactly one dot)."""
        if ref.isidentifier():
            return set()  # a bare class name (custom_pipelines "pt": "AutoModel"): built-in
        repo_parts = ref.split("--")
        parts = repo_parts[-1].split(".")
        if len(repo_parts) > 2 or len(parts) != 2 or not parts[0] or not parts[1].isidentifier():
            ctx.report(
                HF_AUTO_MAP_PATH.at(
                    str(config),
                    f"{where} = {ref[:200]!r}: not a [repo--]module.Class reference",
                    subject=ref[:200],
                )
            )
            return set()
        module, cls = parts
        repo = repo_parts[0] if len(repo_parts) == 2 else None
        if repo:
            ctx.report(
                HF_REMOTE_CODE.at(
                    str(config),
                    f"{where} runs class {cls} from module {module}.py of repository {repo}, "
                    "not of this model",
                    subject=f"{repo}--{module}.{cls}",
                )
            )
            return set()
        if _unsafe_relative(module):
            ctx.report(
                HF_AUTO_MAP_PATH.at(
                    str(config),
                    f"{where} = {ref[:200]!r}: module path leaves the repository",
                    subject=ref[:200],
                )
            )
        module_file = directory / (module + ".py")
        exists = module_file.is_file()
        ctx.report(
            HF_AUTO_MAP.at(
                str(config),
                f"{where} runs class {cls} from {module}.py"
                + ("" if exists else " (not in the snapshot: the loader would fetch it)"),
                subject=f"{module}.{cls}",
                details={"module_file": str(module_file), "class": cls},
            )
        )
        return {os.path.normpath(str(module_file))}

    # --- diffusers pipelines -------------------------------------------------------------------
    def _diffusers_components(self, index: Path, directory: Path, ctx: ScanContext) -> set[str]:
        """``model_index.json``: each component is ``[library, class]``; a library other than
        diffusers/transformers is a module of the repository (the component folder or the
        root), imported as custom code; ``_class_name`` as a list is a custom pipeline."""
        data = _load_json(index, ctx)
        if not isinstance(data, dict):
            return set()
        referenced: set[str] = set()
        entries = [(k, v) for k, v in data.items() if not k.startswith("_")]
        if isinstance(data.get("_class_name"), list):
            entries.append(("_class_name", data["_class_name"]))
        for component, spec in entries[:MAX_FINDINGS_PER_KIND]:
            if not (isinstance(spec, list) and len(spec) == 2 and all(isinstance(x, str) for x in spec)):
                continue
            library, cls = spec
            if library in DIFFUSERS_LIBRARIES:
                continue
            if (
                _unsafe_relative(library)
                or not library.replace("/", "").replace("_", "").replace("-", "").isalnum()
            ):
                ctx.report(
                    HF_AUTO_MAP_PATH.at(
                        str(index),
                        f"component {component} names module {library[:200]!r}, which is not a module inside the repository",
                        subject=library[:200],
                    )
                )
            candidates = [directory / component / f"{library}.py", directory / f"{library}.py"]
            module_file = next((c for c in candidates if c.is_file()), candidates[0])
            ctx.report(
                HF_AUTO_MAP.at(
                    str(index),
                    f"model_index.json component {component} runs class {cls} from {library}.py"
                    + ("" if module_file.is_file() else " (not in the snapshot: the loader would fetch it)"),
                    subject=f"{library}.{cls}",
                    details={"module_file": str(module_file), "class": cls},
                )
            )
            referenced.add(os.path.normpath(str(module_file)))
        return referenced

    # --- shard indexes ----------------------------------------------------------------------
    def _shard_index(
        self, index: Path, directory: Path, root: Path, present: set[str], ctx: ScanContext
    ) -> None:
        data = _load_json(index, ctx)
        if data is None:
            return
        weight_map = data.get("weight_map") if isinstance(data, dict) else None
        if not isinstance(weight_map, dict):
            ctx.report(
                HF_SHARD_MALFORMED.at(str(index), "no weight_map mapping of tensor names to shard files")
            )
            return
        shards = set()
        for tensor, shard in weight_map.items():
            if not isinstance(shard, str) or not shard:
                ctx.report(
                    HF_SHARD_MALFORMED.at(
                        str(index),
                        f"tensor {str(tensor)[:120]!r} maps to {str(shard)[:120]!r}, not a file name",
                    )
                )
                continue
            shards.add(shard)
        real_root = root.resolve()
        for shard in sorted(shards)[:MAX_FINDINGS_PER_KIND]:
            target = directory / shard
            if _unsafe_relative(shard) or not target.resolve().is_relative_to(real_root):
                ctx.report(
                    HF_SHARD_OUTSIDE.at(
                        str(index),
                        f"weight_map names shard {shard[:200]!r}, outside the model directory",
                        subject=shard[:200],
                    )
                )
            elif os.path.normpath(str(target)) not in present:
                ctx.report(
                    HF_SHARD_MISSING.at(
                        str(index),
                        f"weight_map names shard {shard[:200]!r}, which is not in the model",
                        subject=shard[:200],
                    )
                )


ANALYZER = HFRepoAnalyzer()
