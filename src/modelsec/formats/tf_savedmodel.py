"""TensorFlow protobufs (``saved_model.pb``, frozen ``GraphDef`` files, ``keras_metadata.pb``)
and the SavedModel directory layout.

The protos are read from the wire (:mod:`modelsec.tensorflow.graph`); every node of the
graph *and* of every library function is checked: ops that run Python, touch files or the
network, paths baked into the graph that leave the model, and ops outside TensorFlow's
official registry. Keras metadata inside the object graph goes through the Keras config
walker. The directory analyser checks what sits beside ``saved_model.pb``: variables,
assets, a text-format ``saved_model.pbtxt``.
"""

from __future__ import annotations

import re
from pathlib import Path

from modelsec.bytesource import ByteSource, FileSource
from modelsec.context import ScanContext
from modelsec.findings import Severity, threat
from modelsec.formats.base import DirectoryAnalyzer, FormatCategory, FormatScanner, Reader, filename_of

TF_PYFUNC = threat(
    "MS-TF-001",
    "RuntimeCodeExecution",
    Severity.CRITICAL,
    "TensorFlow op runs a Python function (PyFunc / EagerPyFunc)",
    "Do not serve this model; rewrite the Python function as TensorFlow ops.",
    "PyFunc-family ops call back into the Python interpreter of the serving process, with "
    "whatever function the process has registered under the op's token.",
)
TF_FILE_READ = threat(
    "MS-TF-002",
    "SuspiciousComponents",
    Severity.HIGH,
    "TensorFlow op reads files",
    "Remove file-reading ops from the served graph; feed data through its inputs.",
    "Ops such as ReadFile, MatchingFiles, ImmutableConst or dataset readers read (or list) "
    "paths on the serving host, which can leak local files through the model's outputs.",
)
TF_FILE_WRITE = threat(
    "MS-TF-003",
    "SuspiciousComponents",
    Severity.HIGH,
    "TensorFlow op writes files",
    "Remove file-writing ops from the served graph.",
    "WriteFile, TFRecord writers, summary writers or PrintV2 to a file:// stream write on "
    "the serving host whenever the graph runs.",
)
TF_NETWORK = threat(
    "MS-TF-004",
    "SuspiciousComponents",
    Severity.HIGH,
    "TensorFlow op opens network connections",
    "Remove RPC and data-service ops from the served graph.",
)
TF_DEBUG = threat(
    "MS-TF-005",
    "SuspiciousComponents",
    Severity.MEDIUM,
    "TensorFlow debugger op in the graph",
    "Export the model without tfdbg instrumentation.",
    "Debug ops can dump tensors to files or gRPC endpoints named in their attributes.",
)
TF_PATH = threat(
    "MS-TF-006",
    "SuspiciousComponents",
    Severity.HIGH,
    "Path in the graph points outside the model",
    "Re-export the model so that checkpoint, asset and vocabulary paths are relative to it.",
    "A path constant or asset file name that is absolute, climbs out with '..' or is a URL "
    "makes the loader read or write outside the model directory.",
)
TF_UNKNOWN_OP = threat(
    "MS-TF-010",
    "KnownFrameworkOperators",
    Severity.HIGH,
    "Op not in TensorFlow's official op registry",
    "Only serve graphs built from official ops, or review the custom op library it needs.",
    "An op TensorFlow does not define needs a custom kernel library (native code) loaded "
    "into the serving process.",
)
TF_ASSET_CODE = threat(
    "MS-TF-020",
    "SuspiciousComponents",
    Severity.HIGH,
    "Script or executable shipped inside a SavedModel",
    "Remove it: a SavedModel needs its graph, variables and data assets only.",
)
TF_VARIABLES = threat(
    "MS-TF-021",
    "SuspiciousComponents",
    Severity.MEDIUM,
    "SavedModel variables incomplete or malformed",
    "Re-export the model; the checkpoint TensorFlow would restore is not what it should be.",
)
TF_NOT_SAVEDMODEL = threat(
    "MS-TF-022",
    "SuspiciousComponents",
    Severity.MEDIUM,
    "saved_model.pb is not a SavedModel protobuf",
    "Re-export the model; its main file could not be recognised, so it was not inspected.",
)

