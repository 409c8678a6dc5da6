"""Walk a Keras model config (any version) and list what would run code when it loads.

A Keras config is a tree of serialised objects, each a dict with ``class_name`` and
``config`` (Keras 3 adds ``module`` and ``registered_name``). Loading it imports
``module``, looks up ``class_name`` and calls its ``from_config``; Lambda layers rebuild
Python functions from marshalled bytecode. So the walker reports:

* every Lambda (layer or ``__lambda__`` object), with what its code uses;
* objects from modules outside Keras' own namespaces, Python builtins used as functions,
  ``package>name`` registrations, and (legacy configs without ``module``) class names
  Keras does not define: all of them need code from outside the model's framework;
* Keras APIs that are not modelling objects (``keras.utils.get_file``, ``load_model``,
  ``enable_unsafe_deserialization``): the safe-mode bypasses of CVE-2025-1550 and after;
* ``TFOpLambda`` / ``SlicingOpLambda`` calls outside TensorFlow's math and array ops.

The walk is iterative with a node budget, so deep or huge configs cannot exhaust the stack
or the clock; when the budget runs out the analysis says so (``truncated``).
"""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from modelsec.keras.lambda_code import DANGEROUS_NAMES, PYTHON_BUILTINS, LambdaInfo, decode_function
from modelsec.tensorflow import ops as tfops

MAX_NODES = 2_000_000
MAX_DEPTH = 400
MAX_ISSUES = 500

# Module roots whose objects Keras resolves itself (or that the Keras team ships).
KERAS_MODULE_ROOTS = ("keras", "tf_keras", "keras_hub", "keras_nlp", "keras_cv", "keras_rs")
KERAS_MODULE_PREFIXES = ("tensorflow.keras", "tensorflow.python.keras")
# TypeSpecs name TensorFlow's own framework modules.
TYPESPEC_MODULE_PREFIXES = ("tensorflow.python.framework", "tensorflow.python.ops", "tensorflow")

# Serialisation markers that are not classes.
INTERNAL_MARKERS = frozenset(
    {
        "__tuple__",
        "__ellipsis__",
        "__bytes__",
        "__tensor__",
        "__numpy__",
        "__typespec__",
        "__slice__",
        "__keras_tensor__",
        "__lambda__",
        "__passive_serialization__",
        "function",
        "TensorShape",
        "TypeSpec",
        "CompositeTensor",
    }
)

# Public Keras functions that touch files, the network or deserialisation: not modelling
# objects (Keras 3's NON_MODELING_APIS and the functions used in published bypasses).
UNSAFE_KERAS_NAMES = frozenset(
    {
        "get_file",
        "load_model",
        "model_from_json",
        "model_from_yaml",
        "model_from_config",
        "save_model",
        "load_weights",
        "save_weights",
        "load_img",
        "save_img",
        "array_to_img",
        "enable_unsafe_deserialization",
        "deserialize_keras_object",
        "serialize_keras_object",
        "register_keras_serializable",
        "get_registered_object",
        "image_dataset_from_directory",
        "text_dataset_from_directory",
        "audio_dataset_from_directory",
        "timeseries_dataset_from_array",
        "clear_session",
        "set_random_seed",
        "deserialize",
        "get",
        "validate_file",
        "extract_archive",
        "HDF5Matrix",
        "CSVLogger",
        "TensorBoard",
        "ModelCheckpoint",
        "BackupAndRestore",
        "RemoteMonitor",
        "LambdaCallback",
        # Layers that load code rather than describe it: TorchModuleWrapper's config holds a
        # torch.save'd module that Keras hands to torch.load (a pickle; unconditionally in
        # Keras before August 2025), and TFSMLayer loads a SavedModel from a path.
        "TorchModuleWrapper",
        "TFSMLayer",
    }
)

