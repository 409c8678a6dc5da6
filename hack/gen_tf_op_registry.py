#!/usr/bin/env python3
"""Generate the TensorFlow / TFLite / Keras name registries the scanners check against.

TensorFlow is never installed or imported: the script downloads the wheels with pip
(``--no-deps``), opens them as zip files and reads the generated Python op wrappers
(``gen_*_ops.py``), the TFLite schema and the Keras sources with :mod:`ast`. Re-run it when
moving to a newer TensorFlow/Keras and commit the three data files it writes:

* ``src/modelsec/tensorflow/tf_ops.txt``: ``OpName<TAB>gen module`` for every op that
  TensorFlow's generated wrappers register (the official op registry, hidden ops included).
* ``src/modelsec/tensorflow/tflite_builtin_ops.txt``: ``code<TAB>NAME`` of TFLite's
  ``BuiltinOperator`` enum.
* ``src/modelsec/keras/keras_classes.txt``: class names defined in Keras 3 and tf-keras,
  i.e. what a legacy (module-less) Keras config may name without custom code.

Usage: hack/gen_tf_op_registry.py [--wheels DIR]   (DIR holds the wheels; else pip downloads)
"""

from __future__ import annotations

import argparse
import ast
import glob
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

TF_VERSION = "2.21.0"
KERAS_VERSION = "3.15.1"
TF_KERAS_VERSION = "2.21.0"
ROOT = Path(__file__).resolve().parent.parent

# Generated wrappers that are not op definitions.
NOT_OP_MODULES = {"gen_html.py"}


def download(dest: str) -> None:
    for spec in (
        f"tensorflow-cpu=={TF_VERSION}",
        f"keras=={KERAS_VERSION}",
        f"tf-keras=={TF_KERAS_VERSION}",
    ):
        subprocess.run(
            [sys.executable, "-m", "pip", "download", spec, "--no-deps", "-d", dest, "-q"],
            check=True,
        )


def first_str_arg(call: ast.Call) -> str | None:
    if call.args and isinstance(call.args[0], ast.Constant):
        value = call.args[0].value
        if isinstance(value, bytes):
            value = value.decode("ascii", "replace")
        if isinstance(value, str):
            return value
    return None


def ops_in_module(source: str) -> set[str]:
    """Op names passed to ``_apply_op_helper("Op", ...)`` / ``_execute.execute(b"Op", ...)``."""
    ops: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        if node.func.attr in ("_apply_op_helper", "execute"):
            name = first_str_arg(node)
            if name and name.replace("_", "").replace(">", "").isalnum():
                ops.add(name)
    return ops


def tf_ops(wheel: str) -> dict[str, str]:
    found: dict[str, str] = {}
    with zipfile.ZipFile(wheel) as zf:
        for name in sorted(zf.namelist()):
            base = name.rsplit("/", 1)[-1]
            if not (base.startswith("gen_") and base.endswith(".py")) or base in NOT_OP_MODULES:
                continue
            module = name[: -len(".py")].replace("/", ".")
            for op in ops_in_module(zf.read(name).decode("utf-8")):
                found.setdefault(op, module)
    return found


def tflite_builtins(wheel: str) -> dict[int, str]:
    with zipfile.ZipFile(wheel) as zf:
        source = zf.read("tensorflow/lite/python/schema_py_generated.py").decode("utf-8")
    for node in ast.parse(source).body:
        if isinstance(node, ast.ClassDef) and node.name == "BuiltinOperator":
            out: dict[int, str] = {}
            for stmt in node.body:
                if (
                    isinstance(stmt, ast.Assign)
                    and isinstance(stmt.targets[0], ast.Name)
                    and isinstance(stmt.value, ast.Constant)
                    and isinstance(stmt.value.value, int)
                ):
                    out[stmt.value.value] = stmt.targets[0].id
            return out
    raise SystemExit("BuiltinOperator not found in the TFLite schema")


def keras_classes(wheels: list[str]) -> set[str]:
    names: set[str] = set()
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as zf:
            for name in zf.namelist():
                if not name.endswith(".py") or "/src/" not in name:
                    continue
                if name.endswith("_test.py") or "/benchmarks/" in name or "/testing" in name:
                    continue
                try:
                    tree = ast.parse(zf.read(name).decode("utf-8"))
                except SyntaxError:
                    continue
                for node in ast.walk(tree):
                    if isinstance(node, ast.ClassDef):
                        names.add(node.name)
                    # Aliases such as ``Convolution2D = Conv2D`` name the same class.
                    elif (
                        isinstance(node, ast.Assign)
                        and len(node.targets) == 1
                        and isinstance(node.targets[0], ast.Name)
                        and isinstance(node.value, ast.Name)
                        and node.targets[0].id[:1].isupper()
                        and node.value.id[:1].isupper()
                    ):
                        names.add(node.targets[0].id)
    return names


def write(path: Path, header: list[str], lines: list[str]) -> None:
    path.write_text("".join(f"# {h}\n" for h in header) + "".join(f"{line}\n" for line in lines))
    print(f"wrote {path.relative_to(ROOT)}: {len(lines)} entries")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheels", help="directory with the wheels (default: pip download)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        wheel_dir = args.wheels or tmp
        if not args.wheels:
            download(wheel_dir)

        def one(pattern: str) -> str:
            matches = sorted(glob.glob(os.path.join(wheel_dir, pattern)))
            if not matches:
                raise SystemExit(f"no wheel matching {pattern} in {wheel_dir}")
            return matches[-1]

        tf_wheel = one(f"tensorflow_cpu-{TF_VERSION}-*.whl")
        keras_wheels = [one(f"keras-{KERAS_VERSION}-*.whl"), one(f"tf_keras-{TF_KERAS_VERSION}-*.whl")]
        generated = f"generated by hack/gen_tf_op_registry.py from {os.path.basename(tf_wheel)}"

        ops = tf_ops(tf_wheel)
        write(
            ROOT / "src/modelsec/tensorflow/tf_ops.txt",
            [generated, "op name <TAB> generated wrapper module that defines it"],
            [f"{op}\t{module}" for op, module in sorted(ops.items())],
        )
        builtins = tflite_builtins(tf_wheel)
        write(
            ROOT / "src/modelsec/tensorflow/tflite_builtin_ops.txt",
            [generated, "TFLite BuiltinOperator code <TAB> name"],
            [f"{code}\t{name}" for code, name in sorted(builtins.items())],
        )
        classes = keras_classes(keras_wheels)
        write(
            ROOT / "src/modelsec/keras/keras_classes.txt",
            [
                "generated by hack/gen_tf_op_registry.py from "
                + ", ".join(os.path.basename(w) for w in keras_wheels),
                "class names defined by Keras itself (no custom code needed to resolve them)",
            ],
            sorted(classes),
        )


if __name__ == "__main__":
    main()