FORMAT_BY_KIND = {
    "saved_model": ("tf-savedmodel", FormatCategory.MODEL),
    "graph_def": ("tf-graphdef", FormatCategory.MODEL),
    "keras_metadata": ("tf-keras-metadata", FormatCategory.AUXILIARY),
}
KNOWN_NAMES = {"saved_model.pb": "saved_model", "keras_metadata.pb": "keras_metadata"}
FIRST_TAGS = {0x08, 0x0A, 0x12, 0x18, 0x1A, 0x22, 0x2A}  # fields 1-5 of the TF protos


class TFProtoScanner(FormatScanner):
    name = "tf-savedmodel"
    category = FormatCategory.MODEL
    priority = 45  # after formats with magic numbers: protobufs have none
    readers = (Reader("tf.saved_model.load, tf.keras", "a protobuf from offset 0"),)

    def _kind(self, source: ByteSource, filename: str) -> str | None:
        if source.size == 0:
            return None
        # The proto reader, only for files whose first byte is a tag of these protos.
        from modelsec.tensorflow import graph as tfgraph

        root = tfgraph.open_message(source)
        kind = tfgraph.detect_kind(root)
        if kind is None and filename in KNOWN_NAMES and root.source.read_at(0, 1)[0] in FIRST_TAGS:
            # The name breaks the tie for a file that starts like the proto but does not
            # parse: claim it so that the damage is reported rather than ignored.
            kind = KNOWN_NAMES[filename]
        return kind

    def detect(self, head: bytes, source: ByteSource, filename: str) -> bool:
        if not head or head[0] not in FIRST_TAGS:
            return False
        return self._kind(source, filename) is not None

    def scan(self, source: ByteSource, ctx: ScanContext) -> None:
        from modelsec.formats.tf_savedmodel_scan import scan_tf_proto  # TensorFlow files only

        scan_tf_proto(source, ctx, self._kind(source, filename_of(ctx.path)) or "saved_model")


# --- the directory layout ----------------------------------------------------------------

SCRIPT_SUFFIXES = frozenset(
    {
        ".py",
        ".pyc",
        ".pyo",
        ".pyw",
        ".sh",
        ".bash",
        ".zsh",
        ".bat",
        ".cmd",
        ".ps1",
        ".js",
        ".rb",
        ".pl",
        ".so",
        ".dylib",
        ".dll",
        ".exe",
        ".jar",
        ".pkl",
        ".pickle",
    }
)
EXECUTABLE_MAGIC = (
    b"\x7fELF",
    b"MZ",
    b"\xfe\xed\xfa\xce",
    b"\xfe\xed\xfa\xcf",
    b"\xce\xfa\xed\xfe",
    b"\xcf\xfa\xed\xfe",
    b"\xca\xfe\xba\xbe",
    b"#!",
)
SSTABLE_MAGIC = (0xDB4775248B80FB57).to_bytes(8, "little")
SHARD = re.compile(r"^variables\.data-(\d{5})-of-(\d{5})$")
OP_IN_PBTXT = re.compile(rb'(?m)^\s*op:\s*"([^"\\]{1,255})"')
MAX_PBTXT = 256 << 20


