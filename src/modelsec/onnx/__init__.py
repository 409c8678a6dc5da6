"""ONNX support: a bounded reader for ``ModelProto`` (no ``onnx`` import at scan time), the
official operator-set table, and the model checks the ``onnx`` format scanner runs."""
