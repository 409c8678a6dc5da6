"""Fixture builders for the Keras/TensorFlow tests: a protobuf wire writer for SavedModels,
GraphDefs and keras_metadata.pb, TFLite models through the ``flatbuffers`` package's
builder (an encoder independent of the reader under test), and Keras configs with real
marshalled bytecode of the tests' own lambdas."""

from __future__ import annotations

import base64
import json
import marshal
from collections.abc import Iterable
from typing import Any

# --- protobuf -------------------------------------------------------------------------


def varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def f_varint(number: int, value: int) -> bytes:
    return varint(number << 3) + varint(value)


def f_bytes(number: int, payload: bytes | str) -> bytes:
    if isinstance(payload, str):
        payload = payload.encode()
    return varint((number << 3) | 2) + varint(len(payload)) + payload


def attr_s(key: str, value: str) -> bytes:
    """A NodeDef attr map entry with AttrValue.s."""
    return f_bytes(5, f_bytes(1, key) + f_bytes(2, f_bytes(2, value)))


def attr_list_s(key: str, values: Iterable[str]) -> bytes:
    lst = b"".join(f_bytes(2, v) for v in values)
    return f_bytes(5, f_bytes(1, key) + f_bytes(2, f_bytes(1, lst)))


def attr_string_tensor(key: str, values: Iterable[str]) -> bytes:
    tensor = f_varint(1, 7) + b"".join(f_bytes(8, v) for v in values)
    return f_bytes(5, f_bytes(1, key) + f_bytes(2, f_bytes(8, tensor)))


def node(name: str, op: str, inputs: Iterable[str] = (), attrs: bytes = b"", device: str = "") -> bytes:
    body = f_bytes(1, name) + f_bytes(2, op) + b"".join(f_bytes(3, i) for i in inputs)
    if device:
        body += f_bytes(4, device)
    return body + attrs


def function(name: str, nodes: Iterable[bytes]) -> bytes:
    signature = f_bytes(1, name)
    return f_bytes(1, signature) + b"".join(f_bytes(3, n) for n in nodes)


def graph_def(nodes: Iterable[bytes] = (), functions: Iterable[bytes] = ()) -> bytes:
    body = b"".join(f_bytes(1, n) for n in nodes)
    lib = b"".join(f_bytes(1, f) for f in functions)
    if lib:
        body += f_bytes(2, lib)
    return body + f_bytes(4, f_varint(1, 1987))  # versions { producer }


def meta_graph(
    graph: bytes | None = None,
    tags: Iterable[str] = ("serve",),
    tf_version: str = "2.21.0",
    stripped_ops: Iterable[str] = (),
    assets: Iterable[str] = (),
    user_objects: Iterable[tuple[str, str]] = (),
) -> bytes:
    info = b"".join(f_bytes(4, t) for t in tags) + f_bytes(5, tf_version)
    ops = b"".join(f_bytes(1, f_bytes(1, o)) for o in stripped_ops)
    if ops:
        info += f_bytes(2, ops)
    body = f_bytes(1, info)
    if graph is not None:
        body += f_bytes(2, graph)
    for a in assets:
        body += f_bytes(6, f_bytes(2, a))
    objects = b"".join(
        f_bytes(1, f_bytes(4, f_bytes(1, ident) + f_bytes(3, meta))) for ident, meta in user_objects
    )
    if objects:
        body += f_bytes(7, objects)
    return body


def saved_model(*metas: bytes, schema: int | None = 1) -> bytes:
    head = f_varint(1, schema) if schema is not None else b""
    return head + b"".join(f_bytes(2, m) for m in metas)


def keras_metadata_pb(objects: Iterable[tuple[str, str, str]]) -> bytes:
    """SavedMetadata: (node_path, identifier, metadata json)."""
    return b"".join(
        f_bytes(1, f_varint(2, i) + f_bytes(3, path) + f_bytes(4, ident) + f_bytes(5, meta))
        for i, (path, ident, meta) in enumerate(objects)
    )


# --- Keras configs ----------------------------------------------------------------------


def lambda_b64(fn: Any) -> str:
    return base64.b64encode(marshal.dumps(fn.__code__)).decode("ascii")


def keras2_lambda_layer(fn: Any, name: str = "lambda") -> dict[str, Any]:
    return {
        "class_name": "Lambda",
        "config": {
            "name": name,
            "trainable": True,
            "function": [lambda_b64(fn), None, None],
            "function_type": "lambda",
            "module": "__main__",
            "output_shape": None,
            "output_shape_type": "raw",
            "arguments": {},
        },
        "name": name,
        "inbound_nodes": [[["input_1", 0, 0, {}]]],
    }


def keras3_lambda_layer(fn: Any, name: str = "lambda") -> dict[str, Any]:
    return {
        "module": "keras.layers",
        "class_name": "Lambda",
        "config": {
            "name": name,
            "trainable": True,
            "dtype": {
                "module": "keras",
                "class_name": "DTypePolicy",
                "config": {"name": "float32"},
                "registered_name": None,
            },
            "function": {
                "class_name": "__lambda__",
                "config": {"code": lambda_b64(fn), "defaults": None, "closure": None},
            },
            "arguments": {},
        },
        "registered_name": None,
        "build_config": {"input_shape": [None, 4]},
    }


