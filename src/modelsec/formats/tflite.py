"""TFLite FlatBuffers (``.tflite``): operator codes checked against the TFLite schema,
custom ops against a short list of ones TFLite ships, and Flex ops (TensorFlow ops run by
the select-TF-ops delegate) against TensorFlow's registry and the risky-op lists, using
the NodeDef each Flex operator carries rather than only its name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelsec.bytesource import ByteSource
from modelsec.findings import Severity, threat
from modelsec.formats.base import FormatCategory, FormatScanner, Reader

if TYPE_CHECKING:
    from modelsec.context import ScanContext

FILE_IDENTIFIER = b"TFL3"  # at offset 4 (modelsec.tensorflow.tflite.is_tflite checks the rest)

TFLITE_CUSTOM_OP = threat(
    "MS-TF-030",
    "KnownFrameworkOperators",
    Severity.HIGH,
    "TFLite custom op",
    "Use builtin TFLite ops, or review and allow the custom kernel the model needs.",
    "A custom op runs whatever kernel the interpreter registered under its name: native "
    "code outside TFLite's builtin set.",
)
TFLITE_UNKNOWN_BUILTIN = threat(
    "MS-TF-031",
    "KnownFrameworkOperators",
    Severity.MEDIUM,
    "TFLite builtin op code unknown to the TFLite schema",
    "Check the TFLite version the model needs; update modelsec's registry if it is newer.",
)
TFLITE_MALFORMED = threat(
    "MS-TF-032",
    "SuspiciousComponents",
    Severity.MEDIUM,
    "Malformed TFLite model",
    "Re-convert the model; TFLite's own converter never writes such offsets.",
)
TFLITE_FLEX_MISMATCH = threat(
    "MS-TF-033",
    "SuspiciousComponents",
    Severity.HIGH,
    "TFLite Flex op runs a different TensorFlow op than its name says",
    "Do not run this model: the delegate executes the embedded NodeDef, not the name.",
)

# Custom ops that TFLite itself implements (tensorflow/lite/kernels/custom_ops_register.h,
# the detection post-processing op, MediaPipe's common ops).
KNOWN_CUSTOM_OPS = frozenset(
    {
        "TFLite_Detection_PostProcess",
        "Mfcc",
        "AudioSpectrogram",
        "MaxPoolingWithArgmax2D",
        "MaxUnpooling2D",
        "Convolution2DTransposeBias",
        "RandomUniform",
        "RandomStandardNormal",
        "Multinomial",
        "Atan2",
        "Sign",
    }
)


class TFLiteScanner(FormatScanner):
    name = "tflite"
    category = FormatCategory.MODEL
    priority = 20
    readers = (Reader("TFLite interpreter", "flatbuffer root offset at 0, 'TFL3' at 4"),)

    def detect(self, head: bytes, source: ByteSource, filename: str) -> bool:
        if head[4:8] != FILE_IDENTIFIER:  # the FlatBuffer reader is imported past this check
            return False
        from modelsec.tensorflow.tflite import is_tflite

        return is_tflite(head) and int.from_bytes(head[0:4], "little") < source.size

    def scan(self, source: ByteSource, ctx: ScanContext) -> None:
        from modelsec.formats.tflite_scan import scan_tflite  # TFLite files only

        scan_tflite(source, ctx)


SCANNER = TFLiteScanner()
