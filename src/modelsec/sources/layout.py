"""Multi-file checks on remote models: lay the model out locally, run the directory
analyzers, map their paths back.

The engine's :class:`~modelsec.formats.base.DirectoryAnalyzer` checks (a Hugging Face
snapshot's ``auto_map`` and ``*.py`` files, shard indexes naming missing files, a
SavedModel's layout) work on a local directory. For a remote model we build one in the
scan's temporary area: files up to ``hashSmallFilesBytes`` (configs, code, indexes: the
files those checks read) and the few large files the checks parse (``saved_model.pb``...)
get their real bytes, read through the same cached range reads; every other file is a
sparse placeholder of the right size, so existence and size checks see the real layout
without any weight being downloaded. Findings and incompletes are then re-pointed from the
local paths to the model's display paths.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path, PurePosixPath

from modelsec.engine import Engine, ScanReport
from modelsec.findings import Incomplete
from modelsec.sources.errors import LAYOUT, SourceFailure
from modelsec.sources.remote_file import RemoteFile, TempArea

# Large files that layout checks parse (the others only need to exist).
PARSED_WHEN_LARGE = frozenset(
    {"saved_model.pb", "saved_model.pbtxt", "keras_metadata.pb", "fingerprint.pb", "variables.index"}
)
# Small files the checks read even when the source knows their digest (configs, code,
# indexes). Other small files with a source digest (Hub LFS weights) stay placeholders, so
# laying a model out never downloads weights.
READ_SUFFIXES = (".json", ".py", ".pyw", ".txt", ".yaml", ".yml", ".jinja", ".md", ".pbtxt", ".cfg", ".toml")


def safe_relative(path: str) -> PurePosixPath | None:
    """``path`` as a relative path that stays inside its root, else None (an S3 key may
    hold ``..`` or empty segments; those cannot be laid out)."""
    if not path or path.startswith("/") or "\\" in path or "\0" in path:
        return None
    parts = path.split("/")
    if any(p in ("", ".", "..") for p in parts):
        return None
    return PurePosixPath(*parts)


class LocalLayout:
    def __init__(self, temp: TempArea, target: str, content_bound: int) -> None:
        self._temp = temp
        self._target = target
        self._bound = content_bound
        self._root: Path | None = None
        self.files: list[Path] = []
        self.incompletes: list[Incomplete] = []

    @property
    def root(self) -> Path:
        if self._root is None:
            self._root = Path(self._temp.subdir("layout"))
        return self._root

    def add(self, rel_path: str, remote: RemoteFile, display: str, source_digest: bool = False) -> None:
        """Lay out one file. ``source_digest``: the source knows its SHA-256 (a Hub LFS
        file), so unless it is a config/code file it needs no bytes here."""
        rel = safe_relative(rel_path)
        if rel is None:
            self.incompletes.append(
                Incomplete(
                    display,
                    f"path {rel_path!r} cannot be laid out as a file inside the model "
                    "(absolute, '..' or empty segments); the multi-file checks did not see it",
                    LAYOUT,
                )
            )
            return
        local = self.root / rel
        try:
            local.parent.mkdir(parents=True, exist_ok=True)
            if local.exists():  # "a" and "a/b" both as keys: the second cannot be laid out
                raise FileExistsError(str(rel))
            with open(local, "wb") as out:
                small = remote.size <= self._bound and (
                    not source_digest or rel.name.lower().endswith(READ_SUFFIXES)
                )
                if remote.failure is None and (small or rel.name in PARSED_WHEN_LARGE):
                    if remote.size > self._bound:
                        self._temp.charge(remote.size, display)
                    offset = 0
                    while offset < remote.size:
                        chunk = remote.read_at(offset, min(1 << 20, remote.size - offset))
                        out.write(chunk)
                        offset += len(chunk)
                else:
                    out.truncate(remote.size)  # sparse: no bytes on disk
        except SourceFailure:
            local.unlink(missing_ok=True)  # the failure is reported on the file itself
            return
        except (OSError, ValueError) as exc:
            self.incompletes.append(
                Incomplete(
                    display,
                    f"cannot lay out {rel_path!r} for the multi-file checks: {type(exc).__name__}",
                    LAYOUT,
                )
            )
            return
        self.files.append(local)

    def analyze(self, engine: Engine, report: ScanReport) -> None:
        report.incompletes.extend(self.incompletes)
        if not self.files:
            return
        before_findings = len(report.findings)
        before_incompletes = len(report.incompletes)
        before_formats = len(report.layout_formats)
        engine.analyze_directory(self.root, sorted(self.files), report)
        root = str(self.root)

        def remap(text: str) -> str:
            return text.replace(root, self._target) if text else text

        report.findings[before_findings:] = [
            dataclasses.replace(
                f,
                file=remap(f.file),
                message=remap(f.message),
                subject=remap(f.subject) if f.subject else f.subject,
            )
            for f in report.findings[before_findings:]
        ]
        report.incompletes[before_incompletes:] = [
            dataclasses.replace(i, file=remap(i.file), reason=remap(i.reason))
            for i in report.incompletes[before_incompletes:]
        ]
        report.layout_formats[before_formats:] = [
            dataclasses.replace(r, path=remap(r.path)) for r in report.layout_formats[before_formats:]
        ]