# tf.* functions a TFOpLambda may call without leaving the graph: namespaces and top-level.
SAFE_TF_NAMESPACES = frozenset(
    {
        "math",
        "nn",
        "linalg",
        "signal",
        "image",
        "bitwise",
        "__operators__",
        "strings",
        "dtypes",
        "random",
        "sparse",
        "ragged",
        "experimental.numpy",
        "compat.v1.math",
        "compat.v1.nn",
        "compat.v1.image",
        "compat.v1.linalg",
        "compat.v1.sparse",
        "compat.v1.random",
        "compat.v1.strings",
        "raw_ops",
    }
)
SAFE_TF_FUNCTIONS = frozenset(
    {
        "reshape",
        "expand_dims",
        "squeeze",
        "concat",
        "stack",
        "unstack",
        "split",
        "transpose",
        "cast",
        "shape",
        "shape_n",
        "size",
        "rank",
        "where",
        "gather",
        "gather_nd",
        "scatter_nd",
        "tile",
        "pad",
        "slice",
        "strided_slice",
        "clip_by_value",
        "clip_by_norm",
        "identity",
        "identity_n",
        "ones_like",
        "zeros_like",
        "ones",
        "zeros",
        "fill",
        "range",
        "one_hot",
        "boolean_mask",
        "reverse",
        "reverse_sequence",
        "sort",
        "argsort",
        "einsum",
        "matmul",
        "add",
        "add_n",
        "subtract",
        "multiply",
        "divide",
        "truediv",
        "floordiv",
        "realdiv",
        "maximum",
        "minimum",
        "abs",
        "exp",
        "sqrt",
        "square",
        "pow",
        "negative",
        "sign",
        "reduce_sum",
        "reduce_mean",
        "reduce_max",
        "reduce_min",
        "reduce_prod",
        "reduce_all",
        "reduce_any",
        "reduce_logsumexp",
        "argmax",
        "argmin",
        "broadcast_to",
        "meshgrid",
        "linspace",
        "convert_to_tensor",
        "stop_gradient",
        "ensure_shape",
        "norm",
        "tensordot",
        "cumsum",
        "cumprod",
        "round",
        "floor",
        "ceil",
        "equal",
        "not_equal",
        "less",
        "less_equal",
        "greater",
        "greater_equal",
        "logical_and",
        "logical_or",
        "logical_not",
        "sigmoid",
        "tanh",
        "nn.relu",
        "roll",
        "repeat",
        "searchsorted",
        "unique",
        "histogram_fixed_width",
        "eye",
        "diag",
        "linalg.diag",
        "bitcast",
        "complex",
        "real",
        "imag",
        "math",
        "sequence_mask",
        "batch_to_space",
        "space_to_batch",
        "depth_to_space",
        "space_to_depth",
        "extract_image_patches",
        "image.resize",
        "size_v2",
        "tensor_scatter_nd_update",
        "tensor_scatter_nd_add",
        "unravel_index",
        "dynamic_partition",
        "dynamic_stitch",
        "fingerprint",
        "cond",
        "case",
        "switch_case",
        "clip",
        "truncatediv",
        "truncatemod",
    }
)
# Fragments of TF function names that run Python or load native code.
CODE_TF_FRAGMENTS = (
    "py_function",
    "numpy_function",
    "py_func",
    "eager_py_func",
    "load_library",
    "load_op_library",
    "script_ops",
)
# Namespaces that reach files, the network or the runtime outside the graph.
IO_TF_NAMESPACES = (
    "io",
    "gfile",
    "compat.v1.gfile",
    "data",
    "summary",
    "saved_model",
    "debugging",
    "distribute",
    "tpu",
    "config",
    "lookup",
    "compat.v1.io",
    "compat.v1.data",
    "compat.v1.summary",
    "compat.v1.saved_model",
    "compat.v1.train",
    "train",
    "keras",
    "audio",
    "sysconfig",
    "print",
    "compat.v1.Print",
    "Print",
)


class IssueKind(str, enum.Enum):
    LAMBDA = "lambda"
    CUSTOM_OBJECT = "custom object"
    UNSAFE_API = "non-modelling Keras API"
    TF_OP_CODE = "TF function that runs code"
    TF_OP_IO = "TF function that reaches outside the graph"
    TF_OP_OTHER = "TF function outside the math/array set"


@dataclass(frozen=True)
class KerasIssue:
    """One object in the config that would run code on load: what kind, where, and why."""

    kind: IssueKind
    where: str  # JSON path of the object, with its layer name when known
    subject: str
    message: str
    critical: bool = False
    details: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass
class ConfigAnalysis:
    """What the walk found: its issues, the objects and lambdas seen, and why it stopped early."""

    issues: list[KerasIssue] = field(default_factory=list)
    objects: int = 0  # serialised objects (dicts with class_name) seen
    lambdas: int = 0
    truncated: str = ""  # why the walk stopped early, if it did
    dropped_issues: int = 0


@functools.cache
def keras_classes() -> frozenset[str]:
    text = resources.files("modelsec.keras").joinpath("keras_classes.txt").read_text("utf-8")
    return frozenset(line for line in text.splitlines() if line and line[0] != "#")


def _is_keras_module(module: str) -> bool:
    root = module.split(".", 1)[0]
    return root in KERAS_MODULE_ROOTS or any(
        module == p or module.startswith(p + ".") for p in KERAS_MODULE_PREFIXES
    )


