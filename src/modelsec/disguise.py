"""Model files whose content is not what their name or place says: disguised or corrupt.

A file named ``model.safetensors``, ``pytorch_model-00001-of-00002.bin`` or ``data.pkl`` is
going to be handed to a loader. If no format recognises its content, or the one its
content starts like rejects it, the scanner cannot say what that loader will do with it,
and "unknown" must not pass as "clean": it is a blocking finding, naming the file, what its
name claims and what the content is. Data files that are not models (READMEs, licences,
tokenizer vocabularies, images, JSON configs, text) claim nothing and stay clean.

Some names are used both for formats with a signature and for raw, headerless data:
``.bin`` (PyTorch pickles and zips, but also OpenVINO weights, ggml, fastText, raw
tensors) and ``.model`` (sentencepiece, XGBoost, gensim). Unrecognised content under such
a name is accepted as raw data unless it carries a signature of its own (a pickle ``PROTO``
header, an executable, a damaged archive or array header): then it is disguised too.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

from modelsec.bytesource import BytesSource
from modelsec.context import ScanContext
from modelsec.findings import Severity, threat
from modelsec.formats.base import filename_of
from modelsec.safe_text import printable

DISGUISED = threat(
    "MS-FMT-002",
    "SuspiciousComponents",
    Severity.MEDIUM,
    "Disguised or corrupt model file",
    "Replace the file with one its framework wrote (re-download or re-export it); remove "
    "it if it is not part of the model.",
    "The file's name or place says a loader will read it as a model, but no format "
    "recognises its content, or the content is a damaged instance of a format: what the "
    "loader does with it cannot be checked, so it is not passed as clean.",
)


@dataclass(frozen=True)
class NameClaim:
    """What a file's name (or place) says it is."""

    says: str  # "a pickle (.pkl)"
    raw_data: bool = False  # loaders of such names also read headerless raw data


_PICKLE = NameClaim("a pickle")
_TORCH = NameClaim("a PyTorch checkpoint (torch.load: zip archive, tar or pickle)")
_SUFFIX_CLAIMS: dict[str, NameClaim] = {
    ".pkl": _PICKLE,
    ".pickle": _PICKLE,
    ".dill": _PICKLE,
    ".joblib": NameClaim("a joblib file (pickle, possibly compressed)"),
    ".pt": _TORCH,
    ".pth": _TORCH,
    ".ckpt": _TORCH,
    ".bin": NameClaim("model weights (PyTorch pickle or zip, or raw tensors)", raw_data=True),
    ".model": NameClaim("a model (sentencepiece, XGBoost, gensim pickle ...)", raw_data=True),
    ".npy": NameClaim("a NumPy array"),
    ".npz": NameClaim("a NumPy archive (zip)"),
    ".h5": NameClaim("an HDF5 / Keras model"),
    ".hdf5": NameClaim("an HDF5 / Keras model"),
    ".keras": NameClaim("a Keras model (zip archive or HDF5)"),
    ".onnx": NameClaim("an ONNX model"),
    ".tflite": NameClaim("a TFLite model"),
    ".safetensors": NameClaim("a safetensors file"),
    ".gguf": NameClaim("a GGUF model"),
    ".pb": NameClaim("a TensorFlow protobuf (SavedModel or GraphDef)"),
    ".msgpack": NameClaim("Flax weights (msgpack)"),
    ".mar": NameClaim("a TorchServe model archive (zip)"),
}
# Hugging Face weight files that only torch.load reads, whatever other runtimes put in a .bin
_HF_TORCH_BIN = re.compile(
    r"^(?:[\w.-]*_)?pytorch_model(?:[-.][\w.-]*)?\.bin$|^(?:adapter_model|training_args)\.bin$"
)


def name_claim(filename: str) -> NameClaim | None:
    """What ``filename`` (the last path component) says about the content, if anything."""
    lower = filename.lower()
    if _HF_TORCH_BIN.match(lower):
        return NameClaim("a PyTorch checkpoint (Hugging Face weight file, read by torch.load)")
    dot = lower.rfind(".")
    return _SUFFIX_CLAIMS.get(lower[dot:]) if dot > 0 else None


def place_claim(expected: str) -> NameClaim:
    return NameClaim(f"a loader reads it as {expected}")


@dataclass(frozen=True)
class Content:
    """What unrecognised content looks like."""

    what: str
    signature: bool  # it carries a format signature: a raw-data name does not explain it
    severity: Severity = Severity.MEDIUM