class SavedModelLayout(DirectoryAnalyzer):
    name = "tf-savedmodel"

    def analyze(self, root: Path, files: list[Path], ctx: ScanContext) -> None:
        dirs = sorted({f.parent for f in files if f.name in ("saved_model.pb", "saved_model.pbtxt")})
        if not dirs:
            return
        ctx.set_format("tf-savedmodel", FormatCategory.MODEL)
        for model_dir in dirs:
            inside = [f for f in files if f.is_relative_to(model_dir)]
            self._check_main_file(model_dir, ctx)
            self._check_variables(model_dir, inside, ctx)
            self._check_code(model_dir, inside, ctx)

    def _check_main_file(self, model_dir: Path, ctx: ScanContext) -> None:
        pb, pbtxt = model_dir / "saved_model.pb", model_dir / "saved_model.pbtxt"
        if pb.is_file():
            with FileSource(pb) as source:
                head = source.read_at(0, 64 * 1024)
                if not SCANNER.detect(head, source, pb.name):
                    ctx.report(
                        TF_NOT_SAVEDMODEL.at(
                            str(pb),
                            "saved_model.pb does not parse as a SavedModel; its graph was not inspected",
                        )
                    )
                    ctx.incomplete("saved_model.pb could not be inspected", path=str(pb))
        elif pbtxt.is_file():
            self._check_pbtxt(pbtxt, ctx)

    def _check_pbtxt(self, path: Path, ctx: ScanContext) -> None:
        """Text-format SavedModels are rare; their ``op: "..."`` lines are checked without a
        full text-format parser (attributes are not inspected: said as an incomplete)."""
        with FileSource(path) as source:
            if source.size > MAX_PBTXT:
                ctx.incomplete(
                    f"saved_model.pbtxt larger than {MAX_PBTXT} bytes; not inspected", path=str(path)
                )
                return
            text = source.read_at(0, source.size)
        from modelsec.formats.tf_savedmodel_scan import report_pbtxt

        report_pbtxt(text, str(path), ctx)
        ctx.incomplete(
            "saved_model.pbtxt is text format: op names were checked, attributes were not",
            path=str(path),
        )

    def _check_variables(self, model_dir: Path, inside: list[Path], ctx: ScanContext) -> None:
        var_dir = model_dir / "variables"
        found = [f for f in inside if f.parent == var_dir]
        index = var_dir / "variables.index"
        shards: dict[int, int] = {}
        for f in found:
            match = SHARD.match(f.name)
            if match:
                shards[int(match.group(1))] = int(match.group(2))
        if shards and not index.is_file():
            ctx.report(TF_VARIABLES.at(str(var_dir), "variable data shards without variables.index"))
        if index.is_file():
            with FileSource(index) as source:
                footer = source.read_at(max(0, source.size - 8), 8)
            if footer != SSTABLE_MAGIC:
                ctx.report(
                    TF_VARIABLES.at(
                        str(index), "variables.index is not a TensorFlow checkpoint index (bad table magic)"
                    )
                )
            totals = set(shards.values())
            if not shards:
                ctx.report(TF_VARIABLES.at(str(var_dir), "variables.index without any data shard"))
            elif len(totals) != 1:
                ctx.report(
                    TF_VARIABLES.at(str(var_dir), f"data shards disagree on their count: {sorted(totals)}")
                )
            else:
                total = totals.pop()
                missing = sorted(set(range(total)) - set(shards))
                extra = sorted(i for i in shards if i >= total)
                if missing or extra:
                    ctx.report(
                        TF_VARIABLES.at(
                            str(var_dir),
                            f"data shards of {total}: missing {missing[:10]}, out of range {extra[:10]}",
                        )
                    )

    def _check_code(self, model_dir: Path, inside: list[Path], ctx: ScanContext) -> None:
        """Scripts and executables anywhere under the SavedModel (assets/, assets.extra/,
        variables/): TensorFlow never needs them, an attacker's loader script might."""
        for f in inside:
            reason = ""
            if f.suffix.lower() in SCRIPT_SUFFIXES:
                reason = f"a {f.suffix} file"
            else:
                try:
                    with FileSource(f) as source:
                        head = source.read_at(0, 4)
                except OSError:
                    continue
                if any(head.startswith(m) for m in EXECUTABLE_MAGIC):
                    reason = "an executable or script (by its first bytes)"
            if reason:
                rel = f.relative_to(model_dir)
                ctx.report(TF_ASSET_CODE.at(str(f), f"{rel} in the SavedModel is {reason}", subject=str(rel)))


SCANNER = TFProtoScanner()
ANALYZER = SavedModelLayout()
