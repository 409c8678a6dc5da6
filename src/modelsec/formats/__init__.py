"""The format registry: one line per format module, in :data:`FORMAT_MODULES`.

To add a format: write ``formats/<name>.py`` exposing ``SCANNER`` (a
:class:`~modelsec.formats.base.FormatScanner`) and/or ``ANALYZER`` (a
:class:`~modelsec.formats.base.DirectoryAnalyzer`, for layouts that span files such as a
TensorFlow SavedModel or a Hugging Face snapshot), then add its name below.

Every file is shown to every format's detector (:mod:`modelsec.interpretations`), so a
format module imports only what detection needs: signature checks, a few small reads.
What scanning needs (a parser, Jinja, PyYAML, the ONNX reader) is imported by ``scan``,
or by ``detect`` once a cheap check has passed: a safetensors file never loads the ONNX
reader. A format whose scanning code is large keeps it in ``<name>_scan.py`` beside it
(``onnx`` and ``onnx_scan``). ``tests/core/test_startup.py`` holds detection to that.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Callable, Iterator

from modelsec.bytesource import ByteSource
from modelsec.formats.base import DirectoryAnalyzer, FormatScanner

FORMAT_MODULES: tuple[str, ...] = (
    "onnx",
    "keras_h5",
    "tflite",
    "keras_config",
    "tf_savedmodel",
    "zip",
    "numpy_npy",
    "safetensors",
    "pytorch_legacy",
    "compressed",
    "tar",
    "sevenzip",
    "json_config",
    "jinja_template",
    "yaml_config",
    "gguf",
    "flax_msgpack",
    "sentencepiece",
    "python_source",
    "hf_repo",
    "pickle",
    "image",
    "text",
)


@functools.cache
def _loaded() -> tuple[tuple[FormatScanner, ...], tuple[DirectoryAnalyzer, ...]]:
    scanners: list[FormatScanner] = []
    analyzers: list[DirectoryAnalyzer] = []
    for name in FORMAT_MODULES:
        module = importlib.import_module(f"modelsec.formats.{name}")
        if (scanner := getattr(module, "SCANNER", None)) is not None:
            scanners.append(scanner)
        if (analyzer := getattr(module, "ANALYZER", None)) is not None:
            analyzers.append(analyzer)
    scanners.sort(key=lambda s: s.priority)
    return tuple(scanners), tuple(analyzers)


def scanners() -> tuple[FormatScanner, ...]:
    """All format scanners, in detection order."""
    return _loaded()[0]


def directory_analyzers() -> tuple[DirectoryAnalyzer, ...]:
    return _loaded()[1]


def by_name(name: str) -> FormatScanner | None:
    return next((s for s in scanners() if s.name == name), None)


def claimants(
    head: bytes,
    source: ByteSource,
    filename: str,
    among: Callable[[FormatScanner], bool] | None = None,
) -> Iterator[FormatScanner]:
    """The registered formats (those ``among`` accepts) that claim the content, in
    detection order, asked lazily: the one place that sniffs content (for the engine's
    interpretations, archive members and the zip detector's container check)."""
    for scanner in scanners() if among is None else _accepted_by(among):
        if scanner.claims(head, source, filename):
            yield scanner


@functools.cache
def _accepted_by(among: Callable[[FormatScanner], bool]) -> tuple[FormatScanner, ...]:
    """The scanners ``among`` accepts, chosen once: filters describe a scanner's fixed
    traits (its category, whether it has a signature), and archives ask for every member."""
    return tuple(scanner for scanner in scanners() if among(scanner))


# Scanning code outside this package that declares threats and that format modules import
# only when they meet its kind of content.
LAZY_ANALYSES: tuple[str, ...] = ("modelsec.templates",)


@functools.cache
def load_all() -> None:
    """Import every module of this package and the analyses they load lazily, so that the
    threat catalogue is complete (``modelsec threats``, docs/threats.md, SARIF rule
    descriptions of findings made in worker processes). Scanning never needs this."""
    _loaded()
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
    for name in LAZY_ANALYSES:
        importlib.import_module(name)