def classify_tf_function(fn: str) -> IssueKind | None:
    """None if ``fn`` (a ``tf.``-relative name such as ``math.add``) stays in the graph."""
    name = fn.strip()
    if name.startswith("tf."):
        name = name[3:]
    lowered = name.lower()
    if any(fragment in lowered for fragment in CODE_TF_FRAGMENTS):
        return IssueKind.TF_OP_CODE
    if name.startswith("raw_ops."):
        op = name[len("raw_ops.") :]
        risk = tfops.classify(op)
        if risk is tfops.OpRisk.CODE:
            return IssueKind.TF_OP_CODE
        if risk is not None and risk is not tfops.OpRisk.PATH_ARGUMENT:
            return IssueKind.TF_OP_IO
        return None if tfops.is_known(op) else IssueKind.TF_OP_OTHER
    if any(name == ns or name.startswith(ns + ".") for ns in IO_TF_NAMESPACES):
        return IssueKind.TF_OP_IO
    if any(word in lowered for word in ("read_file", "write_file", "matching_files", "gfile")):
        return IssueKind.TF_OP_IO
    if name in SAFE_TF_FUNCTIONS or any(name.startswith(ns + ".") for ns in SAFE_TF_NAMESPACES):
        return None
    return IssueKind.TF_OP_OTHER


