"""Build step named in pyproject.toml ([tool.setuptools.cmdclass]): the wheel carries bytecode.

Compiling every module at the first run costs a one-file scan more than the scan itself
(benchmarks/startup.py, "uncached"), and a read-only install never caches it. setuptools'
own ``compile`` option writes timestamp-based .pyc files, which stop matching as soon as an
installer writes the sources with new times (pip does), and it is off under
PYTHONDONTWRITEBYTECODE. These are hash-based (PEP 552, checked): valid wherever the source
is unchanged, reproducible, and skipped by other Python versions, which compile as before.
pip compiles again at install time anyway; installers that do not (uv by default, an image
layer built with --no-compile) start from these.
"""

from __future__ import annotations

import os
import py_compile

from setuptools.command.build_py import build_py


class BuildPyWithBytecode(build_py):
    def byte_compile(self, files: list[str]) -> None:
        for path in files:
            if path.endswith(".py"):
                py_compile.compile(
                    path,
                    dfile=os.path.relpath(path, self.build_lib),  # no build directory in tracebacks
                    doraise=True,
                    invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH,
                )
