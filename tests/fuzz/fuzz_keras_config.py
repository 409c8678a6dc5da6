"""Keras model configs (config.json of .keras archives, Keras 2 JSON): the JSON and the
layer walk (Lambda code, custom objects, TensorFlow functions)."""

from __future__ import annotations

import json
from collections.abc import Iterator

from harness import Target, builder_seeds, corpus_files, import_test_helpers
from json_mutator import mutate_json
from scanning import scan_as


def _seeds() -> Iterator[bytes]:
    import_test_helpers("keras_tf")
    from kt_builders import dumps, keras2_dense, keras2_model, keras3_dense, keras3_lambda_layer, keras3_model

    def lam(x):  # type: ignore[no-untyped-def]  # only marshalled into the seed, never run
        return x + 1

    yield from builder_seeds(
        lambda: dumps(keras3_model([keras3_dense("d1"), keras3_dense("d2", activation="softmax")])),
        lambda: dumps(keras2_model([keras2_dense("d")])),
        lambda: dumps(keras3_model([keras3_lambda_layer(lam)])),
        lambda: json.dumps(
            {
                "class_name": "Sequential",
                "config": {
                    "layers": [
                        {
                            "class_name": "Dense",
                            "config": {
                                "activation": {
                                    "module": "os",
                                    "class_name": "function",
                                    "config": "system",
                                    "registered_name": None,
                                }
                            },
                        }
                    ]
                },
            }
        ).encode(),
    )
    yield from corpus_files(lambda path, head: path.suffix == ".json" and b"class_name" in head, 64 << 10)


TARGET = Target(
    name="keras-config",
    run=scan_as("config.json"),
    seeds=_seeds,
    mutator=mutate_json,
    max_len=16 << 10,
    tokens=(
        b'"class_name"',
        b'"config"',
        b'"module"',
        b'"registered_name"',
        b'"Lambda"',
        b'"function"',
        b'"layers"',
        b'"__lambda__"',
        b'"TFOpLambda"',
        b'"tf.io.read_file"',
        b"keras.layers",
    ),
)