class _Walker:
    def __init__(self, root_label: str) -> None:
        self.out = ConfigAnalysis()
        self.root_label = root_label
        self.handled_lambdas: set[int] = set()

    def add(self, issue: KerasIssue) -> None:
        if len(self.out.issues) >= MAX_ISSUES:
            self.out.dropped_issues += 1
        else:
            self.out.issues.append(issue)

    # -- the walk
    def walk(self, root: Any) -> ConfigAnalysis:
        stack: list[tuple[Any, str, int]] = [(root, self.root_label, 0)]
        seen = 0
        while stack:
            node, path, depth = stack.pop()
            seen += 1
            if seen > MAX_NODES:
                self.out.truncated = f"config has more than {MAX_NODES} values; rest not inspected"
                break
            if depth > MAX_DEPTH:
                self.out.truncated = f"config nested deeper than {MAX_DEPTH} levels at {path}"
                continue
            if isinstance(node, dict):
                if isinstance(node.get("class_name"), str):
                    self.out.objects += 1
                    self.check_object(node, path)
                for key, value in reversed(list(node.items())):
                    if isinstance(value, (dict, list)):
                        stack.append((value, f"{path}.{key}" if path else str(key), depth + 1))
            elif isinstance(node, list):
                for index in range(len(node) - 1, -1, -1):
                    value = node[index]
                    if isinstance(value, (dict, list)):
                        stack.append((value, f"{path}[{index}]", depth + 1))
        return self.out

    # -- one serialised object
    def check_object(self, obj: dict[str, Any], path: str) -> None:
        cls: str = obj["class_name"]
        cfg = obj.get("config")
        label = _label(obj, path)
        if cls == "Lambda":
            self.check_lambda_layer(obj, label)
        elif cls == "__lambda__" and id(obj) not in self.handled_lambdas:
            info = decode_function(obj)
            self.report_lambda(label, "lambda object", info, obj)
        elif cls in ("TFOpLambda", "SlicingOpLambda") and isinstance(cfg, dict):
            fn = cfg.get("function")
            if isinstance(fn, str):
                kind = classify_tf_function(fn)
                if kind is not None:
                    self.add(
                        KerasIssue(
                            kind,
                            label,
                            f"tf.{fn.removeprefix('tf.')}",
                            f"{cls} layer {label} calls tf.{fn.removeprefix('tf.')} ({kind.value})",
                            critical=kind is IssueKind.TF_OP_CODE,
                        )
                    )
        self.check_origin(obj, cls, cfg, label)

    def check_origin(self, obj: dict[str, Any], cls: str, cfg: Any, label: str) -> None:
        module = obj.get("module")
        registered = obj.get("registered_name")
        fn = cfg if cls == "function" and isinstance(cfg, str) else None
        target = fn or cls
        reasons: list[str] = []
        critical = False
        unsafe_api = False
        if "module" in obj and module is not None and not isinstance(module, str):
            reasons.append(f"module is a {type(module).__name__}, not a module name")
        elif isinstance(module, str):
            root = module.split(".", 1)[0]
            if module == "builtins":
                if cls != "function":
                    reasons.append(f"class {cls!r} from Python's builtins")
                elif fn is not None and fn in PYTHON_BUILTINS:
                    reasons.append(f"Python builtin {fn}() used as a function")
                    critical = fn in DANGEROUS_NAMES or fn in {"exec", "eval", "compile", "__import__"}
            elif _is_keras_module(module):
                if target in UNSAFE_KERAS_NAMES or target.rsplit(".", 1)[-1] in UNSAFE_KERAS_NAMES:
                    unsafe_api = True
            elif cls == "__typespec__" and any(
                module == p or module.startswith(p + ".") for p in TYPESPEC_MODULE_PREFIXES
            ):
                pass
            else:
                reasons.append(f"module {module!r} is outside Keras")
                critical = root in DANGEROUS_NAMES or target in DANGEROUS_NAMES
        elif cls not in INTERNAL_MARKERS and cls not in keras_classes():
            reasons.append(f"class {cls!r} is not defined by Keras")
        elif target in UNSAFE_KERAS_NAMES:  # a Keras class named without its module
            unsafe_api = True
        if isinstance(registered, str) and ">" in registered:
            package = registered.split(">", 1)[0]
            if package not in KERAS_MODULE_ROOTS:
                reasons.append(f"registered as {registered!r} (a custom registration)")
        if unsafe_api:
            api = f"{module}.{target}" if isinstance(module, str) else target
            self.add(
                KerasIssue(
                    IssueKind.UNSAFE_API,
                    label,
                    api,
                    f"{label} refers to {api}, a Keras API that is not a modelling object "
                    "(files, network or deserialisation side effects; a known safe_mode bypass)",
                    critical=True,
                )
            )
        if reasons:
            subject = f"{module}.{target}" if isinstance(module, str) else target
            self.add(
                KerasIssue(
                    IssueKind.CUSTOM_OBJECT,
                    label,
                    subject,
                    f"{label} needs custom code to load: {'; '.join(reasons)}",
                    critical=critical,
                    details={
                        "module": module if isinstance(module, str) else None,
                        "class_name": cls,
                        "registered_name": registered if isinstance(registered, str) else None,
                    },
                )
            )

    # -- Lambdas
    def check_lambda_layer(self, obj: dict[str, Any], label: str) -> None:
        cfg = obj.get("config")
        if not isinstance(cfg, dict):
            self.report_lambda(
                label, "Lambda layer", LambdaInfo("unreadable", error="config is not an object"), obj
            )
            return
        for key, type_key in (
            ("function", "function_type"),
            ("output_shape", "output_shape_type"),
            ("mask", "mask_type"),
        ):
            if key not in cfg or cfg[key] is None:
                continue
            value, ftype = cfg[key], cfg.get(type_key)
            if isinstance(value, dict) and value.get("class_name") == "__lambda__":
                self.handled_lambdas.add(id(value))
            elif key != "function" and not _is_code(value, ftype):
                continue  # a raw output shape or a named function: not stored code
            info = decode_function(value, ftype if isinstance(ftype, str) else None)
            what = "Lambda layer" if key == "function" else f"Lambda layer {key}"
            self.report_lambda(label, what, info, obj)
        if "function" not in cfg:
            self.report_lambda(
                label, "Lambda layer", LambdaInfo("unreadable", error="no function in config"), obj
            )

    def report_lambda(self, label: str, what: str, info: LambdaInfo, obj: dict[str, Any]) -> None:
        self.out.lambdas += 1
        dangerous = info.dangerous
        message = f"{what} {label} runs Python code when the model is loaded or called: {info.describe()}"
        if dangerous:
            message += f"; it uses {', '.join(dangerous)}"
        details: dict[str, Any] = {"form": info.form}
        if info.summary is not None:
            details.update(
                names=sorted(set(info.summary.names))[:100],
                strings=info.summary.strings[:50],
                code_objects=info.summary.code_objects,
                layout=info.summary.layout,
            )
        elif info.identifiers:
            details["identifiers"] = info.identifiers[:100]
        if info.error:
            details["error"] = info.error
        self.add(
            KerasIssue(
                IssueKind.LAMBDA,
                label,
                ", ".join(dangerous) if dangerous else "Lambda",
                message,
                critical=bool(dangerous),
                details=details,
            )
        )


def _is_code(value: Any, ftype: Any) -> bool:
    if ftype == "lambda":
        return True
    if ftype in ("raw", "function"):
        return False
    if isinstance(value, dict):
        return value.get("class_name") == "__lambda__"
    if isinstance(value, str):
        return True  # base64 bytecode or source
    if isinstance(value, list) and value and isinstance(value[0], str) and len(value[0]) > 16:
        return True  # [code, defaults, closure]
    return False


def _label(obj: dict[str, Any], path: str) -> str:
    cfg = obj.get("config")
    name = cfg.get("name") if isinstance(cfg, dict) else None
    if not isinstance(name, str):
        name = obj.get("name") if isinstance(obj.get("name"), str) else None
    where = path or "<root>"
    if len(where) > 200:
        where = "..." + where[-197:]
    return f"{name!r} ({where})" if name else where


def analyze_config(root: Any, label: str = "") -> ConfigAnalysis:
    """Analyse a parsed Keras config (the top-level object or any sub-tree)."""
    return _Walker(label).walk(root)