# Signatures that name what a file starts as, longest first where they share a prefix. Only
# those of 4 bytes or more count as a signature for raw-data names (shorter ones occur in
# random tensor bytes too often).
_MAGICS: tuple[tuple[bytes, str], ...] = (
    (b"\x89HDF\r\n\x1a\n", "an HDF5 file"),
    (b"\x93NUMPY", "a NumPy array"),
    (b"7z\xbc\xaf\x27\x1c", "a 7z archive"),
    (b"\xfd7zXZ\x00", "an xz stream"),
    (b"PK\x03\x04", "a zip archive"),
    (b"PK\x05\x06", "an empty zip archive"),
    (b"\x04\x22\x4d\x18", "an lz4 frame"),
    (b"GGUF", "a GGUF file"),
    (b"BZh", "a bz2 stream"),
    (b"\x1f\x8b", "a gzip stream"),
    (b"ZF", "a legacy joblib zfile"),
)
_EXECUTABLES: tuple[tuple[bytes, str], ...] = (
    (b"\x7fELF", "an ELF executable or shared library"),
    (b"\xcf\xfa\xed\xfe", "a Mach-O executable"),
    (b"\xce\xfa\xed\xfe", "a Mach-O executable"),
    (b"\xfe\xed\xfa\xcf", "a Mach-O executable"),
    (b"\xfe\xed\xfa\xce", "a Mach-O executable"),
    (b"\xca\xfe\xba\xbe", "a Mach-O universal binary or Java class"),
    (b"\0asm", "a WebAssembly module"),
)
_STRONG = 4


def describe(head: bytes, size: int) -> Content:
    """A short description of content no format claimed, from its first bytes."""
    if size == 0:
        return Content("empty", signature=True)
    for magic, what in _EXECUTABLES:
        if head.startswith(magic):
            return Content(what, signature=True, severity=Severity.HIGH)
    if _is_pe(head):
        return Content("a Windows (PE) executable", signature=True, severity=Severity.HIGH)
    broken = _broken_pickle(head)
    if broken is not None:
        return Content(broken, signature=True)
    for magic, what in _MAGICS:
        if head.startswith(magic):
            return Content(f"{what} that its readers reject", signature=len(magic) >= _STRONG)
        if 2 <= len(head) < len(magic) and magic.startswith(head):
            return Content(
                f"the first {len(head)} bytes of {what} (truncated)", signature=len(head) >= _STRONG
            )
    if head[4:8] == b"TFL3":
        return Content("a TFLite flatbuffer that its readers reject", signature=True)
    declared = _safetensors_length(head)
    if declared is not None:
        return Content(
            f"a safetensors-style header declaring {declared} bytes of JSON, which "
            "safetensors rejects (at most 100 MB, inside the file)",
            signature=True,
        )
    shown = " ".join(f"{b:02x}" for b in head[:8])
    return Content(f"unrecognised binary data (first bytes {shown})", signature=False)


def _is_pe(head: bytes) -> bool:
    if not head.startswith(b"MZ") or len(head) < 0x40:
        return False
    (pe,) = struct.unpack_from("<I", head, 0x3C)
    return head[pe : pe + 4] == b"PE\0\0"


def _broken_pickle(head: bytes) -> str | None:
    """A pickle that opens with PROTO 2..5 (what every protocol >= 2 writes) and breaks."""
    if len(head) < 2 or head[0] != 0x80 or not 2 <= head[1] <= 5:
        return None
    from modelsec.context import Limits
    from modelsec.pickle.scanner import probe  # the machine: only for such heads

    result = probe(BytesSource(head), Limits())
    if result.error is None:
        return None
    return (
        f"a pickle stream (protocol {head[1]}) that breaks at offset "
        f"{result.error.offset}: {result.error.reason}"
    )


def _safetensors_length(head: bytes) -> int | None:
    """The declared length of a header shaped like safetensors' (8-byte length, JSON)."""
    if len(head) < 10:
        return None
    body = head[8 : 8 + 64].lstrip(b" \t\r\n")
    if not body.startswith(b"{") or body[1:].lstrip(b" \t\r\n")[:1] not in (b'"', b"}"):
        return None
    return int.from_bytes(head[:8], "little")


def check(ctx: ScanContext, head: bytes, size: int, expected: str | None) -> None:
    """Report a disguised or corrupt model file: called for content no format recognised.
    ``expected`` is the format the file's place imposes (a PyTorch archive's pickle)."""
    filename = filename_of(ctx.path)
    claim = place_claim(expected) if expected else name_claim(filename)
    if claim is None:
        return
    content = describe(head, size)
    if claim.raw_data and not content.signature:
        return  # raw data is what such names also hold
    where = "its place in the archive" if expected else f"its name {filename!r}"
    ctx.report(
        DISGUISED.at(
            ctx.path,
            printable(
                f"{where} says {claim.says}, but its content is {content.what}; no "
                "format accepts it, so what a loader does with it cannot be checked"
            ),
            subject=claim.says,
            severity=content.severity,
        )
    )
