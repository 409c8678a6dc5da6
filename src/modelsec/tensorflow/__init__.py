"""TensorFlow readers: protobuf wire format (SavedModel, GraphDef), TFLite FlatBuffers,
and the op registry they are checked against. Bytes only; TensorFlow is never imported."""