def keras3_dense(name: str = "dense", activation: Any = "relu") -> dict[str, Any]:
    return {
        "module": "keras.layers",
        "class_name": "Dense",
        "config": {
            "name": name,
            "units": 4,
            "activation": activation,
            "kernel_initializer": {
                "module": "keras.initializers",
                "class_name": "GlorotUniform",
                "config": {"seed": None},
                "registered_name": None,
            },
            "bias_initializer": {
                "module": "keras.initializers",
                "class_name": "Zeros",
                "config": {},
                "registered_name": None,
            },
        },
        "registered_name": None,
        "build_config": {"input_shape": [None, 4]},
    }


def keras3_model(layers: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "module": "keras",
        "class_name": "Sequential",
        "config": {
            "name": "sequential",
            "trainable": True,
            "dtype": {
                "module": "keras",
                "class_name": "DTypePolicy",
                "config": {"name": "float32"},
                "registered_name": None,
            },
            "layers": [
                {
                    "module": "keras.layers",
                    "class_name": "InputLayer",
                    "config": {"batch_shape": [None, 4], "name": "input_layer"},
                    "registered_name": None,
                }
            ]
            + layers,
        },
        "registered_name": None,
        "build_config": {"input_shape": [None, 4]},
        "compile_config": {
            "optimizer": {
                "module": "keras.optimizers",
                "class_name": "Adam",
                "config": {"learning_rate": 0.001},
                "registered_name": None,
            },
            "loss": "mse",
            "metrics": None,
        },
    }


def keras2_model(layers: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "class_name": "Functional",
        "config": {
            "name": "model",
            "layers": [
                {
                    "class_name": "InputLayer",
                    "config": {"batch_input_shape": [None, 4], "dtype": "float32", "name": "input_1"},
                    "name": "input_1",
                    "inbound_nodes": [],
                }
            ]
            + layers,
            "input_layers": [["input_1", 0, 0]],
            "output_layers": [[layers[-1]["config"]["name"] if layers else "input_1", 0, 0]],
        },
        "keras_version": "2.15.0",
        "backend": "tensorflow",
    }


def keras2_dense(name: str = "dense") -> dict[str, Any]:
    return {
        "class_name": "Dense",
        "config": {
            "name": name,
            "units": 4,
            "activation": "relu",
            "kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": None}},
            "bias_initializer": {"class_name": "Zeros", "config": {}},
            "kernel_regularizer": {"class_name": "L2", "config": {"l2": 0.01}},
        },
        "name": name,
        "inbound_nodes": [[["input_1", 0, 0, {}]]],
    }


def dumps(config: Any) -> bytes:
    return json.dumps(config).encode()


# --- TFLite -----------------------------------------------------------------------------


def tflite_model(
    opcodes: list[tuple[int, str | None]],
    operators: list[tuple[int, bytes | None]],
    buffers: list[tuple[int, int]] = (),  # type: ignore[assignment]
    version: int = 3,
) -> bytes:
    """A TFLite model: ``opcodes`` (builtin code, custom code), one subgraph whose
    ``operators`` are (opcode index, custom options), ``buffers`` (offset, size)."""
    import flatbuffers

    b = flatbuffers.Builder(1024)
    custom_strs = [b.CreateString(c) if c is not None else None for _, c in opcodes]
    code_tables = []
    for (code, _), custom in zip(opcodes, custom_strs):
        b.StartObject(4)
        b.PrependInt8Slot(0, min(code, 127), 0)
        if custom is not None:
            b.PrependUOffsetTRelativeSlot(1, custom, 0)
        b.PrependInt32Slot(2, 1, 1)
        b.PrependInt32Slot(3, code, 0)
        code_tables.append(b.EndObject())
    op_tables = []
    for index, options in operators:
        opts = b.CreateByteVector(options) if options is not None else None
        b.StartObject(11)
        b.PrependUint32Slot(0, index, 0)
        if opts is not None:
            b.PrependUOffsetTRelativeSlot(5, opts, 0)
        op_tables.append(b.EndObject())
    ops_vec = _vector(b, op_tables)
    b.StartObject(5)
    b.PrependUOffsetTRelativeSlot(3, ops_vec, 0)
    subgraph = b.EndObject()
    buffer_tables = []
    for offset, size in buffers:
        b.StartObject(3)
        b.PrependUint64Slot(1, offset, 0)
        b.PrependUint64Slot(2, size, 0)
        buffer_tables.append(b.EndObject())
    codes_vec = _vector(b, code_tables)
    subgraphs_vec = _vector(b, [subgraph])
    buffers_vec = _vector(b, buffer_tables)
    b.StartObject(8)
    b.PrependUint32Slot(0, version, 0)
    b.PrependUOffsetTRelativeSlot(1, codes_vec, 0)
    b.PrependUOffsetTRelativeSlot(2, subgraphs_vec, 0)
    b.PrependUOffsetTRelativeSlot(4, buffers_vec, 0)
    model = b.EndObject()
    b.Finish(model, file_identifier=b"TFL3")
    return bytes(b.Output())


def _vector(b: Any, offsets: list[int]) -> int:
    b.StartVector(4, len(offsets), 4)
    for off in reversed(offsets):
        b.PrependUOffsetTRelative(off)
    return b.EndVector()


def flex_options(op: str, node_def: bytes) -> bytes:
    """Custom options of a Flex op: a FlexBuffer vector [op name, NodeDef bytes]."""
    from flatbuffers import flexbuffers

    fbb = flexbuffers.Builder()
    with fbb.Vector():
        fbb.String(op)
        if node_def.isascii():
            fbb.String(node_def.decode("ascii"))  # what TensorFlow's converter writes
        else:
            fbb.Blob(node_def)
    return bytes(fbb.Finish())
